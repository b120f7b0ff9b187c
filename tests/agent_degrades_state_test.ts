// deno-lint-ignore-file no-explicit-any
/**
 * Issue 21, items 4 and 5 (the agent's side): a state folder that cannot be written and a damaged
 * stored catalog. Real agent processes; the state folder on a test-made tmpfs remounted read-only
 * (as root), or a folder made 0500 (as anyone else). docs/agent.md, "A state folder that cannot
 * be written" and "A damaged stored catalog".
 */
import assert from "node:assert/strict";
import { enrolledAgent } from "./_agent.ts";
import { detail, uidOf, withServedNoc } from "./_degrades.ts";
import { publishAndAssign } from "./_components.ts";

const once = ["once", "--allow-http-files"];
const opts = { sanitizeOps: false, sanitizeResources: false };

async function sh(cmd: string, args: string[]): Promise<boolean> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  return out.success;
}

Deno.test({
  name:
    "a read-only state folder: the cycle still beats, with state_unwritable naming the path and the OS error",
  ...opts,
  fn: () =>
    withServedNoc({}, async (noc) => {
      const box = await enrolledAgent(noc);
      const asRoot = Deno.uid() === 0;
      let mounted = false;
      try {
        assert.equal((await box.run(once)).code, 0);
        const saved = new Map<string, Uint8Array>();
        for (const name of ["identity.json", "state.json", "catalog.cur", "catalog.json"]) {
          const bytes = await Deno.readFile(`${box.state}/${name}`).catch(() => null);
          if (bytes) saved.set(name, bytes);
        }
        if (asRoot) {
          // As root a mode does not stop writes: a tmpfs remounted read-only does.
          mounted = await sh("mount", [
            "-t",
            "tmpfs",
            "-o",
            "size=4m,mode=0700",
            "tmpfs",
            box.state,
          ]);
          assert.ok(mounted, "mount a tmpfs (needs CAP_SYS_ADMIN)");
          for (const [name, bytes] of saved) {
            await Deno.writeFile(`${box.state}/${name}`, bytes, { mode: 0o600 });
          }
          assert.ok(await sh("mount", ["-o", "remount,ro", box.state]), "remount read-only");
        } else {
          await Deno.remove(`${box.state}/cycle.lock`).catch(() => {});
          await Deno.chmod(box.state, 0o500);
        }
        // Someone at the appliance asks: status says first that the folder cannot be written
        // (what follows is the last state saved), and leaves nothing behind.
        const status = await box.run(["status"]);
        assert.equal(status.code, 0, status.stderr);
        assert.match(status.stdout, /^state folder NOT WRITABLE: /m);
        const asJson = JSON.parse((await box.run(["status", "--json"])).stdout);
        assert.match(
          asJson.stateUnwritable,
          asRoot ? /Read-only file system/ : /Permission denied/,
        );
        // Each "once" is a process of its own: with nothing saved, each beats with seq 2.
        for (const seq of [2, 2]) {
          const r = await box.run(once);
          assert.equal(r.code, 1, "the cycle failed (nothing installed), and did not crash");
          assert.ok(!/noc-agent: /.test(r.stderr), r.stderr);
          const unwritable = r.events.find((e) => e.event === "state_unwritable");
          assert.equal(unwritable?.path, `${box.state}/cycle.lock`);
          const finished = r.events.find((e) => e.event === "cycle_finished");
          assert.match(finished.message, /^State folder unwritable: Cannot write /);
          const d = await detail(noc, box);
          assert.equal(d.lastReport.seq, seq, "its beat landed");
          const p = d.lastReport.lastCycle.problems[0];
          assert.equal(p.code, "state_unwritable");
          assert.ok(p.message.startsWith(`Cannot write ${box.state}/cycle.lock: `), p.message);
          assert.match(
            p.message,
            asRoot ? /Read-only file system \(os error 30\)/ : /Permission denied \(os error 13\)/,
          );
          assert.equal(
            d.lastReport.lastCycle.problems.filter((x: any) => x.code === "state_unwritable")
              .length,
            1,
          );
        }
        // Nothing was written: the state folder is as it was.
        assert.deepEqual(await Deno.readFile(`${box.state}/state.json`), saved.get("state.json"));

        // A running agent keeps its state in memory: its sequence goes on from cycle to cycle.
        const agent = box.spawn(["run", "--allow-http-files", "--wake-wait", "30"]);
        try {
          const first = await agent.waitFor((e) => e.event === "cycle_finished");
          assert.equal(first.outcome, "failed");
          assert.equal((await detail(noc, box)).lastReport.seq, 2);
          while (noc.deps.wakeups.held === 0) await new Promise((r) => setTimeout(r, 20));
          const from = agent.events.length;
          const w = await noc.admin("POST", "/v1/admin/wake", { uid: await uidOf(box) });
          assert.equal(w.status, 202);
          await agent.waitFor((e) => e.event === "cycle_finished", from, 30_000);
          const d = await detail(noc, box);
          assert.equal(d.lastReport.seq, 3, "the second cycle of one process beats with seq 3");
          assert.equal(d.lastReport.lastCycle.problems[0].code, "state_unwritable");
          assert.equal(
            d.lastReport.lastCycle.problems.filter((x: any) => x.code === "state_unwritable")
              .length,
            1,
          );
          assert.ok(!agent.events.some((e) => e.event === "cycle_crashed"));
        } finally {
          assert.equal((await agent.stop("SIGTERM")).code, 0);
        }

        // Writable again: the next cycle works, and reports what happened in the last one.
        if (asRoot) assert.ok(await sh("mount", ["-o", "remount,rw", box.state]));
        else await Deno.chmod(box.state, 0o700);
        const r = await box.run(once);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const report = (await detail(noc, box)).lastReport;
        assert.equal(report.seq, 2, "the sequence goes on from what was saved");
        assert.ok(report.instanceId, "a new process, a new instance");
        assert.ok(!report.lastCycle.problems?.some((p: any) => p.code === "state_unwritable"));
        // Every run above repeated a seq another instance had sent, but each followed a report
        // that said state_unwritable: one device, no clone mark (docs/protocol.md).
        const shown = await detail(noc, box);
        assert.equal(shown.identityConflict, null, JSON.stringify(shown.identityConflict));
        const clones = await noc.deps.db.sql`select 1 from notices where kind = 'cloned_identity'`;
        assert.equal(clones.length, 0, "no cloned_identity notice");
      } finally {
        if (mounted) await sh("umount", [box.state]);
        else await Deno.chmod(box.state, 0o700).catch(() => {});
        await box.remove();
      }
    }),
});

