/** Parts of the local component server: configuration, the record journal, the cache's checks. */
import assert from "node:assert/strict";
import { loadLocalConfig, LocalConfigError, parseSize } from "../lib/local/config.ts";
import { openJournal } from "../lib/local/records.ts";
import { CacheError, openCache } from "../lib/local/cache.ts";
import { sha256, toHex } from "../lib/encoding.ts";
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
  assert.throws(() => loadLocalConfig(["--cert", "c.pem"], {}), /go together/);
  assert.throws(() => loadLocalConfig(["--colour", "red"], {}), LocalConfigError);
});

Deno.test("the record journal keeps what is not acknowledged across restarts and a torn line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let j = await openJournal(dir);
    const epoch = j.epoch;
    const at = new Date().toISOString();
    const uid = crypto.randomUUID();
    for (let i = 1; i <= 3; i++) await j.append({ uid, componentId: i, at });
    await j.ack(1);
    j.close();
    // A crash mid-write leaves half a line.
    await Deno.writeTextFile(`${dir}/records.jsonl`, '{"seq":4,"uid":', { append: true });
    j = await openJournal(dir);
    assert.equal(j.epoch, epoch, "the same journal keeps its epoch");
    assert.deepEqual(j.pending().map((r) => r.seq), [2, 3]);
    const next = await j.append({ uid, componentId: 9, at });
    assert.equal(next.seq, 4, "sequence numbers continue, never reused");
    await j.ack(4);
    assert.equal(j.size(), 0);
    j.close();
    j = await openJournal(dir);
    assert.equal(j.size(), 0);
    assert.equal((await j.append({ uid, componentId: 1, at })).seq, 5);
    j.close();
    // A journal whose folder was lost starts a new epoch.
    await Deno.remove(`${dir}/records.acked.json`);
    await Deno.remove(`${dir}/records.jsonl`);
    j = await openJournal(dir);
    assert.notEqual(j.epoch, epoch);
    assert.equal((await j.append({ uid, componentId: 1, at })).seq, 1);
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
