/** What the console's fleet page shows besides the state counts: beat rate, versions in the field, open alerts. */
import type { Db } from "./db.ts";

/** Beats per minute over the last day, in 10-minute buckets (time in ms, rate per minute). */
export async function beatRate(db: Db, now: Date): Promise<Array<{ t: number; v: number }>> {
  const since = new Date(now.getTime() - 86_400_000);
  const rows = await db.sql<{ b: number; n: number }>`
    select floor(extract(epoch from received_at) / 600)::bigint as b, count(*)::int as n
    from beats where received_at > ${since} and received_at <= ${now}
    group by 1 order by 1`;
  return rows.map((r) => ({ t: Number(r.b) * 600_000, v: r.n / 10 }));
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

/** The most recent open alerts, with their appliance's host name. */
export async function openAlerts(
  db: Db,
  limit = 20,
): Promise<
  Array<
    {
      id: number;
      kind: string;
      uid: string | null;
      hostname: string | null;
      opened_at: Date;
      acknowledged_at: Date | null;
    }
  >
> {
  return await db.sql`
    select al.id, al.kind, al.uid, ap.hostname, al.opened_at, al.acknowledged_at
    from alerts al left join appliances ap on ap.uid = al.uid
    where al.resolved_at is null order by al.opened_at desc limit ${limit}`;
}
