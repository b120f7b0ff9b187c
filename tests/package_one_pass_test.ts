// deno-lint-ignore-file no-explicit-any
/**
 * One pass over a package's bytes on the appliance: the download hashes them
 * as they arrive (also across a resumed download), the signature is verified
 * once, and nothing is decrypted from a package whose bytes do not match the
 * catalog's digest or whose ciphertext does not match its signed digest.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type ByteSink, download } from "../agent/download.ts";
import { type InstallContext, installPackage } from "../agent/install_package.ts";
import { AgentError } from "../agent/errors.ts";
import { type AgentLog, silentLog } from "../agent/log.ts";
import type { AgentConfig } from "../agent/config.ts";
import type { Identity } from "../agent/state.ts";
import { statePaths } from "../agent/state.ts";
import { buildPackage, scanPackageFile } from "../protocol/package/file.ts";
import { PackageScanner } from "../protocol/package/scan.ts";
import { wrapContentKey } from "../protocol/package/format.ts";
import { generateApplianceKeys } from "../protocol/client.ts";
import { newSeed } from "../protocol/keys.ts";
import { fromBase64Url } from "../protocol/util/encoding.ts";
import type { CatalogEntry } from "../protocol/catalog.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { payload } from "./_components.ts";

const sha256Hex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** Hashes every byte it is given: the digest a sink computes while the download runs. */
class HashSink implements ByteSink {
  #h = createHash("sha256");
  bytes = 0;
  update(b: Uint8Array) {
    this.#h.update(b);
    this.bytes += b.length;
  }
  digest() {
    return this.#h.digest("hex");
  }
}

/** Serves `bytes()` with `Range` support; `rangeOnly` answers 503 to a request for the whole. */
function serve(
  bytes: () => Uint8Array<ArrayBuffer>,
  opts: { rangeOnly?: boolean; cutAt?: number } = {},
) {
  const ranges: Array<string | null> = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const all = bytes();
    const range = req.headers.get("range");
    ranges.push(range);
    const m = range?.match(/^bytes=(\d+)-$/);
    if (m) {
      const from = Number(m[1]);
      return new Response(all.slice(from), {
        status: 206,
        headers: { "content-range": `bytes ${from}-${all.length - 1}/${all.length}` },
      });
    }
    if (opts.rangeOnly) return new Response("busy", { status: 503 });
    // A connection that drops part-way: the body simply ends early.
    return new Response(opts.cutAt === undefined ? all : all.slice(0, opts.cutAt));
  });
  return { url: `http://127.0.0.1:${server.addr.port}/p`, ranges, close: () => server.shutdown() };
}

/** A signed package of a random payload, its catalog entry, and an agent context to install it. */
async function fixture(work: string) {
  const noc = await nocKeysFromSeed(newSeed());
  const appliance = await generateApplianceKeys();
  const blob = new Uint8Array(300_000);
  for (let i = 0; i < blob.length; i += 65536) {
    crypto.getRandomValues(blob.subarray(i, Math.min(i + 65536, blob.length)));
  }
  const plain = await payload({
    install: '#!/bin/sh\necho installed > "$NOC_ROOT/marker"\n',
    "data.bin": blob,
  });
  const file = `${work}/built.pkg`;
  const ref = { app: "demo", name: "one", version: "1.0.0" };
  const built = await buildPackage({
    plaintext: ReadableStream.from([plain]),
    ...ref,
    signer: { kid: noc.kid, privateKey: noc.privateKey },
    out: file,
    now: new Date(),
    chunkSize: 64 * 1024,
  });
  const bytes = await Deno.readFile(file);
  const wrappedKey = await wrapContentKey(
    built.contentKey,
    fromBase64Url(appliance.encryptionPublic),
    built.header,
  );
  const state = `${work}/state`;
  const root = `${work}/root`;
  await Deno.mkdir(state, { recursive: true });
  await Deno.mkdir(root, { recursive: true });
  const warnings: string[] = [];
  const log: AgentLog = { ...silentLog, warn: (_e, f) => warnings.push(String(f?.reason)) };
  const ctx: InstallContext = {
    config: {
      state,
      root,
      installTimeoutS: 30,
      healthTimeoutS: 30,
      downloadIdleS: 10,
    } as AgentConfig,
    identity: {
      pinnedKeys: noc.published,
      encryptionPrivate: appliance.encryptionPrivate,
    } as unknown as Identity,
    log,
    now: () => new Date(),
    fetch,
  };
  const entry = (url: string, over: Partial<CatalogEntry> = {}): CatalogEntry => ({
    kind: "package",
    ...ref,
    size: bytes.length,
    sha256: sha256Hex(bytes),
    urls: [url],
    wrappedKey,
    ...over,
  });
  const prefixLength = (await scanPackageFile(file)).result().prefix.ciphertextOffset;
  return { bytes, ctx, entry, state, root, warnings, prefixLength };
}

