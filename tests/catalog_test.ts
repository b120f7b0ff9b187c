import assert from "node:assert/strict";
import { count, dbTest, testNoc } from "./_harness.ts";
import { fetchCatalog, payload, publishAndAssign, upload } from "./_components.ts";
import { sha256, toHex } from "../protocol/util/encoding.ts";
import {
  checkCiphertext,
  decryptChunks,
  expectComponent,
  importContentKey,
  parsePackagePrefix,
  unwrapContentKey,
  verifyPackagePrefix,
} from "../protocol/package/format.ts";
import { extractTar, gunzip } from "../protocol/package/tar.ts";
import { fromBase64Url } from "../protocol/util/encoding.ts";
import { CatalogError, verifyCatalog } from "../protocol/catalog.ts";
import { verifyFileinfo } from "../protocol/fileinfo.ts";
import { rolloutBucket } from "../noc/services/catalog_engine.ts";
import type { TestAppliance, TestNoc } from "./_harness.ts";

async function download(
  noc: TestNoc,
  url: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return await noc.app.request(new Request(url.replace("http://", "https://"), { headers }));
}

/** What an appliance does with a package line of its catalog: verify, unwrap, decrypt, unpack. */
async function installPackage(
  a: TestAppliance,
  entry: { app: string; name: string; version: string; sha256: string; wrappedKey?: string },
  bytes: Uint8Array<ArrayBuffer>,
  now: Date,
  dest: string,
): Promise<string[]> {
  assert.equal(toHex(await sha256(bytes)), entry.sha256, "download matches the catalog digest");
  const prefix = parsePackagePrefix(bytes);
  await verifyPackagePrefix(
    prefix,
    a.enrollment.nocKeys.filter((k) => k.use.includes("package")),
    now,
  );
  expectComponent(prefix.header, entry);
  const ciphertext = bytes.subarray(prefix.ciphertextOffset);
  for await (
    const _ of checkCiphertext(ReadableStream.from([ciphertext]), prefix.header)
  ) { /* digest check */ }
  const key = await unwrapContentKey(
    entry.wrappedKey!,
    fromBase64Url(a.keys.encryptionPrivate),
    prefix.header,
  );
  const plain = decryptChunks(
    ReadableStream.from([ciphertext]),
    await importContentKey(key),
    prefix.header.chunkSize,
  );
  return await extractTar(gunzip(plain), dest);
}

dbTest(
  "a published package and file reach the appliance verified, decrypted and byte-exact",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const blob = new Uint8Array(300_000).map((_, i) => (i * 31) % 256);
    await publishAndAssign(noc, { app: "vscreen", name: "vscreen", version: "4.2.1" }, {
      install: "#!/bin/sh\necho installing\n",
      "lib/engine.bin": blob,
    });
    const fileBytes = new TextEncoder().encode("rules = strict\n");
    const up = await upload(
      noc,
      "/v1/admin/files?app=vscreen&name=rules.conf&version=7",
      fileBytes,
      "application/octet-stream",
    );
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const fi = await noc.admin("PUT", "/v1/admin/apps/vscreen/fileinfo/rules.conf", {
      destination: "etc/vscreen/rules.conf",
      mode: "0640",
      action: ["systemctl", "restart", "vscreen"],
      uploadDir: "VSCREEN",
      uploadServer: "BWSH",
    });
    assert.equal(fi.status, 200, JSON.stringify(fi.body));
    await noc.admin("POST", "/v1/admin/assignments", {
      kind: "file",
      app: "vscreen",
      name: "rules.conf",
      version: "7",
      target: { type: "all" },
    });

    const cat = await fetchCatalog(noc, a);
    assert.equal(cat.status, 200);
    const doc = cat.doc!;
    assert.equal(doc.uid, a.uid);
    assert.deepEqual(doc.components.map((c) => `${c.kind}:${c.name}@${c.version}`), [
      "package:vscreen@4.2.1",
      "file:rules.conf@7",
    ], "packages first, then files");

    const pkg = doc.components[0]!;
    const res = await download(noc, pkg.urls[0]!);
    assert.equal(res.status, 200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.equal(bytes.length, pkg.size);
    const dest = await Deno.makeTempDir();
    try {
      const written = await installPackage(a, pkg, bytes, noc.clock.now(), dest);
      assert.deepEqual(written.sort(), ["install", "lib", "lib/engine.bin"]);
      assert.deepEqual(await Deno.readFile(`${dest}/lib/engine.bin`), blob);
      assert.equal(await Deno.readTextFile(`${dest}/install`), "#!/bin/sh\necho installing\n");
    } finally {
      await Deno.remove(dest, { recursive: true });
    }

    const file = doc.components[1]!;
    const { signer, signature: _signature, ...instructions } = file.fileinfo!;
    assert.deepEqual(instructions, {
      destination: "etc/vscreen/rules.conf",
      mode: "0640",
      action: ["systemctl", "restart", "vscreen"],
      uploadDir: "VSCREEN",
      uploadServer: "BWSH",
    });
    // The NOC signs fileinfo itself in normal mode (protocol/fileinfo.ts): the agent honours no other.
    assert.equal(signer, noc.deps.keys.kid);
    await verifyFileinfo(
      { app: file.app, name: file.name, ...file.fileinfo! },
      noc.deps.keys.published,
      noc.clock.now(),
    );
    const fres = await download(noc, file.urls[0]!);
    const fbytes = new Uint8Array(await fres.arrayBuffer());
    assert.deepEqual(fbytes, fileBytes);
    assert.equal(toHex(await sha256(fbytes)), file.sha256);

    const config = await noc.admin("GET", `/v1/admin/appliances/${a.uid}/configuration`);
    assert.deepEqual(
      config.body.items.map((c: { name: string; version: string }) => `${c.name}@${c.version}`)
        .sort(),
      ["rules.conf@7", "vscreen@4.2.1"],
      "both downloads are recorded: the configuration, progressively assembled",
    );
  },
);

