// deno-lint-ignore-file no-explicit-any
/**
 * Review 21c (attacker): the agent's cuts to 200 characters (agent/beat.ts fitBeat step 4,
 * smallestBeat "reasons") split a surrogate pair, so the "smaller" beat was refused by the NOC and
 * the reasons never reached it; a plug-in's stderr with an emoji at the cut was enough. And the
 * first 10 reasons went before components. Now cuts stay well-formed and reasons go last.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { type BeatBody, fitBeat, smallestBeat } from "../agent/beat.ts";
import { DEFAULT_REPORT_LIMITS } from "../protocol/catalog.ts";

function beatWith(now: Date, problems: any[], components = 0): BeatBody {
  return {
    seq: 1,
    sentAt: now.toISOString(),
    agentVersion: "1.0.0",
    instanceId: crypto.randomUUID(),
    health: {
      load: [0, 0, 0],
      memory: { totalBytes: 1, availableBytes: 1 },
      disks: [],
      uptimeS: 1,
    },
    components: Array.from({ length: components }, (_, i) => ({
      kind: "file" as const,
      app: "app",
      name: `f${i}`,
      version: "1.0.0-" + "x".repeat(100),
    })),
    lastCycle: { outcome: "failed", problems },
    apps: {},
  };
}

// What plugins.ts makes of a plug-in exiting 1 whose stderr holds emoji (cleaned: NUL-free, well-formed).
const prefix = `Plug-in "scanner" exited with 1: `;
const stderr = "x".repeat(199 - prefix.length) + "🔥".repeat(100); // a pair at 199/200
const problem = { code: "plugin_failed", message: prefix + stderr, kind: "plugin", app: "scanner" };
const stateProblem = {
  code: "state_unwritable",
  message: "Cannot write /var/lib/noc-agent/cycle.lock: Read-only file system (os error 30)",
};

dbTest(
  "smallestBeat() 'reasons' cut at an emoji is accepted by the NOC, reasons and all",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const full = beatWith(noc.clock.now(), [stateProblem, problem]);
    const small = smallestBeat(
      full,
      "the NOC refused the full report (413 body_too_large): a smaller one, without",
      {
        step: "reasons",
        installed: 0,
      },
    );
    const cut = small.lastCycle.problems![1]!.message;
    assert.equal(cut.isWellFormed(), true);
    assert.equal(cut.length, 200);
    assert.ok(cut.endsWith("\uFFFD"), "the split pair became U+FFFD");
    await a.beat(small as any);
    const shown = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.deepEqual(shown.body.problems.map((p: any) => p.code), [
      "state_unwritable",
      "plugin_failed",
    ]);
  },
);

dbTest(
  "fitBeat() keeps 10 well-formed reasons before 2,000 components, and the NOC takes it",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    // 100 problems of ~2,000 characters and many components: over 256 KiB without apps.
    const problems = [
      stateProblem,
      ...Array.from({ length: 99 }, () => ({
        ...problem,
        message: (problem.message + "y".repeat(2000)).slice(0, 2000),
      })),
    ];
    const { beat, dropped } = fitBeat(
      beatWith(noc.clock.now(), problems, 2000),
      DEFAULT_REPORT_LIMITS,
    );
    assert.equal(beat.lastCycle.problems?.length, 10, JSON.stringify(dropped));
    assert.equal(beat.lastCycle.problems![0]!.code, "state_unwritable");
    assert.ok(beat.components.length < 2000, "components went first");
    assert.ok(dropped.some((d) => d.startsWith("components: 2,000 installed")), dropped.join("; "));
    assert.ok(dropped.includes("lastCycle.problems: 100 reported, 10 kept"), dropped.join("; "));
    await a.beat(beat as any);
    const shown = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(shown.body.problems[0].code, "state_unwritable");
  },
);
