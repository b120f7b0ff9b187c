// deno-lint-ignore-file no-explicit-any
/**
 * Issue 21, item 6: power cuts leave no debris. A real agent process is SIGKILLed at one point of
 * a download or an install after another — mid-download, with the package unpacked, after its
 * install program ran, with its payload kept, while its install program runs (killed from
 * outside, the program left running), and with a file half copied beside its destination (the
 * appliance root is a tmpfs of its own, so the file is copied, not renamed; where the test cannot
 * mount one — not root — that point cuts nothing) — each
 * time with a new version of a package and a file assigned. After each cut the next `once` run
 * installs both, and the state folder and the appliance root hold nothing but what docs/agent.md
 * lists ("What a cut leaves"): no staging folder, partial download, temporary file, kept payload
 * of a version that is neither current nor previous, record of a program or an install in
 * progress, or reboot marker.
 *
 * The cuts come from `NOC_AGENT_CUT_AT` (agent/cut_points.ts, test-only) and from the test's own
 * SIGKILL; the install program that is cut from outside waits on fifos the test holds, so nothing
 * here sleeps. A state file's write cut short is planted (`state.json.tmp-…`).
 */
import assert from "node:assert/strict";
import { assignToAll, publishAndAssign, upload } from "./_components.ts";
import { mountTmpfs, type ServedNoc } from "./_agent.ts";
import { type InstallBox, installBox, shown, tree, withNoc } from "./_agent_installs.ts";

const once = ["once", "--allow-http-files"];

function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

