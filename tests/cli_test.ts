import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { fetchCatalog, payload, upload } from "./_components.ts";
import { newSeed } from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { buildPackage } from "../protocol/package/file.ts";
import { wrapContentKey } from "../protocol/package/format.ts";
import { fromBase64Url } from "../protocol/util/encoding.ts";
import { runCli } from "./_process.ts";
import { generateApplianceKeys } from "../protocol/client.ts";

/**
 * The public key in `deno task noc keygen`'s output: `release-key add <key> --label …`, or, for a
 * key starting with "-", `release-key add --label … -- <key>`.
 */
function keyOf(out: string): string {
  const m = /release-key add (?:--label "[^"]*" -- )?(\S+)/.exec(out);
  assert.ok(m, out);
  return m[1]!;
}

dbTest(
  "deno task noc publishes NOC-signed and offline-signed packages and files over the admin API",
  async ({ db }) => {
    const noc = await testNoc(db);
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      noc.app.fetch,
    );
    const env = { NOC_URL: `http://127.0.0.1:${server.addr.port}`, NOC_TOKEN: noc.adminToken };
    const work = await Deno.makeTempDir();
    try {
      await Deno.mkdir(`${work}/app`);
      await Deno.writeTextFile(`${work}/app/install`, "#!/bin/sh\necho hi\n", { mode: 0o755 });
      await Deno.writeTextFile(`${work}/app/payload.txt`, "payload");

      const nocSigned = await runCli([
        "package",
        `${work}/app`,
        "--app",
        "demo",
        "--name",
        "demo",
        "--version",
        "1.0.0",
      ], env);
      assert.equal(nocSigned.code, 0, nocSigned.err);
      assert.equal(JSON.parse(nocSigned.out).signerKid, noc.deps.keys.kid);

      const keygen = await runCli(["keygen", "--out", `${work}/release.key`], env);
      assert.equal(keygen.code, 0, keygen.err);
      const publicKey = keyOf(keygen.out);
      // As keygen says, with the key after "--" (a key may start with "-").
      const reg = await runCli(
        ["release-key", "add", "--label", "release team", "--", publicKey],
        env,
      );
      assert.equal(reg.code, 0, reg.err);
      const kid = JSON.parse(reg.out).kid;
      // A public key starting with "-" (1 in 64) is taken after "--", as keygen prints it then.
      let dashKey = "";
      while (!dashKey.startsWith("-")) dashKey = (await generateApplianceKeys()).signingPublic;
      const dashed = await runCli(["release-key", "add", "--label", "dash", "--", dashKey], env);
      assert.equal(dashed.code, 0, dashed.err);

      const offline = await runCli(
        [
          "package",
          `${work}/app`,
          "--app",
          "demo",
          "--name",
          "demo",
          "--version",
          "2.0.0",
          "--key",
          `${work}/release.key`,
        ],
        env,
      );
      assert.equal(offline.code, 0, offline.err);
      assert.equal(JSON.parse(offline.out).signerKid, kid);

      const out = `${work}/demo-3.nocpkg`;
      const built = await runCli(
        [
          "package",
          `${work}/app`,
          "--app",
          "demo",
          "--name",
          "demo",
          "--version",
          "3.0.0",
          "--key",
          `${work}/release.key`,
          "--out",
          out,
        ],
        env,
      );
      assert.equal(built.code, 0, built.err);
      const up = await runCli(["upload", out], env);
      assert.equal(up.code, 0, up.err);
      assert.equal(JSON.parse(up.out).version, "3.0.0");

      await Deno.writeTextFile(`${work}/rules.conf`, "strict\n");
      const file = await runCli([
        "file",
        "put",
        `${work}/rules.conf`,
        "--app",
        "demo",
        "--name",
        "rules.conf",
        "--version",
        "1",
      ], env);
      assert.equal(file.code, 0, file.err);

      // An appliance enrolled now pins the release key and installs the offline-signed version.
      const a = await noc.enrollAppliance();
      assert.ok(a.enrollment.nocKeys.some((k) => k.kid === kid && k.use.includes("package")));
      await noc.admin("POST", "/v1/admin/assignments", {
        kind: "package",
        app: "demo",
        name: "demo",
        version: "2.0.0",
        target: { type: "all" },
      });
      const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
      assert.equal(entry.signer, kid);

      const bad = await runCli([
        "package",
        `${work}/app`,
        "--app",
        "demo",
        "--name",
        "demo",
        "--version",
        "1.0.0",
        "--out",
        out,
      ], env);
      assert.equal(bad.code, 64);
      assert.match(bad.err, /--out needs --key/);
      await Deno.remove(`${work}/app/install`);
      const noInstall = await runCli([
        "package",
        `${work}/app`,
        "--app",
        "demo",
        "--name",
        "demo",
        "--version",
        "9",
      ], env);
      assert.equal(noInstall.code, 64);
      assert.match(noInstall.err, /no install program/);
      const refused = await runCli([
        "file",
        "put",
        `${work}/rules.conf`,
        "--app",
        "demo",
        "--name",
        "rules.conf",
        "--version",
        "1",
      ], {
        ...env,
        NOC_TOKEN: "noc_adm_wrong",
      });
      assert.equal(refused.code, 1);
      assert.match(refused.err, /401/);
    } finally {
      await server.shutdown();
      await Deno.remove(work, { recursive: true });
    }
  },
);

