/** What the fleet view shows besides the state counts: beat rate and versions in the field. */
import type { Db } from "../db/db.ts";

const bucketMs = 600_000;

/** The first bucket of the day-long window ending at `now`: 144 whole buckets, the last one running. */
function windowStart(now: Date): number {
  return (Math.floor(now.getTime() / bucketMs) - 143) * bucketMs;
}

/** Beats per minute over the last day, in 10-minute buckets (time in ms, rate per minute). */
export async function beatRate(db: Db, now: Date): Promise<Array<{ t: number; v: number }>> {
  return [...(await beatBuckets(db, new Date(windowStart(now)), now))]
    .sort(([a], [b]) => a - b).map(([t, n]) => ({ t, v: n / 10 }));
}

async function beatBuckets(db: Db, from: Date, to: Date): Promise<Map<number, number>> {
  const rows = await db.sql<{ b: number; n: number }>`
    select floor(extract(epoch from received_at) / 600)::bigint as b, count(*)::int as n
    from beats where received_at >= ${from} and received_at <= ${to}
    group by 1`;
  return new Map(rows.map((r) => [Number(r.b) * bucketMs, r.n]));
}

/** The fleet page's cached figures (see {@link fleetOverviewCache}). */
export interface FleetOverviewCache {
  /** Beats per minute over the last day (as {@link beatRate}). */
  beatRate(db: Db, now: Date): Promise<Array<{ t: number; v: number }>>;
  /** Versions in the field (as {@link versionsInField}), at most 30 s old. */
  versionsInField(
    db: Db,
    now: Date,
  ): Promise<Array<{ app: string; name: string; version: string; n: number }>>;
}

/**
 * The fleet page's expensive figures, kept between renders by one NOC instance (built by
 * `createDeps()`):
 * past 10-minute beat buckets never change, so after the first render only
 * the last two buckets are counted again; versions in the field are read at
 * most every 30 seconds.
 */
export function fleetOverviewCache(): FleetOverviewCache {
  let buckets = new Map<number, number>();
  let countedBefore = 0;
  let versions: { at: number; rows: Awaited<ReturnType<typeof versionsInField>> } | null = null;
  return {
    /** Beats per minute over the last day (as {@link beatRate}). */
    async beatRate(db: Db, now: Date): Promise<Array<{ t: number; v: number }>> {
      const start = windowStart(now);
      // A beat is stamped when received, so buckets two back are final (one back: late commits).
      const from = Math.max(start, countedBefore);
      const fresh = await beatBuckets(db, new Date(from), now);
      const next = new Map([...buckets].filter(([t]) => t >= start && t < from));
      for (const [t, n] of fresh) next.set(t, n);
      buckets = next;
      countedBefore = (Math.floor(now.getTime() / bucketMs) - 1) * bucketMs;
      return [...buckets].sort(([a], [b]) => a - b).map(([t, n]) => ({ t, v: n / 10 }));
    },
    /** Versions in the field (as {@link versionsInField}), at most 30 s old. */
    async versionsInField(db: Db, now: Date) {
      if (!versions || now.getTime() - versions.at > 30_000 || now.getTime() < versions.at) {
        versions = { at: now.getTime(), rows: await versionsInField(db) };
      }
      return versions.rows;
    },
  };
}

/** Component versions appliances last reported running, with how many run each. */
export async function versionsInField(
  db: Db,
): Promise<Array<{ app: string; name: string; version: string; n: number }>> {
  return await db.sql<{ app: string; name: string; version: string; n: number }>`
    select c->>'app' as app, c->>'name' as name, c->>'version' as version, count(*)::int as n
    from appliances a cross join lateral jsonb_array_elements(
      case when jsonb_typeof(a.last_report->'components') = 'array' then a.last_report->'components'
        else '[]'::jsonb end) c
    where a.revoked_at is null
    group by 1, 2, 3 order by 1, 2, 4 desc limit 300`;
}
