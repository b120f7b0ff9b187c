/**
 * `/v1/admin/maintenance`: maintenance windows for an appliance or a site (no missed-heartbeat
 * alert while one is open): open one, list the active and upcoming ones (and those ended lately),
 * end one now (recording who; one not begun is left empty), or delete one. A window records who
 * opened it, and lasts at most `NOC_MAINTENANCE_MAX_DAYS` (noc/services/maintenance.ts).
 */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { checkWindow } from "../../services/maintenance.ts";
import { noteAffected } from "../middleware/admin_auth.ts";
import { idParam, maintenanceListQuery, maintenanceSchema } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { idAfter, pageOf } from "./paging.ts";
import type { Sql } from "../../db/db.ts";
import { expectRevision, type IfMatch, ifMatchOf, refusingStale, setEtag } from "./revisions.ts";

interface WindowRow {
  id: number;
  uid: string | null;
  hostname: string | null;
  site: string | null;
  starts_at: Date;
  ends_at: Date;
  reason: string;
  created_at: Date;
  created_by: string | null;
  ended_at: Date | null;
  ended_by: string | null;
  revision: number;
}

function windowJson(r: WindowRow, now: Date): Record<string, unknown> {
  const active = r.starts_at.getTime() <= now.getTime() && r.ends_at.getTime() > now.getTime();
  return {
    id: r.id,
    uid: r.uid,
    hostname: r.hostname,
    site: r.site,
    startsAt: r.starts_at.toISOString(),
    endsAt: r.ends_at.toISOString(),
    reason: r.reason,
    active,
    state: active ? "active" : r.starts_at.getTime() > now.getTime() ? "upcoming" : "ended",
    createdAt: r.created_at.toISOString(),
    createdBy: r.created_by,
    endedAt: r.ended_at?.toISOString() ?? null,
    endedBy: r.ended_by,
    // Its version: If-Match on POST /:id/end and DELETE /:id (noc/http/admin/revisions.ts).
    revision: Number(r.revision),
  };
}

/** Locks window `id` and checks `If-Match` against its revision (nothing when it is gone). */
async function lockedRevision(tx: Sql, id: number, m: IfMatch | null): Promise<void> {
  const [cur] = await tx<{ revision: number }>`
    select revision from maintenance_windows where id = ${id} for update`;
  if (cur) expectRevision(m, cur.revision);
}

/** Window `id` as the list answers it, or null. */
async function currentWindow(deps: AppDeps, id: number): Promise<unknown> {
  const [r] = await deps.db.sql<WindowRow>`
    select m.id, m.uid, ap.hostname, m.site, m.starts_at, m.ends_at, m.reason, m.created_at,
      m.created_by, m.ended_at, m.ended_by, m.revision
    from maintenance_windows m left join appliances ap on ap.uid = m.uid where m.id = ${id}`;
  return r ? windowJson(r, deps.clock.now()) : null;
}

