/**
 * Operator changes never page a healthy appliance (issue 22 item 1). An appliance is paged when
 * its due time (`next_due_at`) plus the grace (`NOC_GRACE_S`) has passed and no maintenance window
 * holds it (noc/jobs/status_daemon.ts). Each setting that moves that moment applies from the
 * appliance's next beat after it could know of it, never at once:
 *
 * - **Interval** (`PATCH /v1/admin/appliances/:uid {"intervalS"}`): the agent takes its interval
 *   from the signed catalog alone, so the due time keeps the interval of the last catalog served to
 *   it (`known_interval_s`, migration 026) until it fetches one with the new interval; then its due
 *   time is counted from that fetch with the new one ({@link learnedInterval}). The NOC wakes it
 *   to fetch one at once.
 * - **Grace**: an instance that starts with a smaller `NOC_GRACE_S` than the one last run holds the
 *   un-alerted fleet's due times later by the difference ({@link holdForSmallerGrace}), so each
 *   appliance keeps the moment it would have been paged until its next beat sets a new due time.
 * - **Maintenance end**: a window holds its appliances for one interval plus the grace after it
 *   ends (the status daemon's sweep), whether it ran out or an operator ended it. A deleted window
 *   holds nothing any more (delete only one opened by mistake).
 * - **Site moves**: an appliance moved out of a site whose window holds it (or did within that
 *   tail) gets one interval from the move to beat ({@link holdDueAfterSiteMove}).
 *
 * An appliance already alerted stays alerted: only a beat resolves it.
 *
 * @module
 */
import type { Sql } from "../db/db.ts";

/**
 * Before `uids` move to site `to` (null: none): each not revoked nor alerted whose current site
 * has a maintenance window that began and that ended less than its interval plus `graceS` before
 * `now` (or has not ended), and that `to` has no such window for, is given until `now` plus its
 * interval to beat (its due time is not moved earlier). Run in the move's transaction, before
 * the site changes. Returns how many due times moved.
 */
export async function holdDueAfterSiteMove(
  tx: Sql,
  uids: readonly string[],
  to: string | null,
  now: Date,
  graceS: number,
): Promise<number> {
  const [r] = await tx<{ n: number }>`
    with moved as (
      update appliances a
      set next_due_at = greatest(a.next_due_at, ${now}::timestamptz
        + make_interval(secs => greatest(a.interval_s, coalesce(a.known_interval_s, 0))))
      where a.uid = any(${uids as string[]}::uuid[]) and a.site is distinct from ${to}::text
        and a.site is not null and a.revoked_at is null and a.missing_since is null
        and exists (
          select 1 from maintenance_windows m
          where m.site = a.site and m.starts_at <= ${now}
            and m.ends_at > ${now}::timestamptz - make_interval(secs =>
              greatest(a.interval_s, coalesce(a.known_interval_s, 0)) + ${graceS}::int))
      returning 1)
    select count(*)::int as n from moved`;
  return r?.n ?? 0;
}

/**
 * An appliance fetched a catalog carrying `intervalS` (run where the catalog is answered, with the
 * interval of the body served): when it differs from the one it knew, its due time becomes
 * `now` plus the new interval (the agent schedules its next cycle from there) and the new one is
 * known. Returns whether the appliance's schedule changed.
 */
export async function learnedInterval(
  sql: Sql,
  uid: string,
  intervalS: number,
  now: Date,
): Promise<boolean> {
  const rows = await sql`
    update appliances set known_interval_s = ${intervalS},
      next_due_at = case when missing_since is null and revoked_at is null
        then ${now}::timestamptz + make_interval(secs => ${intervalS}::int) else next_due_at end
    where uid = ${uid} and known_interval_s is distinct from ${intervalS}::int
    returning 1`;
  return rows.length > 0;
}

/**
 * An instance starting with `graceS` where the instances last ran with `previousS` (null: not
 * recorded): when the grace shrank, every appliance not revoked nor alerted whose page time under
 * the old grace is still ahead (`next_due_at` + `previousS` > `now`) has its due time held later
 * by the difference, so it is paged no sooner than before; its next beat counts the new grace.
 * Returns how many due times moved.
 */
export async function holdForSmallerGrace(
  tx: Sql,
  previousS: number | null,
  graceS: number,
  now: Date,
): Promise<number> {
  if (previousS === null || previousS <= graceS) return 0;
  const [r] = await tx<{ n: number }>`
    with moved as (
      update appliances set next_due_at = next_due_at + make_interval(secs => ${
    previousS - graceS
  }::int)
      where missing_since is null and revoked_at is null
        and next_due_at > ${now}::timestamptz - make_interval(secs => ${previousS}::int)
      returning 1)
    select count(*)::int as n from moved`;
  return r?.n ?? 0;
}
