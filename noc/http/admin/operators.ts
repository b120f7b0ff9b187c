/**
 * `/v1/admin/operators` (admin only): named operator accounts — create, list, change role,
 * disable or enable, set a password, issue and revoke personal API tokens — and `/v1/admin/me`
 * (any role): who the caller is.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../../../protocol/http/errors.ts";
import { validate } from "../../../protocol/http/validate.ts";
import {
  createOperator,
  getOperator,
  issueToken,
  listOperators,
  operatorName,
  passwordSchema,
  revokeToken,
  roles,
  setPassword,
  updateOperator,
} from "../../services/operators.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { actorOf } from "../middleware/admin_auth.ts";
import { limitQuery } from "../../../protocol/schemas.ts";
import { decodeCursor, nameKey, pageOf } from "./paging.ts";
import { ifMatchOf, refusingStale, setEtag } from "./revisions.ts";

const role = z.enum(roles);

/** Body of `POST /v1/admin/operators`. */
export const createOperatorBody = z.strictObject({
  name: operatorName,
  role,
  password: passwordSchema.optional().describe(
    "12-256 characters; without it the operator signs in only with a personal token until one is set",
  ),
});

/** Body of `PATCH /v1/admin/operators/:name`: a new role, and/or disabled (or enabled again). */
export const patchOperatorBody = z.strictObject({
  role: role.optional(),
  disabled: z.boolean().optional().describe(
    "true: the operator can do nothing (sessions end, tokens stop working); false: enabled again",
  ),
}).refine((b) => b.role !== undefined || b.disabled !== undefined, "nothing to change");

/** Body of `POST /v1/admin/operators/:name/password`. */
export const passwordBody = z.strictObject({ password: passwordSchema });

/** Body of `POST /v1/admin/operators/:name/tokens`. */
export const tokenBody = z.strictObject({
  label: z.string().trim().min(1).max(100).describe("What the token is for (shown in lists)"),
});

/** `:name` of an operator. */
export const operatorParam = z.strictObject({ name: operatorName });

/** `:name` and `:id` of an operator's personal token. */
export const operatorTokenParam = z.strictObject({
  name: operatorName,
  id: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
});

/** An operator as answered (never a password hash or a token). */
export const operatorAnswer = z.object({
  name: z.string(),
  role,
  hasPassword: z.boolean(),
  disabledAt: z.string().nullable(),
  createdAt: z.string(),
  createdBy: z.string(),
  lastSignInAt: z.string().nullable(),
  tokens: z.array(z.object({
    id: z.number().int(),
    label: z.string(),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
  })),
  revision: z.number().int().describe("Its version (the ETag): If-Match on PATCH and password"),
});

/** A new personal token: its secret, shown once. */
export const issuedToken = z.object({
  id: z.number().int(),
  label: z.string(),
  token: z.string().describe("noc_op_…: shown once; send as Authorization: Bearer"),
  createdAt: z.string(),
});

/** `GET /v1/admin/me`. */
export const meAnswer = z.object({
  name: z.string(),
  role,
  via: z.enum(["api", "console"]),
});

const missing = (name: string) =>
  new ApiError(404, "not_found", `Operator "${name}" does not exist`);

/** `/v1/admin/operators`. */
export function operatorAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", limitQuery), async (c) => {
      // By name, keyset on it (noc/http/admin/paging.ts).
      const { limit, cursor } = c.req.valid("query");
      const after = decodeCursor(cursor, nameKey)?.[0] ?? null;
      const rows = await listOperators(deps.db, undefined, { after, limit: limit + 1 });
      const page = pageOf(rows, limit, (r) => [r.name]);
      return c.json({ items: page.rows, nextCursor: page.nextCursor });
    })
    .post("/", validate("json", createOperatorBody), async (c) => {
      const b = c.req.valid("json");
      const made = await createOperator(
        deps.db,
        { name: b.name, role: b.role, password: b.password, by: actorOf(c).name },
        deps.clock.now(),
      );
      if (!made) throw new ApiError(409, "operator_exists", `Operator "${b.name}" exists already`);
      deps.log.info("operator_created", { name: b.name, role: b.role, by: c.get("admin") });
      return c.json((await getOperator(deps.db, b.name))!, 201);
    })
    .get("/:name", validate("param", operatorParam), async (c) => {
      const { name } = c.req.valid("param");
      const o = await getOperator(deps.db, name);
      if (!o) throw missing(name);
      setEtag(c, o.revision);
      return c.json(o);
    })
    .patch(
      "/:name",
      validate("param", operatorParam),
      validate("json", patchOperatorBody),
      async (c) => {
        const { name } = c.req.valid("param");
        const b = c.req.valid("json");
        const m = ifMatchOf(c);
        const found = await refusingStale(
          `Operator "${name}"`,
          m,
          () => updateOperator(deps.db, name, b, deps.clock.now(), m),
          () => getOperator(deps.db, name),
        );
        if (!found) throw missing(name);
        deps.log.info("operator_updated", { name, ...b, by: c.get("admin") });
        const o = (await getOperator(deps.db, name))!;
        setEtag(c, o.revision);
        return c.json(o);
      },
    )
    .post(
      "/:name/password",
      validate("param", operatorParam),
      validate("json", passwordBody),
      async (c) => {
        const { name } = c.req.valid("param");
        const m = ifMatchOf(c);
        const found = await refusingStale(
          `Operator "${name}"`,
          m,
          () => setPassword(deps.db, name, c.req.valid("json").password, m),
          () => getOperator(deps.db, name),
        );
        if (!found) throw missing(name);
        deps.log.info("operator_password_set", { name, by: c.get("admin") });
        const o = (await getOperator(deps.db, name))!;
        setEtag(c, o.revision);
        return c.json(o);
      },
    )
    .post(
      "/:name/tokens",
      validate("param", operatorParam),
      validate("json", tokenBody),
      async (c) => {
        const { name } = c.req.valid("param");
        const t = await issueToken(deps.db, name, c.req.valid("json").label, deps.clock.now());
        if (!t) throw missing(name);
        deps.log.info("operator_token_issued", { name, id: t.id, by: c.get("admin") });
        return c.json(t, 201);
      },
    )
    .delete("/:name/tokens/:id", validate("param", operatorTokenParam), async (c) => {
      const { name, id } = c.req.valid("param");
      if (!await revokeToken(deps.db, name, id, deps.clock.now())) {
        throw new ApiError(404, "not_found", `Operator "${name}" has no live token ${id}`);
      }
      deps.log.info("operator_token_revoked", { name, id, by: c.get("admin") });
      return c.body(null, 204);
    });
}

/** `/v1/admin/me`: the caller's name, role and how they came. */
export function meAdminRoutes() {
  return new Hono<AppEnv>().get("/", (c) => {
    const a = actorOf(c);
    return c.json({ name: a.name, role: a.role, via: a.via });
  });
}