/** The maintenance window admin routes. */
export function maintenanceAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("json", maintenanceSchema), async (c) => {
      const m = c.req.valid("json");
      const now = deps.clock.now();
      const starts = m.startsAt ? new Date(m.startsAt) : now;
      const ends = new Date(m.endsAt);
      checkWindow(starts, ends, now, deps.settings.maintenanceMaxDays);
      if (m.uid) {
        const found = await deps.db.sql`select 1 from appliances where uid = ${m.uid}`;
        if (found.length === 0) {
          throw new ApiError(404, "not_found", `Appliance "${m.uid}" does not exist`);
        }
      }
      if (m.site) {
        // A window for a site no appliance belongs to would silence nothing: a typo.
        const found = await deps.db.sql`select 1 from appliances where site = ${m.site} limit 1`;
        if (found.length === 0) {
          throw new ApiError(404, "not_found", `Site "${m.site}" has no appliances`);
        }
      }
      const by = c.get("admin");
      const [row] = await deps.db.sql<WindowRow>`
        with ins as (
          insert into maintenance_windows (uid, site, starts_at, ends_at, reason, created_at,
            created_by)
          values (${m.uid ?? null}, ${m.site ?? null}, ${starts}, ${ends}, ${m.reason}, ${now},
            ${by})
          returning *)
        select ins.id, ins.uid, ap.hostname, ins.site, ins.starts_at, ins.ends_at, ins.reason,
          ins.created_at, ins.created_by, ins.ended_at, ins.ended_by, ins.revision
        from ins left join appliances ap on ap.uid = ins.uid`;
      // The audit record names the appliance (or site) and the new window.
      await noteAffected(c, [m.uid ?? m.site!, String(row!.id)]);
      deps.log.info("maintenance_created", {
        id: row!.id,
        uid: m.uid ?? null,
        site: m.site ?? null,
        by,
      });
      return c.json(windowJson(row!, now), 201);
    })
    .get("/", validate("query", maintenanceListQuery), async (c) => {
      const q = c.req.valid("query");
      const all = q.all === "true";
      const now = deps.clock.now();
      const since = q.endedSince ? new Date(q.endedSince) : now;
      const after = idAfter(q.cursor);
      // Newest first, keyset on the id: a window's start moves when it is ended before it began.
      const rows = await deps.db.sql<WindowRow>`
        select m.id, m.uid, ap.hostname, m.site, m.starts_at, m.ends_at, m.reason, m.created_at,
          m.created_by, m.ended_at, m.ended_by, m.revision
        from maintenance_windows m left join appliances ap on ap.uid = m.uid
        where (${all} or m.ends_at > ${since})
          and (${q.site ?? null}::text is null or m.site = ${q.site ?? null})
          and (${after}::bigint is null or m.id < ${after}::bigint)
        order by m.id desc limit ${q.limit + 1}`;
      const page = pageOf(rows, q.limit, (r) => [Number(r.id)]);
      return c.json({
        items: page.rows.map((r) => windowJson(r, now)),
        nextCursor: page.nextCursor,
      });
    })
    .post("/:id/end", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const now = deps.clock.now();
      const by = c.get("admin");
      // Active: it ends now. Upcoming: it is left empty, starting and ending now (never active).
      // Ended: unchanged.
      const m = ifMatchOf(c);
      const row = await refusingStale(
        `Maintenance window ${id}`,
        m,
        () =>
          deps.db.begin(async (tx) => {
            await lockedRevision(tx, id, m);
            const [r] = await tx<WindowRow>`
        with upd as (
          update maintenance_windows set
            starts_at = case when ends_at > ${now} then least(starts_at, ${now}) else starts_at end,
            ends_at = case when ends_at > ${now} then ${now}::timestamptz else ends_at end,
            ended_at = case when ends_at > ${now} then ${now}::timestamptz else ended_at end,
            ended_by = case when ends_at > ${now} then ${by} else ended_by end
          where id = ${id} returning *)
        select upd.id, upd.uid, ap.hostname, upd.site, upd.starts_at, upd.ends_at, upd.reason,
          upd.created_at, upd.created_by, upd.ended_at, upd.ended_by, upd.revision
        from upd left join appliances ap on ap.uid = upd.uid`;
            return r;
          }),
        () => currentWindow(deps, id),
      );
      if (!row) throw new ApiError(404, "not_found", `Maintenance window ${id} does not exist`);
      setEtag(c, row.revision);
      await noteAffected(c, [row.uid ?? row.site ?? ""].filter(Boolean));
      deps.log.info("maintenance_ended", { id, by });
      return c.json(windowJson(row, now));
    })
    .delete("/:id", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const m = ifMatchOf(c);
      const rows = await refusingStale(
        `Maintenance window ${id}`,
        m,
        () =>
          deps.db.begin(async (tx) => {
            await lockedRevision(tx, id, m);
            return await tx<{ uid: string | null; site: string | null }>`
        delete from maintenance_windows where id = ${id} returning uid::text, site`;
          }),
        () => currentWindow(deps, id),
      );
      if (rows.length === 0) {
        throw new ApiError(404, "not_found", `Maintenance window ${id} does not exist`);
      }
      await noteAffected(c, [rows[0]!.uid ?? rows[0]!.site ?? ""].filter(Boolean));
      return c.body(null, 204);
    });
}
