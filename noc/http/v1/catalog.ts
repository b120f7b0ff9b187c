/** `GET /v1/catalog`: the catalog server (spec, FIGURE 8). */
import { Hono } from "hono";
import { applianceAuth } from "../middleware/appliance_auth.ts";
import { answerCatalog } from "../../services/catalogs.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The catalog route. */
export function catalogRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().get("/", applianceAuth(deps), async (c) => {
    const a = c.get("appliance");
    const base = deps.settings.componentUrl ?? deps.settings.publicUrl ??
      new URL(c.req.url).origin;
    const answer = await answerCatalog(
      deps,
      a.uid,
      c.req.header("if-none-match"),
      base.replace(/\/$/, ""),
    );
    c.header("etag", answer.etag);
    c.header("cache-control", "no-store");
    deps.metrics.inc("noc_catalogs_total", { status: String(answer.status) });
    if (answer.status === 304) return c.body(null, 304);
    return c.body(answer.body, 200, { "content-type": "application/json" });
  });
}
