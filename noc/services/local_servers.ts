/**
 * The NOC's side of local component servers (spec, FIGURE 1, blocks 18–19):
 * which component versions a site's catalogs reference (what its local server
 * stages), where appliances of a site find their local servers, and the
 * download records local servers send back, applied exactly once.
 *
 * @module
 */
import type { Sql } from "../db/db.ts";
import { resolveSiteCatalogs } from "./catalog_engine.ts";
import { componentVersionOf, type StageItem } from "../../protocol/schemas.ts";

/**
 * The component versions the current catalogs of `site`'s appliances
 * reference (each appliance resolved as its own catalog would be: targets,
 * rollout buckets, paused rollouts, holds; revoked appliances left out),
 * ordered by id. A constant number of statements, whatever the site's size.
 */
export async function siteStage(tx: Sql, site: string): Promise<StageItem[]> {
  const items = new Map<number, StageItem>();
  for (const catalog of (await resolveSiteCatalogs(tx, site)).values()) {
    for (const c of catalog) {
      if (items.has(c.id)) continue;
      items.set(c.id, componentVersionOf(c));
    }
  }
  return [...items.values()].sort((a, b) => a.id - b.id);
}

/**
 * How far back {@link recentlyRevoked} looks, seconds: longer than any download grant can live (a
 * grant expires with its catalog, and `NOC_CATALOG_TTL_S` is at most 30 days), plus an hour for
 * the local server's clock.
 */
export const revocationWindowS = 30 * 86400 + 3600;

/**
 * The UIDs of the appliances revoked within {@link revocationWindowS} of `now` that may hold a
 * grant listing `site`'s local servers, ascending: those in `site`, and those moved away from it
 * within the window (table `appliance_departures`; a grant issued while in `site` may still
 * verify). Their download grants must no longer be honoured. A local server learns them at each
 * sync, so a revocation reaches it within one sync; it learns nothing of other sites' appliances.
 */
export async function recentlyRevoked(tx: Sql, site: string, now: Date): Promise<string[]> {
  const since = new Date(now.getTime() - revocationWindowS * 1000);
  const rows = await tx<{ uid: string }>`
    select a.uid from appliances a
    where a.revoked_at > ${since} and (a.site = ${site} or exists (
      select 1 from appliance_departures d
      where d.uid = a.uid and d.site = ${site} and d.left_at > ${since}))
    order by a.uid`;
  return rows.map((r) => r.uid);
}

/**
 * Records that appliance `uid` left `site` at `now` (an admin moved it), in the move's
 * transaction: its grants issued there may still verify at that site's local servers, so a later
 * revocation must still reach them ({@link recentlyRevoked}). Departures older than the
 * revocation window are dropped on the way.
 */
export async function recordDeparture(
  tx: Sql,
  uid: string,
  site: string,
  now: Date,
): Promise<void> {
  const since = new Date(now.getTime() - revocationWindowS * 1000);
  await tx`delete from appliance_departures where uid = ${uid} and left_at <= ${since}`;
  await tx`
    insert into appliance_departures (uid, site, left_at) values (${uid}, ${site}, ${now})
    on conflict (uid, site) do update set left_at = greatest(appliance_departures.left_at, excluded.left_at)`;
}

/** Base URLs of the local component servers serving `site`, longest-enrolled first. */
export async function localServerUrls(tx: Sql, site: string | null): Promise<string[]> {
  if (site === null) return [];
  const rows = await tx<{ url: string }>`
    select url from local_servers where site = ${site} and revoked_at is null
    order by enrolled_at, id`;
  return rows.map((r) => r.url);
}

/**
 * How long after the appliance's catalog stopped listing a component a local server's download
 * record of it is still accepted, seconds: a genuine record sent late (the local server sends its
 * records at each sync, and keeps them while the NOC is unreachable) still counts for the
 * version's install outcomes. Past it, and for a component never listed, the record is refused.
 */
export const lateRecordWindowS = 3600;

/** One download a local server served. */
export interface LocalRecord {
  /** The local server's sequence number (increasing). */
  seq: number;
  /** The appliance it served. */
  uid: string;
  /** The component it served. */
  componentId: number;
  /** When it was served (ISO time, the local server's clock). */
  at: string;
}

/** Why a download record was refused. */
export type RecordRefusal = "not_in_site" | "not_in_catalog";

/** A download record the NOC refused, and why. */
export interface RefusedRecord {
  /** Its sequence number. */
  seq: number;
  /** The appliance it names. */
  uid: string;
  /** The component it names. */
  componentId: number;
  /**
   * `not_in_site`: no appliance of the server's site (or a revoked one);
   * `not_in_catalog`: the appliance's current catalog does not list that component, and did not
   * within {@link lateRecordWindowS} before the record arrived.
   */
  reason: RecordRefusal;
}

