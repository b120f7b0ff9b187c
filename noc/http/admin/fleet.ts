/** Operational admin routes: fleet counts, run the status daemon now, notice outbox, refused identities. */
import { Hono } from "hono";
import { statusDaemon } from "../../jobs/status_daemon.ts";
import { fleetCounts } from "../../services/appliances.ts";
import { limitQuery } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
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

/** `/v1/admin/sweep`: runs the status daemon now. */
export function sweepAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", async (c) => {
      const r = await statusDaemon(deps);
      return c.json({
        alerted: r.alerted,
        recovered: r.recovered,
        notices: r.notices,
        durationMs: Math.round(r.durationMs * 10) / 10,
      });
    });
}

/** `/v1/admin/notices`: the notice outbox, newest first. */
export function noticeAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", limitQuery), async (c) => {
      const { limit } = c.req.valid("query");
      const rows = await deps.db.sql<{
        id: number;
        created_at: Date;
        kind: string;
        uid: string | null;
        text: string;
        deliveries: Array<Record<string, unknown>>;
      }>`
        select n.id, n.created_at, n.kind, n.uid, n.text,
          coalesce((select jsonb_agg(jsonb_build_object('target', d.target, 'attempts', d.attempts,
              'deliveredAt', d.delivered_at, 'nextAttemptAt', d.next_attempt_at, 'lastError', d.last_error)
              order by d.target)
            from notice_deliveries d where d.notice_id = n.id), '[]'::jsonb) as deliveries
        from notices n order by n.id desc limit ${limit}`;
      return c.json({
        targets: deps.notifier.targets.map((t) => ({ key: t.key, label: t.label })),
        items: rows.map((r) => ({
          id: r.id,
          createdAt: r.created_at.toISOString(),
          kind: r.kind,
          uid: r.uid,
          text: r.text,
          deliveries: r.deliveries,
        })),
      });
    });
}

/** `/v1/admin/auth-failures`: refused identities, newest first. */
export function authFailureAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", limitQuery), async (c) => {
      const { limit } = c.req.valid("query");
      const rows = await deps.db.sql<{
        id: number;
        at: Date;
        reason: string;
        keyid: string | null;
        method: string;
        path: string;
        address: string | null;
      }>`select id, at, reason, keyid, method, path, address from auth_failures order by id desc limit ${limit}`;
      return c.json({ items: rows.map((r) => ({ ...r, at: r.at.toISOString() })) });
    });
}
