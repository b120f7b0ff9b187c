/**
 * `/v1/admin/audit` (roles admin and operator): the audit log, newest first, filtered by actor,
 * path prefix, target (an appliance UID, an id or a name the request named or resolved to),
 * method and time, in keyset pages (`before` = the previous page's `nextCursor`);
 * `?format=csv` (or `/v1/admin/audit.csv`) exports every matching record as RFC 4180 CSV.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { validate } from "../../../protocol/http/validate.ts";
import { badCursor } from "./paging.ts";
import { auditCsv, type AuditQuery, auditQuery, listAudit } from "../../services/audit.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** One audit record as answered. */
export const auditRecordAnswer = z.object({
  id: z.number().int(),
  at: z.string(),
  actor: z.string().describe(
    "Operator name, or admin token label (failed sign-in: the name if such an operator exists, " +
      "else (unknown name), or (token))",
  ),
  role: z.enum(["admin", "operator", "viewer"]).nullable(),
  via: z.enum(["api", "console"]),
  method: z.string(),
  route: z.string().describe("Route pattern: /v1/admin/appliances/:uid/revoke"),
  path: z.string(),
  targets: z.record(z.string(), z.string()).describe("The route's parameters (UUIDs lower-cased)"),
  status: z.number().int().nullable().describe(
    "The answer's status; null: the outcome is unknown (recorded before the route ran, never " +
      "completed: the NOC stopped or lost its database meanwhile)",
  ),
  error: z.string().nullable(),
  summary: z.unknown().describe("Redacted, bounded query and JSON body"),
  address: z.string().nullable(),
  userAgent: z.string().nullable(),
  affected: z.array(z.string()).describe(
    "Every target, canonical (UUIDs lower-cased): the route's parameters and every appliance UID " +
      "and alert id the request resolved to (a bulk action by filter included), in full",
  ),
});

/** A page of audit records. */
export const auditPageAnswer = z.object({
  items: z.array(auditRecordAnswer),
  nextCursor: z.string().nullable(),
});

function csvAnswer(deps: AppDeps, q: AuditQuery): Response {
  const { format: _f, limit: _l, ...filters } = q;
  return new Response(auditCsv(deps.db, filters), {
    headers: {
      "content-type": "text/csv; charset=utf-8; header=present",
      "content-disposition": 'attachment; filename="noc-audit.csv"',
      "cache-control": "no-store",
    },
  });
}

/**
 * The list's query: {@link auditQuery} and `cursor`, the previous page's `nextCursor` (the
 * paging of every admin list; `before` takes the same value).
 */
export const auditListQuery = auditQuery.safeExtend({
  cursor: z.string().min(1).max(400).optional()
    .describe("The page after the previous one: its nextCursor (opaque)"),
});

/** `before` from `cursor`, or 400 naming `cursor`. */
function withCursor(q: z.infer<typeof auditListQuery>): AuditQuery {
  const { cursor, ...rest } = q;
  if (cursor === undefined) return rest;
  if (!/^[0-9]{1,15}$/.test(cursor) || Number(cursor) < 1) badCursor();
  return { ...rest, before: rest.before ?? Number(cursor) };
}

/** `/v1/admin/audit` and `/v1/admin/audit.csv`, mounted at the admin API's root. */
export function auditAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/audit", validate("query", auditListQuery), async (c) => {
      const q = withCursor(c.req.valid("query"));
      if (q.format === "csv") return csvAnswer(deps, q);
      const { format: _f, ...rest } = q;
      return c.json(await listAudit(deps.db, rest));
    })
    .get("/audit.csv", validate("query", auditQuery), (c) => csvAnswer(deps, c.req.valid("query")));
}