dbTest(
  "a NOC that requires release keys refuses to sign packages itself, and refuses unknown signers",
  async ({ db }) => {
    const noc = await testNoc(db);
    noc.deps.keys = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
    const r = await upload(
      noc,
      "/v1/admin/packages?app=a&name=b&version=1",
      await payload({ install: "#!/bin/sh\n" }),
      "application/gzip",
    );
    assert.equal(r.status, 400);
    assert.equal(r.body.error, "release_key_required");
    // A package signed offline by a key the NOC does not know is refused before anything is stored.
    const stranger = await nocKeysFromSeed(newSeed());
    const dir = await Deno.makeTempDir();
    try {
      const built = await buildPackage({
        plaintext: ReadableStream.from([await payload({ install: "#!/bin/sh\n" })]),
        app: "a",
        name: "b",
        version: "1",
        signer: { kid: stranger.kid, privateKey: stranger.privateKey },
        out: `${dir}/p`,
        now: noc.clock.now(),
      });
      const wrapped = await wrapContentKey(
        built.contentKey,
        fromBase64Url(noc.deps.keys.hpke.publicKey),
        built.header,
      );
      const res = await upload(
        noc,
        "/v1/admin/packages",
        await Deno.readFile(`${dir}/p`),
        "application/vnd.noc-package",
        {
          "x-noc-wrapped-key": wrapped,
        },
      );
      assert.equal(res.status, 400);
      assert.equal(res.body.reason, "unknown_key");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    const [n] = await db.sql<{ n: number }>`select count(*)::int as n from blobs`;
    assert.equal(n!.n, 0);
  },
);

dbTest(
  "deno task noc: tokens, appliances, assign, wake and alerts over the admin API, for people and --json",
  async ({ db }) => {
    const noc = await testNoc(db);
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      noc.app.fetch,
    );
    const env = { NOC_URL: `http://127.0.0.1:${server.addr.port}`, NOC_TOKEN: noc.adminToken };
    try {
      const created = await runCli(["tokens", "create", "--site", "hq", "--label", "rack 4"], env);
      assert.equal(created.code, 0, created.err);
      const token = created.out.match(/noc_enr_\S+/)![0];
      const a = await noc.enrollAppliance({ hostname: "gw-cli", token });
      await a.beat();
      const tokens = await runCli(["tokens", "--json"], env);
      assert.equal(JSON.parse(tokens.out).items[0].status, "used");
      // A token that refuses re-enrolment: the same name at the same site gets 409.
      const refusing = await runCli(
        ["tokens", "create", "--site", "hq", "--reenrolment", "refuse", "--json"],
        env,
      );
      assert.equal(refusing.code, 0, refusing.err);
      await assert.rejects(
        noc.enrollAppliance({ hostname: "gw-cli", token: JSON.parse(refusing.out).token }),
        /409|appliance_exists/,
      );
      const badMode = await runCli(["tokens", "create", "--reenrolment", "maybe"], env);
      assert.notEqual(badMode.code, 0);
      assert.match(badMode.err, /reenrolment/);

      const list = await runCli(["appliances", "--site", "hq"], env);
      assert.equal(list.code, 0, list.err);
      assert.match(list.out, /^host name\s+state\s+model/);
      assert.match(list.out, /gw-cli\s+ok\s+vs-2000\s+hq/);
      const shown = await runCli(["appliances", "show", a.uid], env);
      assert.match(shown.out, /gw-cli \(.+\): ok/);
      assert.match(shown.out, /running:\n {2}package vscreen\/vscreen@/);
      // What it runs, and a whole UID, find it; another version does not.
      const found = await runCli(
        ["appliances", "--app", "vscreen", "--version", "1.0.0", "--q", a.uid],
        env,
      );
      assert.match(found.out, /gw-cli\s+ok/);
      assert.equal(
        (await runCli(["appliances", "--app", "vscreen", "--version", "9"], env)).out.trim(),
        "(none)",
      );

      // Re-imaged: a token that supersedes says so, and the old and new records name each other.
      const old = await noc.enrollAppliance({ hostname: "gw-re" });
      const superseding = await runCli(["tokens", "create", "--reenrolment", "supersede"], env);
      assert.match(superseding.out, /^Re-enrolment: supersede /m);
      const fresh = await noc.enrollAppliance({
        hostname: "gw-re",
        token: superseding.out.match(/noc_enr_\S+/)![0],
      });
      assert.match(
        (await runCli(["tokens"], env)).out,
        /^\d+\s+appliance\s+used\s+supersede\s/m,
      );
      const retired = await runCli(["appliances", "--retired", "only", "--q", "gw-re"], env);
      assert.match(retired.out, /superseded by$/m);
      assert.match(
        retired.out,
        new RegExp(`gw-re\\s+revoked\\s.*${old.uid}\\s+${fresh.uid}$`, "m"),
      );
      assert.ok(!(await runCli(["appliances", "--q", "gw-re"], env)).out.includes(old.uid));
      assert.match(
        (await runCli(["appliances", "show", old.uid], env)).out,
        new RegExp(`^  superseded by ${fresh.uid} \\(re-enrolled\\)$`, "m"),
      );
      assert.match(
        (await runCli(["appliances", "show", fresh.uid], env)).out,
        new RegExp(`^  supersedes ${old.uid}$`, "m"),
      );

      await upload(
        noc,
        "/v1/admin/packages?app=demo&name=demo&version=1.0.0",
        await payload({ install: "#!/bin/sh\nexit 0\n" }),
        "application/gzip",
      );
      const assigned = await runCli([
        "assign",
        "--app",
        "demo",
        "--name",
        "demo",
        "--version",
        "1.0.0",
        "--target",
        "site=hq",
        "--rollout",
        "50",
        "--gate",
        "20",
        "--min-sample",
        "10",
      ], env);
      assert.equal(assigned.code, 0, assigned.err);
      assert.match(assigned.out, /to site=hq, rollout 50%, gate 20% failed of at least 10$/m);
      const gate = (await noc.admin("GET", "/v1/admin/assignments")).body.items[0];
      assert.equal(gate.failureThresholdPercent, 20);
      assert.equal(gate.minSample, 10);
      const badGate = await runCli(
        ["assign", "--app", "demo", "--name", "demo", "--version", "1.0.0", "--gate", "0"],
        env,
      );
      assert.equal(badGate.code, 64);
      assert.match(badGate.err, /--gate must be a whole number from 1 to 100, not "0"/);
      const badTarget = await runCli([
        "assign",
        "--app",
        "demo",
        "--name",
        "demo",
        "--version",
        "1",
        "--target",
        "moon",
      ], env);
      assert.equal(badTarget.code, 64);
      assert.match(badTarget.err, /--target must be/);

      const woken = await runCli(["wake", "--site", "hq", "--json"], env);
      assert.equal(woken.code, 0, woken.err);
      assert.equal(typeof JSON.parse(woken.out).id, "number");

      noc.clock.advance(909 + 300 + 60);
      await noc.admin("POST", "/v1/admin/sweep");
      const alerts = await runCli(["alerts"], env);
      assert.match(alerts.out, /missed_heartbeat\s+gw-cli/);
      const id = JSON.parse((await runCli(["alerts", "--json"], env)).out).items[0].id;
      const acked = await runCli(["alerts", "ack", String(id)], env);
      assert.equal(acked.out.trim(), `Alert ${id} acknowledged`);
      const revoked = await runCli(["appliances", "revoke", a.uid, "--reason", "stolen"], env);
      assert.equal(revoked.code, 0, revoked.err);
      assert.match(
        (await runCli(["appliances", "--state", "revoked"], env)).out,
        /gw-cli\s+revoked/,
      );
    } finally {
      await server.shutdown();
    }
  },
);

