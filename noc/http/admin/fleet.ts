/**
 * `/v1/admin/fleet`: fleet counts by state, open alerts (unacknowledged and acknowledged apart),
 * beats per minute over the last day, versions in the field; `/v1/admin/fleet/sites`: each site's
 * health, sites in trouble first.
 */
import { Hono } from "hono";
import { siteHealthQuery } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { fleetCounts } from "../../services/appliances.ts";
import { siteHealth } from "../../services/fleet_overview.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** `/v1/admin/fleet`: fleet counts, beats per minute and versions in the field; site health. */
export function fleetAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", async (c) => {
      const now = deps.clock.now();
      const [row, beats, versions] = await Promise.all([
        fleetCounts(deps.db, now, deps.settings.graceS),
        deps.fleetOverview.beatRate(deps.db, now),
        deps.fleetOverview.versionsInField(deps.db, now),
      ]);
      const [alerts] = await deps.db.sql<{ open: number; acknowledged: number }>`
        select count(*)::int as open,
          count(*) filter (where acknowledged_at is not null)::int as acknowledged
        from alerts where resolved_at is null`;
      return c.json({
        states: row,
        // Every open alert; of them, those no one has acknowledged yet and those acknowledged.
        openAlerts: alerts!.open,
        unacknowledgedAlerts: alerts!.open - alerts!.acknowledged,
        acknowledgedAlerts: alerts!.acknowledged,
        at: now.toISOString(),
        // Beats per minute in 10-minute buckets over the last day (the running bucket scaled by
        // its age); versions appliances last reported.
        beatsPerMinute: beats.map((b) => ({ at: new Date(b.t).toISOString(), perMinute: b.v })),
        versions,
      });
    })
    .get("/sites", validate("query", siteHealthQuery), async (c) => {
      const { limit } = c.req.valid("query");
      const now = deps.clock.now();
      const r = await siteHealth(deps.db, now, deps.settings.graceS, limit);
      return c.json({ items: r.items, total: r.total, at: now.toISOString() });
    });
}
