/** `/v1/admin/enrollment-tokens`: one-time enrolment tokens (shown once, stored hashed). */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { z } from "zod";
import { createEnrollmentTokenSchema, idParam, limitQuery } from "../../../protocol/schemas.ts";
import {
  createEnrollmentToken,
  tokenJson,
  type TokenRow,
} from "../../services/enrollment_tokens.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { idAfter, pageOf } from "./paging.ts";
import type { Sql } from "../../db/db.ts";
import { expectRevision, ifMatchOf, refusingStale, setEtag } from "./revisions.ts";

/**
 * `POST /v1/admin/enrollment-tokens`'s body: {@link createEnrollmentTokenSchema} and
 * `reenrolment` — what an appliance enrolling with the token does when an active appliance of
 * the same name is in its site: `supersede` it (retired, linked to the new one) or be refused
 * (409 `appliance_exists`); absent: the NOC's setting (`NOC_REENROLMENT`). Appliance tokens only.
 */
export const createTokenBody = createEnrollmentTokenSchema.safeExtend({
  reenrolment: z.enum(["supersede", "refuse"], {
    message: 'must be "supersede" or "refuse"',
  }).optional(),
}).refine((t) => t.reenrolment === undefined || t.purpose !== "local-server", {
  path: ["reenrolment"],
  message: "only an appliance token decides re-enrolment",
});

/** The enrolment token admin routes. */
export function enrollmentTokenRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("json", createTokenBody), async (c) => {
      const { token, row } = await createEnrollmentToken(deps, c.req.valid("json"));
      return c.json({ ...tokenJson(row, deps.clock.now()), token }, 201);
    })
    .get("/", validate("query", limitQuery), async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const after = idAfter(cursor);
      const rows = await deps.db.sql<TokenRow>`
        select id, label, site, channel, tags, reenrolment, purpose, created_at, expires_at, used_at,
          used_by, revoked_at, revision
        from enrollment_tokens where (${after}::bigint is null or id < ${after}::bigint)
        order by id desc limit ${limit + 1}`;
      const now = deps.clock.now();
      const page = pageOf(rows, limit, (r) => [Number(r.id)]);
      return c.json({
        items: page.rows.map((r) => tokenJson(r, now)),
        nextCursor: page.nextCursor,
      });
    })
    .delete("/:id", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const m = ifMatchOf(c);
      const one = async (sql: Sql, lock: boolean) =>
        (lock
          ? await sql<TokenRow>`
        select id, label, site, channel, tags, reenrolment, purpose, created_at, expires_at, used_at,
          used_by, revoked_at, revision from enrollment_tokens where id = ${id} for update`
          : await sql<TokenRow>`
        select id, label, site, channel, tags, reenrolment, purpose, created_at, expires_at, used_at,
          used_by, revoked_at, revision from enrollment_tokens where id = ${id}`)[0];
      const row = await refusingStale(
        `Enrolment token ${id}`,
        m,
        () =>
          deps.db.begin(async (tx) => {
            const cur = await one(tx, true);
            if (!cur) throw new ApiError(404, "not_found", `Enrolment token ${id} does not exist`);
            expectRevision(m, cur.revision);
            const [r] = await tx<TokenRow>`
        update enrollment_tokens set revoked_at = coalesce(revoked_at, ${deps.clock.now()}) where id = ${id}
        returning id, label, site, channel, tags, reenrolment, purpose, created_at, expires_at, used_at,
          used_by, revoked_at, revision`;
            return r!;
          }),
        async () => {
          const r = await one(deps.db.sql, false);
          return r ? tokenJson(r, deps.clock.now()) : null;
        },
      );
      setEtag(c, row.revision);
      return c.json(tokenJson(row, deps.clock.now()));
    });
}