dbTest(
  "deno task noc endorses a release key and signs a fileinfo offline, as a release-keys-only NOC requires",
  async ({ db }) => {
    const work = await Deno.makeTempDir();
    const keygen = async (name: string) => {
      const r = await runCli(["keygen", "--out", `${work}/${name}.key`], {});
      assert.equal(r.code, 0, r.err);
      return keyOf(r.out);
    };
    const rootKey = await keygen("root");
    const nextKey = await keygen("next");
    const noc = await testNoc(db, { settings: { releaseKeyRoots: [rootKey] } });
    noc.deps.keys = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      noc.app.fetch,
    );
    const env = { NOC_URL: `http://127.0.0.1:${server.addr.port}`, NOC_TOKEN: noc.adminToken };
    try {
      const root = await runCli(["release-key", "add", "--label", "root", "--", rootKey], env);
      assert.equal(root.code, 0, root.err);
      const rootKid = JSON.parse(root.out).kid;

      const alone = await runCli(["release-key", "add", "--label", "next", "--", nextKey], env);
      assert.equal(alone.code, 1);
      assert.match(alone.err, /400: .*endorsed by an existing one/);
      const endorsed = await runCli([
        "release-key",
        "add",
        "--label",
        "next",
        "--endorse-with",
        `${work}/root.key`,
        "--",
        nextKey,
      ], env);
      assert.equal(endorsed.code, 0, endorsed.err);
      assert.equal(JSON.parse(endorsed.out).endorsement.signer, rootKid);
      const nextKid = JSON.parse(endorsed.out).kid;

      const fileinfo = [
        "fileinfo",
        "put",
        "vscreen",
        "rules.conf",
        "--destination",
        "etc/vscreen/rules.conf",
        "--mode",
        "0640",
        "--action",
        '["/usr/bin/systemctl","reload","vscreen"]',
      ];
      const unsigned = await runCli(fileinfo, env);
      assert.equal(unsigned.code, 1);
      assert.match(unsigned.err, /400: .*signed with a release key/);
      const noKey = await runCli([...fileinfo, "--out", `${work}/fi.json`], env);
      assert.equal(noKey.code, 64);
      const badAction = await runCli([...fileinfo.slice(0, -1), "systemctl reload"], env);
      assert.equal(badAction.code, 64);
      assert.match(badAction.err, /--action must be a JSON array/);

      // Signed on the offline machine, sent from another.
      const signed = await runCli(
        [...fileinfo, "--key", `${work}/next.key`, "--out", `${work}/fi.json`],
        {},
      );
      assert.equal(signed.code, 0, signed.err);
      const sent = await runCli(["fileinfo", "upload", `${work}/fi.json`], env);
      assert.equal(sent.code, 0, sent.err);
      const saved = JSON.parse(sent.out);
      assert.equal(saved.signer, nextKid);
      assert.deepEqual(saved.action, ["/usr/bin/systemctl", "reload", "vscreen"]);
      assert.equal(saved.mode, "0640");

      // A signed fileinfo edited on the way is refused: the signature covers every field.
      const edited = JSON.parse(await Deno.readTextFile(`${work}/fi.json`));
      edited.fileinfo.action = ["/bin/sh", "-c", "id"];
      await Deno.writeTextFile(`${work}/edited.json`, JSON.stringify(edited));
      const tampered = await runCli(["fileinfo", "upload", `${work}/edited.json`], env);
      assert.equal(tampered.code, 1);
      assert.match(tampered.err, /400: .*does not verify/);
    } finally {
      await server.shutdown();
      await Deno.remove(work, { recursive: true });
    }
  },
);
