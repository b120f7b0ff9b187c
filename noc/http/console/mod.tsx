// deno-lint-ignore-file no-explicit-any
/**
 * `/ui`: the operator console. Pages are rendered on the server (hono/jsx) and
 * read without JavaScript; one small script refreshes live pages. Signing in
 * with an admin token opens a session (HttpOnly, SameSite=Strict cookie);
 * every form carries the session's CSRF token. Reads and actions go through
 * the admin API in process, so the console can do nothing the API cannot.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { adminTokenLabel } from "../../services/admin_tokens.ts";
import {
  closeSession,
  csrfMatches,
  findSession,
  openSession,
  sessionCookie,
  sessionTtlS,
} from "../../services/console_sessions.ts";
import { isHttps } from "../v1/components.ts";
import { clientAddress } from "../middleware/appliance_auth.ts";
import { ApiError } from "../../../protocol/http/errors.ts";
import { timingSafeEqual } from "node:crypto";
import { bytes, Csrf, css, Layout, liveJs, type PageContext, State, Time } from "./layout.tsx";
import { LineChart } from "./charts.tsx";
import type { Operation } from "../ops/openapi.ts";
import type { AdminApp } from "../admin/mod.ts";
import { requestSizeLimit } from "../../../protocol/http/validate.ts";

/** Calls the admin API in process as the signed-in operator. */
export type AdminCall = (
  label: string,
  method: string,
  path: string,
  body?: unknown,
  raw?: { type: string; body: BodyInit },
) => Promise<{ status: number; body: any }>;

/** The largest upload the console takes (bigger packages: `deno task noc package`). */
export const consoleUploadBytes = 256 * 1024 * 1024;

const securityHeaders = {
  "content-security-policy":
    "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "cache-control": "no-store",
};

async function html(c: Context, page: any, status = 200, headers: Record<string, string> = {}) {
  const text = "<!doctype html>" + await page.toString();
  return c.html(text, status as 200, { ...securityHeaders, ...headers });
}

/** A form field as text ("" when absent or a file). */
function field(form: Record<string, unknown>, name: string): string {
  const v = form[name];
  return typeof v === "string" ? v.trim() : "";
}

function messageOf(r: { status: number; body: any }): string {
  const issues = Array.isArray(r.body?.issues)
    ? ` (${r.body.issues.map((i: any) => `${i.path}: ${i.message}`).join("; ")})`
    : "";
  return `${r.body?.message ?? `Failed (${r.status})`}${issues}`;
}

function back(c: Context, to: string, flash: string) {
  const sep = to.includes("?") ? "&" : "?";
  return c.redirect(`${to}${sep}flash=${encodeURIComponent(flash.slice(0, 300))}`, 303);
}

const safeNext = (n: string | undefined) =>
  n && /^\/ui(\/[A-Za-z0-9/_.-]*)?(\?[A-Za-z0-9_.=&%+,:@~-]*)?$/.test(n) ? n : "/ui";

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Route parameters, checked before they go anywhere (they end up in admin API paths). */
function uidOf(c: Context): string {
  const v = c.req.param("uid") ?? "";
  if (!uuidPattern.test(v)) {
    throw new ApiError(404, "not_found", `"${v.slice(0, 60)}" is not an appliance UID`);
  }
  return v;
}
function idOf(c: Context): string {
  const v = c.req.param("id") ?? "";
  if (!/^[1-9][0-9]{0,14}$/.test(v)) {
    throw new ApiError(404, "not_found", `"${v.slice(0, 60)}" is not an id`);
  }
  return v;
}
function nameOf(c: Context, name: string): string {
  const v = c.req.param(name) ?? "";
  if (!namePattern.test(v)) {
    throw new ApiError(404, "not_found", `"${v.slice(0, 60)}" is not a name`);
  }
  return v;
}
async function formOf(c: Context): Promise<Record<string, string | File>> {
  try {
    return await c.req.parseBody() as Record<string, string | File>;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(400, "malformed_form", "The form could not be read");
  }
}

/** The application, name and version fields of the publish and assign forms. */
function ComponentFields() {
  return (
    <>
      <label>
        Application<input name="app" required size={12} />
      </label>
      <label>
        Name<input name="name" required size={12} />
      </label>
      <label>
        Version<input name="version" required size={8} />
      </label>
    </>
  );
}

