// deno-lint-ignore-file no-explicit-any
/**
 * Review 21 leftover: a cycle with more problems than a beat lists (100) keeps the first 100, and
 * the beat says how many were cut in `dropped` (`lastCycle.problems: N reported, 100 kept`), as
 * fitting the beat does (agent/beat.ts). A unit test of the beat's last cycle, and a real agent
 * whose cycle has 104 problems (64 unreadable mounts, 40 failing init plug-ins).
 */
import assert from "node:assert/strict";
import { cycleForBeat } from "../agent/cycle.ts";
import { type BeatBody, fitBeat, smallestBeat } from "../agent/beat.ts";
import { DEFAULT_REPORT_LIMITS } from "../protocol/catalog.ts";
import { beatSchema } from "../protocol/schemas.ts";
import { enrolledAgent } from "./_agent.ts";
import { detail, withServedNoc } from "./_degrades.ts";

const problems = (n: number, code = "p") =>
  Array.from({ length: n }, (_, i) => ({ code: `${code}${i}`, message: `problem ${i}` }));

Deno.test("a last cycle past 100 problems: 100 go, and dropped counts the rest", () => {
  // The cycle kept 100 of its 130 (agent/cycle.ts, finish).
  const last = { outcome: "partial" as const, problems: problems(100), problemsReported: 130 };
  const got = cycleForBeat(last, []);
  assert.equal(got.lastCycle.problems?.length, 100);
  assert.deepEqual(got.dropped, ["lastCycle.problems: 130 reported, 100 kept"]);

  // This cycle's state_unwritable goes first and pushes one more out.
  const urgent = [{ code: "state_unwritable", message: "Cannot write /s/state.json: full" }];
  const full = cycleForBeat({ outcome: "ok", problems: problems(100) }, urgent);
  assert.equal(full.lastCycle.problems?.length, 100);
  assert.equal(full.lastCycle.problems?.[0]?.code, "state_unwritable");
  assert.deepEqual(full.dropped, ["lastCycle.problems: 101 reported, 100 kept"]);

  // None cut, nothing said.
  assert.deepEqual(cycleForBeat({ outcome: "ok", problems: problems(100) }, []).dropped, []);
  assert.deepEqual(cycleForBeat({ outcome: "ok" }, urgent).dropped, []);

  // Fitting the beat further adds its own line, with the cycle's count.
  const beat: BeatBody = {
    seq: 1,
    sentAt: new Date(0).toISOString(),
    agentVersion: "1.0.0",
    health: {
      load: [0, 0, 0],
      memory: { totalBytes: 1, availableBytes: 1 },
      disks: [],
      uptimeS: 1,
    },
    components: [],
    lastCycle: got.lastCycle,
    apps: {},
    dropped: got.dropped,
  };
  const fitted = fitBeat(beat, { ...DEFAULT_REPORT_LIMITS, bodyBytes: 1500 });
  assert.equal(fitted.beat.lastCycle.problems?.length, 10);
  assert.deepEqual(
    fitted.dropped.filter((d) => d.startsWith("lastCycle.problems")),
    ["lastCycle.problems: 130 reported, 100 kept", "lastCycle.problems: 130 reported, 10 kept"],
  );
  const smallest = smallestBeat(beat, "the NOC refused", { step: "reasons", installed: 0 });
  assert.deepEqual(
    smallest.dropped?.filter((d) => d.startsWith("lastCycle.problems")),
    ["lastCycle.problems: 130 reported, 100 kept", "lastCycle.problems: 130 reported, 10 kept"],
  );
  assert.ok(beatSchema(DEFAULT_REPORT_LIMITS.appDataBytes).safeParse(fitted.beat).success);
});

Deno.test({
  name: "a real agent whose cycle has 104 problems beats 100 of them and says 104 in dropped",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withServedNoc({}, async (noc) => {
      const box = await enrolledAgent(noc);
      try {
        await Deno.mkdir(`${box.state}/init.d`, { recursive: true });
        for (let i = 0; i < 40; i++) {
          await Deno.writeTextFile(
            `${box.state}/init.d/${String(i).padStart(2, "0")}-broken.sh`,
            "#!/bin/sh\nexit 3\n",
            { mode: 0o755 },
          );
        }
        const mounts = Array.from({ length: 64 }, (_, i) => `/nonexistent/noc-mount-${i}`);
        const env = { NOC_AGENT_MOUNTS: mounts.join(",") };
        const first = await box.run(["once", "--allow-http-files"], env);
        const finished = first.events.find((e) => e.event === "cycle_finished");
        assert.ok(finished.problems >= 104, first.stdout);
        // The next beat carries that cycle: 100 problems, and the count of all of them.
        await box.run(["once", "--allow-http-files"], env);
        const d = await detail(noc, box);
        const listed = d.lastReport.lastCycle.problems as any[];
        assert.equal(listed.length, 100);
        assert.ok(
          d.dropped.includes(`lastCycle.problems: ${finished.problems} reported, 100 kept`),
          JSON.stringify(d.dropped),
        );
      } finally {
        await box.remove();
      }
    }),
});