Deno.test({
  name:
    "one byte changed in the stored catalog: set aside, fetched again in full, installs go on, no bad_signature",
  ...opts,
  fn: () =>
    withServedNoc({}, async (noc) => {
      const box = await enrolledAgent(noc);
      try {
        assert.equal((await box.run(once)).code, 0);
        const path = `${box.state}/catalog.json`;
        const good = await Deno.readTextFile(path);
        const envelope = JSON.parse(good);
        // One byte of the signature, changed.
        const at = good.indexOf(envelope.signature) + 10;
        const flipped = good.slice(0, at) + (good[at] === "A" ? "B" : "A") + good.slice(at + 1);
        await Deno.writeTextFile(path, flipped);
        // The NOC's catalog did not change (it would answer 304 to the stored ETag)...
        const before = (await detail(noc, box)).lastReport.seq;
        const r = await box.run(once);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const damaged = r.events.find((e) => e.event === "stored_catalog_damaged");
        assert.equal(damaged?.reason, "bad_signature");
        assert.ok(!r.events.some((e) => e.event === "catalog_refused"), r.stdout);
        assert.equal(await Deno.readTextFile(`${path}.damaged`), flipped);
        assert.equal(await Deno.readTextFile(path), good, "fetched again in full");

        // ...and with a new component assigned, the next cycles install it and report no attack.
        await Deno.writeTextFile(path, flipped);
        await publishAndAssign(noc, { app: "demo", name: "after", version: "1.0.0" }, {
          install: '#!/bin/sh\nmkdir -p "$NOC_ROOT/demo" && echo ok > "$NOC_ROOT/demo/after"\n',
        });
        const r2 = await box.run(once);
        assert.equal(r2.code, 0, r2.stdout + r2.stderr);
        assert.ok(r2.events.some((e) => e.event === "stored_catalog_damaged"));
        assert.ok(r2.events.some((e) => e.event === "installed"), r2.stdout);
        assert.equal((await box.readRoot("demo/after"))?.trim(), "ok");
        // The reports of those cycles: the damage is named as such, never as a bad signature.
        const codes = async () => {
          await box.run(once);
          const report = (await detail(noc, box)).lastReport;
          return (report.lastCycle.problems ?? []).map((p: any) => p.code);
        };
        assert.deepEqual(await codes(), ["state_damaged"]);
        assert.deepEqual(await codes(), []);
        const d = await detail(noc, box);
        assert.equal(d.lastReport.seq, before + 4);
        assert.equal(d.lastReport.lastCycle.outcome, "ok");
        assert.ok(!JSON.stringify(d).includes("bad_signature"));
      } finally {
        await box.remove();
      }
    }),
});
