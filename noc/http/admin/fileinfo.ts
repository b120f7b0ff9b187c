/**
 * `/v1/admin/apps/:app/fileinfo`: install instructions for an application's files (spec,
 * FIGURE 12). A saved fileinfo is signed (protocol/fileinfo.ts): with the release-key signature
 * given in the body, or by the NOC itself when its key may sign packages; in release-keys-only
 * mode one without a release key's signature is refused.
 */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { appParam, fileinfoParam, limitQuery } from "../../../protocol/schemas.ts";
import { signedFileinfoSchema } from "../../../protocol/fileinfo.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { bumpCatalogEpoch } from "../../services/catalogs.ts";
import { fileinfoDependents, refuseInUse } from "../../services/dependents.ts";
import { lockAssignments } from "../../services/component_limit.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { fileinfoJson, fileinfoPage, fileinfoRow, saveFileinfo } from "../../services/fileinfo.ts";
import { expectRevision, ifMatchOf, refusingStale, setEtag } from "./revisions.ts";
import { decodeCursor, nameKey, pageOf } from "./paging.ts";

/** The fileinfo of `app`/`name` as the API answers it, or null. */
async function currentFileinfo(deps: AppDeps, app: string, name: string): Promise<unknown> {
  const r = await fileinfoRow(deps.db.sql, app, name);
  return r ? fileinfoJson(r) : null;
}

/** `/v1/admin/apps/:app/fileinfo`: install instructions for an application's files. */
export function fileinfoAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get(
      "/:app/fileinfo",
      validate("param", appParam),
      validate("query", limitQuery),
      async (c) => {
        const { app } = c.req.valid("param");
        const { limit, cursor } = c.req.valid("query");
        const after = decodeCursor(cursor, nameKey)?.[0] ?? null;
        // By name, keyset on it (noc/http/admin/paging.ts).
        const page = pageOf(
          await fileinfoPage(deps.db.sql, app, after, limit),
          limit,
          (r) => [r.name],
        );
        return c.json({ app, items: page.rows.map(fileinfoJson), nextCursor: page.nextCursor });
      },
    )
    .put(
      "/:app/fileinfo/:name",
      validate("param", fileinfoParam),
      validate("json", signedFileinfoSchema),
      async (c) => {
        const { app, name } = c.req.valid("param");
        const m = ifMatchOf(c);
        const row = await refusingStale(
          `The fileinfo of ${app}/${name}`,
          m,
          () => saveFileinfo(deps, app, name, c.req.valid("json"), m),
          () => currentFileinfo(deps, app, name),
        );
        deps.log.info("fileinfo_saved", { app, name, signer: row.signer, by: c.get("admin") });
        setEtag(c, row.revision);
        return c.json(fileinfoJson(row));
      },
    )
    .delete("/:app/fileinfo/:name", validate("param", fileinfoParam), async (c) => {
      const { app, name } = c.req.valid("param");
      const m = ifMatchOf(c);
      const rows = await refusingStale(
        `The fileinfo of ${app}/${name}`,
        m,
        () =>
          deps.db.begin(async (tx) => {
            const [cur] = await tx<{ revision: number }>`
          select revision from fileinfo where app = ${app} and name = ${name} for update`;
            if (cur) expectRevision(m, cur.revision);
            // Without it an assigned file would go to the agent's state folder, not where the
            // application reads it: refused while any assignment of that file exists.
            await lockAssignments(tx);
            refuseInUse(
              `The fileinfo of ${app}/${name}`,
              await fileinfoDependents(tx, app, name),
              "delete those assignments first, or replace the fileinfo (PUT) instead",
            );
            const r =
              await tx`delete from fileinfo where app = ${app} and name = ${name} returning name`;
            if (r.length > 0) await bumpCatalogEpoch(tx);
            return r;
          }),
        () => currentFileinfo(deps, app, name),
      );
      if (rows.length === 0) throw new ApiError(404, "not_found", `No fileinfo for ${app}/${name}`);
      return c.body(null, 204);
    });
}
