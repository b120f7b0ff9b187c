/**
 * Blobs in the database, in fixed-size chunks, streamed in and out: large
 * packages never sit in memory whole, and the NOC needs no local disk (Deno
 * Deploy). A blob is usable only once marked complete; incomplete ones (a
 * crash mid-upload) are swept away.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Db, Sql } from "../db/db.ts";
import { blocks } from "../../protocol/util/bytes.ts";

/** Bytes per stored chunk. */
export const blobChunkSize = 256 * 1024;
/**
 * Chunks read per statement: 8 (2 MiB) on PostgreSQL; 1 on PGlite, whose statements run in the
 * NOC's own thread, so that other requests wait at most one chunk's read (about 40 ms; 2 MiB held
 * them about 250 ms) — review 23i.
 */
const readBatchOf = (db: Db) => db.kind === "pglite" ? 1 : 8;

/** A stored blob. */
export interface BlobInfo {
  /** Its id. */
  id: number;
  /** Its size, bytes. */
  size: number;
  /** Its SHA-256, hex. */
  sha256: string;
}

/** Stores a stream as a new blob (not yet complete; see {@link completeBlob}). Deletes it again on failure. */
export async function writeBlob(
  db: Db,
  input: AsyncIterable<Uint8Array>,
  now: Date,
): Promise<BlobInfo> {
  const [row] = await db.sql<{ id: number }>`
    insert into blobs (chunk_size, created_at) values (${blobChunkSize}, ${now}) returning id`;
  const id = row!.id;
  const hash = createHash("sha256");
  let size = 0;
  let seq = 0;
  try {
    for await (const chunk of blocks(input, blobChunkSize)) {
      if (chunk.length === 0 && seq > 0) break;
      hash.update(chunk);
      size += chunk.length;
      await db.sql`insert into blob_chunks (blob_id, seq, data) values (${id}, ${seq}, ${chunk})`;
      seq++;
    }
    const sha256 = hash.digest("hex");
    await db.sql`update blobs set size = ${size}, sha256 = ${sha256} where id = ${id}`;
    return { id, size, sha256 };
  } catch (e) {
    await db.sql`delete from blobs where id = ${id}`.catch(() => {});
    throw e;
  }
}

/** Marks a blob complete, inside the transaction that starts using it. */
export async function completeBlob(tx: Sql, id: number): Promise<void> {
  await tx`update blobs set complete = true where id = ${id}`;
}

/** Deletes a blob. */
export async function deleteBlob(db: Db, id: number): Promise<void> {
  await db.sql`delete from blobs where id = ${id}`;
}

/** Streams bytes `start`..`end` (inclusive) of a blob of `size` bytes. */
export async function* readBlob(
  db: Db,
  id: number,
  start = 0,
  end?: number,
): AsyncGenerator<Uint8Array> {
  const last = end ?? Number.MAX_SAFE_INTEGER;
  const readBatch = readBatchOf(db);
  let seq = Math.floor(start / blobChunkSize);
  let pos = seq * blobChunkSize;
  for (;;) {
    const rows = await db.sql<{ seq: number; data: Uint8Array }>`
      select seq, data from blob_chunks where blob_id = ${id} and seq >= ${seq} and seq < ${
      seq + readBatch
    }
      order by seq`;
    if (rows.length === 0) return;
    for (const r of rows) {
      const from = Math.max(0, start - pos);
      const to = Math.min(r.data.length, last - pos + 1);
      if (to > from) yield r.data.subarray(from, to);
      pos += r.data.length;
      if (pos > last) return;
    }
    if (rows.length < readBatch) return;
    seq += readBatch;
  }
}

/** Deletes incomplete blobs older than `before` (uploads that never finished). Returns how many. */
export async function pruneIncompleteBlobs(db: Db, before: Date): Promise<number> {
  const rows = await db
    .sql`delete from blobs where not complete and created_at < ${before} returning id`;
  return rows.length;
}
