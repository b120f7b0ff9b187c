/** `/v1/admin/apps/:app/fileinfo`: install instructions for an application's files (spec, FIGURE 12). */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { appParam, fileinfoParam, fileinfoSchema } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { bumpCatalogEpoch } from "../../services/catalogs.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { fileinfoJson, type FileinfoRow } from "../../services/fileinfo.ts";

/** `/v1/admin/apps/:app/fileinfo`: install instructions for an application's files. */
export function fileinfoAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/:app/fileinfo", validate("param", appParam), async (c) => {
      const { app } = c.req.valid("param");
      const rows = await deps.db.sql<FileinfoRow>`
        select app, name, destination, mode, action, upload_dir, upload_server, updated_at
        from fileinfo where app = ${app} order by name`;
      return c.json({ app, items: rows.map(fileinfoJson) });
    })
    .put(
      "/:app/fileinfo/:name",
      validate("param", fileinfoParam),
      validate("json", fileinfoSchema),
      async (c) => {
        const { app, name } = c.req.valid("param");
        const f = c.req.valid("json");
        const now = deps.clock.now();
        const row = await deps.db.begin(async (tx) => {
          const [r] = await tx<FileinfoRow>`
          insert into fileinfo (app, name, destination, mode, action, upload_dir, upload_server, updated_at)
          values (${app}, ${name}, ${f.destination}, ${f.mode.padStart(4, "0")},
            ${f.action ? JSON.stringify(f.action) : null}, ${f.uploadDir ?? null}, ${
            f.uploadServer ?? null
          }, ${now})
          on conflict (app, name) do update set destination = excluded.destination, mode = excluded.mode,
            action = excluded.action, upload_dir = excluded.upload_dir, upload_server = excluded.upload_server,
            updated_at = excluded.updated_at
          returning app, name, destination, mode, action, upload_dir, upload_server, updated_at`;
          await bumpCatalogEpoch(tx);
          return r!;
        });
        deps.log.info("fileinfo_saved", { app, name, by: c.get("admin") });
        return c.json(fileinfoJson(row));
      },
    )
    .delete("/:app/fileinfo/:name", validate("param", fileinfoParam), async (c) => {
      const { app, name } = c.req.valid("param");
      const rows = await deps.db.begin(async (tx) => {
        const r =
          await tx`delete from fileinfo where app = ${app} and name = ${name} returning name`;
        if (r.length > 0) await bumpCatalogEpoch(tx);
        return r;
      });
      if (rows.length === 0) throw new ApiError(404, "not_found", `No fileinfo for ${app}/${name}`);
      return c.body(null, 204);
    });
}
