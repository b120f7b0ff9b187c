/**
 * PGlite runs statements in the NOC's own thread and settles them without I/O: a run of
 * statements (a component's chunks, a sweep's batches) must still let the event loop turn, or
 * every request waits it out (review 23i: 2–3.4 s while a 40 MB component was read).
 */
import assert from "node:assert/strict";
import { openPglite } from "../noc/db/db.ts";
import { migrate } from "../noc/db/migrate.ts";
import { readBlob, writeBlob } from "../noc/services/blobs.ts";

/** Counts how many times a zero-delay timer chain fires while `work` runs. */
async function turnsDuring(work: () => Promise<void>): Promise<number> {
  let turns = 0;
  let running = true;
  const tick = () => {
    if (!running) return;
    turns++;
    setTimeout(tick, 0);
  };
  setTimeout(tick, 0);
  try {
    await work();
  } finally {
    running = false;
  }
  return turns;
}

Deno.test("openPglite() lets timers run during a long run of statements", async () => {
  const db = await openPglite();
  try {
    // 40 statements of 5 ms each: 200 ms without a turn of the loop unless the handle yields.
    const turns = await turnsDuring(async () => {
      for (let i = 0; i < 40; i++) await db.sql`select pg_sleep(0.005)`;
    });
    assert.ok(turns >= 5, `the loop turned ${turns} times in 200 ms of statements`);
    // Inside a transaction too.
    const inTx = await turnsDuring(() =>
      db.begin(async (tx) => {
        for (let i = 0; i < 40; i++) await tx`select pg_sleep(0.005)`;
      })
    );
    assert.ok(inTx >= 5, `the loop turned ${inTx} times in a transaction's 200 ms`);
  } finally {
    await db.close();
  }
});

/** `n` MiB of patterned bytes, one MiB at a time. */
async function* megabytes(n: number): AsyncGenerator<Uint8Array> {
  const chunk = new Uint8Array(1 << 20).map((_, i) => i % 251);
  for (let i = 0; i < n; i++) yield chunk;
}

Deno.test("readBlob() on PGlite lets other work run between its chunks", async () => {
  const db = await openPglite();
  try {
    await migrate(db);
    const blob = await writeBlob(db, megabytes(8), new Date());
    let bytes = 0;
    let chunks = 0;
    const turns = await turnsDuring(async () => {
      for await (const b of readBlob(db, blob.id)) {
        bytes += b.length;
        chunks++;
      }
    });
    assert.equal(bytes, 8 << 20);
    // One chunk (256 KiB) a statement, the loop free between them.
    assert.equal(chunks, 32);
    assert.ok(turns >= 4, `the loop turned ${turns} times while 8 MiB were read`);
  } finally {
    await db.close();
  }
});
