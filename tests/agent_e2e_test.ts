// deno-lint-ignore-file no-explicit-any
/**
 * The agent end to end: real agent processes (`deno run` with the compile
 * flags) on temporary roots against a NOC served over real HTTP on PGlite
 * and PostgreSQL.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { type AgentBox, agentBox, enrolledAgent, type ServedNoc, serveNoc } from "./_agent.ts";
import { payload, plantPackage, upload } from "./_components.ts";
import { defaultSettings } from "../noc/config.ts";
import { fromBase64Url, sha256, toBase64Url, toHex } from "../protocol/util/encoding.ts";
import { concatBytes } from "../protocol/util/bytes.ts";
import { newSeed } from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { buildPackage } from "../protocol/package/file.ts";
import { wrapContentKey } from "../protocol/package/format.ts";

/** An install program that installs atomically and keeps a history of what it did. */
const installScript = `#!/bin/sh
set -e
mkdir -p "$NOC_ROOT/demo"
cp "$NOC_STAGING/payload.txt" "$NOC_ROOT/demo/.payload.tmp"
mv "$NOC_ROOT/demo/.payload.tmp" "$NOC_ROOT/demo/payload.txt"
printf '%s' "$NOC_VERSION" > "$NOC_ROOT/demo/.version.tmp"
mv "$NOC_ROOT/demo/.version.tmp" "$NOC_ROOT/demo/version"
echo "$NOC_ACTION $NOC_VERSION from \${NOC_PREVIOUS_VERSION:-none}" >> "$NOC_ROOT/demo/history"
`;

/** Assigns package `app`/`name`@`version` to every appliance. */
async function assignToAll(noc: ServedNoc, version: string, app = "demo", name = "demo") {
  const as = await noc.admin("POST", "/v1/admin/assignments", {
    kind: "package",
    app,
    name,
    version,
    target: { type: "all" },
  });
  assert.equal(as.status, 201, JSON.stringify(as.body));
}

async function publishPackage(
  noc: ServedNoc,
  version: string,
  files: Record<string, string | Uint8Array> = {},
  app = "demo",
  name = "demo",
): Promise<number> {
  const up = await upload(
    noc,
    `/v1/admin/packages?app=${app}&name=${name}&version=${version}`,
    await payload({ install: installScript, "payload.txt": `payload ${version}\n`, ...files }),
    "application/gzip",
  );
  assert.ok(up.status === 201, JSON.stringify(up.body));
  await assignToAll(noc, version, app, name);
  return up.body.id;
}

