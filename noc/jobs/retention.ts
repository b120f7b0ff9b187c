/**
 * Pruning of data past its retention: beat history, install outcomes, resolved alerts, delivered
 * notices, identity failures, spent nonces.
 */
import type { Clock } from "../clock.ts";
import type { Db } from "../db/db.ts";
import type { AppDeps } from "../services/deps.ts";
import { pruneIncompleteBlobs } from "../services/blobs.ts";
import { checkClock, type ClockCheckDeps } from "./noc_time.ts";

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
  /**
   * Install outcomes, except an appliance's latest outcome for a version that is still assigned
   * (what that rollout's figures read).
   */
  installOutcomes: number;
  /** Alerts resolved before the retention period. */
  alerts: number;
}

async function inBatches(batch: number, step: () => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await step();
    total += n;
    if (n < batch) return total;
  }
}

/**
 * Deletes beat history, install outcomes (but not the latest of an appliance for a version still
 * assigned), resolved alerts, fully delivered notices and identity failures older than
 * `retentionDays`, in batches.
 */
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
    installOutcomes: await inBatches(batch, async () =>
      (await sql`
        delete from install_outcomes where id in (
          select o.id from install_outcomes o where o.reported_at < ${cutoff}
            and not (
              exists (select 1 from assignments a where a.kind = o.kind and a.app = o.app
                and a.name = o.name and a.version = o.version)
              and not exists (select 1 from install_outcomes n
                where n.kind = o.kind and n.app = o.app and n.name = o.name
                  and n.version = o.version and n.uid = o.uid
                  and (n.reported_at, n.id) > (o.reported_at, o.id)))
          limit ${batch})
        returning 1`).length),
    alerts: await inBatches(batch, async () =>
      (await sql`
        delete from alerts where id in (
          select id from alerts where resolved_at < ${cutoff} limit ${batch})
        returning 1`).length),
    authFailures: await inBatches(batch, async () =>
      (await sql`
        delete from auth_failures where id in (select id from auth_failures where at < ${cutoff} limit ${batch})
        returning 1`).length),
  };
}

/**
 * Deletes request nonces whose signatures can no longer be replayed; returns how many. Not on an
 * instance whose clock disagrees with the database's beyond `settings.clockToleranceS`
 * (`checkClock` in noc/jobs/noc_time.ts; it then returns 0): a clock ahead would forget nonces
 * whose signatures other instances still accept.
 */
export async function pruneNonces(deps: ClockCheckDeps): Promise<number> {
  if (!(await checkClock(deps)).ok) return 0;
  // Counted in the database: at 2,000 cycles/s a minute's nonces are 240,000 rows, not worth
  // sending back one by one.
  const [row] = await deps.db.sql<{ n: number }>`
    with gone as (delete from request_nonces where expires_at < ${deps.clock.now()} returning 1)
    select count(*)::int as n from gone`;
  return row?.n ?? 0;
}

/**
 * The daily retention job (`main.ts`): beat history, install outcomes, alerts and notices past
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
