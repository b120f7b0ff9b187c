/**
 * Publishing in one pass: a signed package (and a file) is hashed, checked
 * against its signed header and test-decrypted while it streams into the
 * database, never read back; every refusal still publishes nothing and
 * leaves no blob.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { countingDb, dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { fetchCatalog, payload, signedPackage } from "./_components.ts";
import type { Db } from "../noc/db/db.ts";
import { createApp } from "../noc/app.ts";
import {
  packageFormat,
  type PackageHeader,
  packagePrefix,
  parsePackagePrefix,
  wrapContentKey,
} from "../protocol/package/format.ts";
import { concatBytes } from "../protocol/util/bytes.ts";
import { fromBase64Url } from "../protocol/util/encoding.ts";

/** The package these tests publish, at `version`. */
const rel = (version: string) => ({ app: "rel", name: "pkg", version });

const sha256Hex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The database, counting statements that read stored blob chunks. */
function countingReads(db: Db): { db: Db; reads: () => number } {
  const c = countingDb(db, (text) => text.includes("from blob_chunks"));
  return { db: c.db, reads: c.count };
}

/** Streams `bytes` in pieces of `piece` bytes, as an HTTP body arrives. */
function pieces(bytes: Uint8Array, piece: number): ReadableStream<Uint8Array<ArrayBuffer>> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + piece));
      at += piece;
    },
  });
}

async function post(
  app: TestNoc["app"],
  token: string,
  body: BodyInit,
  wrapped: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app.request("https://noc.test/v1/admin/packages", {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/vnd.noc-package",
      "x-noc-wrapped-key": wrapped,
    },
    body,
  });
  return { status: res.status, body: await res.json() };
}

async function left(db: Db): Promise<{ components: number; blobs: number }> {
  const [row] = await db.sql<{ components: number; blobs: number }>`
    select (select count(*)::int from components) as components,
      (select count(*)::int from blobs) as blobs`;
  return row!;
}

dbTest(
  "a signed package and a file are published without reading their blobs back, with the digests of the bytes served",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { allowPlainHttpFiles: true } });
    const counted = countingReads(db);
    const app = createApp({ ...noc.deps, db: counted.db });
    const random = new Uint8Array(200_000);
    for (let i = 0; i < random.length; i += 65536) {
      crypto.getRandomValues(random.subarray(i, Math.min(i + 65536, random.length)));
    }
    const plain = await payload({ install: "#!/bin/sh\nexit 0\n", "data.bin": random });
    const pkg = await signedPackage(noc, rel("1.0.0"), plain);
    const r = await post(app, noc.adminToken, pieces(pkg.bytes, 7_777), pkg.wrapped);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const fileBytes = new TextEncoder().encode("motd\n".repeat(10_000));
    const f = await app.request("https://noc.test/v1/admin/files?app=rel&name=motd&version=1", {
      method: "POST",
      headers: {
        authorization: `Bearer ${noc.adminToken}`,
        "content-type": "application/octet-stream",
      },
      body: pieces(fileBytes, 4_000),
    });
    assert.equal(f.status, 201, await f.clone().text());
    assert.equal(counted.reads(), 0, "no blob chunk was read back while publishing");

    // What publishing measured on the way in is what an appliance is served.
    assert.equal(r.body.sha256, sha256Hex(pkg.bytes));
    assert.equal(r.body.size, pkg.bytes.length);
    assert.equal(r.body.contentSha256, sha256Hex(plain));
    const fj = await f.json();
    assert.equal(fj.sha256, sha256Hex(fileBytes));
    for (const name of ["pkg", "motd"]) {
      await noc.admin("POST", "/v1/admin/assignments", {
        kind: name === "pkg" ? "package" : "file",
        app: "rel",
        name,
        version: name === "pkg" ? "1.0.0" : "1",
        target: { type: "all" },
      });
    }
    const a = await noc.enrollAppliance();
    const entries = (await fetchCatalog(noc, a)).doc!.components;
    for (const entry of entries) {
      const served = new Uint8Array(await (await noc.app.request(entry.urls[0]!)).arrayBuffer());
      assert.equal(sha256Hex(served), entry.sha256, entry.name);
      assert.equal(served.length, entry.size, entry.name);
      assert.deepEqual(served, entry.name === "pkg" ? pkg.bytes : fileBytes);
    }
    // The same package again is the same component; a different one under its version is refused.
    assert.equal((await post(app, noc.adminToken, pkg.bytes, pkg.wrapped)).status, 200);
    const other = await signedPackage(noc, rel("1.0.0"), await payload({ install: "#!/bin/sh\n" }));
    const clash = await post(app, noc.adminToken, other.bytes, other.wrapped);
    assert.equal(clash.status, 409, JSON.stringify(clash.body));
    assert.equal(counted.reads(), 0);
    assert.deepEqual(await left(db), { components: 2, blobs: 2 });
  },
);