/** The console's routes, as OpenAPI operations (tag `console`). */
export const consoleOperations: Operation[] = (() => {
  const op = (method: Operation["method"], path: string, summary: string): Operation => ({
    method,
    path: `/ui${path}`,
    summary,
    tag: "console",
    auth: path === "/login" || path.startsWith("/static") ? "none" : "session",
    responses: method === "get"
      ? { "200": "HTML page" }
      : { "303": "Done; redirects back with a message" },
    produces: method === "get" ? "text/html" : "text/html",
  });
  return [
    op("get", "/static/app.css", "Stylesheet"),
    op("get", "/static/live.js", "Live refresh script"),
    op("get", "/login", "Sign-in form"),
    op("post", "/login", "Sign in with an admin token"),
    op("post", "/logout", "Sign out"),
    op("get", "", "Fleet at a glance"),
    op("get", "/appliances", "Appliances: search, filter, pages"),
    op("get", "/appliances/:uid", "One appliance"),
    op("post", "/appliances/:uid/wake", "Wake an appliance now"),
    op("post", "/appliances/:uid/revoke", "Revoke an appliance"),
    op("get", "/alerts", "Alerts, open or resolved"),
    op("post", "/alerts/:id/ack", "Acknowledge an alert"),
    op("post", "/sweep", "Run the status daemon now"),
    op("get", "/releases", "Releases: publish, assign, roll out, hold"),
    op("post", "/releases/publish", "Publish a package payload or a file (multipart)"),
    op("post", "/releases/assign", "Assign a release"),
    op("post", "/releases/assignments/:id", "Change a rollout"),
    op("post", "/releases/holds", "Hold an appliance"),
    op("post", "/releases/holds/:id/delete", "Release a hold"),
    op("get", "/apps/:app/fileinfo", "fileinfo of an application"),
    op("post", "/apps/:app/fileinfo", "Save a file's fileinfo"),
    op("post", "/apps/:app/fileinfo/:name/delete", "Delete a file's fileinfo"),
    op("get", "/tokens", "Enrolment tokens"),
    op("post", "/tokens", "Create an enrolment token"),
    op("post", "/tokens/:id/revoke", "Revoke an enrolment token"),
    op("get", "/local-servers", "Local component servers"),
  ];
})();

