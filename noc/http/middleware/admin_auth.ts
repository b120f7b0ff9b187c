/** Admin API authentication: `Authorization: Bearer <admin token>`, checked against stored hashes. */
import type { MiddlewareHandler } from "hono";
import { timingSafeEqual } from "node:crypto";
import { ApiError } from "../../../protocol/http/errors.ts";
import { hashToken } from "../../services/tokens.ts";
import type { AppDeps, AppEnv } from "../../deps.ts";
import type { Db } from "../../db/db.ts";

/**
 * Middleware requiring a valid, unrevoked admin token; sets `admin` to its
 * label. The console's in-process calls carry `internalKey` instead (a random
 * key that never leaves the process) and the signed-in operator's label.
 */
export function adminAuth(deps: AppDeps, internalKey?: string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const internal = c.req.header("x-noc-internal");
    if (internalKey !== undefined && internal !== undefined && sameText(internal, internalKey)) {
      c.set("admin", `console:${c.req.header("x-noc-admin-label") ?? "?"}`);
      return await next();
    }
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S{1,200})$/i.exec(header);
    const challenge = { "www-authenticate": 'Bearer realm="noc-admin"' };
    if (!m) {
      throw new ApiError(
        401,
        "unauthorized",
        "Admin API requires Authorization: Bearer <admin token>",
        {},
        challenge,
      );
    }
    const label = await adminTokenLabel(deps.db, m[1]!);
    if (label === null) {
      throw new ApiError(401, "unauthorized", "Admin token is not valid", {}, challenge);
    }
    c.set("admin", label);
    await next();
  };
}

function sameText(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The label of admin token `token` if it is valid and unrevoked, else null. */
export async function adminTokenLabel(db: Db, token: string): Promise<string | null> {
  const [row] = await db.sql<{ label: string }>`
    select label from admin_tokens where token_hash = ${await hashToken(token)}
      and revoked_at is null`;
  return row?.label ?? null;
}

/** Revokes every admin token labelled `label` except `keep` (rotation of a configured token). */
export async function revokeOtherAdminTokens(
  db: Db,
  label: string,
  keep: string,
  now: Date,
): Promise<number> {
  const rows = await db.sql`
    update admin_tokens set revoked_at = ${now}
    where label = ${label} and token_hash <> ${await hashToken(keep)} and revoked_at is null
    returning id`;
  return rows.length;
}

/** Stores the hash of `token` as an admin token labelled `label` (idempotent). */
export async function ensureAdminToken(
  db: Db,
  token: string,
  label: string,
  now: Date,
): Promise<void> {
  await db.sql`
    insert into admin_tokens (token_hash, label, created_at) values (${await hashToken(
    token,
  )}, ${label}, ${now})
    on conflict (token_hash) do nothing`;
}
