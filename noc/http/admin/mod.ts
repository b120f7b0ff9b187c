/**
 * The admin API (`/v1/admin`): bearer-token authentication, then the role gate
 * and the audit log (noc/http/middleware/admin_auth.ts), then one sub-app
 * per resource at its own path. Every JSON body is bounded by the request
 * size limit; the two upload resources (`/packages`, `/files`) stream with
 * their own, larger limit instead.
 *
 * @module
 */
import { Hono } from "hono";
import { requestSizeLimit } from "../../../protocol/http/validate.ts";
import { errorHandler } from "../../../protocol/http/errors.ts";
import { adminAuth, roleGate } from "../middleware/admin_auth.ts";
import type { AppDeps } from "../../services/deps.ts";
import { bounded } from "../middleware/body_limit.ts";
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
import { meAdminRoutes, operatorAdminRoutes } from "./operators.ts";
import { auditAdminRoutes } from "./audit.ts";
import { rolloutAdminRoutes } from "./rollouts.ts";
import { ifMatchGuard } from "./revisions.ts";
import { installWindowAdminRoutes } from "./install_windows.ts";

/**
 * Builds the admin API. `internalKey` lets the console call it in process
 * (a random key that never leaves the process); see {@link adminAuth}.
 */
export function adminRoutes(deps: AppDeps, internalKey: string) {
  const small = requestSizeLimit(deps.settings.maxBodyBytes, deps.settings.bodyTimeoutS);
  const app = new Hono<AppEnv>()
    .use(adminAuth(deps, internalKey))
    // Roles (noc/services/operators.ts roleTable) and the audit log, before any body is read.
    .use(roleGate(deps))
    // A malformed If-Match is 400 before anything else is read (noc/http/admin/revisions.ts).
    .use(ifMatchGuard())
    .route("/enrollment-tokens", bounded(small, enrollmentTokenRoutes(deps)))
    .route("/appliances", bounded(small, applianceAdminRoutes(deps)))
    .route("/alerts", bounded(small, alertAdminRoutes(deps)))
    .route("/maintenance", bounded(small, maintenanceAdminRoutes(deps)))
    .route("/wake", bounded(small, wakeAdminRoutes(deps)))
    .route("/local-servers", bounded(small, localServerAdminRoutes(deps)))
    .route("/fleet", bounded(small, fleetAdminRoutes(deps)))
    .route("/sweep", bounded(small, sweepAdminRoutes(deps)))
    .route("/notices", bounded(small, noticeAdminRoutes(deps)))
    .route("/auth-failures", bounded(small, authFailureAdminRoutes(deps)))
    .route("/packages", packageAdminRoutes(deps))
    .route("/files", fileAdminRoutes(deps))
    .route("/components", bounded(small, componentAdminRoutes(deps)))
    .route("/release-keys", bounded(small, releaseKeyAdminRoutes(deps)))
    .route("/install-windows", bounded(small, installWindowAdminRoutes(deps)))
    .route("/apps", bounded(small, fileinfoAdminRoutes(deps)))
    .route("/assignments", bounded(small, assignmentAdminRoutes(deps)))
    .route("/holds", bounded(small, holdAdminRoutes(deps)))
    .route("/rollouts", bounded(small, rolloutAdminRoutes(deps)))
    .route("/operators", bounded(small, operatorAdminRoutes(deps)))
    .route("/me", meAdminRoutes())
    .route("/", auditAdminRoutes(deps));
  app.onError(errorHandler(deps.log));
  return app;
}

/** The admin API's type, for the typed client (`hc<AdminApp>`) the console and tests use. */
export type AdminApp = ReturnType<typeof adminRoutes>;
