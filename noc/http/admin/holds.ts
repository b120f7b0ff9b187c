/**
 * `/v1/admin/holds`: appliances (or one application of one) pinned to what their latest catalog
 * lists.
 */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { holdQuery, holdSchema, idParam } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { staleCatalogOf } from "../../services/catalogs.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { noteAffected } from "../middleware/admin_auth.ts";
import { idAfter, pageOf } from "./paging.ts";
import { expectRevision, ifMatchOf, refusingStale } from "./revisions.ts";

interface HoldRow {
  id: number;
  uid: string;
  app: string | null;
  reason: string;
  created_at: Date;
  revision: number;
}

const holdJson = (r: HoldRow) => ({
  id: r.id,
  uid: r.uid,
  app: r.app,
  reason: r.reason,
  createdAt: r.created_at.toISOString(),
  // Its version: If-Match on DELETE /:id (noc/http/admin/revisions.ts).
  revision: Number(r.revision),
});

/** `/v1/admin/holds`: appliances pinned to what their latest catalog lists (see catalog_engine.ts). */
export function holdAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("json", holdSchema), async (c) => {
      const h = c.req.valid("json");
      const now = deps.clock.now();
      const row = await deps.db.begin(async (tx) => {
        const found = await tx`select 1 from appliances where uid = ${h.uid}`;
        if (found.length === 0) {
          throw new ApiError(404, "not_found", `Appliance "${h.uid}" does not exist`);
        }
        const [r] = await tx<{ id: number }>`
          insert into holds (uid, app, reason, created_at, created_by)
          values (${h.uid}, ${h.app ?? null}, ${h.reason}, ${now}, ${c.get("admin")})
          on conflict do nothing returning id`;
        if (!r) {
          throw new ApiError(409, "hold_exists", `Appliance "${h.uid}" already has that hold`);
        }
        await staleCatalogOf(tx, h.uid);
        return r;
      });
      return c.json({
        id: row.id,
        uid: h.uid,
        app: h.app ?? null,
        reason: h.reason,
        createdAt: now.toISOString(),
        revision: 1,
      }, 201);
    })
    .get("/", validate("query", holdQuery), async (c) => {
      const { uid, limit, cursor } = c.req.valid("query");
      const after = idAfter(cursor);
      const rows = await deps.db.sql<HoldRow>`
        select id, uid, app, reason, created_at, revision from holds
        where (${uid ?? null}::uuid is null or uid = ${uid ?? null}::uuid)
          and (${after}::bigint is null or id < ${after}::bigint)
        order by id desc limit ${limit + 1}`;
      const page = pageOf(rows, limit, (r) => [Number(r.id)]);
      return c.json({
        nextCursor: page.nextCursor,
        items: page.rows.map(holdJson),
      });
    })
    .delete("/:id", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const m = ifMatchOf(c);
      const rows = await refusingStale(`Hold ${id}`, m, () =>
        deps.db.begin(async (tx) => {
          const [cur] = await tx<{ revision: number }>`
            select revision from holds where id = ${id} for update`;
          if (cur) expectRevision(m, cur.revision);
          const r = await tx<{ uid: string }>`delete from holds where id = ${id} returning uid`;
          if (r[0]) await staleCatalogOf(tx, r[0].uid);
          return r;
        }), async () => {
        const [r] = await deps.db.sql<HoldRow>`
          select id, uid, app, reason, created_at, revision from holds where id = ${id}`;
        return r ? holdJson(r) : null;
      });
      if (rows.length === 0) throw new ApiError(404, "not_found", `Hold ${id} does not exist`);
      await noteAffected(c, [rows[0]!.uid]);
      return c.body(null, 204);
    });
}
