/** `/v1/admin/enrollment-tokens`: one-time enrolment tokens (shown once, stored hashed). */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { createEnrollmentTokenSchema, idParam, limitQuery } from "../../../protocol/schemas.ts";
import {
  createEnrollmentToken,
  tokenJson,
  type TokenRow,
} from "../../services/enrollment_tokens.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The enrolment token admin routes. */
export function enrollmentTokenRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("json", createEnrollmentTokenSchema), async (c) => {
      const { token, row } = await createEnrollmentToken(deps, c.req.valid("json"));
      return c.json({ ...tokenJson(row, deps.clock.now()), token }, 201);
    })
    .get("/", validate("query", limitQuery), async (c) => {
      const { limit } = c.req.valid("query");
      const rows = await deps.db.sql<TokenRow>`
        select id, label, site, channel, tags, purpose, created_at, expires_at, used_at, used_by, revoked_at
        from enrollment_tokens order by id desc limit ${limit}`;
      const now = deps.clock.now();
      return c.json({ items: rows.map((r) => tokenJson(r, now)) });
    })
    .delete("/:id", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const [row] = await deps.db.sql<TokenRow>`
        update enrollment_tokens set revoked_at = coalesce(revoked_at, ${deps.clock.now()}) where id = ${id}
        returning id, label, site, channel, tags, purpose, created_at, expires_at, used_at, used_by, revoked_at`;
      if (!row) throw new ApiError(404, "not_found", `Enrolment token ${id} does not exist`);
      return c.json(tokenJson(row, deps.clock.now()));
    });
}
