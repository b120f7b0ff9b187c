/**
 * `/ui`: the operator console. Pages are rendered on the server (hono/jsx) and
 * read without JavaScript; one small script refreshes live pages. Signing in
 * with an admin token opens a session (HttpOnly cookie); every form carries
 * the session's CSRF token. Reads and actions go through the admin API in
 * process (a typed `hc` client, {@link adminClient}), so the console can do
 * nothing the API cannot.
 *
 * This module is the sub-app: secure headers, body limits, the session guard,
 * and the pages (`pages/*.tsx`) mounted together.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { getCookie } from "hono/cookie";
import { secureHeaders } from "hono/secure-headers";
import type { AppDeps } from "../../services/deps.ts";
import {
  type ConsoleSession,
  csrfMatches,
  findSession,
  sessionCookie,
} from "../../services/console_sessions.ts";
import { writeAudit } from "../../services/audit.ts";
import { neededRole, type Role, roleAllows } from "../../services/operators.ts";
import { ApiError } from "../../../protocol/http/errors.ts";
import { requestSizeLimit } from "../../../protocol/http/validate.ts";
import type { Operation } from "../ops/openapi.ts";
import type { AdminApp } from "../admin/mod.ts";
import { adminClient, rawAdminCall } from "./admin_client.ts";
import { clientAddress } from "../middleware/appliance_auth.ts";
import { css, Layout, liveJs } from "./layout.tsx";
import { type ConsoleEnv, formOf, html, openFlash, type PageDeps, sealFlash } from "./page.ts";
import { loginPages } from "./pages/login.tsx";
import { fleetPage } from "./pages/fleet.tsx";
import { applianceListPage } from "./pages/appliances.tsx";
import { appliancePages } from "./pages/appliance.tsx";
import { alertPages } from "./pages/alerts.tsx";
import { consoleUploadBytes, releasePages } from "./pages/releases.tsx";
import { rolloutActions } from "./pages/rollouts.tsx";
import { releaseAppliancePages } from "./pages/release_appliances.tsx";
import { fileinfoPages } from "./pages/fileinfo.tsx";
import { tokenPages } from "./pages/tokens.tsx";
import { localServerPage } from "./pages/local_servers.tsx";
import { operatorPages } from "./pages/operators.tsx";
import { auditPages } from "./pages/audit.tsx";
import { maintenancePages } from "./pages/maintenance.tsx";
import { phasedRolloutPages } from "./pages/phased_rollouts.tsx";
import { installWindowPages } from "./pages/install_windows.tsx";

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
    produces: "text/html",
  });
  return [
    op("get", "/static/app.css", "Stylesheet"),
    op("get", "/static/live.js", "Live refresh script"),
    op("get", "/login", "Sign-in form"),
    op("post", "/login", "Sign in: name and password, or a personal or admin token"),
    op("post", "/logout", "Sign out"),
    op("get", "", "Fleet at a glance"),
    op("get", "/appliances", "Appliances: search, filter, sort, total, pages both ways"),
    op("post", "/appliances/bulk", "A bulk action on the selected or all matching appliances"),
    op("get", "/appliances/:uid", "One appliance"),
    op("post", "/appliances/:uid/wake", "Wake an appliance now"),
    op("get", "/appliances/:uid/revoke", "Confirm revoking an appliance"),
    op("post", "/appliances/:uid/revoke", "Revoke an appliance (confirmed=yes)"),
    op("post", "/appliances/:uid/edit", "Change an appliance's site, channel, tags, interval"),
    op("post", "/appliances/:uid/hold", "Hold an appliance (or one application of it)"),
    op("post", "/appliances/:uid/holds/:id/delete", "Release one of its holds"),
    op(
      "post",
      "/appliances/:uid/identity-conflict/clear",
      "Clear an appliance's identity-conflict (clone) mark",
    ),
    op("get", "/alerts", "Alerts, open or resolved"),
    op("post", "/alerts/:id/ack", "Acknowledge an alert"),
    op("post", "/alerts/ack", "Acknowledge the selected alerts, or all the filter selects"),
    op("post", "/sweep", "Run the status daemon now"),
    op("get", "/releases", "Releases: publish, assign, roll out, hold"),
    op("post", "/releases/publish", "Publish a package payload or a file (multipart)"),
    op("post", "/releases/assign", "Assign a release (the flash says the target size)"),
    op("post", "/releases/assignments/:id", "Change a rollout's percentage and gate"),
    op("post", "/releases/assignments/:id/pause", "Pause a rollout"),
    op("post", "/releases/assignments/:id/resume", "Resume a rollout"),
    op("post", "/releases/assignments/:id/delete", "Delete an assignment (confirmed first)"),
    op("get", "/releases/assignments/:id/appliances", "A release's appliances, outcomes"),
    op("post", "/releases/holds", "Hold an appliance"),
    op("post", "/releases/holds/:id/delete", "Release a hold"),
    op("get", "/apps/:app/fileinfo", "fileinfo of an application"),
    op("post", "/apps/:app/fileinfo", "Save a file's fileinfo"),
    op("post", "/apps/:app/fileinfo/:name/delete", "Delete a file's fileinfo (asks first)"),
    op("get", "/tokens", "Enrolment tokens"),
    op("post", "/tokens", "Create an enrolment token"),
    op("get", "/tokens/:id/new", "A new enrolment token, shown to its session for 10 minutes"),
    op("post", "/tokens/:id/hide", "Stop showing a new enrolment token"),
    op("post", "/tokens/:id/revoke", "Revoke an enrolment token (asks first)"),
    op("get", "/local-servers", "Local component servers"),
    op("get", "/operators", "Operators: roles, passwords, personal tokens (admin)"),
    op("post", "/operators", "Create an operator"),
    op("post", "/operators/:name/role", "Change an operator's role"),
    op("post", "/operators/:name/password", "Set an operator's password"),
    op("post", "/operators/:name/disable", "Disable an operator (asks first)"),
    op("post", "/operators/:name/enable", "Enable an operator again"),
    op("post", "/operators/:name/tokens", "Issue a personal API token (then shows it)"),
    op("get", "/operators/:name/tokens/:id/new", "A new personal token, shown to its session"),
    op("post", "/operators/:name/tokens/:id/hide", "Stop showing a new personal token"),
    op("post", "/operators/:name/tokens/:id/revoke", "Revoke a personal API token"),
    op("get", "/audit", "Audit log: filters, pages (admin, operator)"),
    op("get", "/audit.csv", "Audit log as CSV"),
    op("post", "/local-servers/:id/revoke", "Revoke a local component server (asks first)"),
    op("get", "/maintenance", "Maintenance windows: open, list, end"),
    op("post", "/maintenance", "Open a maintenance window for a site or an appliance"),
    op("post", "/maintenance/:id/end", "End a maintenance window (after a confirmation)"),
    op("get", "/install-windows", "Install windows: list, pages, set (or change) one"),
    op("post", "/install-windows", "Set the install window of an appliance, a site or a model"),
    op(
      "post",
      "/install-windows/:scope/:value/delete",
      "Remove an install window (asks first)",
    ),
    op("get", "/rollouts", "Phased rollouts: state filter, pages"),
    op("get", "/rollouts/new", "The form that starts a phased rollout"),
    op("post", "/rollouts", "Start a phased rollout (then shows it)"),
    op("get", "/rollouts/:id", "A phased rollout: phases, gate figures, appliances, timeline"),
    op("post", "/rollouts/:id/pause", "Pause a phased rollout"),
    op("post", "/rollouts/:id/resume", "Resume a phased rollout"),
    op("post", "/rollouts/:id/advance", "Advance a phased rollout now (asks first)"),
    op("post", "/rollouts/:id/cancel", "Cancel a phased rollout (asks first)"),
  ];
})();

/**
 * What each console form needs before any of its body is read. A POST (or any method but GET and
 * HEAD) to `/ui<prefix>` or below it (the longest prefix at a `/` boundary wins) needs the most
 * that writing to any of `api` needs in the admin API's role table (noc/services/operators.ts
 * `roleTable`): the resources its action calls. `/logout` needs only a session. A console path in
 * no row needs `admin` (fail closed); a test checks every console form is in a row.
 */
