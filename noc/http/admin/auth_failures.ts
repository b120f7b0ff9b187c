/** `/v1/admin/auth-failures`: refused identities (unknown, revoked or mismatching keys), newest first. */
import { Hono } from "hono";
import { authFailuresQuery } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { idAfter, pageOf } from "./paging.ts";

/** `/v1/admin/auth-failures`: refused identities, newest first (`uid`: of one appliance's). */
export function authFailureAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", authFailuresQuery), async (c) => {
      const { limit, uid, cursor } = c.req.valid("query");
      const after = idAfter(cursor);
      type Row = {
        id: number;
        at: Date;
        reason: string;
        keyid: string | null;
        method: string;
        path: string;
        address: string | null;
        held_back: number;
        proven: boolean;
      };
      const rows = uid === undefined
        ? await deps.db.sql<Row>`select id, at, reason, keyid, method, path, address, held_back,
           proven from auth_failures where (${after}::bigint is null or id < ${after}::bigint)
           order by id desc limit ${limit + 1}`
        // Those made under one appliance's identity: its UID is the key id (index of 019).
        : await deps.db.sql<Row>`select id, at, reason, keyid, method, path, address, held_back,
           proven from auth_failures where keyid = ${uid.toLowerCase()}
             and (${after}::bigint is null or id < ${after}::bigint)
           order by id desc limit ${limit + 1}`;
      const page = pageOf(rows, limit, (r) => [Number(r.id)]);
      // `heldBack`: refusals of the same address (or enrolled identity) counted but not written
      // since its previous record; `proven`: the signature verified under the enrolled key it names.
      return c.json({
        nextCursor: page.nextCursor,
        items: page.rows.map(({ held_back, ...r }) => ({
          ...r,
          at: r.at.toISOString(),
          heldBack: held_back,
        })),
      });
    });
}
