/**
 * Operator console sessions: signing in (with an operator's name and password, a personal token
 * or an admin token) opens a session whose random id travels in an HttpOnly cookie and is kept
 * hashed; every form carries the session's CSRF token, compared in constant time. Sessions last
 * 12 hours. Every request reads the session together with the account it was opened by, so a
 * session never keeps more rights than the account has now: it ends when its admin token or
 * personal token is revoked or its operator is disabled, and it has the operator's current role
 * (a change of role, a disabling or a new password also deletes the operator's sessions).
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import type { Db } from "../db/db.ts";
import { hashToken } from "./tokens.ts";
import { toBase64Url, utf8 } from "../../protocol/util/encoding.ts";
import type { Role } from "./operators.ts";

/** Name of the session cookie. */
export const sessionCookie = "noc_session";
/** Session lifetime, seconds. */
export const sessionTtlS = 12 * 3600;

/** A signed-in operator. */
export interface ConsoleSession {
  /** The operator's name, or the admin token's label. */
  label: string;
  /** Their role now (an admin token's is `admin`). */
  role: Role;
  /** The CSRF token forms must carry. */
  csrf: string;
}

/** Who a session is opened for: an admin token, or an operator (and the personal token used). */
export type SessionOwner =
  | { kind: "admin-token"; token: string; label: string }
  | { kind: "operator"; operatorId: number; name: string; tokenId: number | null };

function random(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/** Opens a session for `owner`; returns its cookie value and CSRF token. */
export async function openSession(
  db: Db,
  owner: SessionOwner,
  now: Date,
): Promise<{ id: string; csrf: string; expiresAt: Date }> {
  const id = random();
  const csrf = random();
  const expiresAt = new Date(now.getTime() + sessionTtlS * 1000);
  const tokenHash = owner.kind === "admin-token" ? await hashToken(owner.token) : null;
  const label = owner.kind === "admin-token" ? owner.label : owner.name;
  const operatorId = owner.kind === "operator" ? owner.operatorId : null;
  const tokenId = owner.kind === "operator" ? owner.tokenId : null;
  await db.sql`
    insert into admin_sessions (id_hash, token_hash, label, csrf, created_at, expires_at,
      operator_id, operator_token_id)
    values (${await hashToken(id)}, ${tokenHash}, ${label}, ${csrf}, ${now}, ${expiresAt},
      ${operatorId}, ${tokenId})`;
  // Expired sessions are swept as new ones open.
  await db.sql`delete from admin_sessions where expires_at < ${now}`;
  return { id, csrf, expiresAt };
}

/**
 * The live session with cookie value `id`, with its account's current name and role, or null
 * (no such session, expired, or its token revoked or its operator disabled).
 */
export async function findSession(
  db: Db,
  id: string | undefined,
  now: Date,
): Promise<ConsoleSession | null> {
  if (!id || id.length > 100) return null;
  const [row] = await db.sql<ConsoleSession>`
    select coalesce(o.name, s.label) as label, coalesce(o.role, 'admin') as role, s.csrf
    from admin_sessions s
    left join admin_tokens t on t.token_hash = s.token_hash
    left join operators o on o.id = s.operator_id
    left join operator_tokens ot on ot.id = s.operator_token_id
    where s.id_hash = ${await hashToken(id)} and s.expires_at > ${now}
      and (
        (s.operator_id is null and t.id is not null and t.revoked_at is null)
        or (s.operator_id is not null and o.disabled_at is null
          and (s.operator_token_id is null or ot.revoked_at is null))
      )`;
  return row ?? null;
}

/** Ends the session with cookie value `id`. */
export async function closeSession(db: Db, id: string): Promise<void> {
  await db.sql`delete from admin_sessions where id_hash = ${await hashToken(id)}`;
}

/** True when `given` is the session's CSRF token. */
export function csrfMatches(session: ConsoleSession, given: unknown): boolean {
  if (typeof given !== "string") return false;
  const a = utf8(given), b = utf8(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}
