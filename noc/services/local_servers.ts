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

/** Base URLs of the local component servers serving `site`, longest-enrolled first. */
export async function localServerUrls(tx: Sql, site: string | null): Promise<string[]> {
  if (site === null) return [];
  const rows = await tx<{ url: string }>`
    select url from local_servers where site = ${site} and revoked_at is null
    order by enrolled_at, id`;
  return rows.map((r) => r.url);
}

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

/** What applying a batch of records did. */
export interface AppliedRecords {
  /** The highest sequence number now applied (the local server drops records up to it). */
  acked: number;
  /** Records that became delivery records. */
  applied: number;
  /** Records already applied by an earlier copy of the batch. */
  duplicates: number;
  /** Records naming an appliance outside the server's site or an unknown component. */
  refused: number;
}

/**
 * Applies a local server's download records to the appliances' delivery
 * records, in one transaction: records at or below the sequence number already
 * applied in the same journal epoch (one per run of the local server) are skipped (a retried batch counts once), times in the future are
 * clamped to `now`, and only appliances of the server's own site are touched.
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
    return { acked: top, applied: 0, duplicates: records.length, refused: 0 };
  }
  await tx`update local_record_marks set seq = ${top} where server_id = ${server.id} and epoch = ${epoch}`;
  const at = (r: LocalRecord) => new Date(Math.min(Date.parse(r.at), now.getTime())).toISOString();
  await tx`
    with batch as (
      select b.uid, b.component_id, min(b.at) as first_at, max(b.at) as last_at, count(*)::int as n
      from unnest(${fresh.map((r) => r.uid)}::uuid[], ${
    fresh.map((r) => r.componentId)
  }::bigint[], ${fresh.map(at)}::timestamptz[])
        as b (uid, component_id, at)
      join appliances a on a.uid = b.uid and a.site = ${server.site}
      join components c on c.id = b.component_id
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
  const accepted = await tx<{ n: number }>`
    select count(*)::int as n
    from unnest(${fresh.map((r) => r.uid)}::uuid[], ${
    fresh.map((r) => r.componentId)
  }::bigint[]) as b (uid, component_id)
    join appliances a on a.uid = b.uid and a.site = ${server.site}
    join components c on c.id = b.component_id`;
  const ok = accepted[0]?.n ?? 0;
  return {
    acked: top,
    applied: ok,
    duplicates: records.length - fresh.length,
    refused: fresh.length - ok,
  };
}