/** The console. */
export function consoleRoutes(deps: AppDeps, admin: AdminApp, internalKey: string) {
  const callAdmin: AdminCall = async (label, method, path, body, raw) => {
    const headers: Record<string, string> = {
      "x-noc-internal": internalKey,
      "x-noc-admin-label": label,
    };
    let payload: BodyInit | undefined;
    if (raw) {
      headers["content-type"] = raw.type;
      payload = raw.body;
    } else if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const res = await admin.request(`http://console.internal${path}`, {
      method,
      headers,
      ...(payload === undefined ? {} : { body: payload }),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed };
  };
  const small = requestSizeLimit(deps.settings.maxBodyBytes, deps.settings.bodyTimeoutS);
  // A console upload may take its time, but not forever.
  const uploadLimit = requestSizeLimit(consoleUploadBytes, 600);
  const app = new Hono<AppEnv & { Variables: { page: PageContext } }>();
  app.use((c, next) =>
    c.req.path === "/ui/releases/publish" ? uploadLimit(c, next) : small(c, next)
  );
  const secure = (c: Context) => isHttps(c, deps.settings.trustProxy);

  app.get(
    "/static/app.css",
    (c) =>
      c.body(css, 200, {
        "content-type": "text/css; charset=utf-8",
        "cache-control": "max-age=3600",
      }),
  );
  app.get("/static/live.js", (c) =>
    c.body(liveJs, 200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": "max-age=3600",
    }));

  // Sign-in: its own CSRF token, double-submitted in a cookie, as there is no session yet.
  app.get("/login", async (c) => {
    const token = crypto.randomUUID();
    setCookie(c, "noc_login", token, {
      httpOnly: true,
      sameSite: "Strict",
      secure: secure(c),
      path: "/ui/login",
      maxAge: 1800,
    });
    const next = safeNext(c.req.query("next"));
    const failed = c.req.query("failed") !== undefined;
    return await html(
      c,
      <Layout title="Sign in" ctx={null}>
        {failed && <p class="flash">That admin token is not valid.</p>}
        <form method="post" action="/ui/login" class="panel">
          <input type="hidden" name="_csrf" value={token} />
          <input type="hidden" name="next" value={next} />
          <label>
            Admin token
            <input
              type="password"
              name="token"
              required
              autocomplete="current-password"
              size={60}
            />
          </label>
          <button type="submit">Sign in</button>
        </form>
        <p class="muted">
          The token printed by <code>deno task dev</code>, or one set with NOC_ADMIN_TOKEN.
        </p>
      </Layout>,
    );
  });
  app.post("/login", async (c) => {
    const address = clientAddress(c, deps.settings.trustProxy) ?? "unknown";
    deps.limits.login.take(address, `address ${address}`);
    const form = await formOf(c);
    const cookie = getCookie(c, "noc_login");
    const given = new TextEncoder().encode(field(form, "_csrf"));
    const expected = new TextEncoder().encode(cookie ?? "");
    if (!cookie || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return await html(
        c,
        <Layout title="Refused" ctx={null}>
          <p>
            The sign-in form is out of date. <a href="/ui/login">Sign in again</a>.
          </p>
        </Layout>,
        403,
      );
    }
    const token = field(form, "token");
    const label = await adminTokenLabel(deps.db, token);
    const next = safeNext(field(form, "next"));
    if (label === null) {
      return c.redirect(`/ui/login?failed=1&next=${encodeURIComponent(next)}`, 303);
    }
    // A new session every sign-in: one from before (anyone's) is ended, never reused.
    const previous = getCookie(c, sessionCookie);
    if (previous) await closeSession(deps.db, previous);
    const s = await openSession(deps.db, token, label, deps.clock.now());
    setCookie(c, "noc_login", "", { path: "/ui/login", maxAge: 0 });
    // Lax: a link to a console page from mail or chat opens signed in; every change is a POST
    // that also needs the CSRF token.
    setCookie(c, sessionCookie, s.id, {
      httpOnly: true,
      sameSite: "Lax",
      secure: secure(c),
      path: "/",
      maxAge: sessionTtlS,
    });
    deps.log.info("console_signed_in", { label });
    return c.redirect(next, 303);
  });

  // Everything else needs a session; every POST its CSRF token.
  app.use("*", async (c, next) => {
    const session = await findSession(deps.db, getCookie(c, sessionCookie), deps.clock.now());
    if (!session) {
      if (c.req.method === "GET") {
        return c.redirect(
          `/ui/login?next=${encodeURIComponent(c.req.path + new URL(c.req.url).search)}`,
          303,
        );
      }
      return await html(
        c,
        <Layout title="Signed out" ctx={null}>
          <p>
            Your session has ended. <a href="/ui/login">Sign in again</a>.
          </p>
        </Layout>,
        401,
      );
    }
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const given = c.req.header("content-type")?.startsWith("multipart/form-data") ||
          c.req.header("content-type")?.startsWith("application/x-www-form-urlencoded")
        ? (await formOf(c))["_csrf"]
        : undefined;
      if (!csrfMatches(session, given)) {
        deps.log.warn("console_csrf_refused", { path: c.req.path, label: session.label });
        return await html(
          c,
          <Layout title="Refused" ctx={null}>
            <p>This form did not carry a valid CSRF token, so nothing was done.</p>
          </Layout>,
          403,
        );
      }
    }
    c.set("page", { label: session.label, csrf: session.csrf, flash: c.req.query("flash") });
    await next();
  });

  const as = (c: any) => (c.get("page") as PageContext).label;
  const ctxOf = (c: any) => c.get("page") as PageContext;

  app.post("/logout", async (c) => {
    const id = getCookie(c, sessionCookie);
    if (id) await closeSession(deps.db, id);
    setCookie(c, sessionCookie, "", { path: "/", maxAge: 0 });
    return c.redirect("/ui/login", 303);
  });

  // Fleet.
  app.get("/", async (c) => {
    const [fleet, open] = await Promise.all([
      callAdmin(as(c), "GET", "/fleet"),
      callAdmin(as(c), "GET", "/alerts?status=open&limit=20"),
    ]);
    const counts = fleet.body.states;
    const rate = (fleet.body.beatsPerMinute as any[]).map((b) => ({
      t: Date.parse(b.at),
      v: b.perMinute,
    }));
    const versions: any[] = fleet.body.versions;
    const alerts: any[] = open.body.items;
    return await html(
      c,
      <Layout title="Fleet" ctx={ctxOf(c)} live>
        <div class="cards" id="counts">
          {(["ok", "late", "missing", "revoked"] as const).map((s) => (
            <a class="card" href={`/ui/appliances?state=${s}`} data-state={s}>
              <State state={s} />
              <b>{counts[s]}</b>
            </a>
          ))}
          <a class="card" href="/ui/alerts">
            open alerts<b>{fleet.body.openAlerts}</b>
          </a>
        </div>
        <h2>Beats per minute, last 24 hours</h2>
        <LineChart points={rate} label="beats per minute (10-minute buckets)" />
        <div class="grid">
          <section>
            <h2>Open alerts</h2>
            {alerts.length === 0 ? <p class="muted">None.</p> : (
              <table>
                <tr>
                  <th>appliance</th>
                  <th>kind</th>
                  <th>since</th>
                </tr>
                {alerts.map((a) => (
                  <tr>
                    <td>
                      {a.uid ? <a href={`/ui/appliances/${a.uid}`}>{a.hostname ?? a.uid}</a> : "-"}
                    </td>
                    <td>{a.kind}{a.acknowledgedAt ? " (acknowledged)" : ""}</td>
                    <td>
                      <Time at={a.openedAt} />
                    </td>
                  </tr>
                ))}
              </table>
            )}
          </section>
          <section>
            <h2>Versions in the field</h2>
            {versions.length === 0
              ? <p class="muted">No appliance has reported components.</p>
              : (
                <table>
                  <tr>
                    <th>application</th>
                    <th>component</th>
                    <th>version</th>
                    <th class="num">appliances</th>
                  </tr>
                  {versions.map((v) => (
                    <tr>
                      <td>{v.app}</td>
                      <td>{v.name}</td>
                      <td>
                        <a
                          href={`/ui/appliances?app=${encodeURIComponent(v.app)}&version=${
                            encodeURIComponent(v.version)
                          }`}
                        >
                          {v.version}
                        </a>
                      </td>
                      <td class="num">{v.n}</td>
                    </tr>
                  ))}
                </table>
              )}
          </section>
        </div>
      </Layout>,
    );
  });

  // Appliances.
  app.get("/appliances", async (c) => {
    const q = new URLSearchParams();
    const filters = ["q", "state", "model", "site", "channel", "tag", "app", "version", "cursor"];
    for (const f of filters) {
      const v = c.req.query(f);
      if (v) q.set(f, v);
    }
    q.set("limit", "50");
    const r = await callAdmin(as(c), "GET", `/appliances?${q}`);
    const v = (f: string) => c.req.query(f) ?? "";
    const nextQ = new URLSearchParams(q);
    nextQ.delete("limit");
    if (r.body?.nextCursor) nextQ.set("cursor", r.body.nextCursor);
    return await html(
      c,
      <Layout title="Appliances" ctx={ctxOf(c)}>
        <form method="get" action="/ui/appliances" class="panel" role="search">
          <label>
            Search<input name="q" value={v("q")} placeholder="host name or UID" />
          </label>
          <label>
            State
            <select name="state">
              {["", "ok", "late", "missing", "revoked"].map((s) => (
                <option value={s} selected={v("state") === s}>{s || "any"}</option>
              ))}
            </select>
          </label>
          {["model", "site", "channel", "tag", "app", "version"].map((f) => (
            <label>
              {f}
              <input name={f} value={v(f)} size={10} />
            </label>
          ))}
          <button type="submit">Filter</button>
        </form>
        {r.status !== 200 ? <p class="flash">{messageOf(r)}</p> : (
          <>
            <table id="appliances">
              <tr>
                <th>host name</th>
                <th>state</th>
                <th>model</th>
                <th>site</th>
                <th>channel</th>
                <th>last beat</th>
                <th>agent</th>
              </tr>
              {r.body.items.map((a: any) => (
                <tr>
                  <td>
                    <a href={`/ui/appliances/${a.uid}`}>{a.hostname}</a>
                  </td>
                  <td>
                    <State state={a.state} />
                  </td>
                  <td>{a.model}</td>
                  <td>{a.site ?? ""}</td>
                  <td>{a.channel}</td>
                  <td>
                    <Time at={a.lastBeatAt} />
                  </td>
                  <td>{a.agentVersion ?? ""}</td>
                </tr>
              ))}
            </table>
            {r.body.items.length === 0 && <p class="muted">No appliance matches.</p>}
            {r.body.nextCursor && (
              <p>
                <a href={`/ui/appliances?${nextQ}`} rel="next">Next page</a>
              </p>
            )}
          </>
        )}
      </Layout>,
      r.status === 200 ? 200 : r.status,
    );
  });

  app.get("/appliances/:uid", async (c) => {
    const uid = uidOf(c);
    const r = await callAdmin(as(c), "GET", `/appliances/${encodeURIComponent(uid)}?history=200`);
    if (r.status !== 200) {
      return await html(
        c,
        <Layout title="Appliance" ctx={ctxOf(c)}>
          <p class="flash">{messageOf(r)}</p>
        </Layout>,
        r.status,
      );
    }
    const a = r.body;
    const config = await callAdmin(as(c), "GET", `/appliances/${uid}/configuration`);
    const should: any[] = a.catalog;
    const installed: any[] = Array.isArray(a.lastReport?.components) ? a.lastReport.components : [];
    const outcomes: any[] = a.installOutcomes;
    const history: any[] = a.history ?? [];
    const load = history.map((b) => ({
      t: Date.parse(b.receivedAt),
      v: Number(b.report?.health?.load?.[0] ?? 0),
    }));
    const disk = history.map((b) => ({
      t: Date.parse(b.receivedAt),
      v: Math.min(
        ...((b.report?.health?.disks ?? []) as any[]).map((d) => Number(d.freeBytes) / 1024 ** 3),
        Infinity,
      ),
    })).filter((p) => Number.isFinite(p.v));
    const key = (x: any) => `${x.kind}/${x.app}/${x.name}`;
    const running = new Map(installed.map((x) => [key(x), x.version]));
    return await html(
      c,
      <Layout title={a.hostname} ctx={ctxOf(c)} live>
        <p>
          <State state={a.state} /> {a.model} · site {a.site ?? "none"} · channel {a.channel}
          {a.tags.length ? ` · tags ${a.tags.join(", ")}` : ""} · UID <code>{a.uid}</code>
        </p>
        <p class="muted">
          Enrolled <Time at={a.enrolledAt} />, last beat <Time at={a.lastBeatAt} />, next due{" "}
          <Time at={a.nextDueAt} />, agent {a.agentVersion ?? "?"}, interval {a.intervalS} s
          {a.revokedAt ? `, revoked: ${a.revokedReason}` : ""}
        </p>
        <div>
          <form method="post" action={`/ui/appliances/${a.uid}/wake`} class="inline">
            <Csrf ctx={ctxOf(c)} />
            <button type="submit">Wake now</button>
          </form>{" "}
          {!a.revokedAt && (
            <form method="post" action={`/ui/appliances/${a.uid}/revoke`} class="inline">
              <Csrf ctx={ctxOf(c)} />
              <input name="reason" placeholder="reason for revoking" required />
              <button type="submit" class="danger">Revoke</button>
            </form>
          )}
        </div>
        <div class="grid">
          <LineChart points={load} label="load (1 min)" />
          <LineChart points={disk} label="least disk free" unit="GiB" />
        </div>
        <h2>Components: running versus catalog</h2>
        <table id="components">
          <tr>
            <th>kind</th>
            <th>application</th>
            <th>name</th>
            <th>running</th>
            <th>catalog</th>
          </tr>
          {[...new Set([...installed.map(key), ...should.map(key)])].sort().map((k) => {
            const [kind, app, name] = k.split("/");
            const want = should.find((s) => key(s) === k)?.version;
            const have = running.get(k);
            return (
              <tr>
                <td>{kind}</td>
                <td>{app}</td>
                <td>{name}</td>
                <td>{have ?? <span class="muted">none</span>}</td>
                <td>
                  {want ?? <span class="muted">not in catalog</span>}
                  {want && have !== want ? " (pending)" : ""}
                </td>
              </tr>
            );
          })}
        </table>
        <h2>Configuration the NOC assembled</h2>
        <table>
          <tr>
            <th>kind</th>
            <th>component</th>
            <th>version</th>
            <th>sent</th>
            <th>via</th>
          </tr>
          {(config.body?.items ?? []).map((i: any) => (
            <tr>
              <td>{i.kind}</td>
              <td>{i.app}/{i.name}</td>
              <td>{i.version}</td>
              <td>
                <Time at={i.lastSentAt} /> ({i.times}×)
              </td>
              <td>{i.via ? i.via.name : "NOC"}</td>
            </tr>
          ))}
        </table>
        <h2>Install outcomes</h2>
        <table>
          <tr>
            <th>when</th>
            <th>component</th>
            <th>outcome</th>
            <th>message</th>
          </tr>
          {outcomes.map((o) => (
            <tr>
              <td>
                <Time at={o.reportedAt} />
              </td>
              <td>{o.app}/{o.name}@{o.version}</td>
              <td>{o.outcome}</td>
              <td>{o.message ?? ""}</td>
            </tr>
          ))}
        </table>
        <h2>Alerts</h2>
        <table>
          <tr>
            <th>kind</th>
            <th>opened</th>
            <th>resolved</th>
          </tr>
          {a.alerts.map((al: any) => (
            <tr>
              <td>{al.kind}</td>
              <td>
                <Time at={al.openedAt} />
              </td>
              <td>
                <Time at={al.resolvedAt} />
              </td>
            </tr>
          ))}
        </table>
        <h2>Last report</h2>
        <pre>{JSON.stringify(a.lastReport, null, 2)}</pre>
      </Layout>,
    );
  });
  app.post("/appliances/:uid/wake", async (c) => {
    const uid = uidOf(c);
    const r = await callAdmin(as(c), "POST", "/wake", { uid });
    return back(
      c,
      `/ui/appliances/${uid}`,
      r.status === 202 ? "Woken: it cycles now" : messageOf(r),
    );
  });
  app.post("/appliances/:uid/revoke", async (c) => {
    const uid = uidOf(c);
    const form = await formOf(c);
    const r = await callAdmin(as(c), "POST", `/appliances/${uid}/revoke`, {
      reason: field(form, "reason"),
    });
    return back(c, `/ui/appliances/${uid}`, r.status === 200 ? "Revoked" : messageOf(r));
  });

  // Alerts.
  app.get("/alerts", async (c) => {
    const status = c.req.query("status") === "resolved" ? "resolved" : "open";
    const r = await callAdmin(as(c), "GET", `/alerts?status=${status}&limit=200`);
    const items: any[] = r.body?.items ?? [];
    return await html(
      c,
      <Layout title="Alerts" ctx={ctxOf(c)} live>
        <p>
          <a href="/ui/alerts">open</a> · <a href="/ui/alerts?status=resolved">resolved</a>
        </p>
        <form method="post" action="/ui/sweep" class="inline">
          <Csrf ctx={ctxOf(c)} />
          <button type="submit">Run the status daemon now</button>
        </form>
        <table id="alerts">
          <tr>
            <th>appliance</th>
            <th>kind</th>
            <th>opened</th>
            <th>{status === "open" ? "acknowledged" : "resolved"}</th>
          </tr>
          {items.map((al) => (
            <tr data-alert={al.id}>
              <td>
                {al.uid ? <a href={`/ui/appliances/${al.uid}`}>{al.hostname ?? al.uid}</a> : ""}
              </td>
              <td>{al.kind}</td>
              <td>
                <Time at={al.openedAt} />
              </td>
              <td>
                {status === "resolved" ? <Time at={al.resolvedAt} /> : al.acknowledgedAt
                  ? (
                    <>
                      <Time at={al.acknowledgedAt} /> by {al.acknowledgedBy}
                    </>
                  )
                  : (
                    <form method="post" action={`/ui/alerts/${al.id}/ack`} class="inline">
                      <Csrf ctx={ctxOf(c)} />
                      <button type="submit">Acknowledge</button>
                    </form>
                  )}
              </td>
            </tr>
          ))}
        </table>
        {items.length === 0 && <p class="muted">No {status} alerts.</p>}
      </Layout>,
      r.status === 200 ? 200 : r.status,
    );
  });
  app.post("/alerts/:id/ack", async (c) => {
    const r = await callAdmin(as(c), "POST", `/alerts/${idOf(c)}/ack`);
    return back(c, "/ui/alerts", r.status === 200 ? "Acknowledged" : messageOf(r));
  });
  app.post("/sweep", async (c) => {
    const r = await callAdmin(as(c), "POST", "/sweep");
    return back(
      c,
      "/ui/alerts",
      r.status === 200
        ? `Swept: ${r.body.alerted.length} newly missing, ${r.body.recovered.length} recovered`
        : messageOf(r),
    );
  });

  // Releases.
  app.get("/releases", async (c) => {
    const [components, assignments, holds] = await Promise.all([
      callAdmin(as(c), "GET", "/components?limit=200"),
      callAdmin(as(c), "GET", "/assignments"),
      callAdmin(as(c), "GET", "/holds"),
    ]);
    const ctx = ctxOf(c);
    return await html(
      c,
      <Layout title="Releases" ctx={ctx}>
        <h2>Publish</h2>
        <form
          method="post"
          action="/ui/releases/publish"
          enctype="multipart/form-data"
          class="panel"
        >
          <Csrf ctx={ctx} />
          <label>
            Kind
            <select name="kind">
              <option value="package">package (gzip tar of a folder with install)</option>
              <option value="file">file</option>
            </select>
          </label>
          <ComponentFields />
          <label>
            File<input type="file" name="file" required />
          </label>
          <button type="submit">Publish</button>
        </form>
        <h2>Assign</h2>
        <form method="post" action="/ui/releases/assign" class="panel">
          <Csrf ctx={ctx} />
          <label>
            Kind
            <select name="kind">
              <option value="package">package</option>
              <option value="file">file</option>
            </select>
          </label>
          <ComponentFields />
          <label>
            Target
            <select name="targetType">
              {["all", "model", "channel", "site", "tag", "appliance"].map((t) => (
                <option value={t}>{t}</option>
              ))}
            </select>
          </label>
          <label>
            Value<input name="targetValue" size={12} />
          </label>
          <label>
            Rollout %<input name="rolloutPercent" type="number" min="0" max="100" value="100" />
          </label>
          <button type="submit">Assign</button>
        </form>
        <h2>Assignments and rollouts</h2>
        <table id="assignments">
          <tr>
            <th>release</th>
            <th>target</th>
            <th>rollout</th>
            <th class="num">running it</th>
            <th class="num">sent</th>
            <th class="num">failed</th>
            <th>change</th>
          </tr>
          {(assignments.body?.items ?? []).map((a: any) => (
            <tr data-assignment={a.id}>
              <td>{a.kind} {a.app}/{a.name}@{a.version}</td>
              <td>{a.target.type}{a.target.value ? ` ${a.target.value}` : ""}</td>
              <td>
                {a.rolloutPercent}%{a.paused
                  ? ` · paused${a.pausedReason ? `: ${a.pausedReason}` : ""}`
                  : ""}
              </td>
              <td class="num" data-installed>{a.progress.installed}</td>
              <td class="num">{a.progress.sent}</td>
              <td class="num">{a.progress.failed}</td>
              <td>
                <form method="post" action={`/ui/releases/assignments/${a.id}`} class="inline">
                  <Csrf ctx={ctx} />
                  <input
                    name="rolloutPercent"
                    type="number"
                    min="0"
                    max="100"
                    value={String(a.rolloutPercent)}
                    aria-label="rollout percent"
                  />
                  <select name="paused" aria-label="paused">
                    <option value="false" selected={!a.paused}>running</option>
                    <option value="true" selected={a.paused}>held</option>
                  </select>
                  <button type="submit">Save</button>
                </form>
              </td>
            </tr>
          ))}
        </table>
        <h2>Holds</h2>
        <form method="post" action="/ui/releases/holds" class="panel">
          <Csrf ctx={ctx} />
          <label>
            Appliance UID<input name="uid" required size={36} />
          </label>
          <label>
            Application (all if empty)<input name="app" size={12} />
          </label>
          <label>
            Reason<input name="reason" required size={24} />
          </label>
          <button type="submit">Hold</button>
        </form>
        <table>
          <tr>
            <th>appliance</th>
            <th>application</th>
            <th>reason</th>
            <th></th>
          </tr>
          {(holds.body?.items ?? []).map((h: any) => (
            <tr>
              <td>
                <a href={`/ui/appliances/${h.uid}`}>{h.uid}</a>
              </td>
              <td>{h.app ?? "all"}</td>
              <td>{h.reason}</td>
              <td>
                <form method="post" action={`/ui/releases/holds/${h.id}/delete`} class="inline">
                  <Csrf ctx={ctx} />
                  <button type="submit">Release</button>
                </form>
              </td>
            </tr>
          ))}
        </table>
        <h2>Published components</h2>
        <table id="published">
          <tr>
            <th>kind</th>
            <th>component</th>
            <th>version</th>
            <th class="num">size</th>
            <th>published</th>
          </tr>
          {(components.body?.items ?? []).map((k: any) => (
            <tr>
              <td>{k.kind}</td>
              <td>
                {k.app}/{k.name}
                {k.kind === "file" && (
                  <>
                    {" "}· <a href={`/ui/apps/${k.app}/fileinfo`}>fileinfo</a>
                  </>
                )}
              </td>
              <td>{k.version}</td>
              <td class="num">{bytes(k.size)}</td>
              <td>
                <Time at={k.createdAt} />
              </td>
            </tr>
          ))}
        </table>
      </Layout>,
    );
  });
  app.post("/releases/publish", async (c) => {
    const length = Number(c.req.header("content-length") ?? "0");
    if (length > consoleUploadBytes) {
      return back(
        c,
        "/ui/releases",
        `Uploads through the console are limited to ${
          bytes(consoleUploadBytes)
        }; use deno task noc package`,
      );
    }
    const form = await formOf(c);
    const file = form["file"];
    const kind = field(form, "kind") === "file" ? "file" : "package";
    if (!(file instanceof File)) return back(c, "/ui/releases", "Choose a file to publish");
    const q = new URLSearchParams({
      app: field(form, "app"),
      name: field(form, "name"),
      version: field(form, "version"),
    });
    const r = await callAdmin(
      as(c),
      "POST",
      `/${kind === "file" ? "files" : "packages"}?${q}`,
      undefined,
      {
        type: kind === "file" ? "application/octet-stream" : "application/gzip",
        body: file.stream(),
      },
    );
    return back(
      c,
      "/ui/releases",
      r.status === 201 || r.status === 200
        ? `Published ${kind} ${q.get("app")}/${q.get("name")}@${q.get("version")}`
        : messageOf(r),
    );
  });
  app.post("/releases/assign", async (c) => {
    const form = await formOf(c);
    const type = field(form, "targetType");
    const r = await callAdmin(as(c), "POST", "/assignments", {
      kind: field(form, "kind"),
      app: field(form, "app"),
      name: field(form, "name"),
      version: field(form, "version"),
      target: type === "all" ? { type } : { type, value: field(form, "targetValue") },
      rolloutPercent: Number(field(form, "rolloutPercent") || "100"),
    });
    return back(c, "/ui/releases", r.status === 201 ? "Assigned" : messageOf(r));
  });
  app.post("/releases/assignments/:id", async (c) => {
    const form = await formOf(c);
    const r = await callAdmin(as(c), "PATCH", `/assignments/${idOf(c)}`, {
      rolloutPercent: Number(field(form, "rolloutPercent")),
      paused: field(form, "paused") === "true",
    });
    return back(c, "/ui/releases", r.status === 200 ? "Rollout saved" : messageOf(r));
  });
  app.post("/releases/holds", async (c) => {
    const form = await formOf(c);
    const app_ = field(form, "app");
    const r = await callAdmin(as(c), "POST", "/holds", {
      uid: field(form, "uid"),
      reason: field(form, "reason"),
      ...(app_ ? { app: app_ } : {}),
    });
    return back(c, "/ui/releases", r.status === 201 ? "Held" : messageOf(r));
  });
  app.post("/releases/holds/:id/delete", async (c) => {
    const r = await callAdmin(as(c), "DELETE", `/holds/${idOf(c)}`);
    return back(c, "/ui/releases", r.status === 200 ? "Hold released" : messageOf(r));
  });

  // fileinfo.
  app.get("/apps/:app/fileinfo", async (c) => {
    const appName = nameOf(c, "app");
    const r = await callAdmin(as(c), "GET", `/apps/${encodeURIComponent(appName)}/fileinfo`);
    const ctx = ctxOf(c);
    return await html(
      c,
      <Layout title={`fileinfo: ${appName}`} ctx={ctx}>
        {r.status !== 200 && <p class="flash">{messageOf(r)}</p>}
        <table id="fileinfo">
          <tr>
            <th>file</th>
            <th>destination</th>
            <th>mode</th>
            <th>action</th>
            <th></th>
          </tr>
          {(r.body?.items ?? []).map((f: any) => (
            <tr>
              <td>{f.name}</td>
              <td>{f.destination}</td>
              <td>{f.mode}</td>
              <td>
                <code>{f.action ? JSON.stringify(f.action) : ""}</code>
              </td>
              <td>
                <form
                  method="post"
                  action={`/ui/apps/${appName}/fileinfo/${f.name}/delete`}
                  class="inline"
                >
                  <Csrf ctx={ctx} />
                  <button type="submit" class="danger">Delete</button>
                </form>
              </td>
            </tr>
          ))}
        </table>
        <h2>Save</h2>
        <form method="post" action={`/ui/apps/${appName}/fileinfo`} class="panel">
          <Csrf ctx={ctx} />
          <label>
            File name<input name="name" required size={14} />
          </label>
          <label>
            Destination (under the root)<input name="destination" required size={24} />
          </label>
          <label>
            Mode<input name="mode" value="0644" size={5} />
          </label>
          <label>
            Action (JSON argument list)
            <input name="action" placeholder='["systemctl","reload","x"]' size={30} />
          </label>
          <button type="submit">Save</button>
        </form>
      </Layout>,
      r.status === 200 ? 200 : r.status,
    );
  });
  app.post("/apps/:app/fileinfo", async (c) => {
    const appName = nameOf(c, "app");
    const form = await formOf(c);
    let action: unknown = undefined;
    const text = field(form, "action");
    if (text) {
      try {
        action = JSON.parse(text);
      } catch {
        return back(c, `/ui/apps/${appName}/fileinfo`, `Action "${text.slice(0, 80)}" is not JSON`);
      }
    }
    const r = await callAdmin(
      as(c),
      "PUT",
      `/apps/${encodeURIComponent(appName)}/fileinfo/${encodeURIComponent(field(form, "name"))}`,
      {
        destination: field(form, "destination"),
        mode: field(form, "mode") || "0644",
        ...(action === undefined ? {} : { action }),
      },
    );
    return back(c, `/ui/apps/${appName}/fileinfo`, r.status === 200 ? "Saved" : messageOf(r));
  });
  app.post("/apps/:app/fileinfo/:name/delete", async (c) => {
    const appName = nameOf(c, "app");
    const r = await callAdmin(
      as(c),
      "DELETE",
      `/apps/${encodeURIComponent(appName)}/fileinfo/${encodeURIComponent(nameOf(c, "name"))}`,
    );
    return back(c, `/ui/apps/${appName}/fileinfo`, r.status === 200 ? "Deleted" : messageOf(r));
  });

  // Enrolment tokens.
  const tokensPage = async (c: any, created?: { token: string; purpose: string }) => {
    const r = await callAdmin(as(c), "GET", "/enrollment-tokens?limit=100");
    const ctx = ctxOf(c);
    return await html(
      c,
      <Layout title="Enrolment tokens" ctx={ctx}>
        {created && (
          <p class="flash" id="new-token">
            New {created.purpose} token (shown once): <code>{created.token}</code>
          </p>
        )}
        <form method="post" action="/ui/tokens" class="panel">
          <Csrf ctx={ctx} />
          <label>
            For
            <select name="purpose">
              <option value="appliance">an appliance</option>
              <option value="local-server">a local component server</option>
            </select>
          </label>
          <label>
            Label<input name="label" size={14} />
          </label>
          <label>
            Site<input name="site" size={10} />
          </label>
          <label>
            Channel<input name="channel" size={8} />
          </label>
          <label>
            Tags (comma-separated)<input name="tags" size={14} />
          </label>
          <label>
            Valid (hours)<input name="hours" type="number" min="1" max="720" value="24" />
          </label>
          <button type="submit">Create</button>
        </form>
        <table id="tokens">
          <tr>
            <th>id</th>
            <th>for</th>
            <th>label</th>
            <th>site</th>
            <th>status</th>
            <th>expires</th>
            <th></th>
          </tr>
          {(r.body?.items ?? []).map((t: any) => (
            <tr>
              <td>{t.id}</td>
              <td>{t.purpose}</td>
              <td>{t.label ?? ""}</td>
              <td>{t.site ?? ""}</td>
              <td>{t.status}{t.usedBy ? ` by ${t.usedBy}` : ""}</td>
              <td>
                <Time at={t.expiresAt} />
              </td>
              <td>
                {t.status === "unused" && (
                  <form method="post" action={`/ui/tokens/${t.id}/revoke`} class="inline">
                    <Csrf ctx={ctx} />
                    <button type="submit" class="danger">Revoke</button>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </table>
      </Layout>,
    );
  };
  app.get("/tokens", (c) => tokensPage(c));
  app.post("/tokens", async (c) => {
    const form = await formOf(c);
    const opt = (n: string) => field(form, n) || undefined;
    const tags = field(form, "tags").split(",").map((t) => t.trim()).filter(Boolean);
    const r = await callAdmin(as(c), "POST", "/enrollment-tokens", {
      purpose: field(form, "purpose") === "local-server" ? "local-server" : "appliance",
      ttlS: Number(field(form, "hours") || "24") * 3600,
      ...(opt("label") ? { label: opt("label") } : {}),
      ...(opt("site") ? { site: opt("site") } : {}),
      ...(opt("channel") ? { channel: opt("channel") } : {}),
      ...(tags.length ? { tags } : {}),
    });
    if (r.status !== 201) return back(c, "/ui/tokens", messageOf(r));
    return await tokensPage(c, { token: r.body.token, purpose: r.body.purpose });
  });
  app.post("/tokens/:id/revoke", async (c) => {
    const r = await callAdmin(as(c), "DELETE", `/enrollment-tokens/${idOf(c)}`);
    return back(c, "/ui/tokens", r.status === 200 ? "Token revoked" : messageOf(r));
  });

  // Local component servers.
  app.get("/local-servers", async (c) => {
    const r = await callAdmin(as(c), "GET", "/local-servers");
    return await html(
      c,
      <Layout title="Local component servers" ctx={ctxOf(c)} live>
        <table id="local-servers">
          <tr>
            <th>site</th>
            <th>name</th>
            <th>state</th>
            <th>last contact</th>
            <th class="num">cache</th>
            <th class="num">hit rate</th>
            <th class="num">records pending</th>
            <th>problems</th>
          </tr>
          {(r.body?.items ?? []).map((s: any) => (
            <tr>
              <td>{s.site}</td>
              <td>
                {s.name} <span class="muted">{s.url}</span>
              </td>
              <td>
                <State state={s.state === "silent" ? "late" : s.state} /> {s.state}
              </td>
              <td>
                <Time at={s.lastContactAt} />
              </td>
              <td class="num">
                {bytes(s.cache.bytes)} / {bytes(s.cache.limit)} ({s.cache.entries})
              </td>
              <td class="num">{s.hitRate === null ? "-" : `${Math.round(s.hitRate * 100)}%`}</td>
              <td class="num">{s.pendingRecords}</td>
              <td>
                {s.problems.slice(0, 3).map((p: any) => `${p.code}: ${p.message}`).join("; ")}
              </td>
            </tr>
          ))}
        </table>
        {(r.body?.items ?? []).length === 0 && (
          <p class="muted">
            None yet: create a token “for a local component server” on the Enrolment page.
          </p>
        )}
      </Layout>,
    );
  });

  // Refusals as pages, with their status.
  app.onError(async (err, c) => {
    if (err instanceof ApiError) {
      return await html(
        c,
        <Layout title="Refused" ctx={null}>
          <p>{err.message}</p>
          <p>
            <a href="/ui">Back to the console</a>
          </p>
        </Layout>,
        err.status,
        err instanceof ApiError ? err.headers : {},
      );
    }
    deps.log.error("console_error", { error: err instanceof Error ? err.message : String(err) });
    return await html(
      c,
      <Layout title="Error" ctx={null}>
        <p>Something went wrong; it has been logged.</p>
      </Layout>,
      500,
    );
  });

  return app;
}
