/**
 * A secret shown once in the console, after a Post/Redirect/Get: the POST that creates an
 * enrolment token ({@link keepReveal}) or issues an operator's personal API token
 * ({@link keepPersonalReveal}) keeps its secret here for the operator's console session, and the
 * GET it redirects to shows it. The secret never travels in a URL or a cookie, so a reload, the
 * history or a proxy log mint or leak nothing. It is sealed with AES-256-GCM under a key derived
 * (HKDF-SHA256) from the session's cookie value, which the NOC stores only hashed, bound to what it
 * reveals (the token's kind and id), and kept {@link revealTtlS} seconds; then it is gone.
 *
 * @module
 */
import type { Db } from "../db/db.ts";
import { hashToken } from "./tokens.ts";
import { fromBase64Url, toBase64Url, utf8 } from "../../protocol/util/encoding.ts";

/** How long a new token's secret can be shown again to its session, seconds. */
export const revealTtlS = 10 * 60;

/** What is revealed: the new token and what the page says about it. */
export interface Reveal {
  /** The token's secret (`noc_enr_…`). */
  token: string;
  /** `appliance` or `local-server`. */
  purpose: string;
  /** The site the token places its enrolee in, if any. */
  site: string | null;
  /** When the token expires (ISO 8601). */
  expiresAt: string;
}

async function keyOf(session: string, usage: KeyUsage): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey("raw", utf8(session), "HKDF", false, ["deriveKey"]);
  return await crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: utf8("noc console reveal v1") },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    [usage],
  );
}

/** `value` sealed for `session`, bound to `bound` (what it reveals): `iv.ciphertext`, base64url. */
async function seal(session: string, bound: string, value: unknown): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: utf8(bound) },
      await keyOf(session, "encrypt"),
      utf8(JSON.stringify(value)),
    ),
  );
  return `${toBase64Url(iv)}.${toBase64Url(sealed)}`;
}

/** What {@link seal} sealed, or null when it does not open (another session's, or altered). */
async function unseal(session: string, bound: string, text: string): Promise<unknown> {
  const [iv, data] = text.split(".");
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: fromBase64Url(iv ?? ""), additionalData: utf8(bound) },
      await keyOf(session, "decrypt"),
      fromBase64Url(data ?? ""),
    );
    return JSON.parse(new TextDecoder().decode(plain));
  } catch {
    return null;
  }
}

/**
 * Keeps `reveal` of enrolment token `tokenId` for the session whose cookie value is `session`,
 * until `now` + {@link revealTtlS}; expired reveals of every session are swept at the same time.
 */
export async function keepReveal(
  db: Db,
  session: string,
  tokenId: number,
  reveal: Reveal,
  now: Date,
): Promise<void> {
  const text = await seal(session, String(tokenId), reveal);
  const expiresAt = new Date(now.getTime() + revealTtlS * 1000);
  await db.sql`delete from console_reveals where expires_at <= ${now}`;
  await db.sql`
    insert into console_reveals (session_hash, token_id, sealed, expires_at)
    values (${await hashToken(session)}, ${tokenId}, ${text}, ${expiresAt})
    on conflict (session_hash, token_id) do update set sealed = excluded.sealed,
      expires_at = excluded.expires_at`;
}

/**
 * The reveal of token `tokenId` kept for session `session`, or null when there is none: another
 * session's, expired, or the token was revoked (revealing stops then: nothing to copy).
 */
export async function findReveal(
  db: Db,
  session: string | undefined,
  tokenId: number,
  now: Date,
): Promise<Reveal | null> {
  if (!session || session.length > 100) return null;
  const [row] = await db.sql<{ sealed: string }>`
    select r.sealed from console_reveals r
    join enrollment_tokens t on t.id = r.token_id and t.revoked_at is null
    where r.session_hash = ${await hashToken(session)} and r.token_id = ${tokenId}
      and r.expires_at > ${now}`;
  if (!row) return null;
  return await unseal(session, String(tokenId), row.sealed) as Reveal | null;
}

/** Forgets the reveal of token `tokenId` for session `session` (the operator is done with it). */
export async function dropReveal(db: Db, session: string, tokenId: number): Promise<void> {
  await db.sql`
    delete from console_reveals
    where session_hash = ${await hashToken(session)} and token_id = ${tokenId}`;
}

/** What is revealed of a new personal API token. */
export interface PersonalReveal {
  /** The operator it signs in as. */
  name: string;
  /** Its label. */
  label: string;
  /** The token's secret (`noc_op_…`). */
  token: string;
}

/**
 * Keeps `reveal` of personal API token `tokenId` for the session whose cookie value is `session`,
 * until `now` + {@link revealTtlS}; expired personal reveals of every session are swept with it.
 */
export async function keepPersonalReveal(
  db: Db,
  session: string,
  tokenId: number,
  reveal: PersonalReveal,
  now: Date,
): Promise<void> {
  const text = await seal(session, `operator-token:${tokenId}`, reveal);
  const expiresAt = new Date(now.getTime() + revealTtlS * 1000);
  await db.sql`delete from console_operator_reveals where expires_at <= ${now}`;
  await db.sql`
    insert into console_operator_reveals (session_hash, token_id, sealed, expires_at)
    values (${await hashToken(session)}, ${tokenId}, ${text}, ${expiresAt})
    on conflict (session_hash, token_id) do update set sealed = excluded.sealed,
      expires_at = excluded.expires_at`;
}

/**
 * The reveal of personal token `tokenId` of operator `name` kept for session `session`, or null:
 * none, another session's, expired, another operator's, or the token was revoked or its operator
 * disabled (revealing stops then).
 */
export async function findPersonalReveal(
  db: Db,
  session: string | undefined,
  name: string,
  tokenId: number,
  now: Date,
): Promise<PersonalReveal | null> {
  if (!session || session.length > 100) return null;
  const [row] = await db.sql<{ sealed: string }>`
    select r.sealed from console_operator_reveals r
    join operator_tokens t on t.id = r.token_id and t.revoked_at is null
    join operators o on o.id = t.operator_id and o.disabled_at is null and o.name = ${name}
    where r.session_hash = ${await hashToken(session)} and r.token_id = ${tokenId}
      and r.expires_at > ${now}`;
  if (!row) return null;
  const got = await unseal(session, `operator-token:${tokenId}`, row.sealed) as
    | PersonalReveal
    | null;
  return got && got.name === name ? got : null;
}

/** Forgets the reveal of personal token `tokenId` for session `session`. */
export async function dropPersonalReveal(db: Db, session: string, tokenId: number): Promise<void> {
  await db.sql`
    delete from console_operator_reveals
    where session_hash = ${await hashToken(session)} and token_id = ${tokenId}`;
}
