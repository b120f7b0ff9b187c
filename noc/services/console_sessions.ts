/**
 * Operator console sessions: signing in with an admin token opens a session
 * whose random id travels in an HttpOnly, SameSite=Strict cookie and is kept
 * hashed; every form carries the session's CSRF token, compared in constant
 * time. Sessions last 12 hours, and end when the admin token they were
 * opened with is revoked.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import type { Db } from "../db/db.ts";
import { hashToken } from "./tokens.ts";
import { toBase64Url, utf8 } from "../../protocol/util/encoding.ts";

/** Name of the session cookie. */
export const sessionCookie = "noc_session";
/** Session lifetime, seconds. */
export const sessionTtlS = 12 * 3600;

/** A signed-in operator. */
export interface ConsoleSession {
  /** The admin token's label. */
  label: string;
  /** The CSRF token forms must carry. */
  csrf: string;
}

function random(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/** Opens a session for admin token `token` (labelled `label`); returns its cookie value and CSRF token. */
export async function openSession(
  db: Db,
  token: string,
  label: string,
  now: Date,
): Promise<{ id: string; csrf: string; expiresAt: Date }> {
  const id = random();
  const csrf = random();
  const expiresAt = new Date(now.getTime() + sessionTtlS * 1000);
  await db.sql`
    insert into admin_sessions (id_hash, token_hash, label, csrf, created_at, expires_at)
    values (${await hashToken(id)}, ${await hashToken(
    token,
  )}, ${label}, ${csrf}, ${now}, ${expiresAt})`;
  // Expired sessions are swept as new ones open.
  await db.sql`delete from admin_sessions where expires_at < ${now}`;
  return { id, csrf, expiresAt };
}

/** The live session with cookie value `id`, or null. */
export async function findSession(
  db: Db,
  id: string | undefined,
  now: Date,
): Promise<ConsoleSession | null> {
  if (!id || id.length > 100) return null;
  const [row] = await db.sql<ConsoleSession>`
    select s.label, s.csrf from admin_sessions s
    join admin_tokens t on t.token_hash = s.token_hash and t.revoked_at is null
    where s.id_hash = ${await hashToken(id)} and s.expires_at > ${now}`;
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