dbTest(
  "a byte changed on the server in the header, signature or ciphertext is refused by the appliance",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const { componentId } = await publishAndAssign(noc, {
      app: "app",
      name: "pkg",
      version: "1.0.0",
    }, {
      install: "#!/bin/sh\n",
      data: new Uint8Array(5000),
    });
    const doc = (await fetchCatalog(noc, a)).doc!;
    const entry = doc.components[0]!;
    const good = new Uint8Array(await (await download(noc, entry.urls[0]!)).arrayBuffer());
    const prefixLength = parsePackagePrefix(good).ciphertextOffset;
    for (
      const [what, at] of [["header", 30], ["signature", prefixLength - 5], [
        "ciphertext",
        prefixLength + 100,
      ]] as const
    ) {
      const bad = good.slice();
      bad[at] = bad[at]! ^ 0x01;
      const dest = await Deno.makeTempDir();
      try {
        // With the catalog digest the appliance refuses at once; even with a matching digest the package checks refuse.
        await assert.rejects(installPackage(a, entry, bad, noc.clock.now(), dest), Error, what);
        await assert.rejects(
          installPackage(
            a,
            { ...entry, sha256: toHex(await sha256(bad)) },
            bad,
            noc.clock.now(),
            dest,
          ),
          Error,
          `${what} with a matching digest`,
        );
        assert.deepEqual([...Deno.readDirSync(dest)], [], `${what}: nothing unpacked`);
      } finally {
        await Deno.remove(dest, { recursive: true });
      }
    }
    // Tampering with the stored ciphertext itself (a compromised database) is refused too.
    await db.sql`update blob_chunks set data = overlay(data placing '\\xff'::bytea from 10 for 1)
    where blob_id = (select blob_id from components where id = ${componentId}) and seq = 0`;
    const served = new Uint8Array(await (await download(noc, entry.urls[0]!)).arrayBuffer());
    await assert.rejects(
      installPackage(
        a,
        { ...entry, sha256: toHex(await sha256(served)) },
        served,
        noc.clock.now(),
        "/nonexistent",
      ),
    );
  },
);

dbTest("a package listed under another version is refused by the appliance", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  await publishAndAssign(noc, { app: "app", name: "pkg", version: "1.0.0" });
  const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
  const bytes = new Uint8Array(await (await download(noc, entry.urls[0]!)).arrayBuffer());
  await assert.rejects(
    installPackage(a, { ...entry, version: "2.0.0" }, bytes, noc.clock.now(), "/nonexistent"),
    /not app\/pkg@2\.0\.0/,
  );
});

