/** `/v1/admin/auth-failures`: refused identities (unknown, revoked or mismatching keys), newest first. */
import { Hono } from "hono";
import { limitQuery } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** `/v1/admin/auth-failures`: refused identities, newest first. */
export function authFailureAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", limitQuery), async (c) => {
      const { limit } = c.req.valid("query");
      const rows = await deps.db.sql<{
        id: number;
        at: Date;
        reason: string;
        keyid: string | null;
        method: string;
        path: string;
        address: string | null;
      }>`select id, at, reason, keyid, method, path, address from auth_failures order by id desc limit ${limit}`;
      return c.json({ items: rows.map((r) => ({ ...r, at: r.at.toISOString() })) });
    });
}
