/**
 * Named operators: accounts with a role (`admin`, `operator`, `viewer`), a password hashed with
 * scrypt, and personal API tokens stored hashed. What each role may do is {@link roleTable}; the
 * admin API enforces it ({@link neededRole}), and the console only hides what a role cannot use.
 *
 * Passwords: scrypt (RFC 7914) with N = 2^15, r = 8, p = 1, a random 16-byte salt and a 32-byte
 * key, stored as `scrypt$N$r$p$salt$key` (base64url); compared in constant time. A password is
 * 12 to 256 characters (at most 1,024 bytes): the length is checked before anything is hashed.
 *
 * @module
 */
import { scrypt, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import type { Db } from "../db/db.ts";
import { fromBase64Url, toBase64Url, utf8 } from "../../protocol/util/encoding.ts";
import { hashToken } from "./tokens.ts";
import { expectRevision, type IfMatch } from "./revisions.ts";

/** The roles, least first. */
export const roles = ["viewer", "operator", "admin"] as const;

/** A role. */
export type Role = (typeof roles)[number];

/** True when `has` is `need` or more. */
export function roleAllows(has: Role, need: Role): boolean {
  return roles.indexOf(has) >= roles.indexOf(need);
}

/**
 * What each admin API resource needs, by its path under `/v1/admin` (the longest matching prefix,
 * at a `/` boundary, wins): `read` for GET and HEAD, `write` for every other method. A path no row
 * matches needs `admin` (fail closed). docs/operations.md shows the same table; a test checks that
 * every admin route of the OpenAPI description matches a row.
 */
export const roleTable: ReadonlyArray<{ prefix: string; read: Role; write: Role }> = [
  { prefix: "/appliances", read: "viewer", write: "operator" },
  { prefix: "/alerts", read: "viewer", write: "operator" },
  { prefix: "/maintenance", read: "viewer", write: "operator" },
  { prefix: "/wake", read: "viewer", write: "operator" },
  { prefix: "/fleet", read: "viewer", write: "operator" },
  { prefix: "/sweep", read: "viewer", write: "operator" },
  { prefix: "/notices", read: "viewer", write: "operator" },
  { prefix: "/auth-failures", read: "viewer", write: "operator" },
  { prefix: "/enrollment-tokens", read: "viewer", write: "operator" },
  { prefix: "/local-servers", read: "viewer", write: "operator" },
  { prefix: "/packages", read: "viewer", write: "operator" },
  { prefix: "/files", read: "viewer", write: "operator" },
  { prefix: "/components", read: "viewer", write: "operator" },
  { prefix: "/apps", read: "viewer", write: "operator" },
  { prefix: "/assignments", read: "viewer", write: "operator" },
  { prefix: "/holds", read: "viewer", write: "operator" },
  { prefix: "/rollouts", read: "viewer", write: "operator" },
  { prefix: "/install-windows", read: "viewer", write: "operator" },
  { prefix: "/me", read: "viewer", write: "admin" },
  { prefix: "/audit", read: "operator", write: "admin" },
  { prefix: "/release-keys", read: "viewer", write: "admin" },
  { prefix: "/operators", read: "admin", write: "admin" },
];

/** The row of {@link roleTable} for `path` (under `/v1/admin`), or null (then: admin only). */
export function roleRow(path: string): (typeof roleTable)[number] | null {
  let best: (typeof roleTable)[number] | null = null;
  for (const row of roleTable) {
    const hit = path === row.prefix || path.startsWith(`${row.prefix}/`) ||
      path.startsWith(`${row.prefix}.`);
    if (hit && (!best || row.prefix.length > best.prefix.length)) best = row;
  }
  return best;
}

/** The least role that may send `method` to `path` (under `/v1/admin`). */
export function neededRole(method: string, path: string): Role {
  const row = roleRow(path);
  if (!row) return "admin";
  const m = method.toUpperCase();
  return m === "GET" || m === "HEAD" ? row.read : row.write;
}

/** An operator's name: lower case letters, digits, `.`, `_`, `-`; 1 to 64, starting alphanumeric. */
export const operatorName = z.string().regex(
  /^[a-z0-9][a-z0-9._-]{0,63}$/,
  "lower-case letters, digits, '.', '_' and '-' (1-64, starting with a letter or digit)",
);

/** Shortest password accepted, in characters. */
export const minPasswordLength = 12;
/** Longest password accepted, in characters (and at most 1,024 bytes). */
export const maxPasswordLength = 256;

/** A password as accepted when set: 12 to 256 characters, at most 1,024 bytes. */
export const passwordSchema = z.string().min(minPasswordLength).max(maxPasswordLength).refine(
  (p) => utf8(p).length <= 1024,
  "at most 1,024 bytes",
);

/** scrypt parameters of new hashes (N = 2^15, r = 8, p = 1; 32 MiB of memory, 32-byte key). */
export const scryptParams = { N: 32768, r: 8, p: 1, keyLength: 32 } as const;

function derive(
  password: string,
  salt: Uint8Array,
  p: { N: number; r: number; p: number; keyLength: number },
): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    scrypt(
      utf8(password),
      salt,
      p.keyLength,
      { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 1024 * 1024 },
      (err, key) => err ? reject(err) : resolve(new Uint8Array(key)),
    )
  );
}

