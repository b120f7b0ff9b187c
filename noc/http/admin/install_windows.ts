/**
 * `/v1/admin/install-windows` (issue 22 item 5): when appliances may install.
 *
 * - `GET /` lists the windows (paged: `limit`, `cursor`; `scope` filters).
 * - `GET /:scope/:value` one window (`scope`: `appliance` (a UID), `site` or `model`).
 * - `PUT /:scope/:value` `{ start, end, timeZone, reason? }` sets it: 201 created, 200 replaced.
 *   An appliance that does not exist is 404; a site or model no appliance has is 400 unless
 *   `allowUnknown` (as assignments' `allowUnknownTarget`).
 * - `DELETE /:scope/:value` removes it (204; 404 when there is none).
 *
 * Each window has a `revision` (ETag); PUT and DELETE take `If-Match`, and a change against an
 * old revision is refused (409 `stale_revision`, noc/http/admin/revisions.ts).
 *
 * Every change bumps the catalog epoch: catalogs carry the window that applies (the appliance's,
 * else its site's, else its model's) from their next request on (noc/services/install_windows.ts).
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../../../protocol/http/errors.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { installWindowTimes, opensSomeTime } from "../../../protocol/install_window.ts";
import { pageFields } from "../../../protocol/schemas.ts";
import {
  deleteWindow,
  getWindow,
  listWindows,
  putWindow,
  type WindowScope,
} from "../../services/install_windows.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { idAfter, pageOf } from "./paging.ts";
import { expectRevision, ifMatchOf, refusingStale } from "./revisions.ts";

const scope = z.enum(["appliance", "site", "model"]);

/** `/:scope/:value`. */
export const installWindowParam = z.strictObject({
  scope,
  value: z.string().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, {
    message: "an appliance UID, or a site or model name",
  }),
});

/** `GET /v1/admin/install-windows`. */
export const installWindowListQuery = z.strictObject({ ...pageFields, scope: scope.optional() });

/** `PUT /v1/admin/install-windows/:scope/:value`. */
export const installWindowBody = opensSomeTime(z.strictObject({
  ...installWindowTimes,
  reason: z.string().max(500).optional(),
  allowUnknown: z.boolean().optional(),
}));

/** Whether any appliance (not revoked) has `value` as its `scope`. */
async function known(deps: AppDeps, s: WindowScope, value: string): Promise<boolean> {
  const sql = deps.db.sql;
  if (s === "appliance") {
    if (!z.uuid().safeParse(value).success) return false;
    return (await sql`select 1 from appliances where uid = ${value}::uuid`).length > 0;
  }
  const rows = s === "site"
    ? await sql`select 1 from appliances where site = ${value} and revoked_at is null limit 1`
    : await sql`select 1 from appliances where model = ${value} and revoked_at is null limit 1`;
  return rows.length > 0;
}

/** The install-window admin routes. */
export function installWindowAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", installWindowListQuery), async (c) => {
      const q = c.req.valid("query");
      const page = pageOf(
        await listWindows(deps.db.sql, idAfter(q.cursor), q.limit, q.scope),
        q.limit,
        (w) => [w.id],
      );
      return c.json({ items: page.rows, nextCursor: page.nextCursor });
    })
    .get("/:scope/:value", validate("param", installWindowParam), async (c) => {
      const p = c.req.valid("param");
      const w = await getWindow(deps.db.sql, p.scope, p.value);
      if (!w) throw new ApiError(404, "not_found", `No install window for ${p.scope} "${p.value}"`);
      c.header("ETag", `"${w.revision}"`);
      return c.json(w);
    })
    .put(
      "/:scope/:value",
      validate("param", installWindowParam),
      validate("json", installWindowBody),
      async (c) => {
        const p = c.req.valid("param");
        const b = c.req.valid("json");
        if (!await known(deps, p.scope, p.value)) {
          if (p.scope === "appliance") {
            throw new ApiError(404, "not_found", `Appliance "${p.value}" does not exist`);
          }
          if (!b.allowUnknown) {
            const message = `no appliance (not revoked) has ${p.scope} "${p.value}"`;
            throw new ApiError(
              400,
              "invalid_param",
              `Install window for ${p.scope} "${p.value}": ${message}; check the name, or set ` +
                "allowUnknown to give it before its appliances enrol",
              { issues: [{ path: "value", message }] },
            );
          }
        }
        const by = c.get("admin");
        const m = ifMatchOf(c);
        const r = await refusingStale(
          `Install window of ${p.scope} "${p.value}"`,
          m,
          () =>
            deps.db.begin(async (tx) => {
              // A change against an old revision is refused (409 stale_revision); with If-Match
              // and no window yet, too (there is nothing to match).
              if (m) {
                const [cur] = await tx<{ revision: number }>`
                  select revision from install_windows
                  where scope_type = ${p.scope} and scope_value = ${p.value} for update`;
                expectRevision(m, cur?.revision ?? null);
              }
              return await putWindow(
                tx,
                p.scope,
                p.value,
                { ...b, reason: b.reason ?? "" },
                by,
                deps.clock.now(),
              );
            }),
          () => getWindow(deps.db.sql, p.scope, p.value),
        );
        deps.log.info("install_window_set", { ...p, start: b.start, end: b.end, by });
        c.header("ETag", `"${r.window.revision}"`);
        return c.json(r.window, r.created ? 201 : 200);
      },
    )
    .delete("/:scope/:value", validate("param", installWindowParam), async (c) => {
      const p = c.req.valid("param");
      const m = ifMatchOf(c);
      const gone = await refusingStale(
        `Install window of ${p.scope} "${p.value}"`,
        m,
        () =>
          deps.db.begin(async (tx) => {
            const [cur] = await tx<{ revision: number }>`
              select revision from install_windows
              where scope_type = ${p.scope} and scope_value = ${p.value} for update`;
            if (cur) expectRevision(m, cur.revision);
            return await deleteWindow(tx, p.scope, p.value);
          }),
        () => getWindow(deps.db.sql, p.scope, p.value),
      );
      if (!gone) {
        throw new ApiError(404, "not_found", `No install window for ${p.scope} "${p.value}"`);
      }
      deps.log.info("install_window_removed", { ...p, by: c.get("admin") });
      return c.body(null, 204);
    });
}
