/**
 * `/ui/alerts`: alerts with their site, appliance state, last beat and duration; filters (status,
 * site, kind, unacknowledged only) and keyset pages that keep them; acknowledgement of one alert,
 * of the selected ones, or of every alert the filter selects, with one note; running the status
 * daemon now. After an action the page comes back with the same filters and page.
 */
import { Hono } from "hono";
import { z } from "zod";
import { Csrf, Layout, State, Time } from "../layout.tsx";
import type { ConsoleContext, ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, html, idOf, kept, refused } from "../page.ts";
import { refusal } from "../admin_client.ts";

/**
 * `GET /alerts` as the console reads it (the API types an alert as a record;
 * these are the fields the pages show).
 */
export const alertListSchema = z.object({
  items: z.array(z.object({
    id: z.number(),
    kind: z.string(),
    uid: z.string().nullable(),
    hostname: z.string().nullable(),
    site: z.string().nullable().optional(),
    openedAt: z.string(),
    resolvedAt: z.string().nullable(),
    acknowledgedAt: z.string().nullable(),
    acknowledgedBy: z.string().nullable(),
    acknowledgedNote: z.string().nullable().optional(),
    applianceState: z.string().nullable().optional(),
    lastBeatAt: z.string().nullable().optional(),
    durationS: z.number().optional(),
  })),
  nextBefore: z.number().nullable().optional(),
  open: z.object({ unacknowledged: z.number(), acknowledged: z.number() }).optional(),
});

/** Alert kinds the NOC raises (the kind filter's choices). */
const kinds = ["missed_heartbeat"] as const;

const nameRe = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The page's filters and place, as read from a query string (anything else is dropped). */
interface AlertView {
  status: "open" | "resolved" | "all";
  site?: string;
  kind?: string;
  unacknowledged: boolean;
  before?: string;
}

function viewOf(q: URLSearchParams): AlertView {
  const status = q.get("status");
  const site = q.get("site") ?? "";
  const kind = q.get("kind") ?? "";
  const before = q.get("before") ?? "";
  return {
    status: status === "resolved" || status === "all" ? status : "open",
    ...(nameRe.test(site) ? { site } : {}),
    ...(nameRe.test(kind) ? { kind } : {}),
    unacknowledged: q.get("unacknowledged") === "true",
    ...(/^[1-9][0-9]{0,14}$/.test(before) ? { before } : {}),
  };
}

/** The query string of `v` (without `before` when `page` is false). */
function queryOf(v: AlertView, page = true): string {
  const q = new URLSearchParams();
  if (v.status !== "open") q.set("status", v.status);
  if (v.site) q.set("site", v.site);
  if (v.kind) q.set("kind", v.kind);
  if (v.unacknowledged) q.set("unacknowledged", "true");
  if (page && v.before) q.set("before", v.before);
  return q.toString();
}

/** `/ui/alerts` with the view `v` (and its page). */
function pathOf(v: AlertView, page = true): string {
  const q = queryOf(v, page);
  return q ? `/ui/alerts?${q}` : "/ui/alerts";
}

/** Redirects back to the alerts page `v`, with `flash`, at `anchor`. */
function backTo(c: ConsoleContext, v: AlertView, flash: string, anchor: string): Response {
  const res = back(c, pathOf(v), flash);
  res.headers.set("location", `${res.headers.get("location")}#${anchor}`);
  return res;
}

