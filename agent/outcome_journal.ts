/**
 * The outcome journal (`<state>/outcomes/`): each install outcome is written
 * to a file of its own — written, flushed to disk (fsync), renamed into place,
 * the folder flushed — the moment the install ends, before anything later in
 * the cycle can fail. An agent killed afterwards (a power loss, a SIGKILL)
 * finds it at its next run and sends it then; a file is removed only once
 * the NOC acknowledged it (2xx), or refused it for good (400, 413). Each
 * outcome gets a `reportId` (a random UUID) when it is journalled, kept in its
 * file and sent with every re-send: the NOC stores an appliance's outcome of a
 * given `reportId` once (noc/http/v1/installs.ts), so a re-sent outcome is
 * recorded once while two outcomes alike in every other field are both kept.
 * A file an older agent journalled without one is given one (rewritten, same
 * name) when it is read.
 *
 * Files are named by a sequence number (`000000000042.json`), so outcomes are
 * sent in the order they happened. At most {@link MAX_JOURNALLED} are kept
 * (the oldest go first), as `pendingReports` in `state.json` were before.
 *
 * @module
 */
import { z } from "zod";
import { syncDir, writeJsonAtomic } from "../protocol/util/atomic_file.ts";
import { reportSchema, statePaths } from "./state.ts";

/** The most outcomes kept waiting for the NOC. */
export const MAX_JOURNALLED = 500;

// `reportId` is optional in reportSchema: files an agent wrote before outcomes had keys.
const keyedSchema = reportSchema;

/**
 * An install outcome as journalled and sent: `reportId` is its idempotency key (a UUID), drawn
 * when it is journalled.
 */
export type KeyedReport = z.infer<typeof keyedSchema>;

const entrySchema = z.object({
  format: z.literal("noc-agent-outcome/1"),
  journalledAt: z.string(),
  report: keyedSchema,
});

/** A journalled outcome: its file and the report to send. */
export interface Journalled {
  /** The journal file. */
  path: string;
  /** The outcome, exactly as sent to the NOC (with its `reportId`, unless it could not be written). */
  report: KeyedReport;
}

const fileName = /^(\d{12})\.json$/;

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && fileName.test(e.name)) out.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/**
 * Writes `report` durably to the journal of state folder `state` (write, fsync, rename, fsync of
 * the folder), keeping the newest `max`, under its `reportId` or a new random one; returns the
 * report as journalled. Throws when it cannot (a full or read-only disk), and the caller keeps the
 * outcome some other way.
 */
export async function journalOutcome(
  state: string,
  outcome: KeyedReport,
  now: Date,
  max: number = MAX_JOURNALLED,
): Promise<KeyedReport> {
  const report = { ...outcome, reportId: outcome.reportId ?? crypto.randomUUID() };
  const dir = statePaths(state).outcomes;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const held = await names(dir);
  const last = held.length ? Number(fileName.exec(held.at(-1)!)![1]) : 0;
  const path = `${dir}/${String(last + 1).padStart(12, "0")}.json`;
  await writeJsonAtomic(path, {
    format: "noc-agent-outcome/1",
    journalledAt: now.toISOString(),
    report,
  });
  // Bounded: the oldest beyond the limit are dropped.
  for (const old of held.slice(0, Math.max(0, held.length + 1 - max))) {
    await Deno.remove(`${dir}/${old}`).catch(() => {});
  }
  return report;
}

/**
 * The journalled outcomes, oldest first. A file that cannot be read as one (damaged) is removed
 * and named in `damaged`.
 */
export async function journalled(
  state: string,
): Promise<{ outcomes: Journalled[]; damaged: string[] }> {
  const dir = statePaths(state).outcomes;
  const outcomes: Journalled[] = [];
  const damaged: string[] = [];
  for (const name of await names(dir)) {
    const path = `${dir}/${name}`;
    let parsed: ReturnType<typeof entrySchema.safeParse> | null = null;
    try {
      parsed = entrySchema.safeParse(JSON.parse(await Deno.readTextFile(path)));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
    }
    if (parsed?.success) {
      let report: KeyedReport = parsed.data.report;
      if (report.reportId === undefined) {
        // Journalled before outcomes had keys: given one for good before it is sent, so that a
        // re-send carries the same. If the file cannot be rewritten, it goes without (stored as
        // an older agent's outcome).
        const keyed = { ...report, reportId: crypto.randomUUID() };
        const rewritten = await writeJsonAtomic(path, { ...parsed.data, report: keyed })
          .then(() => true, () => false);
        if (rewritten) report = keyed;
      }
      outcomes.push({ path, report });
    } else {
      damaged.push(path);
      await Deno.remove(path).catch(() => {});
    }
  }
  return { outcomes, damaged };
}

/** Removes outcomes the NOC acknowledged. */
export async function forget(state: string, done: readonly Journalled[]): Promise<void> {
  for (const j of done) await Deno.remove(j.path).catch(() => {});
  if (done.length) await syncDir(statePaths(state).outcomes);
}
