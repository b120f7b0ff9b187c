/**
 * Issue 21, items 7 and 8 (the agent's side): every beat carries the agent process's `instanceId`
 * (drawn at start, never kept in the state folder, so a copied folder does not copy it) and the
 * host name it runs under (`--hostname`, `NOC_AGENT_HOSTNAME`, or the system's). Real agent
 * processes, a NOC served over HTTP.
 */
import assert from "node:assert/strict";
import { enrolledAgent } from "./_agent.ts";
import { detail, withServedNoc } from "./_degrades.ts";

const once = ["once", "--allow-http-files"];
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Every file's text under `dir`. */
async function allText(dir: string): Promise<string> {
  let out = "";
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out += await allText(path);
    else if (e.isFile) out += await Deno.readTextFile(path).catch(() => "");
  }
  return out;
}

Deno.test({
  name:
    "each agent process beats with an instanceId of its own, kept nowhere on disk, and the host name it runs under",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withServedNoc({}, async (noc) => {
      const box = await enrolledAgent(noc);
      try {
        const r1 = await box.run(once, { NOC_AGENT_HOSTNAME: "mx-par-01" });
        assert.equal(r1.code, 0, r1.stdout + r1.stderr);
        const first = (await detail(noc, box)).lastReport;
        assert.match(first.instanceId, uuid);
        assert.equal(first.hostname, "mx-par-01");
        // `once` says which instance it is, in the line `run` logs at start.
        const onceStarted = r1.events.filter((e) => e.event === "agent_started");
        assert.equal(onceStarted.length, 1, r1.stdout);
        assert.equal(onceStarted[0].instanceId, first.instanceId);
        assert.equal(onceStarted[0].hostname, "mx-par-01");
        assert.equal(onceStarted[0].uid, (await detail(noc, box)).uid);
        assert.ok(
          !(await allText(box.state)).includes(first.instanceId),
          "not in the state folder",
        );

        // The flag wins over the environment; a new process draws a new instance id.
        const r2 = await box.run([...once, "--hostname", "mx-lon-01"], {
          NOC_AGENT_HOSTNAME: "mx-par-01",
        });
        assert.equal(r2.code, 0, r2.stdout + r2.stderr);
        const second = (await detail(noc, box)).lastReport;
        assert.match(second.instanceId, uuid);
        assert.notEqual(second.instanceId, first.instanceId);
        assert.equal(second.hostname, "mx-lon-01");
        assert.equal(second.seq, first.seq + 1, "a restart: its seq goes on");

        // A running agent says which instance it is when it starts.
        const agent = box.spawn(["run", "--wake-wait", "0"]);
        try {
          const started = await agent.waitFor((e) => e.event === "agent_started");
          assert.match(started.instanceId, uuid);
          // The same line shape as `once`'s.
          assert.deepEqual(
            Object.keys(started).filter((k) => !["time", "level"].includes(k)).sort(),
            Object.keys(onceStarted[0]).filter((k) => !["time", "level"].includes(k)).sort(),
          );
          await agent.waitFor((e) => e.event === "cycle_finished");
          assert.equal((await detail(noc, box)).lastReport.instanceId, started.instanceId);
        } finally {
          await agent.stop("SIGTERM");
        }
      } finally {
        await box.remove();
      }
    }),
});