dbTest(
  "download grants: another appliance's, another component's or an expired grant is refused",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const b = await noc.enrollAppliance();
    await publishAndAssign(noc, { app: "app", name: "one", version: "1" });
    await publishAndAssign(noc, { app: "app", name: "two", version: "1" });
    const [one, two] = (await fetchCatalog(noc, a)).doc!.components;
    const grantOf = (url: string) => new URL(url).searchParams.get("grant")!;
    const idOf = (url: string) => new URL(url).pathname.split("/").pop()!;
    // another component: one's grant on two's URL
    const swapped = await download(
      noc,
      `https://noc.test/v1/components/${idOf(two!.urls[0]!)}?grant=${grantOf(one!.urls[0]!)}`,
    );
    assert.equal(swapped.status, 403);
    assert.equal((await swapped.json()).error, "wrong_component");
    // a forged grant
    const forged = ((g) => {
      const at = g.length - 20; // inside the signature, away from its spare bits
      return g.slice(0, at) + (g[at] === "A" ? "B" : "A") + g.slice(at + 1);
    })(grantOf(one!.urls[0]!));
    const bad = await download(
      noc,
      `https://noc.test/v1/components/${idOf(one!.urls[0]!)}?grant=${forged}`,
    );
    assert.equal(bad.status, 403);
    // the grant names appliance a: the download is recorded for a, never for b
    assert.equal((await download(noc, one!.urls[0]!)).status, 200);
    const rows = await db.sql<{ uid: string }>`select uid from deliveries`;
    assert.deepEqual(rows.map((r) => r.uid), [a.uid]);
    // b presenting a's grant in a signed request is refused
    const stolen = await b.request(
      "GET",
      new URL(one!.urls[0]!).pathname + new URL(one!.urls[0]!).search,
    );
    const refused = await noc.app.request(
      new Request(stolen.url.replace("http://", "https://"), { headers: stolen.headers }),
    );
    assert.equal(refused.status, 403);
    assert.equal((await refused.json()).error, "wrong_appliance");
    const [w] = await db.sql<{ proven: boolean; keyid: string }>`
      select proven, keyid from auth_failures where reason = 'wrong_appliance'`;
    assert.deepEqual({ ...w }, { proven: true, keyid: b.uid }, "b's own signature proved it");
    // b's own catalog grants are b's, and b cannot reuse a's to be recorded as a
    const bOne = (await fetchCatalog(noc, b)).doc!.components[0]!;
    assert.notEqual(grantOf(bOne.urls[0]!), grantOf(one!.urls[0]!));
    // expired
    noc.clock.advance(noc.deps.settings.catalogTtlS + 1);
    const late = await download(noc, one!.urls[0]!);
    assert.equal(late.status, 401);
    assert.equal((await late.json()).error, "expired_grant");
    assert.ok(await count(db, "auth_failures") >= 3, "refused grants are recorded");
  },
);

dbTest(
  "the component server also accepts the appliance's request signature, and supports Range and HEAD",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const { componentId } = await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" }, {
      install: "#!/bin/sh\n",
      big: crypto.getRandomValues(new Uint8Array(60_000)),
    });
    // Signed but without a grant: only for what the appliance's current catalog lists, so not
    // before it has been issued one.
    const early = await noc.app.request(await a.request("GET", `/v1/components/${componentId}`));
    assert.equal(early.status, 403);
    assert.equal((await early.json()).error, "not_in_catalog");
    const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
    const full = new Uint8Array(
      await (await noc.app.request(await a.request("GET", `/v1/components/${componentId}`)))
        .arrayBuffer(),
    );
    assert.equal(toHex(await sha256(full)), entry.sha256);
    const head = await noc.app.request(await a.request("HEAD", `/v1/components/${componentId}`));
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(full.length));
    assert.equal(head.headers.get("accept-ranges"), "bytes");
    const mid = Math.floor(full.length / 2);
    const ranges: Array<[string, number, number]> = [
      ["bytes=0-99", 0, 99],
      [`bytes=${mid}-`, mid, full.length - 1],
      ["bytes=-10", full.length - 10, full.length - 1],
      [`bytes=1000-${mid}`, 1000, mid],
    ];
    for (const [range, start, end] of ranges) {
      const res = await download(noc, entry.urls[0]!, { range });
      assert.equal(res.status, 206, range);
      assert.equal(res.headers.get("content-range"), `bytes ${start}-${end}/${full.length}`);
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), full.slice(start, end + 1), range);
    }
    const unsat = await download(noc, entry.urls[0]!, { range: `bytes=${full.length}-` });
    assert.equal(unsat.status, 416);
    assert.equal(unsat.headers.get("content-range"), `bytes */${full.length}`);
  },
);

