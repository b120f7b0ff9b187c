// deno-lint-ignore-file no-explicit-any
/**
 * Release-keys-only mode means what it says (issue 16 item 5): with the NOC's key limited to
 * catalogs, nothing the admin token alone can do makes an appliance execute something. Real
 * agent processes on temporary roots, a NOC served over real HTTP, on PGlite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { type AgentBox, enrolledAgent, type ServedNoc, serveNoc } from "./_agent.ts";
import { assignToAll, payload, signedPackage, upload, uploadSigned } from "./_components.ts";
import { signIn } from "./_console.ts";
import { newSeed, type PublishedKey } from "../protocol/keys.ts";
import { type NocKeys, nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { contentKeyCache, publishedKeys } from "../noc/services/publishing.ts";
import { CATALOG_KEYS_MAX } from "../protocol/catalog.ts";
import { bumpCatalogEpoch } from "../noc/services/catalogs.ts";
import { resignFileinfo } from "../noc/services/fileinfo.ts";
import {
  fileinfoSigningBytes,
  type FileinfoStatement,
  signFileinfo,
  verifyFileinfo,
} from "../protocol/fileinfo.ts";
import { adoptablePackageKeys, endorseKey, rotatedPackageKeys } from "../protocol/release_keys.ts";
import type { Db } from "../noc/db/db.ts";

const once = ["once", "--allow-http-files"];
/** The demo/demo package at `version`. */
const demo = (version: string) => ({ app: "demo", name: "demo", version });
const marker = ["/bin/sh", "-c", 'echo "$NOC_VERSION" >> "$NOC_ROOT/ran"'];

/** A release key held offline: its seed, signing half and published record. */
interface ReleaseKey {
  seed: string;
  kid: string;
  privateKey: NocKeys["privateKey"];
  publicKey: string;
}

async function releaseKey(): Promise<ReleaseKey> {
  const seed = newSeed();
  const k = await nocKeysFromSeed(seed);
  return { seed, kid: k.kid, privateKey: k.privateKey, publicKey: k.published[0]!.publicKey };
}

/** A NOC in release-keys-only mode (its key signs catalogs only), `roots` vouched for in config. */
async function releaseKeysOnlyNoc(db: Db, roots: string[]): Promise<ServedNoc> {
  const noc = await serveNoc(db, { releaseKeyRoots: roots });
  noc.deps.keys = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
  noc.deps.contentKeys = contentKeyCache(noc.deps.keys);
  assert.deepEqual(noc.deps.keys.published[0]!.use, ["catalog"]);
  return noc;
}

