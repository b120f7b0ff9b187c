/**
 * Admin API authentication, roles and the audit log.
 *
 * {@link adminAuth}: `Authorization: Bearer <token>` — an admin token (role `admin`) or an
 * operator's personal token (their current role) — checked against stored hashes before anything
 * of the request is read (the admin API's body limits come after it). A refused token counts
 * against its client address's refusals. The console's in-process calls carry the internal key
 * instead, with the signed-in operator's name, role, address and user agent.
 *
 * {@link roleGate}: the least role the route needs ({@link neededRole}, the table in
 * noc/services/operators.ts); a request from a lesser role is refused with 403
 * `forbidden_role` before its body is read. Every authenticated request that is not a GET or
 * HEAD is then written to the audit log before its route runs (a request whose record cannot be
 * written is refused, 503 `audit_unavailable`, and changes nothing) and completed with its
 * answer's status, refusals included; a route adds what it resolved with {@link noteAffected}.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { timingSafeEqual } from "node:crypto";
import { ApiError } from "../../../protocol/http/errors.ts";
import { bearerActor } from "../../services/admin_tokens.ts";
import { addAffected, finishAudit, summarise, writeAudit } from "../../services/audit.ts";
import type { Sql } from "../../db/db.ts";
import { neededRole, type Role, roleAllows, roles } from "../../services/operators.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { clientAddress } from "./appliance_auth.ts";

/** Who sent an admin API request, as the role gate and the audit log see them. */
export interface AdminActor {
  /** Operator name, or admin token label. */
  name: string;
  /** Their role now. */
  role: Role;
  /** `console` for the console's in-process calls, else `api`. */
  via: "api" | "console";
  /** The client's address (for the console: the browser's). */
  address: string | null;
  /** The client's user agent (for the console: the browser's), at most 200 characters. */
  userAgent: string | null;
}

declare module "hono" {
  interface ContextVariableMap {
    /** The admin API request's actor (set by {@link adminAuth}). */
    actor: AdminActor;
  }
}

/** The admin API request's actor (set by {@link adminAuth}). */
export function actorOf(c: Context): AdminActor {
  return c.get("actor");
}

/** Headers of the console's in-process calls (see noc/http/console/admin_client.ts). */
export const internalHeaderNames = {
  key: "x-noc-internal",
  label: "x-noc-admin-label",
  role: "x-noc-admin-role",
  address: "x-noc-client-address",
  agent: "x-noc-client-agent",
} as const;

const prefix = "/v1/admin";

/**
 * Middleware requiring a valid admin token or personal token; sets `admin` to the actor's name
 * (the console's calls: `console:<name>`) and `actor` to who they are. The console's in-process
 * calls carry `internalKey` instead (a random key that never leaves the process) and the
 * signed-in operator's name and role.
 */
export function adminAuth(deps: AppDeps, internalKey?: string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const internal = c.req.header(internalHeaderNames.key);
    if (internalKey !== undefined && internal !== undefined && sameText(internal, internalKey)) {
      const name = c.req.header(internalHeaderNames.label) ?? "?";
      const given = c.req.header(internalHeaderNames.role);
      // No role said: the least one (the console always says it).
      const role = roles.find((r) => r === given) ?? "viewer";
      c.set("admin", `console:${name}`);
      c.set("actor", {
        name,
        role,
        via: "console",
        address: c.req.header(internalHeaderNames.address)?.slice(0, 64) ?? null,
        userAgent: c.req.header(internalHeaderNames.agent)?.slice(0, 200) ?? null,
      });
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
    const actor = await bearerActor(deps.db, m[1]!);
    const address = clientAddress(c, deps.settings.trustProxy);
    if (actor === null) {
      // Counted against the address (never written, and no record budget spent): past its
      // budget it gets 429 before any lookup (app.ts refusalGate).
      deps.limits.refusals.count(address ?? "unknown");
      throw new ApiError(401, "unauthorized", "Admin token is not valid", {}, challenge);
    }
    c.set("admin", actor.name);
    c.set("actor", {
      name: actor.name,
      role: actor.role,
      via: "api",
      address,
      userAgent: c.req.header("user-agent")?.slice(0, 200) ?? null,
    });
    await next();
  };
}

