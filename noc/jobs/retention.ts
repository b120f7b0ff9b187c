/** Pruning of data past its retention: beat history, delivered notices, identity failures, spent nonces. */
import type { Clock } from "../clock.ts";
import type { Db } from "../db/db.ts";
import type { AppDeps } from "../services/deps.ts";
import { pruneIncompleteBlobs } from "../services/blobs.ts";

/** Rows removed by {@link pruneHistory}. */
export interface PruneResult {
  /** Beat history rows. */
  beats: number;
  /** Notices delivered to every target. */
  notices: number;
  /** Identity failure records. */
  authFailures: number;
  /** Maintenance windows that ended before the retention period. */
  maintenanceWindows: number;
  /** Wake-up requests (kept one day: they are only replayed for ten minutes). */
  wakeRequests: number;
}

async function inBatches(batch: number, step: () => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await step();
    total += n;
    if (n < batch) return total;
  }
}

/** Deletes beat history, fully delivered notices and identity failures older than `retentionDays`, in batches. */
export async function pruneHistory(
  deps: { db: Db; clock: Clock },
  retentionDays: number,
  batch = 10_000,
): Promise<PruneResult> {
  const cutoff = new Date(deps.clock.now().getTime() - retentionDays * 86_400_000);
  const { sql } = deps.db;
  return {
    beats: await inBatches(batch, async () =>
      (await sql`
        delete from beats where id in (select id from beats where received_at < ${cutoff} limit ${batch})
        returning 1`).length),
    notices: await inBatches(batch, async () =>
      (await sql`
        delete from notices where id in (
          select n.id from notices n where n.created_at < ${cutoff}
            and not exists (select 1 from notice_deliveries d where d.notice_id = n.id and d.delivered_at is null)
          limit ${batch})
        returning 1`).length),
    maintenanceWindows:
      (await sql`delete from maintenance_windows where ends_at < ${cutoff} returning 1`).length,
    wakeRequests: (await sql`
      delete from wake_requests where created_at < ${new Date(
      deps.clock.now().getTime() - 86_400_000,
    )} returning 1`).length,
    authFailures: await inBatches(batch, async () =>
      (await sql`
        delete from auth_failures where id in (select id from auth_failures where at < ${cutoff} limit ${batch})
        returning 1`).length),
  };
}

/** Deletes request nonces whose signatures can no longer be replayed; returns how many. */
export async function pruneNonces(deps: { db: Db; clock: Clock }): Promise<number> {
  // Counted in the database: at 2,000 cycles/s a minute's nonces are 240,000 rows, not worth
  // sending back one by one.
  const [row] = await deps.db.sql<{ n: number }>`
    with gone as (delete from request_nonces where expires_at < ${deps.clock.now()} returning 1)
    select count(*)::int as n from gone`;
  return row?.n ?? 0;
}

/**
 * The daily retention job (`main.ts`): beat history and notices past
 * `historyRetentionDays`, and uploads that never finished (a crash or a dropped connection
 * mid-publish, older than a day: never served), logged as one `history_pruned` line.
 */
export async function retentionJob(deps: AppDeps): Promise<void> {
  const r = await pruneHistory(deps, deps.settings.historyRetentionDays);
  const blobs = await pruneIncompleteBlobs(
    deps.db,
    new Date(deps.clock.now().getTime() - 86_400_000),
  );
  deps.log.info("history_pruned", { ...r, incompleteBlobs: blobs });
}