/**
 * Counts, while `run` runs, every Web Crypto decryption (AES-GCM chunks, and the HPKE unwrap of
 * the content key) and every folder made under the staging folder.
 */
async function counting<T>(
  state: string,
  run: () => Promise<T>,
): Promise<{ calls: number; staged: number; result: T }> {
  const subtle = crypto.subtle;
  const decrypt = subtle.decrypt;
  const mkdir = Deno.mkdir;
  const staging = statePaths(state).staging;
  let calls = 0;
  let staged = 0;
  subtle.decrypt = function (this: SubtleCrypto, ...args: any[]) {
    calls++;
    return (decrypt as any).apply(this, args);
  } as typeof decrypt;
  Deno.mkdir = ((path: string | URL, options?: Deno.MkdirOptions) => {
    if (String(path).startsWith(`${staging}/`)) staged++;
    return mkdir(path, options);
  }) as typeof mkdir;
  try {
    const result = await run();
    return { calls, staged, result };
  } finally {
    subtle.decrypt = decrypt;
    Deno.mkdir = mkdir;
  }
}

async function leftInStaging(state: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(statePaths(state).staging))).map((e) => e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

Deno.test("hashing while downloading gives the file's digest: fresh, resumed from disk, and carried on at the next URL", async () => {
  const work = await Deno.makeTempDir();
  const bytes = new Uint8Array(700_001).map((_, i) => (i * 31 + (i >> 9)) % 251);
  const whole = sha256Hex(bytes);
  const good = serve(() => bytes);
  const cut = serve(() => bytes, { cutAt: 250_000 });
  try {
    const spec = { urls: [good.url], size: bytes.length, sha256: whole, label: "blob" };
    const opts = { idleMs: 10_000, log: silentLog, sink: () => new HashSink() };
    const check = async (got: Awaited<ReturnType<typeof download<HashSink>>>, dest: string) => {
      const onDisk = await Deno.readFile(dest);
      assert.equal(got.sha256, sha256Hex(onDisk));
      assert.equal(got.sha256, whole);
      assert.equal(got.sink!.bytes, bytes.length);
      assert.equal(got.sink!.digest(), sha256Hex(onDisk));
    };
    // Fresh.
    await check(await download(`${work}/a`, spec, opts), `${work}/a`);
    // Resumed from a part left on disk by an earlier run.
    await Deno.writeFile(`${work}/b`, bytes.slice(0, 123_457));
    good.ranges.length = 0;
    await check(await download(`${work}/b`, spec, opts), `${work}/b`);
    assert.deepEqual(good.ranges, ["bytes=123457-"]);
    // The first URL drops the connection part-way; the next carries on with the same hash.
    good.ranges.length = 0;
    await check(
      await download(`${work}/c`, { ...spec, urls: [cut.url, good.url] }, opts),
      `${work}/c`,
    );
    assert.deepEqual(good.ranges, ["bytes=250000-"]);
  } finally {
    await good.close();
    await cut.close();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("a package scanned while it downloads has the prefix and ciphertext digest of the file", async () => {
  const work = await Deno.makeTempDir();
  try {
    const f = await fixture(work);
    const server = serve(() => f.bytes, { cutAt: f.prefixLength - 7 }); // cut inside the prefix
    const good = serve(() => f.bytes);
    try {
      const dest = `${work}/d.pkg`;
      const got = await download(
        dest,
        {
          urls: [server.url, good.url],
          size: f.bytes.length,
          sha256: sha256Hex(f.bytes),
          label: "p",
        },
        { idleMs: 10_000, log: silentLog, sink: () => new PackageScanner() },
      );
      assert.deepEqual(good.ranges, [`bytes=${f.prefixLength - 7}-`]);
      const scanned = got.sink!.result();
      const fromFile = (await scanPackageFile(dest)).result();
      assert.deepEqual(scanned, fromFile);
      assert.equal(scanned.ciphertextSha256, sha256Hex(f.bytes.subarray(f.prefixLength)));
      assert.equal(scanned.ciphertextSize, f.bytes.length - f.prefixLength);
    } finally {
      await server.close();
      await good.close();
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("a resumed download whose first part was tampered is refused before anything is decrypted", async () => {
  const work = await Deno.makeTempDir();
  try {
    const f = await fixture(work);
    const downloads = statePaths(f.state).downloads;
    await Deno.mkdir(downloads, { recursive: true });
    const sha = sha256Hex(f.bytes);
    const dest = `${downloads}/${sha}.pkg`;
    // An earlier run left 100 kB on disk, one of them wrong (in the ciphertext, and one in the
    // signature: each alone would fail a later check; the catalog digest fails them first).
    const part = f.bytes.slice(0, 100_000);
    part[f.prefixLength + 500]! ^= 0x40;
    part[f.prefixLength - 3]! ^= 0x01;

    // The only server resumes, but will not serve the whole again: the install is refused.
    const rangeOnly = serve(() => f.bytes, { rangeOnly: true });
    try {
      await Deno.writeFile(dest, part);
      const { calls, staged } = await counting(f.state, () =>
        assert.rejects(
          installPackage(f.ctx, f.entry(rangeOnly.url), undefined),
          (e) => e instanceof AgentError && e.code === "download_failed",
        ));
      assert.deepEqual(rangeOnly.ranges, ["bytes=100000-", null]);
      // download_discarded (the resumed bytes fail the digest), then download_failed.
      assert.deepEqual(f.warnings, ["digest_mismatch", "download_failed"]);
      assert.equal(calls, 0, "nothing was decrypted (nor the content key unwrapped)");
      assert.equal(staged, 0, "no staging folder was made");
      assert.deepEqual(await leftInStaging(f.state), []);
      await assert.rejects(Deno.stat(dest), Deno.errors.NotFound); // the wrong bytes are dropped
      await assert.rejects(Deno.stat(`${f.root}/marker`), Deno.errors.NotFound);
    } finally {
      await rangeOnly.close();
    }

    // A server that serves the whole: the resumed bytes fail the catalog digest, the package is
    // fetched again from its first byte, and only those bytes are verified and installed.
    const good = serve(() => f.bytes);
    try {
      await Deno.writeFile(dest, part);
      const r = await installPackage(f.ctx, f.entry(good.url), undefined);
      assert.equal(r.outcome, "installed");
      assert.deepEqual(good.ranges, ["bytes=100000-", null]);
      assert.equal((await Deno.readTextFile(`${f.root}/marker`)).trim(), "installed");
    } finally {
      await good.close();
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("a package whose ciphertext differs from its signed digest never has a byte decrypted", async () => {
  const work = await Deno.makeTempDir();
  try {
    const f = await fixture(work);
    // Bytes that match the catalog (its digest taken over them) but not the signed header.
    const tampered = f.bytes.slice();
    tampered[f.prefixLength + 70_000]! ^= 0x01;
    const server = serve(() => tampered);
    try {
      const { calls, staged } = await counting(f.state, () =>
        assert.rejects(
          installPackage(f.ctx, f.entry(server.url, { sha256: sha256Hex(tampered) }), undefined),
          (e) => e instanceof AgentError && e.code === "digest_mismatch",
        ));
      assert.equal(calls, 0, "nothing was decrypted (nor the content key unwrapped)");
      assert.equal(staged, 0, "no staging folder was made");
      assert.deepEqual(server.ranges, [null]);
      assert.deepEqual(await leftInStaging(f.state), []);
      await assert.rejects(Deno.stat(`${f.root}/marker`), Deno.errors.NotFound);
    } finally {
      await server.close();
    }

    // The same package, untouched, installs: the check is not what failed it.
    const good = serve(() => f.bytes);
    try {
      const { calls, staged, result } = await counting(
        f.state,
        () => installPackage(f.ctx, f.entry(good.url), undefined),
      );
      assert.equal(result.outcome, "installed");
      assert.ok(calls >= 5, `the package was decrypted (${calls} decryptions)`);
      assert.ok(staged >= 1);
    } finally {
      await good.close();
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