dbTest("a file is never served over plain HTTP", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  await upload(
    noc,
    "/v1/admin/files?app=app&name=f&version=1",
    new TextEncoder().encode("x"),
    "application/octet-stream",
  );
  await noc.admin("POST", "/v1/admin/assignments", {
    kind: "file",
    app: "app",
    name: "f",
    version: "1",
    target: { type: "all" },
  });
  const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
  const plain = await noc.app.request(entry.urls[0]!.replace("https://", "http://"));
  assert.equal(plain.status, 403);
  assert.equal((await plain.json()).error, "https_required");
  const proxied = await noc.app.request(entry.urls[0]!.replace("https://", "http://"), {
    headers: { "x-forwarded-proto": "https" },
  });
  assert.equal(proxied.status, 403, "X-Forwarded-Proto is not believed without NOC_TRUST_PROXY");
  assert.equal(await count(db, "appliances"), 1);
  assert.equal((await db.sql`select 1 from deliveries`).length, 0, "nothing recorded as sent");
});

dbTest(
  "catalogs: 304 when nothing changed, a new ETag and a higher serial when something did",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" });
    const first = await fetchCatalog(noc, a);
    const again = await fetchCatalog(noc, a, { etag: first.etag! });
    assert.equal(again.status, 304);
    const same = await fetchCatalog(noc, a);
    assert.equal(same.body, first.body, "served from the cache, not regenerated");
    const serialsBefore = await db.sql<{ catalog_serial: number; last_catalog_at: Date }>`
    select catalog_serial, last_catalog_at from appliances`;
    assert.equal(serialsBefore[0]!.catalog_serial, 1);
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "2" });
    const changed = await fetchCatalog(noc, a, {
      etag: first.etag!,
      lastSerial: first.doc!.serial,
    });
    assert.equal(changed.status, 200);
    assert.notEqual(changed.etag, first.etag);
    assert.ok(changed.doc!.serial > first.doc!.serial);
    assert.equal(changed.doc!.components[0]!.version, "2");
    // An appliance refuses the older catalog once it has seen the newer one (rollback), and an expired one (freeze).
    await assert.rejects(
      verifyCatalog(first.body, {
        pinned: a.enrollment.nocKeys,
        uid: a.uid,
        lastSerial: changed.doc!.serial,
        now: noc.clock.now(),
      }),
      (e: unknown) => e instanceof CatalogError && e.reason === "rollback",
    );
    await assert.rejects(
      verifyCatalog(changed.body, {
        pinned: a.enrollment.nocKeys,
        uid: a.uid,
        lastSerial: 0,
        now: new Date(Date.parse(changed.doc!.expiresAt) + 1),
      }),
      (e: unknown) => e instanceof CatalogError && e.reason === "expired",
    );
    const flipped = changed.body.replace('\\"version\\":\\"2\\"', '\\"version\\":\\"3\\"');
    assert.notEqual(flipped, changed.body);
    await assert.rejects(
      verifyCatalog(flipped, {
        pinned: a.enrollment.nocKeys,
        uid: a.uid,
        lastSerial: 0,
        now: noc.clock.now(),
      }),
      (e: unknown) => e instanceof CatalogError && e.reason === "bad_signature",
    );
    // The connection time is archived on every catalog request (FIGURE 8), 304s included.
    noc.clock.advance(60);
    await fetchCatalog(noc, a, { etag: changed.etag! });
    const [after] = await db.sql<{ last_catalog_at: Date }>`select last_catalog_at from appliances`;
    assert.equal(after!.last_catalog_at.toISOString(), noc.clock.now().toISOString());
  },
);

