/**
 * The audit log: who did what, when, and from where. One record per non-GET admin API request
 * that was authenticated (whatever its answer, role refusals included) and per console sign-in,
 * sign-out and failed sign-in. Records are kept {@link auditRetentionDays} days.
 *
 * **Written before the change.** A request's record is inserted before its route runs
 * ({@link writeAudit}, status null) and completed with the answer once decided
 * ({@link finishAudit}); a route that resolves its targets (a bulk action by filter, an
 * acknowledgement by filter) adds them ({@link addAffected}) before it changes anything, or in
 * the transaction of the change. A request whose record cannot be written is refused (503
 * `audit_unavailable`) and changes nothing; a completion that fails is retried without the
 * summary, then logged (`audit_write_failed`) and counted (`noc_audit_failures_total`), and the
 * record keeps status null ("outcome unknown").
 *
 * **Storable whatever the input.** Every text that goes in — actor, route, path, targets, user
 * agent, address, summary keys and values — passes {@link cleanText}: a NUL becomes `␀` (U+2400)
 * and an unpaired surrogate `�` (U+FFFD), which PostgreSQL's `jsonb` and `text` would refuse.
 *
 * **Canonical targets.** `affected` holds every target in canonical form ({@link canonicalTarget}:
 * UUIDs lower-cased): the route's parameters and every appliance UID and alert id an action
 * resolved to, in full; `GET /v1/admin/audit?target=` finds a record by any of them.
 *
 * **Time.** Records are stamped, and pruned, on the database's clock (`clock_timestamp()`), never
 * on the instance's (a clock jumped 401 days ahead would otherwise date records wrongly and prune
 * them all); an instance whose clock the last check found off (noc/jobs/noc_time.ts) does not
 * prune at all. Each write deletes up to 100 records older than the retention, in the same
 * statement. A test clock ({@link Clock.offsetFrom}) stands for its own timeline instead.
 *
 * A record's `summary` is the request's query and JSON body, redacted and bounded by
 * {@link summarise}: fields whose name mentions a password, token, secret, seed, private key or
 * signature are replaced by `"[redacted]"`; values are kept whole up to bounds above every input's
 * own (the body limit bounds the whole); upload bytes are never read.
 *
 * @module
 */
import { z } from "zod";
import type { Db, Sql } from "../db/db.ts";
import type { Clock } from "../clock.ts";
import type { Role } from "./operators.ts";

/** Days an audit record is kept. */
export const auditRetentionDays = 400;

/** One audit record as written. */
export interface AuditEntry {
  /**
   * When, for tests and imports only: absent, the record is stamped with the database's clock
   * (or a test clock's timeline, see {@link AuditWriteOptions.clock}).
   */
  at?: Date;
  /** Operator name or admin token label (a failed sign-in: a known operator's name, or a note). */
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
  /** The route's parameters (`{ uid }`, `{ id }`, `{ name }`), canonical (UUIDs lower-cased). */
  targets: Record<string, string>;
  /** The answer's status; null while the request runs (see the module's text). */
  status: number | null;
  /** The answer's error code, if it was refused. */
  error: string | null;
  /** Redacted, bounded summary of the request (see {@link summarise}). */
  summary: unknown;
  /** Client address (for the console: the browser's). */
  address: string | null;
  /** User agent, at most 200 characters. */
  userAgent: string | null;
  /**
   * Further targets, canonical: appliance UIDs and alert ids the request resolved to. The
   * values of `targets` are always added.
   */
  affected?: readonly string[];
}

/** One audit record as read. */
export interface AuditRecord extends Omit<AuditEntry, "at" | "affected"> {
  /** Its id (records read newest first; `before` pages on it). */
  id: number;
  /** When, ISO 8601 (the database's clock). */
  at: string;
  /** Every target, canonical: the route's parameters and what the request resolved to. */
  affected: string[];
}

/** How {@link writeAudit} stamps and prunes. */
export interface AuditWriteOptions {
  /**
   * The instance's clock: only a test clock ({@link Clock.offsetFrom}) is used, as the timeline
   * to stamp with (its time less the jump it reports); any other leaves the database's clock.
   */
  clock?: Clock;
  /** False: do not prune (the instance's clock disagrees with the database's). Default true. */
  prune?: boolean;
}

/**
 * `s` as it can be stored and shown: each NUL replaced by `␀` (U+2400) and each unpaired
 * surrogate by `�` (U+FFFD).
 */
export function cleanText(s: string): string {
  const w = s.isWellFormed() ? s : s.toWellFormed();
  return w.includes("\u0000") ? w.replaceAll("\u0000", "\u2400") : w;
}

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Longest target kept, characters (a route parameter: a name, an id, a UUID). */
export const targetMax = 200;

/**
 * A target in canonical form: a UUID lower-cased; anything else cleaned ({@link cleanText}) and
 * cut to {@link targetMax} characters.
 */
export function canonicalTarget(s: string): string {
  return uuidRe.test(s) ? s.toLowerCase() : cleanText(s).slice(0, targetMax);
}

