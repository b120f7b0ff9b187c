/**
 * The download records a local server owes the NOC: every download it serves
 * is appended to a journal on disk (flushed before the answer starts), sent
 * upstream in batches in sequence order, and forgotten only once the NOC has
 * acknowledged it — an outage of hours loses nothing, and a batch sent twice
 * is applied once (the NOC keeps the highest sequence number applied). Each
 * journal has an epoch of its own: a journal started afresh (its folder lost,
 * the identity kept) numbers from 1 again without its records being taken for
 * ones already applied.
 *
 * @module
 */
import { readJson, writeFileAtomic, writeJsonAtomic } from "../atomic_file.ts";

/** One download served. */
export interface DownloadRecord {
  /** Sequence number, increasing from 1. */
  seq: number;
  /** The appliance served. */
  uid: string;
  /** The component served. */
  componentId: number;
  /** When, ISO 8601. */
  at: string;
}

/** The journal. */
export interface RecordJournal {
  /** This journal's epoch (random, fixed for its life). */
  readonly epoch: string;
  /** Appends a record and flushes it to disk; returns it. */
  append(r: Omit<DownloadRecord, "seq">): Promise<DownloadRecord>;
  /** Records not yet acknowledged, oldest first (at most `max`). */
  pending(max?: number): DownloadRecord[];
  /** How many records are not yet acknowledged. */
  size(): number;
  /** Forgets every record up to and including `seq`. */
  ack(seq: number): Promise<void>;
  /** Closes the journal file. */
  close(): void;
}

/** Opens (creating) the journal in `dir`. */
export async function openJournal(dir: string): Promise<RecordJournal> {
  const journalPath = `${dir}/records.jsonl`;
  const ackPath = `${dir}/records.acked.json`;
  const ackedValue = await readJson(ackPath).catch(() => null) as
    | { seq?: unknown; epoch?: unknown }
    | null;
  let acked = typeof ackedValue?.seq === "number" ? ackedValue.seq : 0;
  let epoch = typeof ackedValue?.epoch === "string" ? ackedValue.epoch : null;
  if (epoch === null) {
    // A new journal: a new numbering, which the NOC will not confuse with an earlier one.
    epoch = crypto.randomUUID();
    acked = 0;
    await writeJsonAtomic(ackPath, { epoch, seq: 0 });
  }
  const journalEpoch = epoch;
  let pending: DownloadRecord[] = [];
  let lastSeq = acked;
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
      if (typeof r.seq !== "number" || typeof r.uid !== "string") continue;
      lastSeq = Math.max(lastSeq, r.seq);
      if (r.seq > acked) pending.push(r);
    } catch {
      // A line torn by a crash mid-write: the record was never answered for.
    }
  }
  // Start from a clean journal holding exactly the pending records.
  await writeFileAtomic(journalPath, pending.map((r) => JSON.stringify(r) + "\n").join(""));
  let file = await Deno.open(journalPath, { append: true });
  let queue = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn);
    queue = run.then(() => {}, () => {});
    return run;
  };
  return {
    epoch: journalEpoch,
    append: (r) =>
      serial(async () => {
        const rec: DownloadRecord = { seq: ++lastSeq, ...r };
        const bytes = new TextEncoder().encode(JSON.stringify(rec) + "\n");
        let at = 0;
        while (at < bytes.length) at += await file.write(bytes.subarray(at));
        await file.syncData();
        pending.push(rec);
        return rec;
      }),
    pending: (max = Infinity) => pending.slice(0, max),
    size: () => pending.length,
    ack: (seq) =>
      serial(async () => {
        if (seq <= acked) return;
        acked = seq;
        await writeJsonAtomic(ackPath, { epoch: journalEpoch, seq });
        pending = pending.filter((r) => r.seq > seq);
        // The journal is rewritten with what is still owed, so it never grows past an outage's worth.
        file.close();
        await writeFileAtomic(journalPath, pending.map((r) => JSON.stringify(r) + "\n").join(""));
        file = await Deno.open(journalPath, { append: true });
      }),
    close: () => file.close(),
  };
}
