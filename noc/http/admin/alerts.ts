/** `/v1/admin/alerts`: open and resolved alerts, and acknowledgement. */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { idParam, listAlertsQuery } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

interface AlertRow {
  id: number;
  kind: string;
  uid: string | null;
  hostname: string | null;
  site: string | null;
  opened_at: Date;
  resolved_at: Date | null;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  detail: Record<string, unknown>;
}

function alertJson(r: AlertRow): Record<string, unknown> {
  return {
    id: r.id,
    kind: r.kind,
    uid: r.uid,
    hostname: r.hostname,
    site: r.site,
    status: r.resolved_at ? "resolved" : "open",
    openedAt: r.opened_at.toISOString(),
    resolvedAt: r.resolved_at?.toISOString() ?? null,
    acknowledgedAt: r.acknowledged_at?.toISOString() ?? null,
    acknowledgedBy: r.acknowledged_by,
    detail: r.detail,
  };
}

/** The alert admin routes. */
export function alertAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", listAlertsQuery), async (c) => {
      const f = c.req.valid("query");
      const rows = await deps.db.sql<AlertRow>`
        select al.id, al.kind, al.uid, ap.hostname, ap.site, al.opened_at, al.resolved_at, al.acknowledged_at,
          al.acknowledged_by, al.detail
        from alerts al left join appliances ap on ap.uid = al.uid
        where (${f.status} = 'all' or (${f.status} = 'open') = (al.resolved_at is null))
          and (${f.kind ?? null}::text is null or al.kind = ${f.kind ?? null})
          and (${f.uid ?? null}::uuid is null or al.uid = ${f.uid ?? null}::uuid)
          and (${f.before ?? null}::bigint is null or al.id < ${f.before ?? null}::bigint)
        order by al.id desc limit ${f.limit + 1}`;
      const page = rows.slice(0, f.limit);
      return c.json({
        items: page.map(alertJson),
        nextBefore: rows.length > f.limit ? page[page.length - 1]!.id : null,
      });
    })
    .post("/:id/ack", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const [row] = await deps.db.sql<AlertRow>`
        with upd as (
          update alerts set acknowledged_at = coalesce(acknowledged_at, ${deps.clock.now()}),
            acknowledged_by = coalesce(acknowledged_by, ${c.get("admin")})
          where id = ${id} returning *)
        select upd.id, upd.kind, upd.uid, ap.hostname, ap.site, upd.opened_at, upd.resolved_at,
          upd.acknowledged_at, upd.acknowledged_by, upd.detail
        from upd left join appliances ap on ap.uid = upd.uid`;
      if (!row) throw new ApiError(404, "not_found", `Alert ${id} does not exist`);
      return c.json(alertJson(row));
    });
}