async function publishFile(noc: ServedNoc, version: string): Promise<void> {
  const up = await upload(
    noc,
    `/v1/admin/files?app=demo&name=motd&version=${version}`,
    new TextEncoder().encode(`motd ${version}\n`),
    "application/octet-stream",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
  await assignToAll(noc, "file", { app: "demo", name: "motd", version });
}

const motd = (action: string[] | null = marker): FileinfoStatement => ({
  app: "demo",
  name: "motd",
  destination: "etc/motd",
  mode: "0644",
  action,
  uploadDir: null,
  uploadServer: null,
});

function body(s: FileinfoStatement, sig?: { signer: string; signature: string }) {
  return {
    destination: s.destination,
    mode: s.mode,
    action: s.action,
    ...(sig ?? {}),
  };
}

async function rows(db: Db, table: "fileinfo" | "release_keys"): Promise<number> {
  const [r] = table === "fileinfo"
    ? await db.sql<{ n: number }>`select count(*)::int as n from fileinfo`
    : await db.sql<{ n: number }>`select count(*)::int as n from release_keys`;
  return r!.n;
}

/** Writes a fileinfo row straight into the database, as a compromised NOC would serve it. */
async function forgeFileinfo(
  db: Db,
  s: FileinfoStatement,
  sig: { signer: string; signature: string } | null,
): Promise<void> {
  await db.sql`delete from fileinfo where app = ${s.app} and name = ${s.name}`;
  await db.sql`
    insert into fileinfo (app, name, destination, mode, action, upload_dir, upload_server, signer, signature,
      updated_at)
    values (${s.app}, ${s.name}, ${s.destination}, ${s.mode}, ${
    s.action ? JSON.stringify(s.action) : null
  }, null, null, ${sig?.signer ?? null}, ${sig?.signature ?? null}, now())`;
  await bumpCatalogEpoch(db.sql);
}

dbTest(
  "release-keys-only: the NOC refuses a fileinfo not signed by a release key, and one a release key signed runs on the appliance",
  async ({ db }) => {
    const release = await releaseKey();
    const noc = await releaseKeysOnlyNoc(db, [release.publicKey]);
    const reg = await noc.admin("POST", "/v1/admin/release-keys", {
      publicKey: release.publicKey,
      label: "release team (from NOC_RELEASE_KEY_ROOTS)",
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    assert.equal(reg.body.endorsement, null);
    const box = await enrolledAgent(noc);
    try {
      await publishFile(noc, "1");
      const s = motd();
      const put = (b: unknown) => noc.admin("PUT", "/v1/admin/apps/demo/fileinfo/motd", b);
      const stranger = await releaseKey();
      const refusals: Array<[string, unknown, string]> = [
        ["unsigned, with an action", body(s), "release_key_required"],
        ["unsigned, a destination only", body(motd(null)), "release_key_required"],
        [
          "signed by the NOC's own key",
          body(s, await signFileinfo(s, noc.deps.keys)),
          "bad_fileinfo_signature",
        ],
        [
          "signed by an unregistered key",
          body(s, await signFileinfo(s, stranger)),
          "bad_fileinfo_signature",
        ],
        [
          "a release key's signature for another file",
          body(s, await signFileinfo({ ...s, name: "other" }, release)),
          "bad_fileinfo_signature",
        ],
        [
          "a release key's signature for another action",
          body(s, await signFileinfo(motd(["/bin/true"]), release)),
          "bad_fileinfo_signature",
        ],
        [
          "a release key's signature for another destination",
          body(s, await signFileinfo({ ...s, destination: "etc/issue" }, release)),
          "bad_fileinfo_signature",
        ],
        [
          "a release key's signature for another mode",
          body(s, await signFileinfo({ ...s, mode: "0755" }, release)),
          "bad_fileinfo_signature",
        ],
      ];
      for (const [what, b, error] of refusals) {
        const r = await put(b);
        assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error, error, what);
        assert.equal(typeof r.body.message, "string");
      }
      assert.equal(await rows(db, "fileinfo"), 0, "nothing refused was stored");

      const ok = await put(body(s, await signFileinfo(s, release)));
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(ok.body.signer, release.kid);
      const r = await box.run(once);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(await box.readRoot("etc/motd"), "motd 1\n");
      assert.equal(await box.readRoot("ran"), "1\n", "the signed action ran");
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "release-keys-only: a fileinfo the NOC alone vouches for, served by a compromised NOC, is never run by the appliance",
  async ({ db }) => {
    const release = await releaseKey();
    const noc = await releaseKeysOnlyNoc(db, [release.publicKey]);
    const reg = await noc.admin("POST", "/v1/admin/release-keys", {
      publicKey: release.publicKey,
      label: "release team",
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const box = await enrolledAgent(noc);
    try {
      const s = motd();
      const stranger = await releaseKey();
      const forged: Array<[string, { signer: string; signature: string } | null, string]> = [
        ["unsigned", null, "fileinfo_unsigned"],
        ["signed by the NOC's key", await signFileinfo(s, noc.deps.keys), "fileinfo_unknown_key"],
        ["signed by an unknown key", await signFileinfo(s, stranger), "fileinfo_unknown_key"],
        [
          "a release key's signature for another fileinfo",
          await signFileinfo({ ...s, action: ["/bin/true"] }, release),
          "fileinfo_bad_signature",
        ],
        [
          "a release key's signature for another application's file",
          await signFileinfo({ ...s, app: "other" }, release),
          "fileinfo_bad_signature",
        ],
      ];
      let version = 0;
      for (const [what, sig, reason] of forged) {
        version += 1;
        await publishFile(noc, String(version));
        await forgeFileinfo(db, s, sig);
        const r = await box.run(once);
        assert.equal(r.code, 2, `${what}: ${r.stdout}`);
        const failed = r.events.find((e) => e.event === "install_failed");
        assert.equal(failed?.reason, reason, `${what}: ${r.stdout}`);
        assert.equal(await box.readRoot("ran"), null, `${what}: the action never ran`);
        assert.equal(await box.readRoot("etc/motd"), null, `${what}: nothing was written`);
      }
      // The same NOC serving a release key's signature for exactly this fileinfo: it runs.
      version += 1;
      await publishFile(noc, String(version));
      await forgeFileinfo(db, s, await signFileinfo(s, release));
      const r = await box.run(once);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(await box.readRoot("ran"), `${version}\n`);
      assert.equal(await box.readRoot("etc/motd"), `motd ${version}\n`);
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "release-keys-only: a release key registered with the admin token alone is refused; one endorsed by a release key is accepted and pinned by appliances",
  async ({ db }) => {
    const root = await releaseKey();
    const noc = await releaseKeysOnlyNoc(db, [root.publicKey]);
    let box: AgentBox | null = null;
    try {
      const add = (b: unknown) => noc.admin("POST", "/v1/admin/release-keys", b);
      const attacker = await releaseKey();
      const alone = await add({ publicKey: attacker.publicKey, label: "admin token alone" });
      assert.equal(alone.status, 400, JSON.stringify(alone.body));
      assert.equal(alone.body.error, "endorsement_required");
      assert.equal(await rows(db, "release_keys"), 0);

      const first = await add({ publicKey: root.publicKey, label: "root" });
      assert.equal(first.status, 201, JSON.stringify(first.body));
      box = await enrolledAgent(noc);

      const next = await releaseKey();
      const refused: Array<[string, unknown]> = [
        ["endorsed by the NOC's key", await endorseKey(next.publicKey, null, noc.deps.keys)],
        ["endorsed by itself", await endorseKey(next.publicKey, null, next)],
        ["endorsed by an unknown key", await endorseKey(next.publicKey, null, attacker)],
        [
          "an endorsement of another key",
          { ...(await endorseKey(attacker.publicKey, null, root)) },
        ],
        [
          "an endorsement with an earlier end date",
          await endorseKey(next.publicKey, "2030-01-01T00:00:00Z", root),
        ],
      ];
      for (const [what, endorsement] of refused) {
        const r = await add({ publicKey: next.publicKey, label: "next", endorsement });
        assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error, "bad_endorsement", what);
      }
      assert.equal(await rows(db, "release_keys"), 1, "nothing refused was stored");

      const ok = await add({
        publicKey: next.publicKey,
        label: "next",
        endorsement: await endorseKey(next.publicKey, null, root),
      });
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      assert.equal(ok.body.endorsement.signer, root.kid);

      // A package signed by the new key installs on an appliance enrolled before it was added.
      const pkg = await signedPackage(
        noc,
        demo("1.0.0"),
        await payload({
          install: '#!/bin/sh\nset -e\nprintf "$NOC_VERSION" > "$NOC_ROOT/version"\n',
        }),
        next,
      );
      const up = await uploadSigned(noc, pkg);
      assert.equal(up.status, 201, JSON.stringify(up.body));
      await assignToAll(noc, "package", demo("1.0.0"));
      const r = await box.run(once);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(r.events.find((e) => e.event === "keys_pinned")?.added, [next.kid]);
      assert.equal(await box.readRoot("version"), "1.0.0");

      // Retiring every release key takes trust away and gives none back to the NOC's key.
      for (const k of [root, next]) {
        // Forced: what they signed is still assigned (issue 22 item 3).
        const del = await noc.admin("DELETE", `/v1/admin/release-keys/${k.kid}?force=true`);
        assert.ok(del.status === 204 || del.status === 200, JSON.stringify(del.body));
      }
      noc.clock.advance(60);
      const keys = await (await fetch(`${noc.url}/v1/keys`)).json();
      const own = keys.keys.find((k: PublishedKey) => k.kid === noc.deps.keys.kid);
      assert.deepEqual(own.use, ["catalog"]);
      const again = await add({ publicKey: attacker.publicKey, label: "after retirement" });
      assert.equal(again.status, 400);
      const s = motd();
      const unsigned = await noc.admin("PUT", "/v1/admin/apps/demo/fileinfo/motd", body(s));
      assert.equal(unsigned.body.error, "release_key_required");
      const retiredSigner = await noc.admin(
        "PUT",
        "/v1/admin/apps/demo/fileinfo/motd",
        body(s, await signFileinfo(s, next)),
      );
      assert.equal(retiredSigner.status, 400, "a retired release key signs nothing");
      const nocSigned = await upload(
        noc,
        "/v1/admin/packages?app=demo&name=demo&version=2.0.0",
        await payload({ install: "#!/bin/sh\n" }),
        "application/gzip",
      );
      assert.equal(nocSigned.body.error, "release_key_required");
    } finally {
      await box?.remove();
      await noc.close();
    }
  },
);

Deno.test("fileinfoSigningBytes() binds the application, name and every field of the fileinfo", async () => {
  const k = await releaseKey();
  const s: FileinfoStatement = { ...motd(), uploadDir: "up", uploadServer: "srv" };
  const sig = await signFileinfo(s, k);
  const trusted: PublishedKey[] = [{
    kid: k.kid,
    alg: "ed25519",
    use: ["package"],
    publicKey: k.publicKey,
    notAfter: null,
  }];
  const now = new Date();
  await verifyFileinfo({ ...s, ...sig }, trusted, now);
  await verifyFileinfo({ ...s, mode: "644", ...sig }, trusted, now); // the same mode, written short
  const variants: FileinfoStatement[] = [
    { ...s, app: "demo2" },
    { ...s, name: "motd2" },
    { ...s, destination: "etc/motd2" },
    { ...s, mode: "0640" },
    { ...s, action: null },
    { ...s, action: [...marker, "x"] },
    { ...s, uploadDir: null },
    { ...s, uploadServer: "srv2" },
  ];
  for (const v of variants) {
    await assert.rejects(
      () => verifyFileinfo({ ...v, ...sig }, trusted, now),
      (e: any) => e.reason === "bad_signature",
      JSON.stringify(v),
    );
  }
  // Domain separation: the bytes name what they are, so no other signed object can stand in.
  assert.match(new TextDecoder().decode(fileinfoSigningBytes(s)), /^\["noc-fileinfo\/1",/);
  await assert.rejects(
    () => verifyFileinfo({ ...s, ...sig }, [{ ...trusted[0]!, use: ["catalog"] }], now),
    (e: any) => e.reason === "unknown_key",
  );
  await assert.rejects(
    () =>
      verifyFileinfo({ ...s, ...sig }, [{ ...trusted[0]!, notAfter: "2000-01-01T00:00:00Z" }], now),
    (e: any) => e.reason === "expired_key",
  );
});

Deno.test("adoptablePackageKeys() in release-keys-only mode gives package use only to keys already pinned for it or endorsed by one", async () => {
  const noc = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
  const root = await releaseKey();
  const rec = (k: ReleaseKey, notAfter: string | null = null): PublishedKey => ({
    kid: k.kid,
    alg: "ed25519",
    use: ["package"],
    publicKey: k.publicKey,
    notAfter,
  });
  const pinned: PublishedKey[] = [noc.published[0]!, rec(root, "2040-01-01T00:00:00.000Z")];
  const now = new Date();
  const attacker = await releaseKey();
  const good = await releaseKey();
  const { keys, refused } = await adoptablePackageKeys(pinned, [
    { ...noc.published[0]!, use: ["catalog", "package"] }, // the NOC key claiming package use
    rec(root, null), // a retired-by-date key's end date removed
    rec(attacker), // no endorsement
    { ...rec(attacker), endorsement: await endorseKey(attacker.publicKey, null, noc) },
    { ...rec(good), endorsement: await endorseKey(good.publicKey, null, root) },
  ], now);
  assert.deepEqual(refused.toSorted(), [noc.kid, root.kid, attacker.kid].toSorted());
  // The release key keeps its end date: a list cannot move it later.
  assert.deepEqual(
    keys.map((k) => `${k.kid}:${k.use.join("+")}:${k.notAfter}`),
    [
      `${noc.kid}:catalog:null`,
      `${root.kid}:package:2040-01-01T00:00:00.000Z`,
      `${good.kid}:package:null`,
    ],
  );
  // While the pinned NOC key itself signs packages (normal mode), its list is taken as it is.
  const normalNoc = await nocKeysFromSeed(newSeed());
  const normal = await adoptablePackageKeys(normalNoc.published, [
    normalNoc.published[0]!,
    rec(attacker),
  ], now);
  assert.deepEqual(normal.refused, []);
  assert.equal(normal.keys.length, 2);
  // A key list that keeps what was pinned, or only shortens an end date, is taken as it is.
  const same = await adoptablePackageKeys(pinned, [
    noc.published[0]!,
    rec(root, "2030-01-01T00:00:00.000Z"),
  ], now);
  assert.deepEqual(same.refused, []);
  assert.equal(same.keys.length, 2);
  assert.equal(same.keys[1]!.notAfter, "2030-01-01T00:00:00.000Z");
});

dbTest(
  "resignFileinfo() signs fileinfo saved before signatures with the NOC key, but never in release-keys-only mode",
  async ({ db }) => {
    const noc = await testNoc(db);
    await forgeFileinfo(db, motd(), null);
    assert.equal(await resignFileinfo(noc.deps), 1);
    const [row] = await db.sql<any>`select signer, signature from fileinfo`;
    assert.equal(row.signer, noc.deps.keys.kid);
    await verifyFileinfo({ ...motd(), ...row }, noc.deps.keys.published, noc.clock.now());
    assert.equal(await resignFileinfo(noc.deps), 0, "a valid signature is kept");

    noc.deps.keys = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
    await forgeFileinfo(db, motd(), null);
    assert.equal(await resignFileinfo(noc.deps), 0);
    const [after] = await db.sql<any>`select signer from fileinfo`;
    assert.equal(after.signer, null);
  },
);

dbTest(
  "release-keys-only: the console cannot save a fileinfo either, since it goes through the same admin API",
  async ({ db }) => {
    const noc = await testNoc(db);
    noc.deps.keys = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
    const ui = await signIn(noc);
    for (const action of [JSON.stringify(marker), ""]) {
      const flash = await ui.post("/ui/apps/demo/fileinfo", {
        name: "motd",
        destination: "etc/motd",
        mode: "0644",
        action,
      });
      assert.match(flash, /signed with a release key/, flash);
    }
    assert.equal(await rows(db, "fileinfo"), 0);
  },
);

dbTest(
  "release-keys-only: a compromised NOC can give no key package use on appliances — not its own, not an unendorsed release key",
  async ({ db }) => {
    const root = await releaseKey();
    const noc = await releaseKeysOnlyNoc(db, [root.publicKey]);
    const reg = await noc.admin("POST", "/v1/admin/release-keys", {
      publicKey: root.publicKey,
      label: "root",
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const box = await enrolledAgent(noc);
    const installScript = '#!/bin/sh\nset -e\nprintf "$NOC_VERSION" > "$NOC_ROOT/version"\n';
    const assign = (version: string) => assignToAll(noc, "package", demo(version));
    try {
      // 1. The NOC writes a release key of its own straight into its database (no endorsement)
      // and publishes a package signed with it.
      const rogue = await releaseKey();
      await db.sql`
        insert into release_keys (kid, public_key, label, created_at)
        values (${rogue.kid}, ${rogue.publicKey}, 'rogue', now())`;
      await bumpCatalogEpoch(db.sql);
      const pkg = await signedPackage(
        noc,
        demo("1.0.0"),
        await payload({ install: installScript }),
        rogue,
      );
      const up = await uploadSigned(noc, pkg);
      assert.equal(up.status, 201, "the compromised NOC accepts it");
      await assign("1.0.0");
      const first = await box.run(once);
      assert.equal(first.code, 2, first.stdout);
      assert.deepEqual(first.events.find((e) => e.event === "keys_refused")?.kids, [rogue.kid]);
      assert.equal(
        first.events.find((e) => e.event === "install_failed")?.reason,
        "unknown_key",
        first.stdout,
      );
      assert.equal(await box.readRoot("version"), null, "nothing ran");

      // 2. The NOC lists its own key with "package" use again and signs a package itself.
      noc.deps.keys.published[0] = { ...noc.deps.keys.published[0]!, use: ["catalog", "package"] };
      const own = await upload(
        noc,
        "/v1/admin/packages?app=demo&name=demo&version=2.0.0",
        await payload({ install: installScript }),
        "application/gzip",
      );
      assert.equal(own.status, 201, JSON.stringify(own.body));
      await assign("2.0.0");
      const second = await box.run(once);
      assert.equal(second.code, 2, second.stdout);
      assert.ok(
        second.events.find((e) => e.event === "keys_refused")?.kids.includes(noc.deps.keys.kid),
        second.stdout,
      );
      assert.equal(
        second.events.find((e) => e.event === "install_failed")?.reason,
        "unknown_key",
        second.stdout,
      );
      assert.equal(await box.readRoot("version"), null, "nothing ran");
      const pinned = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).pinnedKeys;
      assert.deepEqual(
        pinned.filter((k: PublishedKey) => k.use.includes("package")).map((k: PublishedKey) =>
          k.kid
        ),
        [root.kid],
        "only the release key is pinned for packages",
      );
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

Deno.test("rotatedPackageKeys() lets a key-chain rotation hand on package use only from a NOC key that had it", async () => {
  const old = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
  const next = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: false });
  const root = await releaseKey();
  const rootRec: PublishedKey = {
    kid: root.kid,
    alg: "ed25519",
    use: ["package"],
    publicKey: root.publicKey,
    notAfter: null,
  };
  // Release-keys-only: the new NOC key claims package use in its statement; it does not get it.
  const walked = [
    next.published[0]!,
    { ...old.published[0]!, notAfter: "2040-01-01T00:00:00Z" },
    rootRec,
  ];
  const rko = rotatedPackageKeys([old.published[0]!, rootRec], walked);
  assert.deepEqual(rko.refused, [next.kid]);
  assert.deepEqual(rko.keys.map((k) => `${k.kid}:${k.use.join("+")}`), [
    `${next.kid}:catalog`,
    `${old.kid}:catalog`,
    `${root.kid}:package`,
  ]);
  // Normal mode: the NOC key signed packages, so the keys it hands over to (statements list
  // catalog keys) may too.
  const normalOld = await nocKeysFromSeed(newSeed());
  const normal = rotatedPackageKeys(normalOld.published, [
    { ...next.published[0]!, use: ["catalog"] },
    { ...normalOld.published[0]!, use: ["catalog"], notAfter: "2040-01-01T00:00:00Z" },
  ]);
  assert.deepEqual(normal.refused, []);
  assert.deepEqual(normal.keys.map((k) => k.use), [["catalog", "package"], ["catalog", "package"]]);
});

dbTest(
  "resignFileinfo() moves fileinfo a retired NOC key signed to the current key, before that key's end date",
  async ({ db }) => {
    const noc = await testNoc(db);
    await forgeFileinfo(db, motd(), null);
    assert.equal(await resignFileinfo(noc.deps), 1);
    const old = noc.deps.keys.published[0]!;
    // The NOC restarts with a new key, the old one retired a week from now (docs/operations.md).
    const notAfter = new Date(noc.clock.now().getTime() + 7 * 86400_000).toISOString();
    noc.deps.keys = await nocKeysFromSeed(newSeed(), {
      retired: [{ publicKey: old.publicKey, notAfter }],
    });
    assert.equal(await resignFileinfo(noc.deps), 1, "signed again although the old key is valid");
    const [row] = await db.sql<any>`select signer, signature from fileinfo`;
    assert.equal(row.signer, noc.deps.keys.kid);
    // Past the old key's end date, appliances pinning only the current key still accept it.
    const later = new Date(Date.parse(notAfter) + 1000);
    await verifyFileinfo({ ...motd(), ...row }, [noc.deps.keys.published[0]!], later);
    assert.equal(await resignFileinfo(noc.deps), 0);
  },
);

dbTest(
  "catalogs never list more keys than an appliance accepts: a release key past the bound is refused, and long-retired keys leave the list",
  async ({ db }) => {
    const noc = await testNoc(db);
    const nocKeys = noc.deps.keys.published.length;
    const kids: string[] = [];
    for (let i = nocKeys; i < CATALOG_KEYS_MAX; i++) {
      const k = await releaseKey();
      const r = await noc.admin("POST", "/v1/admin/release-keys", {
        publicKey: k.publicKey,
        label: `r${i}`,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      kids.push(k.kid);
    }
    const extra = await releaseKey();
    const refused = await noc.admin("POST", "/v1/admin/release-keys", {
      publicKey: extra.publicKey,
      label: "one too many",
    });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error, "too_many_keys");
    assert.equal(await rows(db, "release_keys"), CATALOG_KEYS_MAX - nocKeys, "nothing written");
    // A key retired within the last 30 days is still listed (appliances pin its end date); one
    // retired longer ago is not, which makes room.
    await db
      .sql`update release_keys set not_after = now() - interval '1 day' where kid = ${kids[0]!}`;
    assert.equal((await publishedKeys(noc.deps)).length, CATALOG_KEYS_MAX);
    await db
      .sql`update release_keys set not_after = now() - interval '31 days' where kid = ${kids[0]!}`;
    const listed = await publishedKeys(noc.deps);
    assert.equal(listed.length, CATALOG_KEYS_MAX - 1);
    assert.ok(!listed.some((k) => k.kid === kids[0]));
    const again = await noc.admin("POST", "/v1/admin/release-keys", {
      publicKey: extra.publicKey,
      label: "room now",
    });
    assert.equal(again.status, 201, JSON.stringify(again.body));
  },
);