/** The stored form of `password`: `scrypt$N$r$p$salt$key` with a new random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const key = await derive(password, salt, scryptParams);
  const { N, r, p } = scryptParams;
  return `scrypt$${N}$${r}$${p}$${toBase64Url(salt)}$${toBase64Url(key)}`;
}

/** A hash of nothing anyone knows, checked when there is no account, so both take as long. */
const decoy = `scrypt$32768$8$1$${"A".repeat(22)}$${"A".repeat(43)}`;

/**
 * True when `password` matches `stored` (constant-time compare). A password over the length
 * bounds, or a stored value that is not a hash this code made, never matches; `stored` null
 * (no account, or no password) is checked against a decoy so it takes as long, and fails.
 */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const bounded = password.length <= maxPasswordLength && utf8(password).length <= 1024;
  const m = /^scrypt\$(\d{1,7})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9_-]{16,64})\$([A-Za-z0-9_-]{43})$/
    .exec(stored ?? decoy);
  if (!m) return false;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Only parameters this code would make: a tampered row cannot ask for a huge computation.
  if (N < 1024 || N > 1048576 || (N & (N - 1)) !== 0 || r < 1 || r > 16 || p < 1 || p > 4) {
    return false;
  }
  const expected = fromBase64Url(m[5]!);
  const got = await derive(bounded ? password : "", fromBase64Url(m[4]!), {
    N,
    r,
    p,
    keyLength: expected.length,
  });
  return bounded && stored !== null && timingSafeEqual(got, expected);
}

/** Prefix of personal API tokens. */
export const operatorTokenPrefix = "noc_op_";

