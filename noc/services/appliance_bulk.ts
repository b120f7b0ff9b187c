/**
 * Bulk actions on appliances (`POST /v1/admin/appliances/bulk`, the console's appliance list):
 * wake, hold, release holds, move (site, channel, tags) and maintenance, on up to 1,000 UIDs or on
 * every appliance a filter selects (at most {@link bulkFilterCap}).
 *
 * Everything is checked before anything is written (unknown UIDs, a filter past the cap, a tag
 * list past 32, a window ending before it starts or longer than `NOC_MAINTENANCE_MAX_DAYS`): a
 * refused request changes nothing. The appliances selected (by UID or by filter, in full) are
 * handed to the caller's `note` (the audit log) before anything is written. The writes run in one
 * transaction, {@link bulkChunk} appliances a statement; each appliance's change is made by one
 * statement; holds and windows record who made them.
 *
 * @module
 */
import { holdDueAfterSiteMove } from "./schedule_changes.ts";
import { refuseMovesFromRollouts } from "./phased_rollouts.ts";
import type { z } from "zod";
import { ApiError } from "../../protocol/http/errors.ts";
import type { bulkAppliancesSchema } from "../../protocol/schemas.ts";
import type { Db, Param, Sql } from "../db/db.ts";
import { type ApplianceListFilter, filterConditions } from "./appliance_list.ts";
import { revocationWindowS } from "./local_servers.ts";
import { checkWindow } from "./maintenance.ts";

/** A bulk request as `bulkAppliancesSchema` parses it. */
export type BulkRequest = z.infer<typeof bulkAppliancesSchema>;

/** Most appliances a bulk action by filter acts on; a filter selecting more is refused (409). */
export const bulkFilterCap = 5000;

/** Appliances written by one statement. */
export const bulkChunk = 1000;

/**
 * What a bulk action did: `matched` appliances selected, `done` changed (woken, held, released,
 * moved, put in maintenance), `skipped` left as they were, with `skippedWhy` (revoked appliances
 * are never woken; an appliance that already has the hold, or none to release).
 */
export interface BulkResult {
  action: string;
  matched: number;
  done: number;
  skipped: number;
  skippedWhy: string | null;
}

/** One selected appliance. */
interface Target {
  uid: string;
  revoked: boolean;
}

function chunks<T>(xs: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += bulkChunk) out.push(xs.slice(i, i + bulkChunk));
  return out;
}

/**
 * The appliances a request selects: its UIDs (404 `not_found` naming the first unknown one), or
 * its filter's matches (409 `too_many_appliances` past {@link bulkFilterCap}).
 */
async function targets(db: Db, req: BulkRequest, now: Date, graceS: number): Promise<Target[]> {
  if (req.uids !== undefined) {
    const uids = [...new Set(req.uids.map((u) => u.toLowerCase()))];
    const rows = await db.sql<Target>`
      select uid, revoked_at is not null as revoked from appliances
      where uid = any(${uids}::uuid[])`;
    if (rows.length < uids.length) {
      const found = new Set(rows.map((r) => r.uid));
      const missing = uids.find((u) => !found.has(u));
      throw new ApiError(404, "not_found", `Appliance "${missing}" does not exist`);
    }
    return rows;
  }
  const f = { ...req.filter, limit: 1 } as ApplianceListFilter;
  const parts = filterConditions(f, now, graceS);
  const strings: string[] = [
    "select a.uid, a.revoked_at is not null as revoked from appliances a where true",
  ];
  const values: Param[] = [];
  for (const p of parts) {
    strings[strings.length - 1] += " and " + p.strings[0];
    strings.push(...p.strings.slice(1));
    values.push(...p.values);
  }
  strings[strings.length - 1] += " order by a.uid limit ";
  strings.push("");
  values.push(bulkFilterCap + 1);
  const rows = await db.begin(async (tx) => {
    await tx`set local plan_cache_mode = force_custom_plan`;
    return await tx<Target>(
      Object.assign([...strings], { raw: [...strings] }) as unknown as TemplateStringsArray,
      ...values,
    );
  });
  if (rows.length > bulkFilterCap) {
    throw new ApiError(
      409,
      "too_many_appliances",
      `The filter selects more than ${bulkFilterCap} appliances; narrow it (a site, model, ` +
        `state…) or act on them in parts`,
    );
  }
  return rows;
}

/** Marks the catalogs of `uids` stale (they are rebuilt at the next request). */
async function stale(tx: Sql, uids: string[]): Promise<void> {
  if (uids.length === 0) return;
  await tx`update appliances set catalog_epoch = 0 where uid = any(${uids}::uuid[])`;
}

/** Who runs a bulk action, and what it reports to. */
export interface BulkContext {
  /** Who asks (an operator's name, a token label, `console:<name>`): holds and windows record it. */
  by: string;
  /** States are judged with this grace, seconds. */
  graceS: number;
  /** Longest maintenance window, days (`settings.maintenanceMaxDays`). */
  maxWindowDays: number;
  /** Queues one appliance's wake-up (called for each selected appliance not revoked). */
  wake(uid: string): Promise<unknown>;
  /**
   * Told every selected appliance's UID (lower case), once, after the selection is checked and
   * before anything is written (the audit log's record of what the action touches); a throw
   * stops the action.
   */
  note(uids: string[]): Promise<void>;
}

/**
 * Runs bulk request `req` at `now`. Throws an {@link ApiError} (nothing written) for what
 * {@link targets} refuses, a move leaving an appliance more than 32 tags (400 `invalid_body`), or
 * a window that ends before it starts, has ended, or lasts longer than `ctx.maxWindowDays`.
 */
