/**
 * `/ui/audit` (admin and operator): the audit log, newest first — who (name, role, console or
 * API), what (method, route, targets, answer, redacted summary), when, from where — filtered by
 * actor, path prefix, target (an appliance UID, id or name a change named or resolved to: a bulk
 * action's whole selection) and time, in pages; `/ui/audit.csv` exports what the filter selects as CSV.
 * Both read `GET /v1/admin/audit`.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { Layout, Time } from "../layout.tsx";
import type { ConsoleContext, ConsoleEnv, PageDeps } from "../page.ts";
import { html } from "../page.ts";
import { refusal } from "../admin_client.ts";

const recordSchema = z.object({
  id: z.number(),
  at: z.string(),
  actor: z.string(),
  role: z.string().nullable(),
  via: z.string(),
  method: z.string(),
  route: z.string(),
  path: z.string(),
  targets: z.record(z.string(), z.string()),
  status: z.number().nullable(),
  error: z.string().nullable(),
  summary: z.unknown(),
  address: z.string().nullable(),
  userAgent: z.string().nullable(),
  affected: z.array(z.string()),
});
const pageSchema = z.object({ items: z.array(recordSchema), nextCursor: z.string().nullable() });

/** The filters the page passes on (only these, each bounded). */
const filterNames = ["actor", "path", "target", "since", "until"] as const;

function filtersOf(c: ConsoleContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of filterNames) {
    const v = c.req.query(n)?.trim();
    if (v) out[n] = v.slice(0, 300);
  }
  return out;
}

/** `since`/`until` as the API takes them: a bare date or a minute gets a `Z` (UTC). */
function apiFilters(f: Record<string, string>): Record<string, string> {
  const out = { ...f };
  for (const k of ["since", "until"] as const) {
    const v = out[k];
    if (!v) continue;
    if (/^\d{4}-\d{2}-\d{2}$/.test(v)) out[k] = `${v}T00:00:00Z`;
    else if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}$/.test(v)) out[k] = `${v.replace(" ", "T")}:00Z`;
  }
  return out;
}

function auditPage(
  c: ConsoleContext,
  filters: Record<string, string>,
  page: z.infer<typeof pageSchema> | null,
  problem: string | null,
) {
  const ctx = c.var.page;
  const q = new URLSearchParams(filters);
  return (
    <Layout title="Audit log" ctx={ctx}>
      <form method="get" action="/ui/audit" class="panel" id="audit-filter">
        <label>
          Who<input name="actor" size={14} maxlength={100} value={filters["actor"]} />
        </label>
        <label>
          Path starts with
          <input
            name="path"
            size={22}
            maxlength={300}
            value={filters["path"]}
            placeholder="/v1/admin/appliances"
          />
        </label>
        <label>
          Target
          <input
            name="target"
            size={22}
            maxlength={200}
            value={filters["target"]}
            placeholder="appliance UID, id or name"
          />
        </label>
        <label>
          Since (UTC)
          <input name="since" size={16} value={filters["since"]} placeholder="2026-01-31 08:00" />
        </label>
        <label>
          Until (UTC)<input name="until" size={16} value={filters["until"]} />
        </label>
        <button type="submit">Filter</button>
        <a href="/ui/audit">Clear</a>
        <a href={`/ui/audit.csv${q.size ? `?${q}` : ""}`} id="audit-csv">Export CSV</a>
      </form>
      {problem && <p class="flash error" role="alert">{problem}</p>}
      {page && (
        <>
          <table id="audit">
            <tr>
              <th>when (UTC)</th>
              <th>who</th>
              <th>what</th>
              <th>answer</th>
              <th>from</th>
              <th>details</th>
            </tr>
            {page.items.map((r) => (
              <tr>
                <td>
                  <Time at={r.at} />
                </td>
                <td>
                  {r.actor} <span class="muted">({r.role ?? "not signed in"}, {r.via})</span>
                </td>
                <td>
                  <code>{r.method} {r.path}</code>
                  {r.path !== r.route && <div class="muted">{r.route}</div>}
                </td>
                <td>
                  {r.status ?? <span class="muted">outcome unknown</span>}
                  {r.error ? ` ${r.error}` : ""}
                </td>
                <td title={r.userAgent ?? ""}>
                  {r.address ?? "?"}
                  {r.userAgent && <div class="muted">{r.userAgent.slice(0, 40)}</div>}
                </td>
                <td>
                  {r.affected.length > Object.keys(r.targets).length && (
                    <details>
                      <summary>{r.affected.length} targets</summary>
                      <p class="targets">
                        {r.affected.slice(0, 500).map((t) => (
                          <>
                            <a href={`/ui/audit?${new URLSearchParams({ target: t })}`}>{t}</a>
                            {" "}
                          </>
                        ))}
                        {r.affected.length > 500 &&
                          `and ${r.affected.length - 500} more (the CSV export lists them all)`}
                      </p>
                    </details>
                  )}
                  {r.summary !== null && r.summary !== undefined && (
                    <details>
                      <summary>summary</summary>
                      <pre>{JSON.stringify(r.summary, null, 1)}</pre>
                    </details>
                  )}
                </td>
              </tr>
            ))}
          </table>
          {page.items.length === 0 && <p>No records match.</p>}
          <p>
            {c.req.query("before") && <a href={`/ui/audit${q.size ? `?${q}` : ""}`}>Newest</a>}{" "}
            {page.nextCursor && (
              <a
                href={`/ui/audit?${new URLSearchParams({ ...filters, before: page.nextCursor })}`}
                rel="next"
              >
                Older records
              </a>
            )}
          </p>
        </>
      )}
    </Layout>
  );
}

/** `GET /ui/audit` (filters, 50 a page) and `GET /ui/audit.csv` (what the filters select). */
export function auditPages(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/audit", p.signedIn, async (c) => {
      const filters = filtersOf(c);
      const before = c.req.query("before");
      const res = await c.var.api.audit.$get({
        query: {
          ...apiFilters(filters),
          limit: "50",
          ...(before && /^[1-9][0-9]{0,15}$/.test(before) ? { before } : {}),
        },
      });
      if (res.status === 403) {
        return await html(
          c,
          auditPage(
            c,
            filters,
            null,
            `Your role (${c.var.page.role ?? "viewer"}) cannot read the audit log`,
          ),
          403,
        );
      }
      if (!res.ok) return await html(c, auditPage(c, filters, null, await refusal(res)), 400);
      return await html(c, auditPage(c, filters, pageSchema.parse(await res.json()), null));
    })
    .get("/audit.csv", p.signedIn, async (c) => {
      const res = await c.var.api.audit.$get({
        query: { ...apiFilters(filtersOf(c)), format: "csv" },
      });
      if (!res.ok) {
        return await html(c, auditPage(c, filtersOf(c), null, await refusal(res)), res.status);
      }
      return new Response(res.body, {
        headers: {
          "content-type": "text/csv; charset=utf-8; header=present",
          "content-disposition": 'attachment; filename="noc-audit.csv"',
          "cache-control": "no-store",
        },
      });
    });
}
