import assert from "node:assert/strict";
import { countingDb, dbTest, testNoc } from "./_harness.ts";
import { createApp } from "../noc/app.ts";
import { fetchCatalog } from "./_components.ts";
import { collectBytes, limitStream, type StreamLimits } from "../protocol/util/bytes.ts";
import { createTar, gzip } from "../protocol/package/tar.ts";

dbTest(
  "a large package streams in and out: chunks are stored while the upload is still arriving, and a download starts after one read",
  async ({ db }) => {
    const noc = await testNoc(db);
    // 24 chunks of 256 KiB, 3 read batches of 8: enough to tell streaming from buffering, small
    // enough for PGlite (which copies each chunk's bytes) to store in seconds.
    const mib = 6;
    const hold = mib / 3; // MiB sent before the rest of the upload is held back
    // A real payload (the NOC checks what it publishes): an install program and 6 MiB of random
    // bytes, which gzip does not shrink, archived and compressed as the upload is sent.
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/install`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    await Deno.chmod(`${dir}/install`, 0o755);
    {
      using f = await Deno.open(`${dir}/big.bin`, { write: true, createNew: true });
      const piece = new Uint8Array(1 << 20);
      for (let i = 0; i < mib; i++) {
        for (let j = 0; j < piece.length; j += 65536) {
          crypto.getRandomValues(piece.subarray(j, j + 65536));
        }
        await f.write(piece);
      }
    }
    const payload = gzip(createTar(dir))[Symbol.asyncIterator]();
    let release!: () => void;
    const paused = new Promise<void>((r) => release = r);
    let sentBytes = 0;
    const sent = () => Math.floor(sentBytes / (1 << 20)); // whole MiB sent
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent() >= hold) await paused; // hold the rest of the upload back
        const { value, done } = await payload.next();
        if (done) return controller.close();
        controller.enqueue(value);
        sentBytes += value.length;
      },
    }, { highWaterMark: 0 });
    const uploading = noc.app.request(
      "https://noc.test/v1/admin/packages?app=big&name=big&version=1",
      {
        method: "POST",
        headers: { authorization: `Bearer ${noc.adminToken}`, "content-type": "application/gzip" },
        body,
      },
    );
    // While a third of the upload has not even been sent, its first part is already in the database.
    let stored = 0;
    for (let poll = 0; poll < 5000 && stored < 4; poll++) {
      await new Promise((r) => setTimeout(r, 0)); // yield to I/O (PGlite answers in microtasks)
      stored = (await db.sql<{ n: number }>`select count(*)::int as n from blob_chunks`)[0]!.n;
    }
    assert.ok(stored >= 4, `expected chunks stored before the upload ended, found ${stored}`);
    assert.ok(
      sent() <= hold,
      `only ${sent()} of ${mib} MiB were sent when the first chunks were stored`,
    );
    release();
    const res = await uploading;
    await Deno.remove(dir, { recursive: true });
    assert.equal(res.status, 201, await res.clone().text());
    await res.body?.cancel();

    // Count the blob reads a download makes before its first bytes reach the appliance.
    const counting = countingDb(db, (text) => text.includes("from blob_chunks"));
    const counted = counting.db;
    const app = createApp({ ...noc.deps, db: counted });
    await noc.admin("POST", "/v1/admin/assignments", {
      kind: "package",
      app: "big",
      name: "big",
      version: "1",
      target: { type: "all" },
    });
    const a = await noc.enrollAppliance();
    const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
    const download = await app.request(entry.urls[0]!);
    assert.equal(download.status, 200);
    const reader = download.body!.getReader();
    const first = await reader.read();
    assert.ok(first.value && first.value.length > 0);
    assert.ok(
      counting.count() <= 1,
      `the first bytes left after ${counting.count()} batch read(s) of a ${mib} MiB package`,
    );
    let total = first.value.length;
    let largest = first.value.length;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.length;
      largest = Math.max(largest, value.length);
    }
    assert.equal(total, entry.size);
    assert.ok(
      counting.count() >= Math.floor(mib / 2),
      `the download read the blob in ${counting.count()} batches`,
    );
    assert.ok(largest <= 256 * 1024, `no piece larger than a stored chunk (largest ${largest})`);
  },
);

Deno.test("limitStream() fails at its size, idle or overall limit and cancels the source at once, even mid-read", async () => {
  const source = (pieces: number, thenStall: boolean) => {
    const state = { cancelled: false };
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (sent === pieces) {
          if (thenStall) await new Promise(() => {}); // a read that never finishes
          return c.close();
        }
        sent++;
        c.enqueue(new Uint8Array(100));
      },
      cancel() {
        state.cancelled = true;
      },
    }, { highWaterMark: 0 });
    return { stream, state };
  };
  const fails = (code: string) => () => new Error(code);
  const cases: Array<[string, number, boolean, StreamLimits, string | null, number]> = [
    ["whole", 5, false, { maxBytes: 500, idleS: 5, deadlineS: 5 }, null, 500],
    ["too large", 5, false, { maxBytes: 250, onTooLarge: fails("big") }, "big", 200],
    ["stalls", 3, true, { idleS: 0.15, onIdle: fails("idle") }, "idle", 300],
    ["late", 2, true, { deadlineS: 0.2, onLate: fails("late") }, "late", 200],
  ];
  for (const [what, pieces, stall, limits, error, bytes] of cases) {
    const { stream, state } = source(pieces, stall);
    let got = 0;
    try {
      for await (const p of limitStream(stream, limits)) got += p.length;
      assert.equal(error, null, what);
    } catch (e) {
      assert.equal((e as Error).message, error, what);
      assert.ok(state.cancelled, `${what}: the source is cancelled`);
    }
    assert.equal(got, bytes, what);
  }
  const body = await collectBytes(limitStream(source(3, false).stream, { maxBytes: 300 }));
  assert.equal(body.length, 300);
});