/** Bounds of {@link summarise}: above every input's own, so an accepted value is kept whole. */
export const summaryBounds = {
  /** Characters of a string (the largest field any route takes is shorter). */
  string: 65_536,
  /** Items of an array (a bulk action's UIDs are at most 1,000). */
  items: 10_000,
  /** Fields of an object. */
  fields: 1_000,
  /** Nesting. */
  depth: 8,
  /** Characters of the stored JSON (the body limit, 256 KiB, bounds what a route reads). */
  stored: 1_048_576,
} as const;

const secretName = /pass|token|secret|seed|private|signature|endorsement|wrapped|cookie|csrf/i;

/**
 * `value` with secret fields redacted, every key and string cleaned ({@link cleanText}), and
 * every size bounded by {@link summaryBounds} (a value past a bound is cut and says so).
 */
export function summarise(value: unknown, depth = 0): unknown {
  const b = summaryBounds;
  if (value === null || typeof value === "boolean" || typeof value === "number") return value;
  if (typeof value === "string") {
    const s = cleanText(value);
    return s.length > b.string ? `${s.slice(0, b.string)}…` : s;
  }
  if (depth >= b.depth) return "[…]";
  if (Array.isArray(value)) {
    const head = value.slice(0, b.items).map((v) => summarise(v, depth + 1));
    return value.length > b.items ? [...head, `[${value.length - b.items} more]`] : head;
  }
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    const entries = Object.entries(value as Record<string, unknown>);
    for (const [k, v] of entries.slice(0, b.fields)) {
      out[cleanText(k).slice(0, 200)] = secretName.test(k) ? "[redacted]" : summarise(v, depth + 1);
    }
    if (entries.length > b.fields) out["[more]"] = entries.length - b.fields;
    return out;
  }
  return null;
}

/**
 * A summary as stored: cleaned and bounded ({@link summarise} again, as callers may pass anything),
 * at most {@link summaryBounds}.stored characters of JSON, else a note saying it was cut.
 */
function stored(summary: unknown): Record<string, unknown> | unknown[] | null {
  if (summary === null || summary === undefined) return null;
  const s = summarise(summary);
  const text = JSON.stringify(s);
  if (text.length > summaryBounds.stored) {
    return { truncated: true, length: text.length, start: cleanText(text.slice(0, 4000)) };
  }
  return typeof s === "object" && s !== null ? s as Record<string, unknown> : { value: s };
}

const cut = (s: string | null, n: number) => s === null ? null : cleanText(s).slice(0, n);

/** Canonical targets of `e`: its route parameters' values and `affected`, each once. */
function affectedOf(targets: Record<string, string>, more: readonly string[] = []): string[] {
  return [...new Set([...Object.values(targets), ...more].map(canonicalTarget))];
}

/** `targets` with canonical keys and values. */
function canonicalTargets(targets: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(targets).map(([k, v]) => [cleanText(k).slice(0, 60), canonicalTarget(v)]),
  );
}

/** The time a record is stamped with: null for the database's clock (see the module's text). */
function stampOf(e: AuditEntry, clock: Clock | undefined): Date | null {
  if (e.at) return e.at;
  if (!clock?.offsetFrom) return null;
  const now = clock.now();
  return new Date(now.getTime() - clock.offsetFrom(now));
}

/**
 * Writes `e` (and prunes up to 100 records older than the retention, unless `prune` is false), in
 * one statement; returns the record's id. Every text is cleaned, so only a database failure
 * throws.
 */
export async function writeAudit(
  db: Db,
  e: AuditEntry,
  opts: AuditWriteOptions = {},
): Promise<number> {
  const stamp = stampOf(e, opts.clock);
  const prune = opts.prune ?? true;
  const targets = canonicalTargets(e.targets);
  const [row] = await db.sql<{ id: string | number }>`
    with pruned as (
      delete from audit_log where ${prune} and id in (
        select id from audit_log
        where at < coalesce(${stamp}::timestamptz, clock_timestamp())
          - make_interval(days => ${auditRetentionDays})
        order by at limit 100)
      returning 1)
    insert into audit_log (at, actor, role, via, method, route, path, targets, status, error,
      summary, address, user_agent, affected)
    values (coalesce(${stamp}::timestamptz, clock_timestamp()), ${cut(e.actor, 100)!},
      ${e.role}, ${e.via}, ${cut(e.method, 10)!}, ${cut(e.route, 200)!}, ${cut(e.path, 300)!},
      ${targets}, ${e.status}, ${cut(e.error, 60)}, ${stored(e.summary)}, ${cut(e.address, 64)},
      ${cut(e.userAgent, 200)}, ${affectedOf(targets, e.affected)}::text[])
    returning id`;
  return Number(row!.id);
}

