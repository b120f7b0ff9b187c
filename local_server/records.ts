/**
 * The download records a local server owes the NOC: every download it serves
 * is appended to a journal on disk (flushed before the answer starts), sent
 * upstream in batches in sequence order, and forgotten only once the NOC has
 * acknowledged it — an outage of hours loses nothing. Each run of the server
 * numbers its records from 1 under a fresh random epoch, and every record
 * keeps the epoch it was written under; the NOC keeps the highest sequence
 * number applied per epoch, so a batch sent twice, a journal restored from a
 * backup or one whose acknowledgement was lost is never counted twice, and a
 * journal started afresh is never taken for one already applied.
 *
 * @module
 */
import { writeFileAtomic } from "../protocol/util/atomic_file.ts";

/** One download served. */
export interface DownloadRecord {
  /** The epoch (run of the local server) it was recorded in. */
  epoch: string;
  /** Sequence number within its epoch, increasing from 1. */
  seq: number;
  /** The appliance served. */
  uid: string;
  /** The component served. */
  componentId: number;
  /** When, ISO 8601. */
  at: string;
}

/** Records of one epoch, ready to send. */
export interface RecordBatch {
  /** Their epoch. */
  epoch: string;
  /** The records, in sequence order, without their epoch. */
  records: Array<Omit<DownloadRecord, "epoch">>;
}

/** The journal. */
export interface RecordJournal {
  /** Appends a record (this run's epoch, the next number) and flushes it to disk; returns it. */
  append(r: Omit<DownloadRecord, "seq" | "epoch">): Promise<DownloadRecord>;
  /** The oldest records not yet acknowledged, all of one epoch (at most `max`), or null. */
  nextBatch(max: number): RecordBatch | null;
  /** How many records are not yet acknowledged. */
  size(): number;
  /** Forgets the records of `epoch` up to and including `seq`. */
  ack(epoch: string, seq: number): Promise<void>;
  /** Closes the journal file. */
  close(): void;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Opens (creating) the journal in `dir`. */
export async function openJournal(dir: string): Promise<RecordJournal> {
  const journalPath = `${dir}/records.jsonl`;
  const epoch = crypto.randomUUID();
  let lastSeq = 0;
  let pending: DownloadRecord[] = [];
  let text = "";
  try {
    text = await Deno.readTextFile(journalPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const r = JSON.parse(line) as DownloadRecord;
      if (
        typeof r.epoch === "string" && uuid.test(r.epoch) && Number.isSafeInteger(r.seq) &&
        r.seq >= 1 && typeof r.uid === "string" && Number.isSafeInteger(r.componentId) &&
        typeof r.at === "string"
      ) pending.push(r);
    } catch {
      // A line torn by a crash mid-write: the record was never answered for.
    }
  }
  const render = () => pending.map((r) => JSON.stringify(r) + "\n").join("");
  // Start from a clean journal holding exactly the pending records.
  await writeFileAtomic(journalPath, render());
  let file = await Deno.open(journalPath, { append: true });
  let queue = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn);
    queue = run.then(() => {}, () => {});
    return run;
  };
  return {
    append: (r) =>
      serial(async () => {
        const rec: DownloadRecord = { epoch, seq: lastSeq + 1, ...r };
        const bytes = new TextEncoder().encode(JSON.stringify(rec) + "\n");
        let at = 0;
        while (at < bytes.length) at += await file.write(bytes.subarray(at));
        await file.syncData();
        lastSeq = rec.seq;
        pending.push(rec);
        return rec;
      }),
    nextBatch(max) {
      const first = pending[0];
      if (!first) return null;
      const records = [];
      for (const r of pending) {
        if (r.epoch !== first.epoch || records.length >= max) break;
        records.push({ seq: r.seq, uid: r.uid, componentId: r.componentId, at: r.at });
      }
      return { epoch: first.epoch, records };
    },
    size: () => pending.length,
    ack: (ackedEpoch, seq) =>
      serial(async () => {
        const before = pending.length;
        pending = pending.filter((r) => r.epoch !== ackedEpoch || r.seq > seq);
        if (pending.length === before) return;
        // Rewritten with what is still owed, so the journal never grows past an outage's worth.
        file.close();
        await writeFileAtomic(journalPath, render());
        file = await Deno.open(journalPath, { append: true });
      }),
    close: () => file.close(),
  };
}
