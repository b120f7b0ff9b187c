/**
 * The NOC's composition root: `createApp(deps, { role })` mounts, for the
 * server role asked for (spec, FIGURE 2: one server or separate ones), each
 * resource's sub-app at its own path, each with its own body limit, under one
 * error handler.
 *
 * | role        | serves                                                                 |
 * | ----------- | ---------------------------------------------------------------------- |
 * | `all`       | everything below, and `POST /v1/checkin` (a beat and a catalog in one)  |
 * | `noc`       | status monitor (enrol, beats, wake, keys), local servers, admin, console |
 * | `catalog`   | catalogs and install outcomes                                          |
 * | `component` | component downloads only                                               |
 *
 * Every role serves `/healthz`, `/metrics` and `/openapi.json` (its own routes only).
 *
 * @module
 */
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { errorHandler } from "../protocol/http/errors.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import type { AppDeps } from "./services/deps.ts";
import { refusalGate } from "./http/middleware/appliance_auth.ts";
import { clockGate } from "./http/middleware/clock_gate.ts";
import type { AppEnv } from "./http/env.ts";
import { requestLog } from "./http/middleware/request_log.ts";
import { admission, shedAtOnce } from "./http/middleware/admission.ts";
import { enrollRoutes } from "./http/v1/enroll.ts";
import { beatRoutes } from "./http/v1/beats.ts";
import { keyRoutes } from "./http/v1/keys.ts";
import { catalogRoutes } from "./http/v1/catalog.ts";
import { checkinRoutes } from "./http/v1/checkin.ts";
import { componentRoutes } from "./http/v1/components.ts";
import { installRoutes } from "./http/v1/installs.ts";
import { wakeRoutes } from "./http/v1/wake.ts";
import { localServerRoutes } from "./http/v1/local.ts";
import { adminRoutes } from "./http/admin/mod.ts";
import { healthRoutes } from "./http/ops/health.ts";
import { metricsRoutes } from "./http/ops/metrics.ts";
import { openApiRoutes, type Operation } from "./http/ops/openapi.ts";
import { consoleOperations, consoleRoutes } from "./http/console/mod.tsx";

/** The server roles one process can take (`NOC_ROLE` / `--role`); `local-component` is local_server/. */
export type NocRole = "all" | "noc" | "catalog" | "component";

/** Options of {@link createApp}. */
export interface AppOptions {
  /** Which parts to serve; `all` by default. */
  role?: NocRole;
}

const rootOperation: Operation = {
  method: "get",
  path: "/",
  summary: "Redirects to the operator console",
  tag: "console",
  auth: "none",
  responses: { "302": "To /ui" },
  produces: "text/html",
};

/** Builds the NOC's Hono app from its dependencies, for one server role. */
export function createApp(deps: AppDeps, options: AppOptions = {}) {
  const role = options.role ?? "all";
  const serves = (r: Exclude<NocRole, "all">) => role === "all" || role === r;
  // The protocol's routes read no body until the request is authenticated (an appliance or
  // local-server signature verifies; an enrolment is within its address's budget), then read it
  // through readBody (protocol/http/validate.ts), bounded in size and time: no limit around them.

  const secure = secureHeaders({ crossOriginResourcePolicy: false, overwrite: false });
  const app = new Hono<AppEnv>()
    // Under overload most requests are refused: those whose class is full as they arrive, first
    // of all, at the least cost (noc/http/middleware/admission.ts).
    .use(shedAtOnce(deps, secure))
    .use(requestId({ limitLength: 100 }))
    .use(requestLog(deps))
    .use(secure)
    .route("/healthz", healthRoutes(deps))
    // Past its class's slots and queue a request is answered 503 at once, before anything is read
    // (noc/services/admission.ts).
    .use(admission(deps))
    // An address that has used up its refusals gets 429 before anything else is done.
    .use(refusalGate(deps))
    .route("/metrics", metricsRoutes(deps))
    // An instance whose clock is off the database's answers no appliance or local server.
    .use("/v1/*", clockGate(deps));

  if (serves("noc")) {
    // The console calls the admin API in process with this key; it never leaves the process.
    const internalKey = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
    const admin = adminRoutes(deps, internalKey);
    app
      .get("/", (c) => c.redirect("/ui", 302))
      .route("/ui", consoleRoutes(deps, admin, internalKey))
      .route("/v1/enroll", enrollRoutes(deps))
      .route("/v1/beats", beatRoutes(deps))
      .route("/v1/keys", keyRoutes(deps))
      .route("/v1/wake", wakeRoutes(deps))
      .route("/v1/local", localServerRoutes(deps))
      .route("/v1/admin", admin);
  }
  if (serves("catalog")) {
    app
      .route("/v1/catalog", catalogRoutes(deps))
      .route("/v1/installs", installRoutes(deps));
  }
  if (serves("component")) app.route("/v1/components", componentRoutes(deps));
  // A whole cycle in one request needs both the status monitor and the catalog server here.
  if (role === "all") app.route("/v1/checkin", checkinRoutes(deps));

  const extra = serves("noc") ? [...consoleOperations, rootOperation] : [];
  app.route("/", openApiRoutes(deps, () => extra, { role }));
  app.notFound((c) =>
    c.json({ error: "not_found", message: `No route for ${c.req.method} ${c.req.path}` }, 404)
  );
  app.onError(errorHandler(deps.log));
  return app;
}

/** The app's type. */
export type NocApp = ReturnType<typeof createApp>;
