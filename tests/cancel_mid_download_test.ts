// deno-lint-ignore-file no-explicit-any
/**
 * Issue 22 item 3: cancelling (deleting) an assignment takes a defined effect on an appliance that
 * is mid-download (docs/operations.md, "Deleting what is in use"): the cut download is not resumed
 * nor installed, its partial bytes are removed at the next cycle (its catalog no longer lists it),
 * and the appliance runs what its target falls back to. A real agent cut mid-download (the
 * test-only cut point, as a power cut or a long download would leave it).
 */
import assert from "node:assert/strict";
import { installBox, withNoc } from "./_agent_installs.ts";
import { publishAndAssign } from "./_components.ts";

const once = ["once", "--allow-http-files"];

function randomBytes(size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
  return b;
}

Deno.test({
  name:
    "an assignment deleted while its download is cut short: not resumed, not installed, cleaned",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withNoc(async (noc) => {
      const box = await installBox(noc);
      try {
        const install = (v: string) =>
          `#!/bin/sh\nset -e\nmkdir -p "$NOC_ROOT/app"\necho ${v} > "$NOC_ROOT/app/version"\n`;
        // 1.0 to everyone, installed; then 2.0 to this appliance, cut mid-download.
        await publishAndAssign(noc, { app: "demo", name: "app", version: "1.0" }, {
          install: install("1.0"),
        });
        assert.equal((await box.agent(once)).code, 0);
        assert.equal((await box.readRoot("app/version"))?.trim(), "1.0");
        const uid = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid;
        const { assignmentId } = await publishAndAssign(
          noc,
          { app: "demo", name: "app", version: "2.0" },
          { install: install("2.0"), "data.bin": randomBytes(512 * 1024) },
          { type: "appliance", value: uid },
        );
        const cut = await box.agent(once, { NOC_AGENT_CUT_AT: "download" });
        assert.equal(cut.code, 137, cut.stdout + cut.stderr);
        const partial = [...Deno.readDirSync(`${box.state}/downloads`)].map((e) => e.name);
        assert.equal(partial.length, 1, "a partial download is left");

        // The operator cancels 2.0 for it.
        const del = await noc.admin("DELETE", `/v1/admin/assignments/${assignmentId}`);
        assert.equal(del.status, 204, JSON.stringify(del.body));
        const next = await box.agent(once);
        assert.equal(next.code, 0, next.stdout + next.stderr);
        assert.ok(!next.events.some((e: any) => e.event === "download_resumed"), next.stdout);
        assert.ok(!next.events.some((e: any) => e.event === "install_started"), next.stdout);
        assert.equal((await box.readRoot("app/version"))?.trim(), "1.0", "still on 1.0");
        assert.deepEqual([...Deno.readDirSync(`${box.state}/downloads`)], [], "partial removed");
        const outcomes = (await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body
          .installOutcomes.filter((o: any) => o.version === "2.0");
        assert.deepEqual(outcomes, [], "2.0 was never reported installed");
      } finally {
        await box.remove();
      }
    }),
});
