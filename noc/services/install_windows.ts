/**
 * Install windows (issue 22 item 5; migration 028): the daily hours in which appliances may
 * install, given to an appliance, a site or a model. The window that applies to an appliance is
 * its own, else its site's, else its model's; none: installs at any time. Catalogs carry it
 * (protocol/install_window.ts), signed; a change bumps the catalog epoch, so every catalog carries
 * the new one at its next request. Urgent assignments are installed outside windows
 * (`assignments.urgent`, recorded with who and when).
 *
 * @module
 */
import type { Sql } from "../db/db.ts";
import type { InstallWindow } from "../../protocol/install_window.ts";
import { bumpCatalogEpoch } from "./catalogs.ts";

/** What a window applies to. */
export type WindowScope = "appliance" | "site" | "model";

/** A stored window, as the admin API shows it. */
export interface StoredWindow {
  id: number;
  scope: WindowScope;
  /** The appliance's UID, the site's or the model's name. */
  value: string;
  start: string;
  end: string;
  timeZone: string;
  reason: string;
  createdBy: string;
  createdAt: string;
  updatedBy: string;
  updatedAt: string;
  revision: number;
}

type Row = {
  id: number;
  scope_type: WindowScope;
  scope_value: string;
  starts: string;
  ends: string;
  time_zone: string;
  reason: string;
  created_by: string;
  created_at: Date;
  updated_by: string;
  updated_at: Date;
  revision: number;
};

const asStored = (r: Row): StoredWindow => ({
  id: Number(r.id),
  scope: r.scope_type,
  value: r.scope_value,
  start: r.starts,
  end: r.ends,
  timeZone: r.time_zone,
  reason: r.reason,
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
  updatedBy: r.updated_by,
  updatedAt: r.updated_at.toISOString(),
  revision: Number(r.revision),
});

/** `scope` and `value` as a catalog's `source` says them: `appliance`, `site:lab`, `model:vs-2000`. */
export const sourceOf = (scope: WindowScope, value: string) =>
  scope === "appliance" ? "appliance" : `${scope}:${value}`;

/**
 * The window that applies to an appliance (its own, else its site's, else its model's), or null:
 * one indexed statement.
 */
export async function windowFor(
  sql: Sql,
  a: { uid: string; site: string | null; model: string },
): Promise<InstallWindow | null> {
  const [r] = await sql<Row>`
    select scope_type, scope_value, starts, ends, time_zone from install_windows
    where (scope_type = 'appliance' and scope_value = ${a.uid})
      or (scope_type = 'site' and scope_value = ${a.site ?? ""} and ${a.site !== null})
      or (scope_type = 'model' and scope_value = ${a.model})
    order by case scope_type when 'appliance' then 0 when 'site' then 1 else 2 end
    limit 1`;
  return r
    ? {
      start: r.starts,
      end: r.ends,
      timeZone: r.time_zone,
      source: sourceOf(r.scope_type, r.scope_value),
    }
    : null;
}

/** The stored windows after `after` (by id), at most `limit` + 1 (the caller pages). */
export async function listWindows(
  sql: Sql,
  after: number | null,
  limit: number,
  scope?: WindowScope,
): Promise<StoredWindow[]> {
  const rows = await sql<Row>`
    select * from install_windows
    where (${after}::bigint is null or id > ${after}::bigint)
      and (${scope ?? null}::text is null or scope_type = ${scope ?? null})
    order by id limit ${limit + 1}`;
  return rows.map(asStored);
}

/** The window of `scope` `value`, or null. */
export async function getWindow(
  sql: Sql,
  scope: WindowScope,
  value: string,
): Promise<StoredWindow | null> {
  const [r] = await sql<Row>`
    select * from install_windows where scope_type = ${scope} and scope_value = ${value}`;
  return r ? asStored(r) : null;
}

/**
 * Sets the window of `scope` `value` (created, or replaced: its revision goes up), in `tx`, and
 * bumps the catalog epoch. Returns it and whether it was created.
 */
export async function putWindow(
  tx: Sql,
  scope: WindowScope,
  value: string,
  w: { start: string; end: string; timeZone: string; reason: string },
  by: string,
  now: Date,
): Promise<{ window: StoredWindow; created: boolean }> {
  const [r] = await tx<Row & { created: boolean }>`
    insert into install_windows (scope_type, scope_value, starts, ends, time_zone, reason,
      created_by, created_at, updated_by, updated_at)
    values (${scope}, ${value}, ${w.start}, ${w.end}, ${w.timeZone}, ${w.reason}, ${by},
      ${now}, ${by}, ${now})
    on conflict (scope_type, scope_value) do update set starts = excluded.starts,
      ends = excluded.ends, time_zone = excluded.time_zone, reason = excluded.reason,
      updated_by = excluded.updated_by, updated_at = excluded.updated_at,
      revision = nextval('revisions')
    returning *, (xmax = 0) as created`;
  await bumpCatalogEpoch(tx);
  return { window: asStored(r!), created: r!.created };
}

/** Deletes the window of `scope` `value`; returns it, or null when there was none. */
export async function deleteWindow(
  tx: Sql,
  scope: WindowScope,
  value: string,
): Promise<StoredWindow | null> {
  const [r] = await tx<Row>`
    delete from install_windows where scope_type = ${scope} and scope_value = ${value}
    returning *`;
  if (r) await bumpCatalogEpoch(tx);
  return r ? asStored(r) : null;
}
