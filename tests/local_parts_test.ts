/** Parts of the local component server: configuration, the record journal, the cache's checks. */
import assert from "node:assert/strict";
import {
  loadLocalConfig,
  LocalConfigError,
  parseLocalArgs,
  parseSize,
} from "../local_server/config.ts";
import { openJournal } from "../local_server/records.ts";
import { CacheError, openCache } from "../local_server/cache.ts";
import { sha256, toBase64Url, toHex } from "../protocol/util/encoding.ts";
import { exportRawPublic, generateEd25519 } from "../protocol/crypto/ed25519.ts";
import { keyId, type PublishedKey } from "../protocol/keys.ts";
import { buildPackage } from "../protocol/package/file.ts";
import { parsePackagePrefix } from "../protocol/package/format.ts";
import { localTaskFlags } from "./_process.ts";

Deno.test("loadLocalConfig() takes flags over NOC_LOCAL_* variables and names what is wrong", () => {
  const c = loadLocalConfig(
    ["--", "--role", "local-component", "--site", "lab", "--cache=500M"],
    { NOC_LOCAL_SITE: "other", NOC_LOCAL_UPSTREAM: "https://noc.example/", NOC_LOCAL_PORT: "9443" },
  );
  assert.equal(c.site, "lab");
  assert.equal(c.upstream, "https://noc.example");
  assert.equal(c.port, 9443);
  assert.equal(c.cacheBytes, 500 * 1024 ** 2);
  assert.equal(parseSize("20G"), 20 * 1024 ** 3);
  assert.equal(parseSize("1048576"), 1048576);
  assert.throws(() => parseSize("lots"), /"lots"/);
  assert.throws(() => loadLocalConfig(["--port", "70000"], {}), /--port/);
  assert.throws(() => loadLocalConfig(["--public-url", "http://x"], {}), /https/);
  assert.throws(() => loadLocalConfig(["--upstream", "http://noc"], {}), /--allow-http-upstream/);
  assert.equal(
    loadLocalConfig(["--upstream", "http://noc", "--allow-http-upstream", "true"], {}).upstream,
    "http://noc",
  );
  assert.throws(() => loadLocalConfig(["--cert", "c.pem"], {}), /go together/);
  assert.throws(
    () => loadLocalConfig(["--colour", "red"], {}),
    (e) => e instanceof LocalConfigError && /Unknown flag "--colour"/.test(e.message),
  );
});

Deno.test("local server flags: --allow-http-upstream takes no value, flags in any order, -h asks for help", () => {
  const c = loadLocalConfig(
    ["--role", "local-component", "--", "--allow-http-upstream", "--port", "4443"],
    {},
  );
  assert.equal(c.allowHttpUpstream, true);
  assert.equal(c.port, 4443);
  // The older spelling with a separate true/false still works.
  assert.equal(loadLocalConfig(["--allow-http-upstream", "false", "--port", "1"], {}).port, 1);
  assert.equal(
    loadLocalConfig(["--allow-http-upstream", "false"], { NOC_LOCAL_ALLOW_HTTP_UPSTREAM: "true" })
      .allowHttpUpstream,
    false,
    "the flag wins over the variable",
  );
  assert.throws(() => loadLocalConfig(["--allow-http-upstream=yes"], {}), /takes no value/);
  assert.throws(() => loadLocalConfig(["--port"], {}), /"--port" needs a value/);
  assert.throws(
    () => loadLocalConfig(["--site", "lab", "stray"], {}),
    /Unexpected argument "stray"/,
  );
  assert.throws(() => loadLocalConfig(["--role", "catalog"], {}), /--role/);
  assert.equal(parseLocalArgs(["--port", "1", "-h"]).help, true);
  assert.equal(parseLocalArgs(["--port", "1"]).help, false);
});