dbTest(
  "a signed package that fails any check is refused as it streams in, in the same order, and leaves no blob",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { maxUploadBytes: 400_000, uploadIdleS: 0.3 } });
    const plain = await payload({
      install: "#!/bin/sh\nexit 0\n",
      "a.bin": crypto.getRandomValues(new Uint8Array(60_000)),
    });
    const pkg = await signedPackage(noc, rel("2.0.0"), plain);
    const offset = parsePackagePrefix(pkg.bytes).ciphertextOffset;
    const flip = (at: number) => {
      const b = pkg.bytes.slice();
      b[at]! ^= 0x01;
      return b;
    };
    // A header whose digest does match its ciphertext, but a ciphertext that does not decrypt.
    const garbage = crypto.getRandomValues(new Uint8Array(pkg.header.ciphertextSize));
    const lying: PackageHeader = {
      ...pkg.header,
      format: packageFormat,
      ciphertextSha256: sha256Hex(garbage),
    };
    const lyingPrefix = await packagePrefix(lying, {
      kid: noc.deps.keys.kid,
      privateKey: noc.deps.keys.privateKey,
    });
    const lyingWrapped = await wrapContentKey(
      pkg.contentKey,
      fromBase64Url(noc.deps.keys.hpke.publicKey),
      lying,
    );
    const big = new Uint8Array(500_000);
    const cases: Array<[string, BodyInit, string, number, string]> = [
      ["signature", flip(offset - 5), pkg.wrapped, 400, "bad_signature"],
      ["ciphertext byte", flip(offset + 20_000), pkg.wrapped, 400, "digest_mismatch"],
      ["last byte", flip(pkg.bytes.length - 1), pkg.wrapped, 400, "digest_mismatch"],
      ["truncated", pkg.bytes.slice(0, -100), pkg.wrapped, 400, "size_mismatch"],
      ["too long", concatBytes([pkg.bytes, new Uint8Array(3)]), pkg.wrapped, 400, "size_mismatch"],
      [
        "does not decrypt",
        concatBytes([lyingPrefix, garbage]),
        lyingWrapped,
        400,
        "decrypt_failed",
      ],
      ["oversize", concatBytes([pkg.bytes, big]), pkg.wrapped, 413, "body_too_large"],
    ];
    for (const [what, body, wrapped, status, code] of cases) {
      const r = await post(noc.app, noc.adminToken, body, wrapped);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.reason ?? r.body.error, code, `${what}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(await left(db), { components: 0, blobs: 0 }, what);
    }
    // Stalled after the prefix and part of the ciphertext: chunks were stored, then deleted.
    const stalled = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(pkg.bytes.slice(0, offset + 30_000)); // and nothing more, ever
      },
    });
    const r = await post(noc.app, noc.adminToken, stalled, pkg.wrapped);
    assert.equal(r.status, 408, JSON.stringify(r.body));
    assert.deepEqual(await left(db), { components: 0, blobs: 0 }, "stalled");
    // And the untouched package is accepted.
    const ok = await post(noc.app, noc.adminToken, pkg.bytes, pkg.wrapped);
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  },
);