/** What applying a batch of records did. */
export interface AppliedRecords {
  /** The highest sequence number now applied (the local server drops records up to it). */
  acked: number;
  /** Records that became delivery records. */
  applied: number;
  /** Records already applied by an earlier copy of the batch. */
  duplicates: number;
  /** Records refused (see `refusedRecords`). */
  refused: number;
  /** Each refused record and why. */
  refusedRecords: RefusedRecord[];
  /** The components that got delivery records from this batch (for the rollout gate). */
  componentIds: number[];
}

/**
 * Applies a local server's download records to the appliances' delivery
 * records, in one transaction: records at or below the sequence number already
 * applied in the same journal epoch (one per run of the local server) are
 * skipped (a retried batch counts once), times in the future are clamped to
 * `now`, and a record is applied only when it names an appliance of the
 * server's own site that is not revoked and a component the appliance's current
 * catalog lists, or listed until less than {@link lateRecordWindowS} ago (a
 * genuine record sent late) — a local server can report what it served, never
 * widen what an appliance is given. Refused records are acknowledged
 * (sending them again changes nothing) and listed with their reason.
 */
export async function applyLocalRecords(
  tx: Sql,
  server: { id: string; site: string },
  batch: { epoch: string; records: readonly LocalRecord[] },
  now: Date,
): Promise<AppliedRecords> {
  const { epoch, records } = batch;
  // The mark is created, then locked: two copies of a batch of a new epoch still apply once.
  await tx`insert into local_record_marks (server_id, epoch, seq) values (${server.id}, ${epoch}, 0)
    on conflict do nothing`;
  const [row] = await tx<{ seq: number }>`
    select seq from local_record_marks where server_id = ${server.id} and epoch = ${epoch} for update`;
  const done = Number(row?.seq ?? 0);
  const fresh = records.filter((r) => r.seq > done);
  const top = Math.max(done, ...records.map((r) => r.seq));
  if (fresh.length === 0) {
    return {
      acked: top,
      applied: 0,
      duplicates: records.length,
      refused: 0,
      refusedRecords: [],
      componentIds: [],
    };
  }
  await tx`update local_record_marks set seq = ${top} where server_id = ${server.id} and epoch = ${epoch}`;
  const lateSince = new Date(now.getTime() - lateRecordWindowS * 1000);
  const pairs = await tx<{ uid: string; component_id: number; in_site: boolean; listed: boolean }>`
    select distinct b.uid, b.component_id, a.uid is not null as in_site,
      coalesce(l.current or l.unlisted_at > ${lateSince}, false) as listed
    from unnest(${fresh.map((r) => r.uid)}::uuid[], ${fresh.map((r) => r.componentId)}::bigint[])
      as b (uid, component_id)
    left join appliances a on a.uid = b.uid and a.site = ${server.site} and a.revoked_at is null
    left join catalog_listings l on l.uid = a.uid and l.component_id = b.component_id`;
  const verdict = new Map<string, RecordRefusal | null>();
  for (const p of pairs) {
    verdict.set(
      `${p.uid} ${Number(p.component_id)}`,
      !p.in_site ? "not_in_site" : !p.listed ? "not_in_catalog" : null,
    );
  }
  const reasonOf = (r: LocalRecord): RecordRefusal | null => {
    const key = `${r.uid} ${r.componentId}`;
    return verdict.has(key) ? verdict.get(key)! : "not_in_site";
  };
  const ok = fresh.filter((r) => reasonOf(r) === null);
  const refusedRecords = fresh.flatMap((r) => {
    const reason = reasonOf(r);
    return reason === null ? [] : [{ seq: r.seq, uid: r.uid, componentId: r.componentId, reason }];
  });
  if (ok.length > 0) {
    const at = (r: LocalRecord) =>
      new Date(Math.min(Date.parse(r.at), now.getTime())).toISOString();
    await tx`
      with batch as (
        select b.uid, b.component_id, min(b.at) as first_at, max(b.at) as last_at, count(*)::int as n
        from unnest(${ok.map((r) => r.uid)}::uuid[], ${ok.map((r) => r.componentId)}::bigint[], ${
      ok.map(at)
    }::timestamptz[])
          as b (uid, component_id, at)
        group by b.uid, b.component_id
      )
      insert into deliveries (uid, component_id, first_sent_at, last_sent_at, times, via)
      select uid, component_id, first_at, last_at, n, ${server.id}::uuid from batch
      on conflict (uid, component_id) do update set
        first_sent_at = least(deliveries.first_sent_at, excluded.first_sent_at),
        last_sent_at = greatest(deliveries.last_sent_at, excluded.last_sent_at),
        times = deliveries.times + excluded.times,
        via = case when excluded.last_sent_at >= deliveries.last_sent_at then excluded.via
          else deliveries.via end`;
  }
  return {
    acked: top,
    applied: ok.length,
    duplicates: records.length - fresh.length,
    refused: refusedRecords.length,
    refusedRecords,
    componentIds: [...new Set(ok.map((r) => r.componentId))],
  };
}