Deno.test("the record journal keeps what is not acknowledged across restarts and a torn line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let j = await openJournal(dir);
    const at = new Date().toISOString();
    const uid = crypto.randomUUID();
    const first = await j.append({ uid, componentId: 1, at });
    for (let i = 2; i <= 3; i++) await j.append({ uid, componentId: i, at });
    assert.equal(first.seq, 1);
    await j.ack(first.epoch, 1);
    j.close();
    // A crash mid-write leaves half a line.
    await Deno.writeTextFile(`${dir}/records.jsonl`, '{"epoch":"', { append: true });
    j = await openJournal(dir);
    assert.deepEqual(j.nextBatch(10), {
      epoch: first.epoch,
      records: [2, 3].map((seq) => ({ seq, uid, componentId: seq, at })),
    });
    // A new run numbers from 1 under a new epoch; batches never mix epochs.
    const next = await j.append({ uid, componentId: 9, at });
    assert.equal(next.seq, 1);
    assert.notEqual(next.epoch, first.epoch);
    assert.equal(j.nextBatch(1)!.records.length, 1);
    await j.ack(first.epoch, 3);
    assert.deepEqual(j.nextBatch(10), {
      epoch: next.epoch,
      records: [{ seq: 1, uid, componentId: 9, at }],
    });
    await j.ack(next.epoch, 1);
    assert.equal(j.size(), 0);
    j.close();
    j = await openJournal(dir);
    assert.equal(j.size(), 0);
    j.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the cache refuses bytes that do not match and keeps its budget", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cache = await openCache({ dir, limit: 250, now: () => new Date() });
    const file = async (id: number, n: number) => {
      const bytes = new Uint8Array(n).fill(id);
      return {
        meta: {
          id,
          kind: "file" as const,
          app: "demo",
          name: `f${id}`,
          version: "1",
          size: n,
          sha256: toHex(await sha256(bytes)),
        },
        bytes,
      };
    };
    const one = await file(1, 100);
    const wrong = { ...one.meta, sha256: "0".repeat(64) };
    await assert.rejects(
      cache.store(wrong, [one.bytes], []),
      (e) => e instanceof CacheError && e.reason === "digest_mismatch",
    );
    assert.equal(cache.stats().entries, 0);
    await assert.rejects(
      cache.store({ ...one.meta, size: 50 }, [one.bytes], []),
      (e) => e instanceof CacheError && e.reason === "size_mismatch",
    );
    await cache.store(one.meta, [one.bytes], []);
    const two = await file(2, 100);
    await cache.store(two.meta, [two.bytes], []);
    await cache.setReferenced([1, 2]);
    const three = await file(3, 100);
    await assert.rejects(
      cache.store(three.meta, [three.bytes], []),
      (e) => e instanceof CacheError && e.reason === "cache_full",
    );
    await cache.setReferenced([2, 3]);
    await cache.store(three.meta, [three.bytes], []);
    assert.deepEqual(cache.entries().map((e) => e.id).sort(), [2, 3]);
    assert.ok(cache.stats().bytes <= 250);
    await assert.rejects(
      cache.store((await file(4, 300)).meta, [new Uint8Array(300)], []),
      (e) => e instanceof CacheError && e.reason === "too_large",
    );
    // Reopened with a smaller budget, it sheds what does not fit.
    const smaller = await openCache({ dir, limit: 150, now: () => new Date() });
    assert.equal(smaller.stats().entries, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task local: a first start without a token says what it needs", async () => {
  const data = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...localTaskFlags, "main.ts", "--role", "local-component", "--data", data],
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 64);
    assert.match(new TextDecoder().decode(out.stderr), /--upstream, --site and --token/);
    const task = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)))
      .tasks.local as string;
    assert.equal(
      task,
      `deno run ${localTaskFlags.join(" ")} main.ts --role local-component`,
      "tests run the local server with the task's flags",
    );
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("the cache refuses a package whose signature does not verify, even when its digest matches", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pair = await generateEd25519();
    const raw = new Uint8Array(await exportRawPublic(pair.publicKey));
    const kid = await keyId(raw);
    const out = `${dir}/p.nocpkg`;
    await buildPackage({
      plaintext: (async function* () {
        yield new TextEncoder().encode("payload");
      })(),
      app: "demo",
      name: "demo",
      version: "1",
      signer: { kid, privateKey: pair.privateKey },
      out,
      now: new Date(),
    });
    const bytes = await Deno.readFile(out);
    const prefix = parsePackagePrefix(bytes);
    bytes[prefix.ciphertextOffset - 10]! ^= 0x01; // inside the signature
    const trusted: PublishedKey[] = [{
      kid,
      alg: "ed25519",
      use: ["catalog", "package"],
      publicKey: toBase64Url(raw),
      notAfter: null,
    }];
    const meta = {
      id: 1,
      kind: "package" as const,
      app: "demo",
      name: "demo",
      version: "1",
      size: bytes.length,
      sha256: toHex(await sha256(bytes)),
    };
    const cache = await openCache({ dir: `${dir}/cache`, limit: 1 << 20, now: () => new Date() });
    await assert.rejects(
      cache.store(meta, [bytes], trusted),
      (e) => e instanceof CacheError && e.reason === "bad_signature",
    );
    // The same package unchanged, but claimed to be another version, is refused too.
    const good = await Deno.readFile(out);
    await assert.rejects(
      cache.store(
        { ...meta, version: "2", sha256: toHex(await sha256(good)) },
        [good],
        trusted,
      ),
      (e) => e instanceof CacheError && e.reason === "wrong_component",
    );
    await cache.store({ ...meta, sha256: toHex(await sha256(good)) }, [good], trusted);
    assert.equal(cache.stats().entries, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
