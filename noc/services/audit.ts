/**
 * The audit log: who did what, when, and from where. One record per non-GET admin API request
 * that was authenticated (whatever its answer, role refusals included) and per console sign-in,
 * sign-out and failed sign-in. Records are kept {@link auditRetentionDays} days: each write also
 * deletes up to 100 older records, in the same statement (one round trip).
 *
 * A record's `summary` is the request's JSON body, redacted and bounded by {@link summarise}:
 * fields whose name mentions a password, token, secret, seed, private key or signature are
 * replaced by `"[redacted]"`, strings are cut to 200 characters, arrays to 20 items, objects to
 * 30 fields, depth to 4; upload bytes are never read.
 *
 * @module
 */
import { z } from "zod";
import type { Db } from "../db/db.ts";
import type { Role } from "./operators.ts";

/** Days an audit record is kept. */
export const auditRetentionDays = 400;

/** One audit record as written. */
export interface AuditEntry {
  /** When. */
  at: Date;
  /** Operator name or admin token label (for a failed sign-in: the name tried, or "token"). */
  actor: string;
  /** Their role then; null when not signed in (a failed sign-in). */
  role: Role | null;
  /** `api` (bearer token: API, CLI, automation) or `console` (a console session). */
  via: "api" | "console";
  /** HTTP method. */
  method: string;
  /** Route pattern (`/v1/admin/appliances/:uid/revoke`, `/ui/login`). */
  route: string;
  /** Path asked (at most 300 characters). */
  path: string;
  /** The route's parameters (`{ uid }`, `{ id }`, `{ name }`). */
  targets: Record<string, string>;
  /** The answer's status. */
  status: number;
  /** The answer's error code, if it was refused. */
  error: string | null;
  /** Redacted, bounded summary of the request (see {@link summarise}). */
  summary: unknown;
  /** Client address (for the console: the browser's). */
  address: string | null;
  /** User agent, at most 200 characters. */
  userAgent: string | null;
}

/** One audit record as read. */
export interface AuditRecord extends Omit<AuditEntry, "at"> {
  /** Its id (records read newest first; `before` pages on it). */
  id: number;
  /** When, ISO 8601. */
  at: string;
}

const secretName = /pass|token|secret|seed|private|signature|endorsement|wrapped|cookie|csrf/i;

/** `value` with secret fields redacted and everything bounded (see the module's text). */
export function summarise(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === "boolean" || typeof value === "number") return value;
  if (typeof value === "string") return value.length > 200 ? `${value.slice(0, 200)}…` : value;
  if (depth >= 4) return "[…]";
  if (Array.isArray(value)) {
    const head = value.slice(0, 20).map((v) => summarise(v, depth + 1));
    return value.length > 20 ? [...head, `[${value.length - 20} more]`] : head;
  }
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    const entries = Object.entries(value as Record<string, unknown>);
    for (const [k, v] of entries.slice(0, 30)) {
      out[k.slice(0, 60)] = secretName.test(k) ? "[redacted]" : summarise(v, depth + 1);
    }
    if (entries.length > 30) out["[more]"] = entries.length - 30;
    return out;
  }
  return null;
}

/** A summary as stored: at most 4,000 characters of JSON, else a note saying it was cut. */
function stored(summary: unknown): Record<string, unknown> | unknown[] | null {
  if (summary === null || summary === undefined) return null;
  const text = JSON.stringify(summary);
  if (text.length > 4000) return { truncated: true, start: text.slice(0, 1000) };
  return typeof summary === "object" ? summary as Record<string, unknown> : { value: summary };
}

const cut = (s: string | null, n: number) => s === null ? null : s.slice(0, n);

/** Writes `e` (and prunes up to 100 records older than the retention), in one statement. */
export async function writeAudit(db: Db, e: AuditEntry): Promise<void> {
  const cutoff = new Date(e.at.getTime() - auditRetentionDays * 86_400_000);
  await db.sql`
    with pruned as (
      delete from audit_log where id in (
        select id from audit_log where at < ${cutoff} order by at limit 100)
      returning 1)
    insert into audit_log (at, actor, role, via, method, route, path, targets, status, error,
      summary, address, user_agent)
    values (${e.at}, ${cut(e.actor, 100)!}, ${e.role}, ${e.via}, ${cut(e.method, 10)!},
      ${cut(e.route, 200)!}, ${cut(e.path, 300)!}, ${e.targets}, ${e.status},
      ${cut(e.error, 60)}, ${stored(e.summary)}, ${cut(e.address, 64)},
      ${cut(e.userAgent, 200)})`;
}

