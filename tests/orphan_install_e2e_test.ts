// deno-lint-ignore-file no-explicit-any
/**
 * No orphan installs (issue 18, item 9). A real agent process is SIGKILLed in
 * the middle of version 2's install program, which keeps running (as under a
 * supervisor that kills only the agent's PID) and would put version 2's files
 * in place whenever it is let go. The next run, with version 3 assigned,
 * stops that process group before it installs anything, installs version 3,
 * and the disk, `catalog.cur` and the NOC agree on version 3.
 *
 * The install program waits on fifos the test holds, so nothing here sleeps.
 * It runs on PGlite only (a slow test runs on one database).
 */
import assert from "node:assert/strict";
import { migratedDb } from "./_harness.ts";
import { enrolledAgent, serveNoc } from "./_agent.ts";
import { publishAndAssign } from "./_components.ts";

const installScript = `#!/bin/sh
set -e
mkdir -p "$NOC_ROOT/demo"
printf '%s' "$NOC_VERSION" > "$NOC_ROOT/demo/.version.tmp"
mv "$NOC_ROOT/demo/.version.tmp" "$NOC_ROOT/demo/version"
`;

/** True while process `pid` lives (a zombie does not). */
async function alive(pid: number): Promise<boolean> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

Deno.test({
  name:
    "an install program that outlives its killed agent is stopped before the next run installs; disk, catalog.cur and the NOC agree",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await migratedDb();
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    const dir = await Deno.makeTempDir({ prefix: "noc-orphan-" });
    let installer = 0;
    try {
      const uid = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid;
      const publish = (version: string, install: string) =>
        publishAndAssign(noc, { app: "demo", name: "demo", version }, { install });
      // Version 2 says it started, then waits to be let go, then renames its files into place.
      const started = `${dir}/started.fifo`;
      const gate = `${dir}/gate.fifo`;
      for (const f of [started, gate]) await new Deno.Command("mkfifo", { args: [f] }).output();
      await publish(
        "2.0.0",
        `#!/bin/sh\necho $$ > "${started}"\nread go < "${gate}"\n` +
          installScript.replace("#!/bin/sh\n", "") + `touch "${dir}/v2-finished"\n`,
      );
      const first = box.spawn(["once", "--allow-http-files"]);
      const finished = first.waitFor((e) => e.event === "cycle_finished");
      finished.catch(() => {});
      installer = Number(
        (await Promise.race([
          Deno.readTextFile(started),
          finished.then(() => {
            throw new Error(`the cycle ended first: ${JSON.stringify(first.events)}`);
          }),
        ])).trim(),
      );
      await first.stop("SIGKILL");
      assert.ok(await alive(installer), "the install program outlives its agent");
      const running = JSON.parse(await Deno.readTextFile(`${box.state}/running.json`));
      assert.equal(running.programs[0].pid, installer, "recorded before it started");
      assert.match(running.programs[0].startTicks, /^\d+$/);

      // The next run, with version 3 assigned.
      await publish("3.0.0", installScript);
      const r = await box.run(["once", "--allow-http-files"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const at = (event: string) => r.events.findIndex((e) => e.event === event);
      assert.equal(r.events[at("leftover_install_running")]?.pid, installer, r.stdout);
      assert.ok(at("leftover_install_stopped") >= 0, r.stdout);
      assert.ok(
        at("leftover_install_stopped") < at("install_started"),
        "stopped before anything is installed",
      );
      assert.equal(await alive(installer), false, "the earlier install is gone");
      installer = 0;
      assert.equal(r.events.find((e) => e.event === "installed")?.component, "demo/demo@3.0.0");
      assert.deepEqual(JSON.parse(await Deno.readTextFile(`${box.state}/running.json`)), {
        format: "noc-agent-running/1",
        programs: [],
      });

      // Disk, catalog.cur and the NOC (its outcomes, and the next beat) agree on version 3.
      assert.equal(await box.readRoot("demo/version"), "3.0.0");
      assert.equal(await Deno.stat(`${dir}/v2-finished`).then(() => true, () => false), false);
      assert.deepEqual(
        (await box.catalogCur()).components.map((c: any) => `${c.name}@${c.version}`),
        ["demo@3.0.0"],
      );
      assert.equal((await box.run(["once", "--allow-http-files"])).code, 0);
      const shown = (await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body;
      assert.deepEqual(
        shown.installOutcomes.map((o: any) => `${o.version}:${o.outcome}`),
        ["3.0.0:installed"],
      );
      assert.deepEqual(
        shown.lastReport.components.map((c: any) => `${c.name}@${c.version}`),
        ["demo@3.0.0"],
      );
    } finally {
      if (installer) Deno.kill(-installer, "SIGKILL");
      await box.remove();
      await Deno.remove(dir, { recursive: true });
      await noc.close();
      await db.close();
    }
  },
});