/** What {@link finishAudit} records once a request's answer is decided. */
export interface AuditOutcome {
  /** The answer's status. */
  status: number;
  /** The answer's error code, if refused. */
  error: string | null;
  /** The request's summary (see {@link summarise}); null leaves none. */
  summary: unknown;
  /** Targets to add (canonicalised here). */
  affected?: readonly string[];
}

/** Completes record `id` (written by {@link writeAudit} with status null) with `o`. */
export async function finishAudit(db: Db, id: number, o: AuditOutcome): Promise<void> {
  const more = affectedOf({}, o.affected);
  await db.sql`
    update audit_log set status = ${o.status}, error = ${cut(o.error, 60)},
      summary = ${stored(o.summary)},
      affected = array(select distinct t from unnest(affected || ${more}::text[]) t)
    where id = ${id}`;
}

/**
 * Adds `ids` (canonicalised) to the targets of record `id`, through `sql`: the database, or the
 * transaction of the change they name, so the change and its record commit together.
 */
export async function addAffected(sql: Sql, id: number, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`
    update audit_log
    set affected = array(select distinct t from unnest(affected || ${
    affectedOf({}, ids)
  }::text[]) t)
    where id = ${id}`;
}

/** The filters and page of an audit query (`GET /v1/admin/audit`). */
export const auditQuery = z.strictObject({
  actor: z.string().min(1).max(100).refine((s) => s.isWellFormed() && !s.includes("\u0000"), {
    message: "must not contain NUL or unpaired surrogates",
  }).optional().describe("Only this actor (exact)"),
  path: z.string().min(1).max(300).refine((s) => s.isWellFormed() && !s.includes("\u0000"), {
    message: "must not contain NUL or unpaired surrogates",
  }).optional().describe("Only paths starting with this (`/v1/admin/appliances`, `/ui/login`)"),
  target: z.string().trim().min(1).max(targetMax).refine(
    (s) => s.isWellFormed() && !s.includes("\u0000"),
    { message: "must not contain NUL or unpaired surrogates" },
  ).optional().describe(
    "Only records that named or touched this target: an appliance UID (any case), an alert or " +
      "window id, an operator name — a route parameter, or a member of what a bulk action " +
      "resolved to",
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
  status: number | null;
  error: string | null;
  summary: unknown;
  address: string | null;
  user_agent: string | null;
  affected: string[];
}

const parsed = (v: unknown) => typeof v === "string" ? JSON.parse(v) : v;

/** One page of records matching `q`, newest first, and the cursor of the next (or null). */
export async function listAudit(
  db: Db,
  q: Omit<AuditQuery, "format">,
): Promise<{ items: AuditRecord[]; nextCursor: string | null }> {
  const like = q.path === undefined ? null : `${q.path.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
  const target = q.target === undefined ? null : canonicalTarget(q.target);
  const rows = await db.sql<AuditRow>`
    select id, at, actor, role, via, method, route, path, targets, status, error, summary,
      address, user_agent, affected
    from audit_log
    where (${q.actor ?? null}::text is null or actor = ${q.actor ?? null})
      and (${like}::text is null or path like ${like})
      and (${target}::text is null or affected @> array[${target}::text])
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
    affected: r.affected,
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
  "affected",
] as const;

/**
 * Where a spreadsheet may start a cell: at the start of the text, or after a character some
 * import would split on (`,` `;` tab `|`, or a line break), past any spaces and quotes.
 */
const cellStart = /(^|[,;\t|\r\n])([ "']*)(?=[=+\-@\t\r])/g;
/** A `-` or `+` starting a number in a JSON list (`[1,-2]`): no spreadsheet runs that. */
const jsonNumber = /^[+-]\d+(\.\d+)?([eE][+-]?\d+)?(?=[,\]}])/;

/**
 * One CSV cell (RFC 4180): quoted when it holds a comma, semicolon, quote, tab, CR or LF (quotes
 * doubled). Every formula trigger (`=`, `+`, `-`, `@`, tab, CR) where a spreadsheet could start a
 * cell — at the start, or after a separator of any import (`,` `;` tab `|` or a line break), past
 * spaces and quotes — gets a `'` before it, so no import setting turns a part into a formula: a
 * line split at `;` or tab by a spreadsheet set to do so ignores the RFC 4180 quotes of the cells
 * before. A `-` or `+` starting a number in a JSON list (`[1,-2]`) is left alone: JSON stays
 * JSON, and a spreadsheet reads `-2]` as text.
 */
export function csvCell(value: unknown): string {
  let s = value === null || value === undefined
    ? ""
    : typeof value === "string"
    ? value
    : typeof value === "number"
    ? String(value)
    : JSON.stringify(value);
  // The trigger is looked ahead at, not taken: a tab can be a trigger and the next separator.
  s = s.replace(cellStart, (m, sep: string, pad: string, at: number) => {
    const from = at + sep.length + pad.length;
    if (sep === "," && pad === "" && jsonNumber.test(s.slice(from))) return m;
    return `${sep}${pad}'`;
  });
  return /[",;\t\r\n|]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
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
    affected: r.affected.length ? r.affected.join(" ") : null,
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