dbTest(
  "the most specific assignment wins: appliance over tag over site over channel over model over all",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ model: "vs-2000" });
    await noc.admin("PATCH", `/v1/admin/appliances/${a.uid}`, {
      site: "hq",
      channel: "beta",
      tags: ["edge"],
    });
    const versions: Array<[string, Record<string, unknown>]> = [
      ["1", { type: "all" }],
      ["2", { type: "model", value: "vs-2000" }],
      ["3", { type: "channel", value: "beta" }],
      ["4", { type: "site", value: "hq" }],
      ["5", { type: "tag", value: "edge" }],
      ["6", { type: "appliance", value: a.uid }],
    ];
    // Published from the most specific down, so "newest wins" alone would pick the wrong one.
    for (const [v, target] of [...versions].reverse()) {
      await publishAndAssign(noc, { app: "app", name: "pkg", version: v }, undefined, target);
    }
    const pick = async () => (await fetchCatalog(noc, a)).doc!.components.map((c) => c.version);
    assert.deepEqual(await pick(), ["6"]);
    const list = (await noc.admin("GET", "/v1/admin/assignments")).body.items as Array<
      { id: number; version: string }
    >;
    for (const v of ["6", "5", "4", "3", "2"]) {
      await noc.admin("DELETE", `/v1/admin/assignments/${list.find((x) => x.version === v)!.id}`);
      assert.deepEqual(await pick(), [String(Number(v) - 1)], `after removing ${v}`);
    }
    // Other appliances see only what matches them.
    const other = await noc.enrollAppliance({ model: "rt-10" });
    assert.deepEqual((await fetchCatalog(noc, other)).doc!.components.map((c) => c.version), ["1"]);
  },
);

dbTest(
  "a staged rollout picks appliances by UID, the same each time, and widening never removes one",
  async ({ db }) => {
    const noc = await testNoc(db);
    const fleet: TestAppliance[] = [];
    for (let i = 0; i < 40; i++) fleet.push(await noc.enrollAppliance({ hostname: `gw-${i}` }));
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" });
    const { assignmentId } = await publishAndAssign(
      noc,
      { app: "app", name: "pkg", version: "2" },
      undefined,
      { type: "all" },
      {
        rolloutPercent: 25,
      },
    );
    const onTwo = async () => {
      const out = new Set<string>();
      for (const a of fleet) {
        if ((await fetchCatalog(noc, a)).doc!.components[0]!.version === "2") out.add(a.uid);
      }
      return out;
    };
    const at25 = await onTwo();
    assert.deepEqual(
      [...at25].sort(),
      fleet.filter((a) => rolloutBucket(a.uid, "package", "app", "pkg") < 25).map((a) => a.uid)
        .sort(),
    );
    assert.ok(at25.size > 0 && at25.size < 40, `25% of 40 picked ${at25.size}`);
    assert.deepEqual(await onTwo(), at25, "same UID, same answer");
    await noc.admin("PATCH", `/v1/admin/assignments/${assignmentId}`, { rolloutPercent: 60 });
    const at60 = await onTwo();
    for (const uid of at25) assert.ok(at60.has(uid), "widening keeps everyone who had it");
    assert.ok(at60.size > at25.size);
    // Stopping the rollout keeps those already sent it and gives it to no one else.
    const sentTo = fleet.find((a) => at60.has(a.uid))!;
    const entry = (await fetchCatalog(noc, sentTo)).doc!.components[0]!;
    assert.equal((await download(noc, entry.urls[0]!)).status, 200);
    await noc.admin("PATCH", `/v1/admin/assignments/${assignmentId}`, { paused: true });
    assert.deepEqual([...(await onTwo())], [sentTo.uid]);
    const progress = (await noc.admin("GET", `/v1/admin/assignments/${assignmentId}`)).body;
    assert.equal(progress.paused, true);
    assert.equal(progress.progress.sent, 1);
  },
);

dbTest("a hold pins an appliance to what it was last sent", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" });
  const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
  await download(noc, entry.urls[0]!);
  const hold = await noc.admin("POST", "/v1/admin/holds", {
    uid: a.uid,
    reason: "customer change freeze",
  });
  assert.equal(hold.status, 201);
  await publishAndAssign(noc, { app: "app", name: "pkg", version: "2" });
  await publishAndAssign(noc, { app: "other", name: "new", version: "1" });
  assert.deepEqual(
    (await fetchCatalog(noc, a)).doc!.components.map((c) => `${c.name}@${c.version}`),
    ["pkg@1"],
  );
  await noc.admin("DELETE", `/v1/admin/holds/${hold.body.id}`);
  assert.deepEqual(
    (await fetchCatalog(noc, a)).doc!.components.map((c) => `${c.name}@${c.version}`).sort(),
    ["new@1", "pkg@2"],
  );
});

