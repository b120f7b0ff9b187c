/** `/v1/admin/maintenance`: maintenance windows for an appliance or a site (no missed-heartbeat notice while one is open). */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { idParam, maintenanceListQuery, maintenanceSchema } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

interface WindowRow {
  id: number;
  uid: string | null;
  site: string | null;
  starts_at: Date;
  ends_at: Date;
  reason: string;
  created_at: Date;
}

function windowJson(r: WindowRow, now: Date): Record<string, unknown> {
  return {
    id: r.id,
    uid: r.uid,
    site: r.site,
    startsAt: r.starts_at.toISOString(),
    endsAt: r.ends_at.toISOString(),
    reason: r.reason,
    active: r.starts_at.getTime() <= now.getTime() && r.ends_at.getTime() > now.getTime(),
  };
}

/** The maintenance window admin routes. */
export function maintenanceAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("json", maintenanceSchema), async (c) => {
      const m = c.req.valid("json");
      const now = deps.clock.now();
      const starts = m.startsAt ? new Date(m.startsAt) : now;
      const ends = new Date(m.endsAt);
      if (ends.getTime() <= starts.getTime()) {
        throw new ApiError(
          400,
          "invalid_body",
          `Field "endsAt": ${m.endsAt} is not after the start`,
          {
            issues: [{ path: "endsAt", message: "must be after startsAt" }],
          },
        );
      }
      if (m.uid) {
        const found = await deps.db.sql`select 1 from appliances where uid = ${m.uid}`;
        if (found.length === 0) {
          throw new ApiError(404, "not_found", `Appliance "${m.uid}" does not exist`);
        }
      }
      const [row] = await deps.db.sql<WindowRow>`
        insert into maintenance_windows (uid, site, starts_at, ends_at, reason, created_at)
        values (${m.uid ?? null}, ${m.site ?? null}, ${starts}, ${ends}, ${m.reason}, ${now})
        returning id, uid, site, starts_at, ends_at, reason, created_at`;
      deps.log.info("maintenance_created", {
        id: row!.id,
        uid: m.uid ?? null,
        site: m.site ?? null,
        by: c.get("admin"),
      });
      return c.json(windowJson(row!, now), 201);
    })
    .get("/", validate("query", maintenanceListQuery), async (c) => {
      const all = c.req.valid("query").all === "true";
      const now = deps.clock.now();
      const rows = await deps.db.sql<WindowRow>`
        select id, uid, site, starts_at, ends_at, reason, created_at from maintenance_windows
        where ${all} or ends_at > ${now} order by starts_at desc limit 1000`;
      return c.json({ items: rows.map((r) => windowJson(r, now)) });
    })
    .delete("/:id", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const rows = await deps.db.sql`delete from maintenance_windows where id = ${id} returning id`;
      if (rows.length === 0) {
        throw new ApiError(404, "not_found", `Maintenance window ${id} does not exist`);
      }
      return c.body(null, 204);
    });
}