export async function runBulk(
  db: Db,
  req: BulkRequest,
  now: Date,
  ctx: BulkContext,
): Promise<BulkResult> {
  const a = req.action;
  const selected = await targets(db, req, now, ctx.graceS);
  const uids = selected.map((t) => t.uid);
  if (a.type === "maintenance") {
    checkWindow(
      a.startsAt ? new Date(a.startsAt) : now,
      new Date(a.endsAt),
      now,
      ctx.maxWindowDays,
      "action.endsAt",
    );
  }
  await ctx.note(uids);
  const result = (done: number, skippedWhy: string | null): BulkResult => ({
    action: a.type,
    matched: selected.length,
    done,
    skipped: selected.length - done,
    skippedWhy: selected.length - done > 0 ? skippedWhy : null,
  });
  switch (a.type) {
    case "wake": {
      const live = selected.filter((t) => !t.revoked);
      for (const t of live) await ctx.wake(t.uid);
      return result(live.length, "revoked: a revoked appliance is never woken");
    }
    case "hold": {
      const held = await db.begin(async (tx) => {
        let n = 0;
        for (const part of chunks(uids)) {
          const rows = await tx<{ uid: string }>`
            insert into holds (uid, app, reason, created_at, created_by)
            select u, ${a.app ?? null}, ${a.reason}, ${now}, ${ctx.by}
            from unnest(${part}::uuid[]) u
            on conflict do nothing returning uid`;
          await stale(tx, rows.map((r) => r.uid));
          n += rows.length;
        }
        return n;
      });
      return result(held, "already held");
    }
    case "release": {
      const released = await db.begin(async (tx) => {
        let n = 0;
        for (const part of chunks(uids)) {
          const rows = await tx<{ uid: string }>`
            delete from holds where uid = any(${part}::uuid[]) returning uid`;
          const distinct = [...new Set(rows.map((r) => r.uid))];
          await stale(tx, distinct);
          n += distinct.length;
        }
        return n;
      });
      return result(released, "no hold to release");
    }
    case "move":
      return result(await move(db, uids, a, now, ctx.graceS), null);
    case "maintenance": {
      const starts = a.startsAt ? new Date(a.startsAt) : now;
      const ends = new Date(a.endsAt);
      const n = await db.begin(async (tx) => {
        let made = 0;
        for (const part of chunks(uids)) {
          const rows = await tx`
            insert into maintenance_windows (uid, starts_at, ends_at, reason, created_at,
              created_by)
            select u, ${starts}, ${ends}, ${a.reason}, ${now}, ${ctx.by}
            from unnest(${part}::uuid[]) u
            returning id`;
          made += rows.length;
        }
        return made;
      });
      return result(n, null);
    }
  }
}

type Move = Extract<BulkRequest["action"], { type: "move" }>;

/** The move: checked (tag count), then site, channel and tags set by one statement a chunk. */
async function move(
  db: Db,
  uids: string[],
  m: Move,
  now: Date,
  graceS: number,
): Promise<number> {
  const tags = m.tags ?? null;
  const add = m.addTags ?? [];
  const remove = m.removeTags ?? [];
  const siteGiven = m.site !== undefined;
  const site = m.site ?? null;
  const since = new Date(now.getTime() - revocationWindowS * 1000);
  return await db.begin(async (tx) => {
    // The tags each appliance would have: none may end up with more than 32.
    const [over] = await tx<{ uid: string; n: number }>`
      select a.uid, cardinality(array(
        select distinct t from unnest(coalesce(${tags}::text[], a.tags) || ${add}::text[]) t
        where t <> all(${remove}::text[]))) as n
      from appliances a where a.uid = any(${uids}::uuid[])
      and cardinality(array(
        select distinct t from unnest(coalesce(${tags}::text[], a.tags) || ${add}::text[]) t
        where t <> all(${remove}::text[]))) > 32
      limit 1`;
    if (over) {
      throw new ApiError(
        400,
        "invalid_body",
        `Field "action.addTags": appliance "${over.uid}" would have ${over.n} tags (at most 32)`,
      );
    }
    let n = 0;
    for (const part of chunks(uids)) {
      if (siteGiven) {
        // Moved out of a site under maintenance: one interval from now to beat again.
        await holdDueAfterSiteMove(tx, part, site, now, graceS);
        // Moved away from a site: a revocation must still reach that site's local servers.
        await tx`delete from appliance_departures
          where uid = any(${part}::uuid[]) and left_at <= ${since}`;
        await tx`
          insert into appliance_departures (uid, site, left_at)
          select uid, site, ${now} from appliances
          where uid = any(${part}::uuid[]) and site is not null and site is distinct from ${site}
          on conflict (uid, site) do update
            set left_at = greatest(appliance_departures.left_at, excluded.left_at)`;
      }
      const rows = await tx`
        update appliances a set
          site = case when ${siteGiven} then ${site} else a.site end,
          channel = coalesce(${m.channel ?? null}, a.channel),
          tags = case when ${tags}::text[] is null and cardinality(${add}::text[]) = 0
              and cardinality(${remove}::text[]) = 0 then a.tags
            else array(select distinct t from unnest(coalesce(${tags}::text[], a.tags)
              || ${add}::text[]) t where t <> all(${remove}::text[]) order by t) end,
          catalog_epoch = 0
        where a.uid = any(${part}::uuid[]) returning a.uid`;
      await refuseMovesFromRollouts(tx, part);
      n += rows.length;
    }
    return n;
  });
}
