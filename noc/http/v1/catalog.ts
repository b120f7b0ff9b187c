/**
 * `GET /v1/catalog`: the catalog server (spec, FIGURE 8). Every answer, 200
 * and 304 alike, carries a `Catalog-Binding` signed over the request's
 * signature nonce and the body's SHA-256 (see noc/services/catalogs.ts).
 */
import { type Context, Hono } from "hono";
import { applianceAuth, refuseVerified } from "../middleware/appliance_auth.ts";
import { ApiError } from "../../../protocol/http/errors.ts";
import { answerCatalog, type CatalogAnswer } from "../../services/catalogs.ts";
import type { CatalogTouchRow } from "../../services/checkins.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { CATALOG_BINDING_HEADER } from "../../../protocol/catalog.ts";

/**
 * Answers the catalog request of authenticated request `c` (its `If-None-Match`, its spent
 * nonce), sets `ETag`, `Cache-Control: no-store` and `Catalog-Binding` on `c`, and counts it.
 * `touched`: the row a joined check-in's beat statement read (noc/http/v1/checkin.ts); without
 * it the catalog statement archives the request. Shared by `GET /v1/catalog` and `POST /v1/checkin`.
 */
export async function catalogFor(
  deps: AppDeps,
  c: Context<AppEnv>,
  touched?: CatalogTouchRow,
): Promise<CatalogAnswer> {
  const base = deps.settings.componentUrl ?? deps.settings.publicUrl ?? new URL(c.req.url).origin;
  const uid = c.get("appliance").uid;
  if (!touched) {
    // Archived here, so that an appliance revoked or deleted since its request was authenticated
    // is refused as every proven refusal is (recorded), not answered (review 23h).
    const t = await deps.checkins.touchCatalog(uid, deps.clock.now());
    if (t === undefined || t === "revoked") deps.checkins.forgetAppliance(uid);
    if (t === undefined) {
      throw new ApiError(401, "unknown_key", `Appliance "${uid}" is not enrolled`);
    }
    if (t === "revoked") return await refuseVerified(deps, c, uid, "revoked");
    touched = t;
  }
  const answer = await answerCatalog(
    deps,
    uid,
    c.req.header("if-none-match"),
    base.replace(/\/$/, ""),
    // The nonce the authentication middleware verified and spent: never seen before.
    c.get("nonce"),
    touched,
  );
  c.header("etag", answer.etag);
  c.header("cache-control", "no-store");
  c.header(CATALOG_BINDING_HEADER, answer.binding);
  deps.metrics.inc("noc_catalogs_total", { status: String(answer.status) });
  return answer;
}

/** The catalog route. */
export function catalogRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().get("/", applianceAuth(deps), async (c) => {
    const answer = await catalogFor(deps, c);
    if (answer.status === 304) return c.body(null, 304);
    return c.body(answer.body, 200, { "content-type": "application/json" });
  });
}
