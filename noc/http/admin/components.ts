/** `/v1/admin/components`: published component versions, with filters. */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { idParam, listComponentsQuery } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { componentJson, type ComponentRow } from "../../services/publishing.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { idAfter, pageOf } from "./paging.ts";

/** `/v1/admin/components`: published components. */
export function componentAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", listComponentsQuery), async (c) => {
      const f = c.req.valid("query");
      const after = idAfter(f.cursor);
      const rows = await deps.db.sql<ComponentRow>`
        select id, kind, app, name, version, size, sha256, content_sha256, signer_kid, created_at from components
        where (${f.kind ?? null}::text is null or kind = ${f.kind ?? null})
          and (${f.app ?? null}::text is null or app = ${f.app ?? null})
          and (${f.name ?? null}::text is null or name = ${f.name ?? null})
          and (${after}::bigint is null or id < ${after}::bigint)
        order by id desc limit ${f.limit + 1}`;
      const page = pageOf(rows, f.limit, (r) => [Number(r.id)]);
      return c.json({ items: page.rows.map(componentJson), nextCursor: page.nextCursor });
    })
    .get("/:id", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const [row] = await deps.db.sql<ComponentRow & { header: unknown }>`
        select id, kind, app, name, version, size, sha256, content_sha256, signer_kid, created_at, header
        from components where id = ${id}`;
      if (!row) throw new ApiError(404, "not_found", `Component ${id} does not exist`);
      const [sent] = await deps.db.sql<{ n: number }>`
        select count(*)::int as n from deliveries where component_id = ${id}`;
      return c.json({ ...componentJson(row), header: row.header, sentTo: sent!.n });
    });
}