export const consoleWriteTable: ReadonlyArray<{ prefix: string; api: readonly string[] }> = [
  { prefix: "/logout", api: [] },
  { prefix: "/appliances", api: ["/appliances", "/wake", "/holds"] },
  { prefix: "/alerts", api: ["/alerts"] },
  { prefix: "/sweep", api: ["/sweep"] },
  { prefix: "/maintenance", api: ["/maintenance"] },
  { prefix: "/install-windows", api: ["/install-windows"] },
  { prefix: "/rollouts", api: ["/rollouts"] },
  { prefix: "/releases/publish", api: ["/packages", "/files"] },
  { prefix: "/releases/assign", api: ["/assignments"] },
  { prefix: "/releases/assignments", api: ["/assignments"] },
  { prefix: "/releases/holds", api: ["/holds"] },
  { prefix: "/apps", api: ["/apps"] },
  { prefix: "/tokens", api: ["/enrollment-tokens"] },
  { prefix: "/local-servers", api: ["/local-servers"] },
  { prefix: "/operators", api: ["/operators"] },
];

/** The least role that may post to console path `path` (`/ui/…`); see {@link consoleWriteTable}. */
export function consoleWriteRole(path: string): Role {
  const p = path.startsWith("/ui/") ? path.slice(3) : path;
  let best: (typeof consoleWriteTable)[number] | null = null;
  for (const row of consoleWriteTable) {
    const hit = p === row.prefix || p.startsWith(`${row.prefix}/`);
    if (hit && (!best || row.prefix.length > best.prefix.length)) best = row;
  }
  if (!best) return "admin";
  return best.api.map((a) => neededRole("POST", a)).reduce<Role>(
    (most, r) => roleAllows(most, r) ? most : r,
    "viewer",
  );
}

