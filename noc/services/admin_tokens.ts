/**
 * Admin tokens at rest: stored as hashes, looked up, ensured and revoked by label; and who a
 * bearer token (admin token or an operator's personal token) signs in as.
 */
import type { Db } from "../db/db.ts";
import { hashToken } from "./tokens.ts";
import { type Actor, operatorByToken, operatorTokenPrefix } from "./operators.ts";

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

/**
 * Who bearer token `token` signs in as: an enabled operator's unrevoked personal token
 * (`noc_op_…`), with their current role, or an unrevoked admin token (role `admin`, its label as
 * the name); null when it is neither.
 */
export async function bearerActor(db: Db, token: string): Promise<Actor | null> {
  if (token.startsWith(operatorTokenPrefix)) {
    const operator = await operatorByToken(db, token);
    if (operator) return operator;
  }
  const label = await adminTokenLabel(db, token);
  return label === null ? null : { name: label, role: "admin", operatorId: null, tokenId: null };
}
