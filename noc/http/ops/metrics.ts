/**
 * `GET /metrics`: Prometheus text format. Read with an admin token or the
 * `NOC_METRICS_TOKEN` bearer token (give the scraper that one).
 *
 * @module
 */
import { Hono } from "hono";
import { timingSafeEqual } from "node:crypto";
import { ApiError } from "../../../protocol/http/errors.ts";
import { adminTokenLabel } from "../../services/admin_tokens.ts";
import { clientAddress } from "../middleware/appliance_auth.ts";
import { utf8 } from "../../../protocol/util/encoding.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

function same(a: string, b: string): boolean {
  const x = utf8(a), y = utf8(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The metrics route. */
export function metricsRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().get("/", async (c) => {
    const m = /^Bearer\s+(\S{1,200})$/i.exec(c.req.header("authorization") ?? "");
    const token = m?.[1];
    const allowed = token !== undefined &&
      ((deps.settings.metricsToken !== null && same(token, deps.settings.metricsToken)) ||
        (await adminTokenLabel(deps.db, token)) !== null);
    if (!allowed) {
      // Counted against the address as any refused token (an address past its budget gets 429
      // before any lookup: app.ts refusalGate), so guessing costs a lookup each only so often.
      deps.limits.refusals.count(clientAddress(c, deps.settings.trustProxy) ?? "unknown");
      throw new ApiError(
        401,
        "unauthorized",
        "Metrics require Authorization: Bearer <metrics or admin token>",
        {},
        { "www-authenticate": 'Bearer realm="noc-metrics"' },
      );
    }
    const body = await deps.metrics.render(
      deps.db,
      deps.clock.now(),
      deps.settings.graceS,
      deps.admission,
    );
    return c.body(body, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });
}