/** "3 h 05 min", "4 min", "12 s". */
export function duration(s: number): string {
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, "0")} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** `GET /ui/alerts`, `POST /ui/alerts/ack`, `POST /ui/alerts/:id/ack`, `POST /ui/sweep`. */
export function alertPages(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/alerts", p.signedIn, async (c) => {
      const v = viewOf(new URL(c.req.url).searchParams);
      const [res, sitesRes] = await Promise.all([
        c.var.api.alerts.$get({
          query: {
            status: v.status,
            site: v.site,
            kind: v.kind,
            unacknowledged: v.unacknowledged ? "true" : "false",
            ...(v.before ? { before: v.before } : {}),
            limit: "100",
          },
        }),
        c.var.api.fleet.sites.$get({ query: { limit: "1000" } }),
      ]);
      const ctx = c.var.page;
      const list = res.ok
        ? alertListSchema.parse(await res.json())
        : { items: [], nextBefore: null, open: undefined };
      const items = list.items;
      const sites = sitesRes.ok
        ? ((await sitesRes.json()) as { items: Array<{ site: string | null }> }).items
          .map((s) => s.site).filter((s): s is string => s !== null).sort()
        : [];
      if (v.site && !sites.includes(v.site)) sites.unshift(v.site);
      const here = pathOf(v);
      // A viewer sees the alerts without the controls the API would refuse them.
      const canAct = ctx.role !== "viewer";
      return await html(
        c,
        <Layout title="Alerts" ctx={ctx} live>
          <form method="get" action="/ui/alerts" class="panel" id="alert-filter">
            <label>
              status
              <select name="status">
                {(["open", "resolved", "all"] as const).map((s) => (
                  <option value={s} selected={v.status === s}>{s}</option>
                ))}
              </select>
            </label>
            <label>
              site
              <select name="site">
                <option value="">any site</option>
                {sites.map((s) => <option value={s} selected={v.site === s}>{s}</option>)}
              </select>
            </label>
            <label>
              kind
              <select name="kind">
                <option value="">any kind</option>
                {kinds.map((k) => <option value={k} selected={v.kind === k}>{k}</option>)}
              </select>
            </label>
            <label>
              unacknowledged only
              <input
                type="checkbox"
                name="unacknowledged"
                value="true"
                checked={v.unacknowledged}
              />
            </label>
            <button type="submit">Filter</button>
            <a href="/ui/alerts">Clear</a>
          </form>
          {canAct && (
            <form method="post" action="/ui/sweep" class="inline">
              <Csrf ctx={ctx} />
              <input type="hidden" name="back" value={here} />
              <button type="submit">Run the status daemon now</button>
            </form>
          )}
          {list.open && (
            <p id="open-counts">
              Open{v.site ? ` at ${v.site}` : ""}:{" "}
              <a href={pathOf({ ...v, status: "open", unacknowledged: true }, false)}>
                <b>{list.open.unacknowledged}</b> unacknowledged
              </a>{" "}
              ·{" "}
              <a href={pathOf({ ...v, status: "open", unacknowledged: false }, false)}>
                {list.open.acknowledged} acknowledged
              </a>
            </p>
          )}
          <form method="post" action="/ui/alerts/ack" id="alerts-form">
            <Csrf ctx={ctx} />
            <input type="hidden" name="back" value={here} />
            <div class="panel" hidden={!canAct}>
              <label>
                note (for every alert acknowledged)
                <input
                  type="text"
                  name="note"
                  maxlength={500}
                  size={40}
                  value={kept(c)["note"] ?? ""}
                />
              </label>
              <button type="submit" name="scope" value="selected" id="ack-selected">
                Acknowledge selected
              </button>
              <button type="submit" name="scope" value="filter" id="ack-filter">
                Acknowledge all that match the filter
              </button>
            </div>
            <table id="alerts">
              <tr>
                <th>select</th>
                <th>appliance</th>
                <th>site</th>
                <th>acknowledged</th>
                <th>kind</th>
                <th>state</th>
                <th>last beat</th>
                <th>opened</th>
                <th>{v.status === "open" ? "open for" : "duration"}</th>
              </tr>
              {items.map((al) => (
                <tr data-alert={al.id} id={`alert-${al.id}`}>
                  <td>
                    {canAct && !al.acknowledgedAt && (
                      <input
                        type="checkbox"
                        name="id"
                        value={String(al.id)}
                        aria-label={`select alert ${al.id} (${al.hostname ?? al.kind})`}
                      />
                    )}
                  </td>
                  <td>
                    {al.uid ? <a href={`/ui/appliances/${al.uid}`}>{al.hostname ?? al.uid}</a> : ""}
                  </td>
                  <td>
                    {al.site
                      ? <a href={`/ui/alerts?site=${encodeURIComponent(al.site)}`}>{al.site}</a>
                      : ""}
                  </td>
                  <td>
                    {al.acknowledgedAt
                      ? (
                        <>
                          <Time at={al.acknowledgedAt} /> by {al.acknowledgedBy}
                          {al.acknowledgedNote && <>: {al.acknowledgedNote}</>}
                        </>
                      )
                      : canAct
                      ? (
                        <button type="submit" name="one" value={String(al.id)}>
                          Acknowledge
                        </button>
                      )
                      : <span class="muted">not yet</span>}
                  </td>
                  <td>{al.kind}</td>
                  <td>{al.applianceState ? <State state={al.applianceState} /> : ""}</td>
                  <td>
                    <Time at={al.lastBeatAt} />
                  </td>
                  <td>
                    <Time at={al.openedAt} />
                  </td>
                  <td>
                    {al.durationS === undefined
                      ? ""
                      : al.resolvedAt
                      ? `lasted ${duration(al.durationS)}`
                      : `open ${duration(al.durationS)}`}
                  </td>
                </tr>
              ))}
            </table>
          </form>
          {items.length === 0 && (
            <p class="muted">No {v.status === "all" ? "" : v.status + " "}alerts match.</p>
          )}
          <p>
            {v.before && <a href={pathOf(v, false)}>First page</a>}
            {v.before && list.nextBefore ? " · " : ""}
            {list.nextBefore && (
              <a href={pathOf({ ...v, before: String(list.nextBefore) })}>Next page</a>
            )}
          </p>
        </Layout>,
        res.status,
      );
    })
    .post("/alerts/ack", p.signedIn, async (c) => {
      const form = await c.req.parseBody({ all: true });
      const one = (k: string) => {
        const x = form[k];
        return typeof x === "string" ? x.trim() : "";
      };
      const v = viewOf(new URLSearchParams(one("back").replace(/^\/ui\/alerts\??/, "")));
      const note = one("note").slice(0, 500) || undefined;
      const single = one("one");
      const ids = single
        ? [single]
        : one("scope") === "selected"
        ? ([] as unknown[]).concat(form["id"] ?? []).filter((x): x is string =>
          typeof x === "string"
        )
        : null;
      const anchor = single ? `alert-${single}` : "alerts";
      if (ids !== null && ids.length === 0) {
        return refused(c, pathOf(v), "Select at least one alert to acknowledge", {
          note: note ?? "",
        });
      }
      if (ids !== null && !ids.every((x) => /^[1-9][0-9]{0,14}$/.test(x))) {
        return refused(c, pathOf(v), "An alert id is not a number");
      }
      if (ids !== null && ids.length > 1000) {
        return refused(c, pathOf(v), "At most 1,000 alerts at once: acknowledge by the filter");
      }
      const res = await c.var.api.alerts.ack.$post({
        json: ids !== null ? { ids: ids.map(Number), note } : {
          filter: {
            status: v.status,
            site: v.site,
            kind: v.kind,
            unacknowledged: v.unacknowledged ? "true" : "false",
          },
          note,
        },
      });
      if (!res.ok) return refused(c, pathOf(v), await refusal(res), { note: note ?? "" });
      const n = (await res.json()).acknowledged;
      return backTo(c, v, `Acknowledged ${n} alert${n === 1 ? "" : "s"}`, anchor);
    })
    .post("/alerts/:id/ack", p.signedIn, async (c) => {
      const res = await c.var.api.alerts[":id"].ack.$post({ param: { id: idOf(c) } });
      return back(c, "/ui/alerts", res.ok ? "Acknowledged" : await refusal(res));
    })
    .post("/sweep", p.signedIn, async (c) => {
      const form = await c.req.parseBody();
      const backPath = pathOf(
        viewOf(new URLSearchParams(field(form, "back").replace(/^\/ui\/alerts\??/, ""))),
      );
      const res = await c.var.api.sweep.$post();
      if (!res.ok) return refused(c, backPath, await refusal(res));
      const r = await res.json();
      return back(
        c,
        backPath,
        `Swept: ${r.alerted.length} newly missing, ${r.recovered.length} recovered`,
      );
    });
}