/** The path of this request under the admin API (`/appliances/…`), in process or not. */
function adminPath(c: Context, actor: AdminActor): string {
  const p = c.req.path;
  if (actor.via === "api" && (p === prefix || p.startsWith(`${prefix}/`))) {
    return p.slice(prefix.length) || "/";
  }
  return p;
}

/** This request's audit record, once written (see {@link roleGate}). */
export interface AuditHandle {
  /** The record's id. */
  id: number;
  /** Targets noted with {@link noteAffected} but not yet written (added when it completes). */
  pending: string[];
}

declare module "hono" {
  interface ContextVariableMap {
    /** The admin API request's audit record (set by {@link roleGate} for writes). */
    auditRecord: AuditHandle;
  }
}

/**
 * Adds `ids` (appliance UIDs, alert ids: canonicalised) to this request's audit record, through
 * `sql` — the transaction of the change they name, so both commit together — or, without it,
 * when the record is completed. A route calls it with what it resolved (a bulk action's
 * selection) before or with the change. A request with no record (a read) ignores it.
 */
export async function noteAffected(
  c: Context,
  ids: readonly string[],
  sql?: Sql,
): Promise<void> {
  const record = c.get("auditRecord") as AuditHandle | undefined;
  if (!record || ids.length === 0) return;
  if (sql) await addAffected(sql, record.id, ids);
  else record.pending.push(...ids);
}

/**
 * Middleware after {@link adminAuth}: refuses (403 `forbidden_role`, recorded) a request whose
 * actor's role is below what its route needs. A request that is not a GET or HEAD is written to
 * the audit log **before** its route runs (status null; 503 `audit_unavailable` and nothing done
 * when the record cannot be written) and completed with its answer once decided (see
 * noc/services/audit.ts).
 */
export function roleGate(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const actor = c.get("actor");
    const path = adminPath(c, actor);
    const method = c.req.method.toUpperCase();
    const need = neededRole(method, path);
    const write = method !== "GET" && method !== "HEAD";
    if (!roleAllows(actor.role, need)) {
      const message = `${method} ${prefix}${path} needs the ${need} role; ` +
        `${actor.name} has the ${actor.role} role`;
      if (write) {
        try {
          await begin(deps, c, actor, path, { status: 403, error: "forbidden_role" });
        } catch (e) {
          // Nothing was done: the refusal stands, and the lost record is said loudly.
          failed(deps, path, "refusal", e);
        }
      }
      deps.log.warn("admin_forbidden_role", { actor: actor.name, role: actor.role, need, path });
      return c.json({ error: "forbidden_role", message, needed: need, role: actor.role }, 403);
    }
    if (!write) return await next();
    let id: number;
    try {
      id = await begin(deps, c, actor, path, { status: null, error: null });
    } catch (e) {
      failed(deps, path, "before", e);
      throw new ApiError(
        503,
        "audit_unavailable",
        "The audit log cannot be written now, so nothing was changed; try again shortly",
        {},
        { "retry-after": "5" },
      );
    }
    const record: AuditHandle = { id, pending: [] };
    c.set("auditRecord", record);
    await next();
    let error: string | null = null;
    if (c.res.status >= 400 && c.res.headers.get("content-type")?.startsWith("application/json")) {
      try {
        const body = await c.res.clone().json() as { error?: unknown };
        if (typeof body.error === "string") error = body.error;
      } catch {
        // Not the JSON it says: the status says enough.
      }
    }
    const { summary, named } = await summaryOf(c);
    const outcome = {
      status: c.res.status,
      error,
      summary,
      affected: [...named, ...record.pending],
    };
    try {
      await finishAudit(deps.db, id, outcome);
    } catch (first) {
      failed(deps, path, "after", first);
      try {
        // Retried without the summary (the one part that can be large).
        await finishAudit(deps.db, id, { ...outcome, summary: { unrecorded: "write failed" } });
      } catch (e) {
        // The record stays with status null: "outcome unknown", never a silent gap.
        failed(deps, path, "after-retry", e);
      }
    }
  };
}

