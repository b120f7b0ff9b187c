// deno-lint-ignore-file no-explicit-any
/**
 * Review 21d (attacker): a mount path over the NOC's 256 characters (a deep appliance root is
 * enough: the root and state folders are the default mounts) made every beat — the full one and
 * every smaller step — refused, so the appliance never beat and no reason reached the NOC. Now the
 * agent leaves that mount out of `health.disks` and names it in `dropped`.
 */
import assert from "node:assert/strict";
import { enrolledAgent } from "./_agent.ts";
import { detail, withServedNoc } from "./_degrades.ts";

Deno.test({
  name: "a real agent with a 300-character mount path beats, leaving that mount out and saying so",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withServedNoc({}, async (noc) => {
      const box = await enrolledAgent(noc);
      try {
        let dir = `${box.root}/m`;
        while (dir.length < 300) dir += "/" + "d".repeat(60);
        await Deno.mkdir(dir, { recursive: true });
        const r = await box.run(["once"], { NOC_AGENT_MOUNTS: `${box.root},${dir}` });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.ok(!r.events.some((e) => e.event === "beat_refused"), r.stdout);
        const shown = await detail(noc, box);
        assert.equal(shown.lastReport.seq, 1, "its beat landed");
        assert.deepEqual(shown.lastReport.health.disks.map((d: any) => d.mount), [box.root]);
        assert.equal(shown.dropped.length, 1, JSON.stringify(shown.dropped));
        assert.match(
          shown.dropped[0],
          /^health\.disks: ".{60}"… \(a mount path the NOC refuses: \d+ characters, at most 256/,
        );
      } finally {
        await box.remove();
      }
    });
  },
});
