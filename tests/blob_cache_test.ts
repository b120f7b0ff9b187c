import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { openBlobCache } from "../noc/services/blob_cache.ts";
import { memoryLogger } from "../protocol/util/log.ts";
import { sha256, toHex } from "../protocol/util/encoding.ts";
import { collectBytes } from "../protocol/util/bytes.ts";
import { dbTest, testNoc } from "./_harness.ts";
import { fetchCatalog, publishAndAssign } from "./_components.ts";

async function component(bytes: Uint8Array<ArrayBuffer>) {
  return { sha256: toHex(await sha256(bytes)), size: bytes.length };
}

async function* chunks(bytes: Uint8Array, size = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

Deno.test("openBlobCache() fills once however many ask, then serves the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cache = await openBlobCache({ dir, budgetBytes: 1 << 20, log: memoryLogger() });
    const bytes = crypto.getRandomValues(new Uint8Array(10_000));
    const c = await component(bytes);
    let reads = 0;
    const source = () => {
      reads++;
      return chunks(bytes);
    };
    const first = await Promise.all([cache.open(c, source), cache.open(c, source)]);
    deepStrictEqual(first, [null, null], "nothing cached yet: callers stream from the database");
    await cache.settled();
    strictEqual(reads, 1, "one fill for two callers");
    const file = await cache.open(c, source);
    ok(file);
    deepStrictEqual(await collectBytes(file.readable), bytes);
    strictEqual(cache.bytes(), bytes.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openBlobCache() keeps nothing whose bytes do not match the component", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = memoryLogger();
    const cache = await openBlobCache({ dir, budgetBytes: 1 << 20, log });
    const bytes = crypto.getRandomValues(new Uint8Array(5000));
    const c = await component(bytes);
    const wrong = bytes.slice();
    wrong[100]! ^= 1;
    strictEqual(await cache.open(c, () => chunks(wrong)), null);
    await cache.settled();
    strictEqual(await cache.open(c, () => chunks(wrong)), null);
    await cache.settled();
    strictEqual(cache.bytes(), 0);
    deepStrictEqual([...Deno.readDirSync(dir)], [], "the partial fill is removed");
    ok(log.lines.some((l) => l.event === "blob_cache_fill_failed"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openBlobCache() replaces a truncated file and evicts the least recently used over budget", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = memoryLogger();
    const cache = await openBlobCache({ dir, budgetBytes: 25_000, log });
    const blobs = [0, 1, 2].map(() => crypto.getRandomValues(new Uint8Array(10_000)));
    const cs = await Promise.all(blobs.map(component));
    for (const [i, c] of cs.entries()) {
      await cache.open(c, () => chunks(blobs[i]!));
      await cache.settled();
      if (i === 1) (await cache.open(cs[0]!, () => chunks(blobs[0]!)))?.close(); // 0 used again
    }
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    deepStrictEqual(names, [cs[0]!.sha256, cs[2]!.sha256].sort(), "1 was least recently used");
    ok(cache.bytes() <= 25_000);
    // A file cut short behind the cache's back is dropped and filled again.
    await Deno.truncate(`${dir}/${cs[0]!.sha256}`, 10);
    strictEqual(await cache.open(cs[0]!, () => chunks(blobs[0]!)), null);
    await cache.settled();
    const again = await cache.open(cs[0]!, () => chunks(blobs[0]!));
    ok(again);
    deepStrictEqual(await collectBytes(again.readable), blobs[0]);
    // A new cache on the same folder finds what is there.
    const reopened = await openBlobCache({ dir, budgetBytes: 25_000, log });
    strictEqual(reopened.bytes(), cache.bytes());
    // The folder deleted under a running cache: the next download fills it again.
    await Deno.remove(dir, { recursive: true });
    strictEqual(await cache.open(cs[1]!, () => chunks(blobs[1]!)), null);
    await cache.settled();
    const refilled = await cache.open(cs[1]!, () => chunks(blobs[1]!));
    ok(refilled, "filled again into a new folder");
    deepStrictEqual(await collectBytes(refilled.readable), blobs[1]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

dbTest(
  "the component server answers whole, resumed and ranged downloads from its disk cache",
  async (t) => {
    const dir = await Deno.makeTempDir();
    try {
      const noc = await testNoc(t.db);
      const cache = await openBlobCache({ dir, budgetBytes: 1 << 30, log: memoryLogger() });
      noc.deps.blobCache = cache;
      const a = await noc.enrollAppliance();
      const big = new Uint8Array(300_000);
      for (let i = 0; i < big.length; i += 65536) {
        crypto.getRandomValues(big.subarray(i, i + 65536));
      }
      await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" }, {
        install: "#!/bin/sh\nexit 0\n",
        "data.bin": big,
      });
      const { doc } = await fetchCatalog(noc, a);
      const entry = doc!.components[0]!;
      const url = entry.urls.at(-1)!;
      const get = async (range?: string) => {
        const res = await noc.app.request(url, range ? { headers: { range } } : {});
        return { status: res.status, body: new Uint8Array(await res.arrayBuffer()), res };
      };
      const fromDb = await get();
      strictEqual(fromDb.status, 200);
      await cache.settled();
      strictEqual(cache.bytes(), entry.size, "the first download filled the cache");
      const fromCache = await get();
      strictEqual(fromCache.status, 200);
      deepStrictEqual(fromCache.body, fromDb.body);
      strictEqual(toHex(await sha256(fromCache.body)), entry.sha256);
      const resumed = await get(`bytes=1000-`);
      strictEqual(resumed.status, 206);
      deepStrictEqual(resumed.body, fromDb.body.subarray(1000));
      const middle = await get(`bytes=500-1499`);
      strictEqual(middle.status, 206);
      strictEqual(middle.res.headers.get("content-range"), `bytes 500-1499/${entry.size}`);
      deepStrictEqual(middle.body, fromDb.body.subarray(500, 1500));
      const [row] = await t.db.sql<{ times: number }>`
      select times from deliveries where uid = ${a.uid}`;
      strictEqual(row!.times, 4, "every download from the cache is still recorded");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
