/** `/v1/admin/fleet`: fleet counts by state, beats per minute over the last day, versions in the field. */
import { Hono } from "hono";
import { fleetCounts } from "../../services/appliances.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** `/v1/admin/fleet`: fleet counts, beats per minute and versions in the field. */
export function fleetAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", async (c) => {
      const now = deps.clock.now();
      const [row, beats, versions] = await Promise.all([
        fleetCounts(deps.db, now, deps.settings.graceS),
        deps.fleetOverview.beatRate(deps.db, now),
        deps.fleetOverview.versionsInField(deps.db, now),
      ]);
      const [alerts] = await deps.db.sql<{ open: number }>`
        select count(*)::int as open from alerts where resolved_at is null`;
      return c.json({
        states: row,
        openAlerts: alerts!.open,
        at: now.toISOString(),
        // Beats per minute in 10-minute buckets over the last day; versions appliances last reported.
        beatsPerMinute: beats.map((b) => ({ at: new Date(b.t).toISOString(), perMinute: b.v })),
        versions,
      });
    });
}