/** A new personal API token (256 random bits). */
export function newOperatorToken(): string {
  return operatorTokenPrefix + toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/** An operator as the API answers it (never a hash). */
export interface OperatorView {
  /** Its name. */
  name: string;
  /** Its role. */
  role: Role;
  /** Whether a password is set. */
  hasPassword: boolean;
  /** When it was disabled (it can do nothing then), or null. */
  disabledAt: string | null;
  /** When it was created, and by whom. */
  createdAt: string;
  /** Who created it (operator name or admin token label). */
  createdBy: string;
  /** Its last console sign-in, or null. */
  lastSignInAt: string | null;
  /** Its personal API tokens (unrevoked first), without their secrets. */
  tokens: Array<{ id: number; label: string; createdAt: string; revokedAt: string | null }>;
  /** Its revision (migration 027; role, disabling, password): the ETag of its GET. */
  revision: number;
}

const iso = (d: unknown) =>
  d === null || d === undefined ? null : new Date(d as string).toISOString();

interface OperatorRow {
  id: string | number;
  name: string;
  role: Role;
  has_password: boolean;
  disabled_at: Date | null;
  created_at: Date;
  created_by: string;
  last_sign_in_at: Date | null;
  revision: number;
}

/** Every operator (by name), or the one named `name`, with their tokens. */
export async function listOperators(
  db: Db,
  name?: string,
  page: { after?: string | null; limit?: number } = {},
): Promise<OperatorView[]> {
  const after = page.after ?? null;
  const rows = await db.sql<OperatorRow>`
    select id, name, role, password_hash is not null as has_password, disabled_at, created_at,
      created_by, last_sign_in_at, revision
    from operators where (${name ?? null}::text is null or name = ${name ?? null})
      and (${after}::text is null or name > ${after}::text)
    order by name limit ${page.limit ?? 1000}`;
  if (rows.length === 0) return [];
  const ids = rows.map((r) => Number(r.id));
  const tokens = await db.sql<
    {
      id: string | number;
      operator_id: string | number;
      label: string;
      created_at: Date;
      revoked_at: Date | null;
    }
  >`
    select id, operator_id, label, created_at, revoked_at from operator_tokens
    where operator_id = any(${ids}::bigint[])
    order by revoked_at is not null, id`;
  return rows.map((r) => ({
    name: r.name,
    role: r.role,
    hasPassword: r.has_password,
    disabledAt: iso(r.disabled_at),
    createdAt: iso(r.created_at)!,
    createdBy: r.created_by,
    lastSignInAt: iso(r.last_sign_in_at),
    tokens: tokens.filter((t) => Number(t.operator_id) === Number(r.id)).map((t) => ({
      id: Number(t.id),
      label: t.label,
      createdAt: iso(t.created_at)!,
      revokedAt: iso(t.revoked_at),
    })),
    revision: Number(r.revision),
  }));
}

/** One operator, or null. */
export async function getOperator(db: Db, name: string): Promise<OperatorView | null> {
  return (await listOperators(db, name))[0] ?? null;
}

/**
 * Creates operator `name` with `role` (and `password`, hashed, if given); false when the name is
 * taken.
 */
export async function createOperator(
  db: Db,
  o: { name: string; role: Role; password?: string | undefined; by: string },
  now: Date,
): Promise<boolean> {
  const hash = o.password === undefined ? null : await hashPassword(o.password);
  const rows = await db.sql`
    insert into operators (name, role, password_hash, created_at, created_by)
    values (${o.name}, ${o.role}, ${hash}, ${now}, ${o.by})
    on conflict (name) do nothing returning id`;
  return rows.length === 1;
}

/**
 * Changes operator `name`'s role and/or disables (or enables) them. A change of role or a
 * disabling ends their console sessions. False when there is no such operator.
 */
export async function updateOperator(
  db: Db,
  name: string,
  change: { role?: Role | undefined; disabled?: boolean | undefined },
  now: Date,
  expect: IfMatch | null = null,
): Promise<boolean> {
  return await db.begin(async (sql) => {
    const [row] = await sql<
      { id: string | number; role: Role; disabled_at: Date | null; revision: number }
    >`
      select id, role, disabled_at, revision from operators where name = ${name} for update`;
    if (!row) return false;
    expectRevision(expect, row.revision);
    const role = change.role ?? row.role;
    const disabledAt = change.disabled === undefined
      ? row.disabled_at
      : change.disabled
      ? row.disabled_at ?? now
      : null;
    await sql`update operators set role = ${role}, disabled_at = ${disabledAt}
      where id = ${row.id}`;
    if (role !== row.role || (disabledAt !== null && row.disabled_at === null)) {
      await sql`delete from admin_sessions where operator_id = ${row.id}`;
    }
    return true;
  });
}

/** Sets operator `name`'s password (ending their console sessions); false when there is none. */
export async function setPassword(
  db: Db,
  name: string,
  password: string,
  expect: IfMatch | null = null,
): Promise<boolean> {
  const hash = await hashPassword(password);
  return await db.begin(async (sql) => {
    const [cur] = await sql<{ revision: number }>`
      select revision from operators where name = ${name} for update`;
    if (cur) expectRevision(expect, cur.revision);
    const rows = await sql<{ id: string | number }>`
      update operators set password_hash = ${hash} where name = ${name} returning id`;
    if (rows.length === 0) return false;
    await sql`delete from admin_sessions where operator_id = ${rows[0]!.id}`;
    return true;
  });
}

/** Issues a personal API token for operator `name`; null when there is none. */
export async function issueToken(
  db: Db,
  name: string,
  label: string,
  now: Date,
): Promise<{ id: number; label: string; token: string; createdAt: string } | null> {
  const token = newOperatorToken();
  const rows = await db.sql<{ id: string | number }>`
    insert into operator_tokens (operator_id, token_hash, label, created_at)
    select id, ${await hashToken(token)}, ${label}, ${now} from operators where name = ${name}
    returning id`;
  if (rows.length === 0) return null;
  return { id: Number(rows[0]!.id), label, token, createdAt: now.toISOString() };
}

/**
 * Revokes personal token `id` of operator `name` (ending the console sessions opened with it);
 * false when they have no such unrevoked token.
 */
export async function revokeToken(db: Db, name: string, id: number, now: Date): Promise<boolean> {
  const rows = await db.sql`
    update operator_tokens t set revoked_at = ${now}
    from operators o
    where t.id = ${id} and t.operator_id = o.id and o.name = ${name} and t.revoked_at is null
    returning t.id`;
  return rows.length === 1;
}

/** A signed-in identity: who, with which role. */
export interface Actor {
  /** Operator name, or the admin token's label. */
  name: string;
  /** Their role now. */
  role: Role;
  /** The operator's id (null for an admin token). */
  operatorId: number | null;
  /** The personal token used (null for a password or an admin token). */
  tokenId: number | null;
}

/** The enabled operator whose unrevoked personal token is `token`, or null. */
export async function operatorByToken(db: Db, token: string): Promise<Actor | null> {
  if (!token.startsWith(operatorTokenPrefix) || token.length > 200) return null;
  const [row] = await db.sql<
    { id: string | number; name: string; role: Role; token_id: string | number }
  >`
    select o.id, o.name, o.role, t.id as token_id from operator_tokens t
    join operators o on o.id = t.operator_id
    where t.token_hash = ${await hashToken(token)} and t.revoked_at is null
      and o.disabled_at is null`;
  return row
    ? { name: row.name, role: row.role, operatorId: Number(row.id), tokenId: Number(row.token_id) }
    : null;
}

/**
 * The enabled operator `name` if `password` is theirs, or null. Takes as long for an unknown
 * name, a disabled account or one without a password (a decoy hash is checked).
 */
export async function operatorByPassword(
  db: Db,
  name: string,
  password: string,
): Promise<Actor | null> {
  const known = operatorName.safeParse(name).success;
  const [row] = known
    ? await db.sql<{ id: string | number; name: string; role: Role; password_hash: string | null }>`
      select id, name, role, password_hash from operators
      where name = ${name} and disabled_at is null`
    : [];
  const ok = await verifyPassword(password, row?.password_hash ?? null);
  return ok && row
    ? { name: row.name, role: row.role, operatorId: Number(row.id), tokenId: null }
    : null;
}

/** Records operator `id`'s console sign-in time. */
export async function touchSignIn(db: Db, id: number, now: Date): Promise<void> {
  await db.sql`update operators set last_sign_in_at = ${now} where id = ${id}`;
}