/** The filters and page of an audit query (`GET /v1/admin/audit`). */
export const auditQuery = z.strictObject({
  actor: z.string().min(1).max(100).optional().describe("Only this actor (exact)"),
  path: z.string().min(1).max(300).optional().describe(
    "Only paths starting with this (`/v1/admin/appliances`, `/ui/login`)",
  ),
  method: z.enum(["POST", "PUT", "PATCH", "DELETE"]).optional().describe("Only this method"),
  since: z.iso.datetime({ offset: true }).optional().describe("Only records at or after"),
  until: z.iso.datetime({ offset: true }).optional().describe("Only records before"),
  before: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional().describe(
    "Records older than this id (the previous page's nextCursor)",
  ),
  limit: z.coerce.number().int().min(1).max(1000).default(100).describe("Page size (1-1000)"),
  format: z.enum(["json", "csv"]).default("json").describe(
    "csv: every matching record (at most 100,000), newest first, as RFC 4180 CSV",
  ),
});

/** A parsed audit query. */
export type AuditQuery = z.infer<typeof auditQuery>;

interface AuditRow {
  id: string | number;
  at: Date;
  actor: string;
  role: Role | null;
  via: "api" | "console";
  method: string;
  route: string;
  path: string;
  targets: Record<string, string> | string;
  status: number;
  error: string | null;
  summary: unknown;
  address: string | null;
  user_agent: string | null;
}

const parsed = (v: unknown) => typeof v === "string" ? JSON.parse(v) : v;

/** One page of records matching `q`, newest first, and the cursor of the next (or null). */
export async function listAudit(
  db: Db,
  q: Omit<AuditQuery, "format">,
): Promise<{ items: AuditRecord[]; nextCursor: string | null }> {
  const like = q.path === undefined ? null : `${q.path.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
  const rows = await db.sql<AuditRow>`
    select id, at, actor, role, via, method, route, path, targets, status, error, summary,
      address, user_agent
    from audit_log
    where (${q.actor ?? null}::text is null or actor = ${q.actor ?? null})
      and (${like}::text is null or path like ${like})
      and (${q.method ?? null}::text is null or method = ${q.method ?? null})
      and (${q.since ?? null}::timestamptz is null or at >= ${q.since ?? null}::timestamptz)
      and (${q.until ?? null}::timestamptz is null or at < ${q.until ?? null}::timestamptz)
      and (${q.before ?? null}::bigint is null or id < ${q.before ?? null}::bigint)
    order by id desc
    limit ${q.limit + 1}`;
  const items = rows.slice(0, q.limit).map((r): AuditRecord => ({
    id: Number(r.id),
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    role: r.role,
    via: r.via,
    method: r.method,
    route: r.route,
    path: r.path,
    targets: parsed(r.targets) as Record<string, string>,
    status: r.status,
    error: r.error,
    summary: parsed(r.summary),
    address: r.address,
    userAgent: r.user_agent,
  }));
  const last = items.at(-1);
  return { items, nextCursor: rows.length > q.limit && last ? String(last.id) : null };
}

/** Most records a CSV export holds. */
export const csvMaxRows = 100_000;

/** The CSV columns, in order. */
export const csvColumns = [
  "id",
  "at",
  "actor",
  "role",
  "via",
  "method",
  "route",
  "path",
  "targets",
  "status",
  "error",
  "summary",
  "address",
  "user_agent",
] as const;

/**
 * One CSV cell (RFC 4180): quoted when it holds a comma, quote, CR or LF (quotes doubled). A cell
 * a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) gets a
 * leading `'` first.
 */
export function csvCell(value: unknown): string {
  let s = value === null || value === undefined
    ? ""
    : typeof value === "string"
    ? value
    : typeof value === "number"
    ? String(value)
    : JSON.stringify(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A record as one CSV line (CRLF-terminated). */
export function csvLine(r: AuditRecord): string {
  const cells: Record<(typeof csvColumns)[number], unknown> = {
    id: r.id,
    at: r.at,
    actor: r.actor,
    role: r.role,
    via: r.via,
    method: r.method,
    route: r.route,
    path: r.path,
    targets: Object.keys(r.targets).length ? r.targets : null,
    status: r.status,
    error: r.error,
    summary: r.summary,
    address: r.address,
    user_agent: r.userAgent,
  };
  return csvColumns.map((c) => csvCell(cells[c])).join(",") + "\r\n";
}

/**
 * Every record matching `q` (at most {@link csvMaxRows}), newest first, as a stream of CSV text
 * with a header line, read from the database 1,000 records at a time.
 */
export function auditCsv(
  db: Db,
  q: Omit<AuditQuery, "format" | "limit">,
): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let before = q.before;
  let sent = 0;
  let started = false;
  return new ReadableStream({
    async pull(ctrl) {
      if (!started) {
        started = true;
        ctrl.enqueue(enc.encode(csvColumns.join(",") + "\r\n"));
        return;
      }
      const page = await listAudit(db, {
        ...q,
        before,
        limit: Math.min(1000, csvMaxRows - sent),
      });
      if (page.items.length > 0) ctrl.enqueue(enc.encode(page.items.map(csvLine).join("")));
      sent += page.items.length;
      if (page.nextCursor === null || sent >= csvMaxRows) {
        ctrl.close();
        return;
      }
      before = Number(page.nextCursor);
    },
  });
}
