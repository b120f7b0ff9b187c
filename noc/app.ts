/** The NOC application factory: every route, one error handler, no globals. */
import { Hono } from "hono";
import { errorHandler } from "../protocol/http/errors.ts";
import { adminAuth } from "./http/middleware/admin_auth.ts";
import { requestSizeLimit } from "../protocol/http/validate.ts";
import { inRequest } from "../protocol/util/log.ts";
import type { AppDeps } from "./services/deps.ts";
import type { AppEnv } from "./http/env.ts";
import { enrollRoutes } from "./http/v1/enroll.ts";
import { beatRoutes } from "./http/v1/beats.ts";
import { keyRoutes } from "./http/v1/keys.ts";
import { healthRoutes } from "./http/ops/health.ts";
import { enrollmentTokenRoutes } from "./http/admin/enrollment_tokens.ts";
import { applianceAdminRoutes } from "./http/admin/appliances.ts";
import { alertAdminRoutes } from "./http/admin/alerts.ts";
import { maintenanceAdminRoutes } from "./http/admin/maintenance.ts";
import { opsAdminRoutes } from "./http/admin/fleet.ts";
import { componentAdminRoutes, uploadPaths } from "./http/admin/components.ts";
import { releaseAdminRoutes } from "./http/admin/releases.ts";
import { catalogRoutes } from "./http/v1/catalog.ts";
import { componentRoutes } from "./http/v1/components.ts";
import { installRoutes } from "./http/v1/installs.ts";
import { wakeRoutes } from "./http/v1/wake.ts";
import { wakeAdminRoutes } from "./http/admin/wake.ts";
import { localServerRoutes } from "./http/v1/local.ts";
import { localServerAdminRoutes } from "./http/admin/local_servers.ts";
import { metricsRoutes } from "./http/ops/metrics.ts";
import { openApiRoutes, type Operation } from "./http/ops/openapi.ts";
import {
  type AdminCall,
  consoleOperations,
  consoleRoutes,
  consoleUploadBytes,
} from "./http/console/mod.tsx";
import { toBase64Url } from "../protocol/util/encoding.ts";

const knownMethods = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

const rootOperation: Operation = {
  method: "get",
  path: "/",
  summary: "Redirects to the operator console",
  tag: "console",
  auth: "none",
  responses: { "302": "To /ui" },
  produces: "text/html",
};

/** Builds the NOC's Hono app from its dependencies. */
export function createApp(deps: AppDeps) {
  // The console calls the admin API in process with this key; it never leaves the process.
  const internalKey = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
  const admin = new Hono<AppEnv>()
    .use(adminAuth(deps, internalKey))
    .route("/enrollment-tokens", enrollmentTokenRoutes(deps))
    .route("/appliances", applianceAdminRoutes(deps))
    .route("/alerts", alertAdminRoutes(deps))
    .route("/maintenance", maintenanceAdminRoutes(deps))
    .route("/wake", wakeAdminRoutes(deps))
    .route("/local-servers", localServerAdminRoutes(deps))
    .route("/", opsAdminRoutes(deps))
    .route("/", componentAdminRoutes(deps))
    .route("/", releaseAdminRoutes(deps));
  admin.onError(errorHandler(deps.log));
  const sizeLimit = requestSizeLimit(deps.settings.maxBodyBytes, deps.settings.bodyTimeoutS);
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
  const consoleUpload = "/ui/releases/publish";
  // A console upload may take its time, but not forever.
  const consoleUploadLimit = requestSizeLimit(consoleUploadBytes, 600);

  const app = new Hono<AppEnv>()
    .use(async (c, next) => {
      const given = c.req.header("x-request-id");
      const id = given && /^[A-Za-z0-9._:-]{1,100}$/.test(given) ? given : crypto.randomUUID();
      const started = performance.now();
      await inRequest(id, next);
      c.header("x-request-id", id);
      const seconds = (performance.now() - started) / 1000;
      // By route pattern, not path: one series per route however many appliances.
      const route = c.req.matchedRoutes.filter((r) => r.method !== "ALL").at(-1)?.path ??
        "unmatched";
      deps.metrics.observe("noc_http_request_duration_seconds", {
        // Bounded: a client cannot mint new series with made-up methods.
        method: knownMethods.has(c.req.method) ? c.req.method : "other",
        route,
        status: `${Math.floor(c.res.status / 100)}xx`,
      }, seconds);
      const mode = deps.settings.requestLog;
      if (mode === "off" || (mode === "errors" && c.res.status < 400 && seconds < 1)) return;
      deps.log.info("request", {
        requestId: id,
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(seconds * 10000) / 10,
      });
    })
    // Uploads stream with their own, larger limit; every other body is small.
    .use((c, next) =>
      uploadPaths.test(c.req.path)
        ? next()
        : c.req.path === consoleUpload
        ? consoleUploadLimit(c, next)
        : sizeLimit(c, next)
    )
    .route("/healthz", healthRoutes(deps))
    .route("/metrics", metricsRoutes(deps))
    .route("/", openApiRoutes(deps, () => [...consoleOperations, rootOperation]))
    .get("/", (c) => c.redirect("/ui", 302))
    .route("/ui", consoleRoutes(deps, callAdmin))
    .route("/v1/enroll", enrollRoutes(deps))
    .route("/v1/beats", beatRoutes(deps))
    .route("/v1/keys", keyRoutes(deps))
    .route("/v1/catalog", catalogRoutes(deps))
    .route("/v1/components", componentRoutes(deps))
    .route("/v1/installs", installRoutes(deps))
    .route("/v1/wake", wakeRoutes(deps))
    .route("/v1/local", localServerRoutes(deps))
    .route("/v1/admin", admin);

  app.notFound((c) =>
    c.json({ error: "not_found", message: `No route for ${c.req.method} ${c.req.path}` }, 404)
  );
  app.onError(errorHandler(deps.log));
  return app;
}

/** The app's type, for typed clients. */
export type NocApp = ReturnType<typeof createApp>;
