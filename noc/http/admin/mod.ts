/**
 * The admin API (`/v1/admin`): bearer-token authentication, then one sub-app
 * per resource at its own path. Every JSON body is bounded by the request
 * size limit; the two upload resources (`/packages`, `/files`) stream with
 * their own, larger limit instead.
 *
 * @module
 */
import { Hono } from "hono";
import { requestSizeLimit } from "../../../protocol/http/validate.ts";
import { errorHandler } from "../../../protocol/http/errors.ts";
import { adminAuth } from "../middleware/admin_auth.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { enrollmentTokenRoutes } from "./enrollment_tokens.ts";
import { applianceAdminRoutes } from "./appliances.ts";
import { alertAdminRoutes } from "./alerts.ts";
import { maintenanceAdminRoutes } from "./maintenance.ts";
import { wakeAdminRoutes } from "./wake.ts";
import { localServerAdminRoutes } from "./local_servers.ts";
import { fleetAdminRoutes } from "./fleet.ts";
import { sweepAdminRoutes } from "./sweep.ts";
import { noticeAdminRoutes } from "./notices.ts";
import { authFailureAdminRoutes } from "./auth_failures.ts";
import { fileAdminRoutes, packageAdminRoutes } from "./uploads.ts";
import { componentAdminRoutes } from "./components.ts";
import { releaseKeyAdminRoutes } from "./release_keys.ts";
import { fileinfoAdminRoutes } from "./fileinfo.ts";
import { assignmentAdminRoutes } from "./assignments.ts";
import { holdAdminRoutes } from "./holds.ts";

/**
 * Builds the admin API. `internalKey` lets the console call it in process
 * (a random key that never leaves the process); see {@link adminAuth}.
 */
export function adminRoutes(deps: AppDeps, internalKey: string) {
  const small = requestSizeLimit(deps.settings.maxBodyBytes, deps.settings.bodyTimeoutS);
  const bounded = <T extends Hono<AppEnv>>(sub: T) =>
    new Hono<AppEnv>().use(small).route("/", sub) as unknown as T;
  const app = new Hono<AppEnv>()
    .use(adminAuth(deps, internalKey))
    .route("/enrollment-tokens", bounded(enrollmentTokenRoutes(deps)))
    .route("/appliances", bounded(applianceAdminRoutes(deps)))
    .route("/alerts", bounded(alertAdminRoutes(deps)))
    .route("/maintenance", bounded(maintenanceAdminRoutes(deps)))
    .route("/wake", bounded(wakeAdminRoutes(deps)))
    .route("/local-servers", bounded(localServerAdminRoutes(deps)))
    .route("/fleet", bounded(fleetAdminRoutes(deps)))
    .route("/sweep", bounded(sweepAdminRoutes(deps)))
    .route("/notices", bounded(noticeAdminRoutes(deps)))
    .route("/auth-failures", bounded(authFailureAdminRoutes(deps)))
    .route("/packages", packageAdminRoutes(deps))
    .route("/files", fileAdminRoutes(deps))
    .route("/components", bounded(componentAdminRoutes(deps)))
    .route("/release-keys", bounded(releaseKeyAdminRoutes(deps)))
    .route("/apps", bounded(fileinfoAdminRoutes(deps)))
    .route("/assignments", bounded(assignmentAdminRoutes(deps)))
    .route("/holds", bounded(holdAdminRoutes(deps)));
  app.onError(errorHandler(deps.log));
  return app;
}

/** The admin API's type, for the typed client (`hc<AdminApp>`) the console and tests use. */
export type AdminApp = ReturnType<typeof adminRoutes>;
