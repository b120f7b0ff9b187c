/**
 * What the fleet view shows besides the state counts: beat rate, versions in the field, and the
 * health of each site.
 */
import type { Db } from "../db/db.ts";

const bucketMs = 600_000;

/** The first bucket of the day-long window ending at `now`: 144 whole buckets, the last one running. */
function windowStart(now: Date): number {
  return (Math.floor(now.getTime() / bucketMs) - 143) * bucketMs;
}

/**
 * Beats per minute over the last day, in 10-minute buckets (time in ms, rate per minute). The
 * last bucket is still running: its count is divided by the minutes it has run so far (not by
 * 10, which would draw a false drop), and it is left out while it is younger than a minute.
 */
export async function beatRate(db: Db, now: Date): Promise<Array<{ t: number; v: number }>> {
  return perMinute(await beatBuckets(db, new Date(windowStart(now)), now), now);
}

/** Buckets (start ms → beats) as rates per minute, the running bucket scaled by its age. */
function perMinute(buckets: Map<number, number>, now: Date): Array<{ t: number; v: number }> {
  const running = Math.floor(now.getTime() / bucketMs) * bucketMs;
  const ageMin = (now.getTime() - running) / 60_000;
  const out: Array<{ t: number; v: number }> = [];
  for (const [t, n] of [...buckets].sort(([a], [b]) => a - b)) {
    if (t < running) out.push({ t, v: n / 10 });
    else if (t === running && ageMin >= 1) {
      out.push({ t, v: Math.round((n / ageMin) * 1000) / 1000 });
    }
  }
  return out;
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
      return perMinute(buckets, now);
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

/** One site's health, as the fleet page's site panel shows it. */
export interface SiteHealth {
  /** The site (null: appliances enrolled without one). */
  site: string | null;
  /** Appliances not revoked (retired records not counted). */
  total: number;
  /** Missing now (alerted, or overdue past the grace). */
  missing: number;
  /** Late (overdue within the grace). */
  late: number;
  /** When the earliest of its missing appliances went missing (ISO time), or null. */
  missingSince: string | null;
  /** Open alerts of its appliances no one has acknowledged, and acknowledged ones. */
  openAlerts: number;
  acknowledgedAlerts: number;
  /** The site-wide maintenance window active now (the one ending last), or null. */
  maintenance: { id: number; endsAt: string; reason: string } | null;
  /** Its appliances in a maintenance window of their own, active now. */
  appliancesInMaintenance: number;
}

interface SiteRow {
  site: string | null;
  total: number;
  missing: number;
  late: number;
  missing_since: Date | null;
  open_alerts: number;
  acknowledged_alerts: number;
  m_id: number | null;
  m_ends_at: Date | null;
  m_reason: string | null;
  in_maintenance: number;
  sites: number;
}

/**
 * The health of each site at `now`, sites in trouble first (most missing, then most late, then
 * most unacknowledged alerts, then by name), at most `limit` of them, and how many sites there are
 * in all. One statement: one grouped scan of the appliances, the open alerts grouped by their
 * appliances' site, and the active site windows, hash-joined on the site (`''` standing for none,
 * which no site name can be). On PostgreSQL with 100,000 appliances in 5,000 sites: 80-200 ms.
 */
export async function siteHealth(
  db: Db,
  now: Date,
  graceS: number,
  limit: number,
): Promise<{ items: SiteHealth[]; total: number }> {
  const cutoff = new Date(now.getTime() - graceS * 1000);
  const rows = await db.sql<SiteRow>`
    with s as (
      select site, coalesce(site, '') as k, count(*)::int as total,
        count(*) filter (where missing_since is not null or next_due_at <= ${cutoff})::int as missing,
        count(*) filter (where missing_since is null and next_due_at <= ${now}
          and next_due_at > ${cutoff})::int as late,
        min(coalesce(missing_since, next_due_at)) filter (
          where missing_since is not null or next_due_at <= ${cutoff}) as missing_since
      from appliances where revoked_at is null and superseded_by is null
      group by site
    ), al as (
      select coalesce(ap.site, '') as k,
        count(*) filter (where al.acknowledged_at is null)::int as open_alerts,
        count(*) filter (where al.acknowledged_at is not null)::int as acknowledged_alerts
      from alerts al join appliances ap on ap.uid = al.uid
      where al.resolved_at is null
      group by 1
    ), m as (
      select distinct on (site) site, id, ends_at, reason from maintenance_windows
      where site is not null and starts_at <= ${now} and ends_at > ${now}
      order by site, ends_at desc
    ), u as (
      select coalesce(ap.site, '') as k, count(distinct ap.uid)::int as n
      from maintenance_windows mw join appliances ap on ap.uid = mw.uid
      where mw.uid is not null and mw.starts_at <= ${now} and mw.ends_at > ${now}
        and ap.revoked_at is null and ap.superseded_by is null
      group by 1
    )
    select s.site, s.total, s.missing, s.late, s.missing_since,
      coalesce(al.open_alerts, 0) as open_alerts,
      coalesce(al.acknowledged_alerts, 0) as acknowledged_alerts,
      m.id as m_id, m.ends_at as m_ends_at, m.reason as m_reason,
      coalesce(u.n, 0) as in_maintenance,
      count(*) over ()::int as sites
    from s left join al on al.k = s.k
      left join m on m.site = s.site
      left join u on u.k = s.k
    order by s.missing desc, s.late desc, coalesce(al.open_alerts, 0) desc, s.site nulls last
    limit ${limit}`;
  return {
    total: rows[0]?.sites ?? 0,
    items: rows.map((r) => ({
      site: r.site,
      total: r.total,
      missing: r.missing,
      late: r.late,
      missingSince: r.missing_since ? new Date(r.missing_since).toISOString() : null,
      openAlerts: r.open_alerts,
      acknowledgedAlerts: r.acknowledged_alerts,
      appliancesInMaintenance: r.in_maintenance,
      maintenance: r.m_id === null
        ? null
        : { id: Number(r.m_id), endsAt: new Date(r.m_ends_at!).toISOString(), reason: r.m_reason! },
    })),
  };
}
