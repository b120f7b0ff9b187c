/**
 * `/v1/admin/alerts`: open and resolved alerts (filters by status, kind, appliance, site and
 * acknowledgement; keyset pages), and acknowledgement of one alert, of up to 1,000 by id, or of
 * every alert a filter selects, with a note.
 */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { bulkAckSchema, idParam, listAlertsQuery } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { applianceState } from "../../services/appliances.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { noteAffected } from "../middleware/admin_auth.ts";
import { encodeCursor, idAfter } from "./paging.ts";

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
  acknowledged_note: string | null;
  detail: Record<string, unknown>;
  last_beat_at: Date | null;
  next_due_at: Date | null;
  missing_since: Date | null;
  revoked_at: Date | null;
}

function alertJson(r: AlertRow, now: Date, graceS: number): Record<string, unknown> {
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
    acknowledgedNote: r.acknowledged_note,
    detail: r.detail,
    // The appliance as it is now (null when the alert has none).
    applianceState: r.next_due_at
      ? applianceState({ ...r, next_due_at: r.next_due_at }, now, graceS)
      : null,
    lastBeatAt: r.last_beat_at?.toISOString() ?? null,
    // Open: how long it has been open so far; resolved: how long it lasted (seconds).
    durationS: Math.max(
      0,
      Math.round(((r.resolved_at ?? now).getTime() - r.opened_at.getTime()) / 1000),
    ),
  };
}

/** What an acknowledgement touched, for its audit record: the alert ids and their appliances. */
function affectedOf(rows: Array<{ id: number | string; uid: string | null }>): string[] {
  return [...rows.map((r) => String(r.id)), ...rows.flatMap((r) => r.uid ? [r.uid] : [])];
}

/** The alert admin routes. */
export function alertAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", listAlertsQuery), async (c) => {
      const f = c.req.valid("query");
      const unack = f.unacknowledged === "true";
      const before = f.before ?? idAfter(f.cursor);
      const rows = await deps.db.sql<AlertRow>`
        select al.id, al.kind, al.uid, ap.hostname, ap.site, al.opened_at, al.resolved_at,
          al.acknowledged_at, al.acknowledged_by, al.acknowledged_note, al.detail,
          ap.last_beat_at, ap.next_due_at, ap.missing_since, ap.revoked_at
        from alerts al left join appliances ap on ap.uid = al.uid
        where (${f.status} = 'all' or (${f.status} = 'open') = (al.resolved_at is null))
          and (${f.kind ?? null}::text is null or al.kind = ${f.kind ?? null})
          and (${f.uid ?? null}::uuid is null or al.uid = ${f.uid ?? null}::uuid)
          and (${f.site ?? null}::text is null or ap.site = ${f.site ?? null})
          and (not ${unack}::boolean or al.acknowledged_at is null)
          and (${before}::bigint is null or al.id < ${before}::bigint)
        order by al.id desc limit ${f.limit + 1}`;
      // The open alerts of the same site, kind and appliance, acknowledged ones counted apart.
      const [open] = await deps.db.sql<{ unacknowledged: number; acknowledged: number }>`
        select count(*) filter (where al.acknowledged_at is null)::int as unacknowledged,
          count(*) filter (where al.acknowledged_at is not null)::int as acknowledged
        from alerts al left join appliances ap on ap.uid = al.uid
        where al.resolved_at is null
          and (${f.kind ?? null}::text is null or al.kind = ${f.kind ?? null})
          and (${f.uid ?? null}::uuid is null or al.uid = ${f.uid ?? null}::uuid)
          and (${f.site ?? null}::text is null or ap.site = ${f.site ?? null})`;
      const page = rows.slice(0, f.limit);
      const now = deps.clock.now();
      return c.json({
        items: page.map((r) => alertJson(r, now, deps.settings.graceS)),
        nextBefore: rows.length > f.limit ? page[page.length - 1]!.id : null,
        // The one paging convention (noc/http/admin/paging.ts); `nextBefore` stays for old callers.
        nextCursor: rows.length > f.limit
          ? encodeCursor([Number(page[page.length - 1]!.id)])
          : null,
        open: open ?? { unacknowledged: 0, acknowledged: 0 },
      });
    })
    .post("/ack", validate("json", bulkAckSchema), async (c) => {
      const b = c.req.valid("json");
      const now = deps.clock.now();
      const by = c.get("admin");
      const note = b.note ? b.note : null;
      // Each acknowledgement and its audit record's targets (the alert ids and their appliances,
      // in full, a filter's selection too) commit together.
      const rows = await deps.db.begin(async (tx) => {
        let acked: Array<{ id: number; uid: string | null }>;
        if (b.ids) {
          acked = await tx<{ id: number; uid: string | null }>`
            update alerts set acknowledged_at = ${now}, acknowledged_by = ${by},
              acknowledged_note = ${note}
            where id = any(${b.ids}::bigint[]) and acknowledged_at is null returning id, uid`;
        } else {
          const f = b.filter!;
          const unack = f.unacknowledged === "true";
          // One statement: the alerts the filter selects now, those not yet acknowledged.
          acked = await tx<{ id: number; uid: string | null }>`
            update alerts set acknowledged_at = ${now}, acknowledged_by = ${by},
              acknowledged_note = ${note}
            where acknowledged_at is null and id in (
              select al.id from alerts al left join appliances ap on ap.uid = al.uid
              where (${f.status} = 'all' or (${f.status} = 'open') = (al.resolved_at is null))
                and (${f.kind ?? null}::text is null or al.kind = ${f.kind ?? null})
                and (${f.uid ?? null}::uuid is null or al.uid = ${f.uid ?? null}::uuid)
                and (${f.site ?? null}::text is null or ap.site = ${f.site ?? null})
                and (not ${unack}::boolean or al.acknowledged_at is null)
                and al.acknowledged_at is null)
            returning id, uid`;
        }
        await noteAffected(c, affectedOf(acked), tx);
        return acked;
      });
      deps.log.info("alerts_acknowledged", { n: rows.length, by, bulk: b.ids ? "ids" : "filter" });
      return c.json({ acknowledged: rows.length });
    })
    .post("/:id/ack", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const [row] = await deps.db.sql<AlertRow>`
        with upd as (
          update alerts set acknowledged_at = coalesce(acknowledged_at, ${deps.clock.now()}),
            acknowledged_by = coalesce(acknowledged_by, ${c.get("admin")})
          where id = ${id} returning *)
        select upd.id, upd.kind, upd.uid, ap.hostname, ap.site, upd.opened_at, upd.resolved_at,
          upd.acknowledged_at, upd.acknowledged_by, upd.acknowledged_note, upd.detail,
          ap.last_beat_at, ap.next_due_at, ap.missing_since, ap.revoked_at
        from upd left join appliances ap on ap.uid = upd.uid`;
      if (!row) throw new ApiError(404, "not_found", `Alert ${id} does not exist`);
      await noteAffected(c, affectedOf([row]));
      return c.json(alertJson(row, deps.clock.now(), deps.settings.graceS));
    });
}
