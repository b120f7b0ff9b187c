/** `/v1/admin/sweep`: runs the status daemon now (spec, FIGURE 13) and says what it did. */
import { Hono } from "hono";
import { statusDaemon } from "../../jobs/status_daemon.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** `/v1/admin/sweep`: runs the status daemon now. */
export function sweepAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", async (c) => {
      const r = await statusDaemon(deps);
      return c.json({
        alerted: r.alerted,
        recovered: r.recovered,
        notices: r.notices,
        // Why nothing was judged (`clock_skew`: this instance's clock is off; `busy`: another
        // instance holds the sweep lease), and the NOC downtime given back to the fleet first.
        ...(r.skipped ? { skipped: r.skipped } : {}),
        creditedS: Math.round(r.creditedS),
        durationMs: Math.round(r.durationMs * 10) / 10,
      });
    });
}