/** Logs and counts a failed audit write (`stage`: before the route, after it, or a refusal's). */
function failed(deps: AppDeps, path: string, stage: string, e: unknown): void {
  deps.metrics.inc("noc_audit_failures_total", { stage });
  deps.log.error("audit_write_failed", {
    path,
    stage,
    error: e instanceof Error ? e.message : String(e),
  });
}

/** The route pattern this request matched (`/appliances/:uid/revoke`), or its path when none. */
function routeOf(c: Context, path: string): string {
  const routes = matchedRoutes(c).filter((r) => r.method !== "ALL");
  const pattern = routes.at(-1)?.path;
  if (!pattern || pattern.includes("*")) return path;
  // In process the admin app is addressed at its root; over HTTP under /v1/admin.
  return pattern.startsWith(prefix) ? pattern.slice(prefix.length) : pattern;
}

/** The parameters of `pattern` in `path` (`{ uid: "…" }`). */
function targetsOf(pattern: string, path: string): Record<string, string> {
  const out: Record<string, string> = {};
  const ps = pattern.split("/"), vs = path.split("/");
  ps.forEach((p, i) => {
    if (p.startsWith(":") && vs[i] !== undefined) {
      const name = p.slice(1).replace(/\{.*$/, "");
      try {
        out[name] = decodeURIComponent(vs[i]!).slice(0, 100);
      } catch {
        out[name] = vs[i]!.slice(0, 100);
      }
    }
  });
  return out;
}

/**
 * The request's summary — its query and, if a route read one, its JSON body (redacted) — and the
 * appliances its body names (`uid`, `uids`, an appliance `target`), whatever its answer.
 */
async function summaryOf(c: Context): Promise<{ summary: unknown; named: string[] }> {
  const cache = (c.req as unknown as { bodyCache: { text?: Promise<string> } }).bodyCache;
  const query = c.req.query();
  const q = Object.keys(query).length ? { query: summarise(query) } : {};
  if (cache.text && /json/i.test(c.req.header("content-type") ?? "")) {
    try {
      const body = JSON.parse(await cache.text);
      return { summary: { ...q, body: summarise(body) }, named: namedIn(body) };
    } catch {
      return { summary: { ...q, body: "[not JSON]" }, named: [] };
    }
  }
  return { summary: Object.keys(q).length ? q : null, named: [] };
}

const uuidText = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The appliance UIDs a JSON body names at its top level: `uid`, `uids`, `target.value`. */
function namedIn(body: unknown): string[] {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return [];
  const b = body as Record<string, unknown>;
  const target = b["target"] as Record<string, unknown> | null | undefined;
  const candidates = [
    b["uid"],
    ...(Array.isArray(b["uids"]) ? b["uids"] : []),
    typeof target === "object" && target?.["type"] === "appliance" ? target["value"] : null,
  ];
  return candidates.filter((v): v is string => typeof v === "string" && uuidText.test(v));
}

/**
 * Writes this request's audit record (status null: before its route runs; else a refusal's), with
 * its query as summary; retried once without the summary. Throws when both fail.
 */
async function begin(
  deps: AppDeps,
  c: Context,
  actor: AdminActor,
  path: string,
  answer: { status: number | null; error: string | null },
): Promise<number> {
  const route = routeOf(c, path);
  const query = c.req.query();
  const entry = {
    actor: actor.name,
    role: actor.role,
    via: actor.via,
    method: c.req.method.toUpperCase(),
    route: `${prefix}${route}`,
    path: `${prefix}${path}`,
    targets: targetsOf(route, path),
    ...answer,
    summary: answer.status === 403 || !Object.keys(query).length
      ? null
      : { query: summarise(query) },
    address: actor.address,
    userAgent: actor.userAgent,
  };
  const opts = {
    clock: deps.clock,
    // An instance whose clock disagrees with the database's does not prune (noc_time.ts).
    prune: deps.checkins.instance.clockSkewS === null,
  };
  try {
    return await writeAudit(deps.db, entry, opts);
  } catch (e) {
    failed(deps, path, "first-try", e);
    return await writeAudit(deps.db, { ...entry, summary: null }, opts);
  }
}

function sameText(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