async function publishFile(noc: ServedNoc, version: string, text: string): Promise<void> {
  const up = await upload(
    noc,
    `/v1/admin/files?app=demo&name=motd&version=${version}`,
    new TextEncoder().encode(text),
    "application/octet-stream",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const fi = await noc.admin("PUT", "/v1/admin/apps/demo/fileinfo/motd", {
    destination: "etc/motd",
    mode: "0640",
    action: ["/bin/sh", "-c", 'echo "$NOC_VERSION" >> "$NOC_ROOT/etc/motd.actions"'],
  });
  assert.equal(fi.status, 200, JSON.stringify(fi.body));
  const as = await noc.admin("POST", "/v1/admin/assignments", {
    kind: "file",
    app: "demo",
    name: "motd",
    version,
    target: { type: "all" },
  });
  assert.equal(as.status, 201, JSON.stringify(as.body));
}

async function uidOf(box: AgentBox): Promise<string> {
  return JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid;
}

const once = ["once", "--allow-http-files"];

dbTest(
  "agent: enrol, beat, catalog, package then file installed; a new version upgrades; a wiped appliance is restored whole",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    try {
      const uid = await uidOf(box);
      await publishPackage(noc, "1.0.0");
      await publishFile(noc, "1", "Welcome, version 1\n");

      const first = await box.run(once);
      assert.equal(first.code, 0, first.stdout + first.stderr);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      assert.equal(await box.readRoot("demo/payload.txt"), "payload 1.0.0\n");
      assert.equal(await box.readRoot("etc/motd"), "Welcome, version 1\n");
      assert.equal((await Deno.stat(`${box.root}/etc/motd`)).mode! & 0o777, 0o640);
      assert.equal(await box.readRoot("etc/motd.actions"), "1\n");
      const installed = first.events.filter((e) => e.event === "installed").map((e) => e.component);
      assert.deepEqual(installed, ["demo/demo@1.0.0", "demo/motd@1"], "packages first, then files");
      assert.deepEqual(
        (await box.catalogCur()).components.map((c: any) => `${c.kind}:${c.name}@${c.version}`),
        ["package:demo@1.0.0", "file:motd@1"],
      );

      // The NOC saw the beat and the installs.
      const detail = await noc.admin("GET", `/v1/admin/appliances/${uid}`);
      assert.equal(detail.body.state, "ok");
      const outcomes = await db.sql<{ name: string; outcome: string }>`
        select name, outcome from install_outcomes where uid = ${uid} order by id`;
      assert.deepEqual(outcomes.map((o) => `${o.name}:${o.outcome}`), [
        "demo:installed",
        "motd:installed",
      ]);

      // Nothing new: the next cycle installs nothing and its beat lists what is installed.
      const idle = await box.run(once);
      assert.equal(idle.code, 0);
      assert.equal(idle.events.filter((e) => e.event === "installed").length, 0);
      const report = (await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body;
      assert.deepEqual(
        report.lastReport.components.map((c: any) => `${c.name}@${c.version}`),
        ["demo@1.0.0", "motd@1"],
      );

      // A new version is published: the next cycle upgrades.
      await publishPackage(noc, "1.1.0");
      const up = await box.run(once);
      assert.equal(up.code, 0, up.stdout);
      assert.equal(await box.readRoot("demo/version"), "1.1.0");
      assert.match((await box.readRoot("demo/history"))!, /install 1\.1\.0 from 1\.0\.0/);

      const status = await box.run(["status", "--json"]);
      const s = JSON.parse(status.stdout);
      assert.equal(s.uid, uid);
      assert.equal(s.lastCycle.outcome, "ok");
      assert.ok(Date.parse(s.nextDueAt) > Date.now());
      assert.deepEqual(s.installed.map((c: any) => `${c.kind}:${c.name}@${c.version}`), [
        "package:demo@1.1.0",
        "file:motd@1",
      ]);

      // Root and state wiped, identity kept: the next cycle restores everything.
      await box.wipe();
      const restored = await box.run(once);
      assert.equal(restored.code, 0, restored.stdout);
      assert.equal(await box.readRoot("demo/version"), "1.1.0");
      assert.equal(await box.readRoot("etc/motd"), "Welcome, version 1\n");
      const config = await noc.admin("GET", `/v1/admin/appliances/${uid}/configuration`);
      assert.deepEqual(
        config.body.items.map((i: any) => `${i.name}@${i.version}`).sort(),
        ["demo@1.0.0", "demo@1.1.0", "motd@1"],
      );
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "agent: a package whose health check fails is rolled back to the version kept aside, and reported",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    try {
      const uid = await uidOf(box);
      await publishPackage(noc, "1.0.0");
      assert.equal((await box.run(once)).code, 0);
      await publishPackage(noc, "2.0.0", {
        health: "#!/bin/sh\necho 'engine will not start' >&2\nexit 1\n",
      });
      const r = await box.run(once);
      assert.equal(r.code, 2, r.stdout);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      assert.match((await box.readRoot("demo/history"))!, /rollback 1\.0\.0 from 2\.0\.0/);
      assert.equal((await box.catalogCur()).components[0].version, "1.0.0");
      const [o] = await db.sql<{ outcome: string; message: string }>`
        select outcome, message from install_outcomes where uid = ${uid} and version = '2.0.0'`;
      assert.equal(o!.outcome, "rolled_back");
      assert.match(o!.message, /engine will not start/);
      // Not retried in a hot loop: the next cycle backs off.
      const again = await box.run(once);
      assert.ok(again.events.every((e) => e.event !== "install_started"));
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "agent: a tampered package is refused before decryption, reported, and nothing is installed",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    try {
      const uid = await uidOf(box);
      const id = await publishPackage(noc, "1.0.0");
      // The server is compromised: it flips a bit of the signature and serves a matching digest.
      const [c] = await db.sql<{ blob_id: number; prefix: string }>`
        select blob_id, prefix from components where id = ${id}`;
      const prefix = fromBase64Url(c!.prefix);
      prefix[prefix.length - 1] = prefix[prefix.length - 1]! ^ 0x01; // the signature's last byte
      const chunks = await db.sql<{ data: Uint8Array }>`
        select data from blob_chunks where blob_id = ${c!.blob_id} order by seq`;
      const hex = toHex(await sha256(concatBytes([prefix, ...chunks.map((x) => x.data)])));
      await db.sql`
        update components set prefix = ${toBase64Url(prefix)}, sha256 = ${hex} where id = ${id}`;
      await db.sql`update catalog_epoch set epoch = epoch + 1`;

      const r = await box.run(once);
      assert.equal(r.code, 2, r.stdout);
      const failed = r.events.find((e) => e.event === "install_failed");
      assert.equal(failed?.reason, "bad_signature", JSON.stringify(failed));
      assert.deepEqual(await Array.fromAsync(Deno.readDir(box.root)), []);
      assert.deepEqual((await box.catalogCur().catch(() => ({ components: [] }))).components, []);
      const [o] = await db.sql<{ outcome: string }>`
        select outcome from install_outcomes where uid = ${uid}`;
      assert.equal(o!.outcome, "failed");
      // The next beat carries the refusal.
      await box.run(once);
      const report = (await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body.lastReport;
      assert.ok(
        report.lastCycle.problems.some((p: any) => p.code === failed.reason && p.name === "demo"),
        JSON.stringify(report.lastCycle),
      );
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

/** A ustar archive with one entry, written by hand (our own writer refuses to make these). */
function evilTar(name: string, type: "0" | "2", linkname = "", content = ""): Uint8Array {
  const body = new TextEncoder().encode(content);
  const h = new Uint8Array(512);
  const put = (off: number, len: number, s: string) =>
    h.set(new TextEncoder().encode(s).subarray(0, len), off);
  put(0, 100, name);
  put(100, 8, "0000644\0");
  put(108, 8, "0000000\0");
  put(116, 8, "0000000\0");
  put(124, 12, body.length.toString(8).padStart(11, "0") + "\0");
  put(136, 12, "00000000000\0");
  h.fill(0x20, 148, 156);
  put(156, 1, type);
  put(157, 100, linkname);
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  const sum = h.reduce((a, b) => a + b, 0);
  put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  const pad = (512 - (body.length % 512)) % 512;
  const out = new Uint8Array(512 + body.length + pad + 1024);
  out.set(h);
  out.set(body, 512);
  return out;
}

async function gz(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(
    await new Response(
      new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
        new CompressionStream("gzip"),
      ),
    ).arrayBuffer(),
  );
}

dbTest(
  "agent: archives with a '../' entry or a link that reach it anyway are refused; nothing lands outside staging",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    try {
      for (
        const [name, tar] of [
          ["dotdot", evilTar("../../../escaped", "0", "", "owned\n")],
          ["link", evilTar("install", "2", "/bin/sh")],
        ] as const
      ) {
        // The NOC refuses to publish these (bad_payload); a NOC whose database and key were
        // taken could still serve them, and the agent must refuse them itself.
        const up = await upload(
          noc,
          `/v1/admin/packages?app=evil&name=${name}&version=1`,
          await gz(tar),
          "application/gzip",
        );
        assert.equal(up.status, 400, JSON.stringify(up.body));
        assert.equal(up.body.error, "bad_payload");
        await plantPackage(noc, { app: "evil", name, version: "1" }, await gz(tar));
        await noc.admin("POST", "/v1/admin/assignments", {
          kind: "package",
          app: "evil",
          name,
          version: "1",
          target: { type: "all" },
        });
      }
      const r = await box.run(once);
      assert.equal(r.code, 2, r.stdout);
      const reasons = r.events.filter((e) => e.event === "install_failed").map((e) =>
        `${e.component}:${e.reason}`
      );
      assert.deepEqual(reasons, ["evil/dotdot@1:bad_archive", "evil/link@1:bad_archive"]);
      const base = box.state.slice(0, box.state.lastIndexOf("/"));
      const names = [...await Array.fromAsync(Deno.readDir(base))].map((e) => e.name).sort();
      assert.deepEqual(names, ["root", "state"]);
      assert.deepEqual(await Array.fromAsync(Deno.readDir(box.root)), []);
      assert.ok(r.events.some((e) => /escapes/.test(e.message ?? "")));
      assert.ok(r.events.some((e) => /symbolic link/.test(e.message ?? "")));
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "agent: SIGKILL in the middle of an install leaves the old version, and the restart finishes the job",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    try {
      await publishPackage(noc, "1.0.0");
      assert.equal((await box.run(once)).code, 0);
      // Version 2's installer stops half-way the first time (until the test lets it go).
      const stall = `#!/bin/sh
if [ ! -e "$NOC_ROOT/.attempted" ]; then
  echo $$ > "$NOC_ROOT/.attempted"
  while [ ! -e "$NOC_ROOT/.go" ]; do sleep 0.05; done
fi
exec "$NOC_STAGING/install-real"
`;
      await publishPackage(noc, "2.0.0", { install: stall, "install-real": installScript });
      const agent = box.spawn(once);
      while ((await box.readRoot(".attempted")) === null) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await agent.stop("SIGKILL");
      const installer = Number((await box.readRoot(".attempted"))!.trim());
      Deno.kill(installer, "SIGKILL");
      // Killed mid-install: still the old version, and catalog.cur says so.
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      assert.equal((await box.catalogCur()).components[0].version, "1.0.0");
      const r = await box.run(once);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(await box.readRoot("demo/version"), "2.0.0");
      assert.equal((await box.catalogCur()).components[0].version, "2.0.0");
      assert.deepEqual(await Array.fromAsync(Deno.readDir(`${box.state}/staging`)), []);
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "agent: a wake-up from the admin API makes a running agent cycle at once; a silent agent raises a missed-heartbeat alert",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    try {
      const uid = await uidOf(box);
      const agent = box.spawn(["run", "--allow-http-files", "--wake-wait", "30"]);
      await agent.waitFor((e) => e.event === "cycle_finished");
      // The long poll is open on the NOC before the wake-up is sent.
      while (noc.deps.wakeups.held === 0) await new Promise((r) => setTimeout(r, 20));
      const from = agent.events.length;
      await publishPackage(noc, "1.0.0");
      const w = await noc.admin("POST", "/v1/admin/wake", { uid });
      assert.equal(w.status, 202);
      const next = await agent.waitFor((e) => e.event === "cycle_finished", from, 30_000);
      assert.deepEqual(next.installed, ["demo/demo@1.0.0"]);
      assert.ok(agent.events.slice(from).some((e) => e.event === "woken"));
      const status = await agent.stop("SIGTERM");
      assert.equal(status.code, 0);

      // The agent is gone: once its beat is overdue, the status daemon alerts.
      noc.clock.advance(909 + defaultSettings.graceS + 1);
      const swept = await noc.admin("POST", "/v1/admin/sweep");
      assert.deepEqual(swept.body.alerted, [uid]);
      assert.equal((await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body.state, "missing");
      // It comes back: its next beat recovers it.
      noc.clock.set(new Date());
      assert.equal((await box.run(once)).code, 0);
      assert.equal((await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body.state, "ok");
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "agent: files come over HTTPS only unless plain HTTP is allowed for development",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    try {
      await publishFile(noc, "1", "hello\n");
      const r = await box.run(["once"]);
      assert.equal(r.code, 2);
      assert.equal(r.events.find((e) => e.event === "install_failed")?.reason, "https_required");
      assert.equal(await box.readRoot("etc/motd"), null);
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "agent: plug-in data reaches the NOC; a post plug-in reporting the application unhealthy rolls back this cycle's install",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    try {
      const uid = await uidOf(box);
      await Deno.mkdir(`${box.state}/init.d`);
      await Deno.mkdir(`${box.state}/post.d`);
      await Deno.copyFile(
        "examples/plugins/20-mailstats.sh",
        `${box.state}/init.d/20-mailstats.sh`,
      );
      await Deno.chmod(`${box.state}/init.d/20-mailstats.sh`, 0o755);
      await Deno.writeTextFile(
        `${box.state}/post.d/50-demo`,
        `#!/bin/sh\nif [ "$(cat "$NOC_ROOT/demo/version")" = "2.0.0" ]; then echo '{"healthy": false}'; else echo '{"healthy": true}'; fi\n`,
        { mode: 0o755 },
      );
      await publishPackage(noc, "1.0.0");
      assert.equal((await box.run(once)).code, 0);
      await publishPackage(noc, "2.0.0");
      const r = await box.run(once);
      assert.equal(r.code, 2, r.stdout);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      assert.equal((await box.catalogCur()).components[0].version, "1.0.0");
      const outcomes = await db.sql<{ version: string; outcome: string }>`
        select version, outcome from install_outcomes where uid = ${uid} order by id`;
      assert.deepEqual(outcomes.map((o) => `${o.version}:${o.outcome}`), [
        "1.0.0:installed",
        "2.0.0:installed",
        "2.0.0:rolled_back",
      ]);
      await box.run(once);
      const report = (await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body.lastReport;
      assert.deepEqual(report.apps.mailstats, { queued: 0, scanned: 0 });
      assert.equal(report.apps.demo.healthy, true);
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "agent: a catalog older than the last one accepted is refused (rollback) and nothing is installed",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    try {
      const uid = await uidOf(box);
      assert.equal((await box.run(once)).code, 0);
      await publishPackage(noc, "1.0.0");
      // As if a newer catalog had been accepted before: the NOC's (replayed) one is now older.
      const state = JSON.parse(await Deno.readTextFile(`${box.state}/state.json`));
      await Deno.writeTextFile(
        `${box.state}/state.json`,
        JSON.stringify({ ...state, lastSerial: 1_000_000 }),
      );
      const r = await box.run(once);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.events.find((e) => e.event === "catalog_refused")?.reason, "rollback");
      assert.equal(await box.readRoot("demo/version"), null);
      await box.run(once);
      const report = (await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body.lastReport;
      assert.equal(report.lastCycle.outcome, "failed");
      assert.equal(report.lastCycle.problems[0].code, "rollback");
      assert.equal(report.lastCycle.problems[0].kind, "catalog");
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "agent: plug-in data the NOC would refuse (too deep) is left out alone, named, and the beat lands",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    try {
      const uid = await uidOf(box);
      await Deno.mkdir(`${box.state}/init.d`);
      // Nested deeper than the NOC accepts.
      await Deno.writeTextFile(
        `${box.state}/init.d/10-deep`,
        `#!/bin/sh\necho '${"[".repeat(40)}${"]".repeat(40)}' | sed 's/^/{"x":/; s/$/}/'\n`,
        { mode: 0o755 },
      );
      await Deno.writeTextFile(`${box.state}/init.d/20-fine`, `#!/bin/sh\necho '{"q":1}'\n`, {
        mode: 0o755,
      });
      const r = await box.run(once);
      assert.equal(r.code, 0, r.stdout);
      // Checked before sending (agent/beat.ts): the NOC never refuses the beat for it.
      assert.ok(!r.events.some((e) => e.event === "beat_refused"), r.stdout);
      const detail = (await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body;
      assert.equal(detail.state, "ok");
      const report = detail.lastReport;
      assert.deepEqual(report.dropped, ["apps.deep (nests deeper than 16 levels)"]);
      // The other plug-ins' data still arrives.
      assert.deepEqual(report.apps, { fine: { q: 1 } });
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "agent: a release key registered after enrolment is pinned from the signed catalog, and one the NOC retires stops being trusted",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const box = await enrolledAgent(noc);
    const dir = await Deno.makeTempDir();
    try {
      const before = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).pinnedKeys;
      // The release key the operator keeps offline, registered after this appliance enrolled.
      const release = await nocKeysFromSeed(newSeed());
      const reg = await noc.admin("POST", "/v1/admin/release-keys", {
        publicKey: release.published[0]!.publicKey,
        label: "release 2026",
      });
      assert.equal(reg.status, 201, JSON.stringify(reg.body));
      const assign = (version: string) => assignToAll(noc, version);
      const signed = async (version: string) => {
        const built = await buildPackage({
          plaintext: ReadableStream.from([
            await payload({ install: installScript, "payload.txt": `payload ${version}\n` }),
          ]),
          app: "demo",
          name: "demo",
          version,
          signer: { kid: release.kid, privateKey: release.privateKey },
          out: `${dir}/${version}.nocpkg`,
          now: noc.clock.now(),
        });
        const up = await upload(
          noc,
          "/v1/admin/packages",
          await Deno.readFile(`${dir}/${version}.nocpkg`),
          "application/vnd.noc-package",
          {
            "x-noc-wrapped-key": await wrapContentKey(
              built.contentKey,
              fromBase64Url(noc.deps.keys.hpke.publicKey),
              built.header,
            ),
          },
        );
        assert.equal(up.status, 201, JSON.stringify(up.body));
      };
      await signed("1.0.0");
      await assign("1.0.0");
      const r = await box.run(once);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      const pinned = r.events.find((e) => e.event === "keys_pinned");
      assert.deepEqual(pinned?.added, [release.kid]);
      const after = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).pinnedKeys;
      assert.equal(after.length, before.length + 1);

      // 2.0.0 was signed while the key was good; then the key is retired on the NOC. The next
      // catalog carries the key's end, and the agent refuses what it signed.
      await signed("2.0.0");
      // It signed 1.0.0, still assigned: retiring it takes ?force=true (a compromised key), and the
      // answer names what stops installing (issue 22 item 3).
      const kept409 = await noc.admin("DELETE", `/v1/admin/release-keys/${release.kid}`);
      assert.equal(kept409.status, 409, JSON.stringify(kept409.body));
      const retired = await noc.admin(
        "DELETE",
        `/v1/admin/release-keys/${release.kid}?force=true`,
      );
      assert.equal(retired.status, 200, JSON.stringify(retired.body));
      assert.equal(retired.body.retired, true);
      noc.clock.advance(60);
      await assign("2.0.0");
      const again = await box.run(once);
      assert.equal(again.code, 2, again.stdout);
      const refused = again.events.find((e) => e.event === "install_failed");
      assert.equal(refused?.reason, "expired_key", again.stdout);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      const now = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).pinnedKeys;
      const kept = now.find((k: { kid: string }) => k.kid === release.kid);
      assert.ok(kept?.notAfter, JSON.stringify(now));
    } finally {
      await Deno.remove(dir, { recursive: true });
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "a real agent enrolling under the host name of an enrolled appliance says it retired that record",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const first = await agentBox();
    const second = await agentBox();
    try {
      const enrol = async (box: AgentBox) => {
        const r = await box.run([
          "enroll",
          "--noc",
          noc.url,
          "--token",
          await noc.enrollmentToken(),
          "--hostname",
          "same-box",
        ]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        return r;
      };
      const one = await enrol(first);
      assert.ok(!one.events.some((e) => e.event === "enrolled_superseding"));
      const uid = one.events.find((e) => e.event === "enrolled").uid;
      const two = await enrol(second);
      const said = two.events.find((e) => e.event === "enrolled_superseding");
      assert.deepEqual(said?.superseded, [uid], two.stdout);
      assert.match(said.message, /give each agent its own --hostname/);
    } finally {
      await first.remove();
      await second.remove();
      await noc.close();
    }
  },
);