/** A refusal page with `status`, written before the request's body is read. */
async function refusedPage(c: Context, status: 403, text: string): Promise<Response> {
  return await html(
    c,
    <Layout title="Refused" ctx={null}>
      <p>{text}</p>
      <p>
        <a href="/ui">Back to the console</a>
      </p>
    </Layout>,
    status,
  );
}

/**
 * The session guard. Before a byte of the body is read: a request without a live session is sent
 * to sign in (a GET) or refused (401); a write (any method but GET and HEAD) the browser says comes
 * from another site (`Sec-Fetch-Site: cross-site` or `same-site`) is refused (403); a write below
 * the role its route needs ({@link consoleWriteRole}) is refused (403 `forbidden_role`, written
 * to the audit log). Then `limit` bounds the body, and a write without the session's CSRF token
 * (a form field, so read from the bounded body) is refused (403). Otherwise it sets the page
 * context (with the flash, refusal and kept form sealed for this session, page.ts `openFlash`)
 * and the operator's admin client.
 */
function session(
  deps: AppDeps,
  admin: AdminApp,
  internalKey: string,
  limit: MiddlewareHandler,
): MiddlewareHandler<ConsoleEnv> {
  const checked = csrfAndContext(deps, admin, internalKey);
  return async (c, next) => {
    const cookie = getCookie(c, sessionCookie);
    const s = await findSession(deps.db, cookie, deps.clock.now());
    if (!s || !cookie) {
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
    if (isWrite(c.req.method)) {
      const site = c.req.header("sec-fetch-site");
      if (site === "cross-site" || site === "same-site") {
        deps.log.warn("console_csrf_refused", { path: c.req.path, label: s.label, site });
        return await refusedPage(
          c,
          403,
          "This form was sent from another site, so nothing was done.",
        );
      }
      const need = consoleWriteRole(c.req.path);
      if (!roleAllows(s.role, need)) {
        await auditRefusal(deps, c, s);
        deps.log.warn("console_forbidden_role", {
          label: s.label,
          role: s.role,
          need,
          path: c.req.path,
        });
        return await refusedPage(
          c,
          403,
          `${c.req.method} ${c.req.path.slice(0, 200)} needs the ${need} role; ${s.label} has ` +
            `the ${s.role} role, so nothing was read or done.`,
        );
      }
    }
    await limit(c, async () => {
      const refused = await checked(c, next, s, cookie);
      if (refused) c.res = refused;
    });
  };
}

function isWrite(method: string): boolean {
  return method !== "GET" && method !== "HEAD";
}

/**
 * Writes the audit record of a console write refused for its role, stamped as the admin API's
 * (noc/http/middleware/admin_auth.ts); a failure is logged and counted, and the refusal stands.
 */
async function auditRefusal(deps: AppDeps, c: Context, s: ConsoleSession): Promise<void> {
  let route = c.req.path;
  let targets: Record<string, string> = {};
  try {
    route = routePath(c) || route;
    targets = Object.fromEntries(
      Object.entries(c.req.param() as Record<string, string>).map(([k, v]) => [
        k,
        String(v).slice(0, 100),
      ]),
    );
  } catch {
    // No route matched: the path says enough.
  }
  try {
    await writeAudit(deps.db, {
      actor: s.label,
      role: s.role,
      via: "console",
      method: c.req.method.toUpperCase(),
      route: route.slice(0, 300),
      path: c.req.path.slice(0, 300),
      targets,
      status: 403,
      error: "forbidden_role",
      summary: null,
      address: clientAddress(c, deps.settings.trustProxy),
      userAgent: c.req.header("user-agent")?.slice(0, 200) ?? null,
    }, {
      clock: deps.clock,
      // An instance whose clock disagrees with the database's does not prune (noc_time.ts).
      prune: deps.checkins.instance.clockSkewS === null,
    });
  } catch (e) {
    // Nothing was done: the refusal stands, and the lost record is said loudly.
    deps.metrics.inc("noc_audit_failures_total", { stage: "refusal" });
    deps.log.error("audit_write_failed", {
      path: c.req.path,
      stage: "refusal",
      error: e instanceof Error ? e.message : String(e),
    });
  }
}

/** The CSRF check and the page context, for a request whose session `s` (cookie `id`) is live. */
function csrfAndContext(deps: AppDeps, admin: AdminApp, internalKey: string) {
  return async (
    c: Parameters<MiddlewareHandler<ConsoleEnv>>[0],
    next: () => Promise<void>,
    s: ConsoleSession,
    id: string,
  ): Promise<Response | void> => {
    if (isWrite(c.req.method)) {
      const type = c.req.header("content-type");
      const given = type?.startsWith("multipart/form-data") ||
          type?.startsWith("application/x-www-form-urlencoded")
        ? (await formOf(c))["_csrf"]
        : undefined;
      if (!csrfMatches(s, given)) {
        deps.log.warn("console_csrf_refused", { path: c.req.path, label: s.label });
        return await html(
          c,
          <Layout title="Refused" ctx={null}>
            <p>This form did not carry a valid CSRF token, so nothing was done.</p>
          </Layout>,
          403,
        );
      }
    }
    const now = deps.clock.now();
    const shown = openFlash(id, now, c.req.query());
    c.set("page", {
      label: s.label,
      role: s.role,
      csrf: s.csrf,
      flash: shown.flash,
      error: shown.error,
      kept: shown.kept,
      path: c.req.path,
    });
    c.set("flashSeal", (parts) => sealFlash(id, deps.clock.now(), parts));
    // The admin API enforces this operator's current role and records the browser's address.
    const who = {
      label: s.label,
      role: s.role,
      address: clientAddress(c, deps.settings.trustProxy),
      userAgent: c.req.header("user-agent") ?? null,
    };
    c.set("api", adminClient(admin, internalKey, who));
    c.set("rawApi", rawAdminCall(admin, internalKey, who));
    await next();
  };
}

/**
 * The console: its own secure headers (CSP), then the pages. Every route
 * bounds its body itself: the publish form the upload limit, every other
 * route the small one; every route but sign-in and the static files needs a
 * session.
 */
export function consoleRoutes(deps: AppDeps, admin: AdminApp, internalKey: string) {
  const small = requestSizeLimit(deps.settings.maxBodyBytes, deps.settings.bodyTimeoutS);
  // A console upload may take its time, but not forever.
  const upload = requestSizeLimit(consoleUploadBytes, 600);
  const p: PageDeps = {
    deps,
    small,
    // The session, the browser's word on where the form comes from and the route's role first
    // (nothing of the body is read without them), then the body limit, then the CSRF token from
    // the bounded form.
    signedIn: session(deps, admin, internalKey, small),
    signedInUpload: session(deps, admin, internalKey, upload),
  };
  const app = new Hono<ConsoleEnv>()
    .use(secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        imgSrc: ["'self'", "data:"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
      referrerPolicy: "same-origin",
      crossOriginResourcePolicy: false,
    }))
    .get("/static/app.css", small, (c) =>
      c.body(css, 200, {
        "content-type": "text/css; charset=utf-8",
        "cache-control": "max-age=3600",
      }))
    .get("/static/live.js", small, (c) =>
      c.body(liveJs, 200, {
        "content-type": "text/javascript; charset=utf-8",
        "cache-control": "max-age=3600",
      }))
    .route("/", loginPages(p))
    .route("/", fleetPage(p))
    .route("/", applianceListPage(p))
    .route("/", appliancePages(p))
    .route("/", alertPages(p))
    .route("/", releasePages(p))
    .route("/", rolloutActions(p))
    .route("/", releaseAppliancePages(p))
    .route("/", fileinfoPages(p))
    .route("/", tokenPages(p))
    .route("/", localServerPage(p))
    .route("/", operatorPages(p))
    .route("/", auditPages(p))
    .route("/", maintenancePages(p))
    .route("/", phasedRolloutPages(p))
    .route("/", installWindowPages(p))
    // Any other path: signed in, it is the app's 404; signed out, sign in first (as any page).
    .all("*", p.signedIn, (c) => c.notFound());

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
        err.headers,
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