dbTest(
  "a wiped appliance gets its whole configuration back in its next catalog",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" });
    await upload(
      noc,
      "/v1/admin/files?app=app&name=f&version=1",
      new TextEncoder().encode("x"),
      "application/octet-stream",
    );
    await noc.admin("POST", "/v1/admin/assignments", {
      kind: "file",
      app: "app",
      name: "f",
      version: "1",
      target: { type: "appliance", value: a.uid },
    });
    const before = (await fetchCatalog(noc, a)).doc!;
    for (const c of before.components) await download(noc, c.urls[0]!);
    // The appliance loses its disk (but keeps its identity) and reports nothing installed.
    await a.beat({ components: [] });
    const after = (await fetchCatalog(noc, a, { lastSerial: 0 })).doc!;
    assert.deepEqual(
      after.components.map((c) => `${c.kind}:${c.name}@${c.version}`),
      before.components.map((c) => `${c.kind}:${c.name}@${c.version}`),
    );
  },
);

dbTest(
  "publishing the same name and version again: same content is idempotent, different content is refused",
  async ({ db }) => {
    const noc = await testNoc(db);
    const body = await payload({ install: "#!/bin/sh\n" });
    const path = "/v1/admin/packages?app=app&name=pkg&version=1";
    assert.equal((await upload(noc, path, body, "application/gzip")).status, 201);
    assert.equal((await upload(noc, path, body, "application/gzip")).status, 200);
    const other = await upload(
      noc,
      path,
      await payload({ install: "#!/bin/sh\necho changed\n" }),
      "application/gzip",
    );
    assert.equal(other.status, 409);
    assert.equal(other.body.error, "version_exists");
    const [blobs] = await db.sql<{ n: number }>`select count(*)::int as n from blobs`;
    assert.equal(blobs!.n, 1, "refused uploads leave no blob behind");
  },
);

dbTest(
  "a rollout pauses itself and notifies when too many appliances fail to install it",
  async ({ db }) => {
    const noc = await testNoc(db);
    const fleet: TestAppliance[] = [];
    for (let i = 0; i < 6; i++) fleet.push(await noc.enrollAppliance({ hostname: `gw-${i}` }));
    const { assignmentId } = await publishAndAssign(
      noc,
      { app: "app", name: "pkg", version: "2" },
      undefined,
      { type: "all" },
      {
        failureThresholdPercent: 30,
        minSample: 4,
      },
    );
    const report = async (a: TestAppliance, outcome: string) => {
      // Only outcomes of appliances the release was delivered to count: each one downloads it first.
      const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
      assert.equal((await download(noc, entry.urls[0]!)).status, 200);
      const res = await noc.app.request(
        await a.request("POST", "/v1/installs", {
          results: [{
            kind: "package",
            app: "app",
            name: "pkg",
            version: "2",
            outcome,
            ...(outcome === "installed" ? {} : { message: "install exited 1" }),
          }],
        }),
      );
      assert.equal(res.status, 200);
      return await res.json();
    };
    await report(fleet[0]!, "installed");
    await report(fleet[1]!, "installed");
    await report(fleet[2]!, "failed");
    assert.deepEqual(
      (await report(fleet[3]!, "installed")).pausedAssignments,
      [],
      "1 of 4 is under 30%",
    );
    const r = await report(fleet[4]!, "rolled_back");
    assert.deepEqual(r.pausedAssignments, [assignmentId], "2 of 5 is over 30%");
    const a = (await noc.admin("GET", `/v1/admin/assignments/${assignmentId}`)).body;
    assert.equal(a.paused, true);
    assert.match(a.pausedReason, /40% of 5 appliances/);
    const notices = await db.sql<
      { kind: string }
    >`select kind from notices where kind = 'rollout_paused'`;
    assert.equal(notices.length, 1);
    // Paused: an appliance that never got it does not get it now.
    assert.deepEqual((await fetchCatalog(noc, fleet[5]!)).doc!.components, []);
  },
);