async function publishFile(noc: ServedNoc, version: string): Promise<Uint8Array> {
  const bytes = randomBytes(1024 * 1024);
  const up = await upload(
    noc,
    `/v1/admin/files?app=demo&name=blob&version=${version}`,
    bytes,
    "application/octet-stream",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const fi = await noc.admin("PUT", "/v1/admin/apps/demo/fileinfo/blob", {
    destination: "opt/blob.bin",
    mode: "0644",
    action: null,
  });
  assert.equal(fi.status, 200, JSON.stringify(fi.body));
  await assignToAll(noc, "file", { app: "demo", name: "blob", version });
  return bytes;
}

/** Asserts both components are installed at `version` and nothing else is left behind. */
async function assertClean(box: InstallBox, version: string, blob: Uint8Array): Promise<void> {
  assert.equal(await box.readRoot("app/version"), `${version}\n`);
  assert.deepEqual(await Deno.readFile(`${box.root}/opt/blob.bin`), blob);
  assert.deepEqual(
    (await box.catalogCur()).components.map((c: any) => `${c.name}@${c.version}`),
    [`app@${version}`, `blob@${version}`],
  );
  // The appliance root: the package's and the file's files, nothing beside them.
  assert.deepEqual(await tree(box.root), ["app/", "app/version", "opt/", "opt/blob.bin"]);
  // The state folder: only what docs/agent.md lists.
  const st = await tree(box.state);
  const kept = st.filter((p) => /^packages\/demo\/app\/[0-9a-f]{64}\/$/.test(p));
  assert.ok(kept.length >= 1 && kept.length <= 2, `current and previous only: ${kept}`);
  const allowed = [
    /^(identity|state|catalog|running|attempts|temps)\.json$/,
    /^catalog\.cur$/,
    /^cycle\.lock$/,
    /^test-boot-id$/,
    /^(home|reboot|staging|downloads|outcomes|packages|packages\/demo|packages\/demo\/app)\/$/,
    /^packages\/demo\/app\/[0-9a-f]{64}\//,
  ];
  const stray = st.filter((p) => !allowed.some((r) => r.test(p)));
  assert.deepEqual(stray, [], "nothing else in the state folder");
  const json = async (name: string) =>
    JSON.parse(await Deno.readTextFile(`${box.state}/${name}`).catch(() => "null"));
  assert.deepEqual((await json("running.json"))?.programs ?? [], []);
  assert.deepEqual((await json("attempts.json"))?.installs ?? [], []);
  assert.deepEqual((await json("temps.json"))?.paths ?? [], []);
}

Deno.test({
  name:
    "a SIGKILL at any point of a download or an install leaves nothing the next run does not clean up or reuse",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withNoc(async (noc) => {
      // The root on another filesystem than the state folder: files are copied beside their
      // destination, then renamed.
      const shm = await Deno.makeTempDir({ prefix: "noc-cut-fs-" });
      const mounted = await mountTmpfs(shm, 64);
      const box = await installBox(noc, `${shm}/root`);
      const dir = await Deno.makeTempDir({ prefix: "noc-cut-" });
      let held = 0;
      try {
        for (const f of ["started.fifo", "gate.fifo"]) {
          await new Deno.Command("mkfifo", { args: [`${dir}/${f}`] }).output();
        }
        // Held at its start (when the test asks, with `hold`) so the test can cut the agent there.
        const install = (v: string) =>
          `#!/bin/sh\nset -e\n` +
          `if [ -e "${dir}/hold" ]; then rm "${dir}/hold"; echo $$ > "${dir}/started.fifo"; ` +
          `read go < "${dir}/gate.fifo"; fi\n` +
          `mkdir -p "$NOC_ROOT/app"\necho ${v} > "$NOC_ROOT/app/.version.new"\n` +
          `mv "$NOC_ROOT/app/.version.new" "$NOC_ROOT/app/version"\n`;
        const points = ["download", "unpacked", "installed", "kept", "program", "file_copy"];
        for (const [i, point] of points.entries()) {
          const version = `1.0.${i}`;
          await publishAndAssign(noc, { app: "demo", name: "app", version }, {
            install: install(version),
            // Big enough to come in more than one piece: a download cut after its first resumes.
            "data.bin": randomBytes(512 * 1024),
          });
          const blob = await publishFile(noc, version);
          if (point === "program") {
            await Deno.writeTextFile(`${dir}/hold`, "");
            const agent = box.start(once);
            held = Number((await Deno.readTextFile(`${dir}/started.fifo`)).trim());
            agent.kill("SIGKILL");
            assert.equal((await agent.status).signal, "SIGKILL");
          } else {
            const cut = await box.agent(once, { NOC_AGENT_CUT_AT: point });
            assert.equal(cut.code, 137, `cut at ${point}: ${cut.stdout}${cut.stderr}`);
            if (point === "file_copy" && mounted) {
              const beside = await tree(`${box.root}/opt`);
              assert.ok(beside.some((p) => p.includes(".noc-")), `a copy was cut: ${beside}`);
            }
          }
          // A state file's write cut short, as a power loss mid-write would leave it.
          await Deno.writeTextFile(`${box.state}/state.json.tmp-0badc0de`, "{");
          const r = await box.agent(once);
          assert.equal(r.code, 0, `after a cut at ${point}: ${r.stdout}${r.stderr}`);
          held = 0;
          await assertClean(box, version, blob);
          if (point === "download") {
            assert.ok(r.events.some((e) => e.event === "download_resumed"), r.stdout);
          }
        }
        // The NOC has the outcomes: each version installed once the cut was cleaned up.
        const a = await shown(noc, box);
        const seen = new Set(
          a.installOutcomes.map((o: any) => `${o.name}@${o.version}:${o.outcome}`),
        );
        for (const [i] of points.entries()) {
          assert.ok(seen.has(`app@1.0.${i}:installed`), JSON.stringify([...seen]));
          assert.ok(seen.has(`blob@1.0.${i}:installed`), JSON.stringify([...seen]));
        }
      } finally {
        if (held) Deno.kill(-held, "SIGKILL");
        await box.remove();
        await Deno.remove(dir, { recursive: true });
        if (mounted) await new Deno.Command("umount", { args: [shm] }).output();
        await Deno.remove(shm, { recursive: true });
      }
    }),
});
