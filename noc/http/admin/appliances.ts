/** `/v1/admin/appliances`: the fleet as the operator sees it (read side, interval and placement, revocation). */
import { windowFor } from "../../services/install_windows.ts";
import { holdDueAfterSiteMove } from "../../services/schedule_changes.ts";
import { refuseMovesFromRollouts } from "../../services/phased_rollouts.ts";
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { applianceJson, type ApplianceRow } from "../../services/appliances.ts";
import {
  applianceDetailQuery,
  bulkAppliancesSchema,
  listAppliancesQuery,
  patchApplianceSchema,
  revokeSchema,
  uidParam,
} from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import type { Sql } from "../../db/db.ts";
import { z } from "zod";
import { staleCatalogOf } from "../../services/catalogs.ts";
import { recordDeparture } from "../../services/local_servers.ts";
import { resolveCatalog } from "../../services/catalog_engine.ts";
import { applianceFacets, listAppliances } from "../../services/appliance_list.ts";
import { runBulk } from "../../services/appliance_bulk.ts";
import { noteAffected } from "../middleware/admin_auth.ts";
import { expectRevision, ifMatchOf, refusingStale, setEtag } from "./revisions.ts";

/**
 * `GET /v1/admin/appliances`' query: {@link listAppliancesQuery} and `retired` — records retired
 * by a re-enrolment (superseded by the appliance's new record) are left out (`exclude`, the
 * default), listed too (`include`), or listed alone (`only`).
 */
export const listQuery = listAppliancesQuery.safeExtend({
  retired: z.enum(["exclude", "include", "only"]).default("exclude")
    .describe("Records retired by a re-enrolment: exclude (default), include, only"),
});

async function loadAppliance(
  sql: Sql,
  uid: string,
  now: Date,
): Promise<ApplianceRow & { last_report: unknown; hostname_history: NameHistory }> {
  const [row] = await sql<ApplianceRow & { last_report: unknown; hostname_history: NameHistory }>`
    select a.uid, a.hostname, a.model, a.site, a.channel, a.tags, a.interval_s, a.known_interval_s,
      a.agent_version, a.enrolled_at,
      a.last_beat_at, a.last_seq, a.last_address, a.next_due_at, a.missing_since, a.revoked_at, a.revoked_reason,
      a.superseded_by, a.supersedes, a.last_report, a.identity_conflict, a.hostname_history,
      a.revision,
      (select jsonb_build_object('id', m.id, 'endsAt', m.ends_at, 'reason', m.reason)
         from maintenance_windows m
         where (m.uid = a.uid or m.site = a.site) and m.starts_at <= ${now} and m.ends_at > ${now}
         order by m.ends_at desc limit 1) as maintenance
    from appliances a where a.uid = ${uid}`;
  if (!row) throw new ApiError(404, "not_found", `Appliance "${uid}" does not exist`);
  return row;
}

/** The names an appliance had before the one it reports now, newest first (migration 025). */
type NameHistory = { hostname: string; until: string }[];

/**
 * Why an appliance may look wrong, from its last report (issue 21): the problems its agent
 * reported with its last cycle (`state_unwritable`, `bad_signature`, ...) and what the agent left
 * out of the report to fit the NOC's limits (`dropped`). Empty lists when none were reported.
 */
export function reportReasons(report: unknown): {
  problems: { code: string; message: string; [k: string]: unknown }[];
  dropped: string[];
} {
  const r = (report ?? {}) as { lastCycle?: { problems?: unknown }; dropped?: unknown };
  const problems = Array.isArray(r.lastCycle?.problems)
    ? (r.lastCycle.problems as { code: string; message: string }[])
    : [];
  const dropped = Array.isArray(r.dropped) ? (r.dropped as string[]) : [];
  return { problems, dropped };
}

/** The appliance admin routes. */
export function applianceAdminRoutes(deps: AppDeps) {
  const grace = deps.settings.graceS;
  return new Hono<AppEnv>()
    .get("/", validate("query", listQuery), async (c) => {
      const now = deps.clock.now();
      const page = await listAppliances(deps.db, c.req.valid("query"), now, grace);
      return c.json({
        items: page.rows.map((r) => applianceJson(r, now, grace)),
        nextCursor: page.nextCursor,
        // The page before this one (`before=`), null on the first page.
        prevCursor: page.prevCursor,
        // With `count=true`: the matches, exact up to 10,000 (`totalCapped`: more than that).
        ...(page.total ? { total: page.total.count, totalCapped: page.total.capped } : {}),
      });
    })
    .get("/facets", async (c) => {
      // The values the list filters by, as choices: at most 200 of each kind.
      return c.json(await applianceFacets(deps.db));
    })
    .post("/bulk", validate("json", bulkAppliancesSchema), async (c) => {
      const body = c.req.valid("json");
      const by = c.get("admin");
      const result = await runBulk(deps.db, body, deps.clock.now(), {
        by,
        graceS: grace,
        maxWindowDays: deps.settings.maintenanceMaxDays,
        wake: (uid) => deps.wakeups.trigger({ type: "appliance", value: uid }, by),
        // Every appliance selected (by filter too) is in the audit record before anything changes.
        note: (uids) => noteAffected(c, uids, deps.db.sql),
      });
      deps.log.info("appliances_bulk", { ...result, by });
      return c.json(result);
    })
    .get(
      "/:uid",
      validate("param", uidParam),
      validate("query", applianceDetailQuery),
      async (c) => {
        const { uid } = c.req.valid("param");
        const { history } = c.req.valid("query");
        const now = deps.clock.now();
        const row = await loadAppliance(deps.db.sql, uid, now);
        setEtag(c, row.revision);
        const beats = await deps.db.sql<
          { received_at: Date; seq: number; sent_at: Date; report: unknown }
        >`
        select received_at, seq, sent_at,
          -- Only what the history keeps (noc/http/v1/beats.ts historyOf), also of rows written
          -- before it kept less: a page of history stays a few KiB a row.
          jsonb_build_object(
            'seq', report->'seq', 'sentAt', report->'sentAt', 'health', report->'health',
            'lastCycle', jsonb_build_object('outcome', report->'lastCycle'->'outcome'),
            'components', case when jsonb_typeof(report->'components') = 'array'
              then to_jsonb(jsonb_array_length(report->'components')) else report->'components' end
          ) as report
        from beats where uid = ${uid}
        order by received_at desc limit ${history}`;
        const alerts = await deps.db.sql<
          { id: number; kind: string; opened_at: Date; resolved_at: Date | null }
        >`
        select id, kind, opened_at, resolved_at, acknowledged_at from alerts where uid = ${uid}
        order by opened_at desc limit 20`;
        const catalog = await resolveCatalog(deps.db.sql, {
          uid,
          model: row.model,
          site: row.site,
          channel: row.channel,
          tags: row.tags,
        });
        const outcomes = await deps.db.sql<{
          kind: string;
          app: string;
          name: string;
          version: string;
          outcome: string;
          message: string | null;
          reported_at: Date;
        }>`select kind, app, name, version, outcome, message, reported_at from install_outcomes
           where uid = ${uid} order by reported_at desc, id desc limit 20`;
        return c.json({
          ...applianceJson(row, now, grace),
          lastReport: row.last_report,
          // The reasons its last report gave: the agent's problems, what it left out of the report.
          ...reportReasons(row.last_report),
          // When it may install (its own window, else its site's, else its model's); null: any time.
          installWindow: await windowFor(deps.db.sql, row),
          // The names it had before the one it reports now (newest first, at most 20).
          hostnameHistory: row.hostname_history.map((h) => ({
            hostname: h.hostname,
            until: new Date(h.until).toISOString(),
          })),
          // What its catalog lists now, and its latest install outcomes.
          catalog: catalog.map((k) => ({
            id: k.id,
            kind: k.kind,
            app: k.app,
            name: k.name,
            version: k.version,
          })),
          installOutcomes: outcomes.map((o) => ({
            kind: o.kind,
            app: o.app,
            name: o.name,
            version: o.version,
            outcome: o.outcome,
            message: o.message,
            reportedAt: o.reported_at.toISOString(),
          })),
          history: beats.map((b) => ({
            receivedAt: b.received_at.toISOString(),
            seq: b.seq,
            sentAt: b.sent_at.toISOString(),
            report: b.report,
          })),
          alerts: alerts.map((a) => ({
            id: a.id,
            kind: a.kind,
            openedAt: a.opened_at.toISOString(),
            resolvedAt: a.resolved_at?.toISOString() ?? null,
          })),
        });
      },
    )
    .get("/:uid/configuration", validate("param", uidParam), async (c) => {
      const { uid } = c.req.valid("param");
      await loadAppliance(deps.db.sql, uid, deps.clock.now());
      const rows = await deps.db.sql<{
        kind: string;
        app: string;
        name: string;
        version: string;
        first_sent_at: Date;
        last_sent_at: Date;
        times: number;
        via: string | null;
        via_name: string | null;
      }>`
        select c.kind, c.app, c.name, c.version, d.first_sent_at, d.last_sent_at, d.times, d.via,
          l.name as via_name
        from deliveries d join components c on c.id = d.component_id
          left join local_servers l on l.id = d.via
        where d.uid = ${uid} order by c.kind, c.app, c.name, d.last_sent_at desc`;
      return c.json({
        uid,
        items: rows.map((r) => ({
          kind: r.kind,
          app: r.app,
          name: r.name,
          version: r.version,
          firstSentAt: r.first_sent_at.toISOString(),
          lastSentAt: r.last_sent_at.toISOString(),
          times: r.times,
          // Who sent it last: a site's local component server, or the NOC itself (null).
          via: r.via === null ? null : { localServer: r.via, name: r.via_name },
        })),
      });
    })
    .patch(
      "/:uid",
      validate("param", uidParam),
      validate("json", patchApplianceSchema),
      async (c) => {
        const { uid } = c.req.valid("param");
        const p = c.req.valid("json");
        const now = deps.clock.now();
        const m = ifMatchOf(c);
        const row = await refusingStale(`Appliance ${uid}`, m, () =>
          deps.db.begin(async (tx) => {
            const [before] = await tx<{ site: string | null; revision: number }>`
            select site, revision from appliances where uid = ${uid} for update`;
            if (before) expectRevision(m, before.revision);
            // Moved away from a site: a revocation must still reach that site's local servers.
            const moved = before !== undefined && p.site !== undefined &&
              (p.site ?? null) !== before.site;
            if (before?.site && moved) await recordDeparture(tx, uid, before.site, now);
            // Moved out of a site under maintenance: one interval from now to beat again
            // (noc/services/schedule_changes.ts).
            if (moved) {
              await holdDueAfterSiteMove(tx, [uid], p.site ?? null, now, deps.settings.graceS);
            }
            // The interval is not applied to the due time here: the agent learns it from its next
            // catalog, and its due time follows from then on (noc/services/schedule_changes.ts).
            const updated = await tx`
          update appliances set
            interval_s = coalesce(${p.intervalS ?? null}::int, interval_s),
            site = case when ${p.site !== undefined} then ${p.site ?? null} else site end,
            channel = coalesce(${p.channel ?? null}, channel),
            tags = coalesce(${p.tags ?? null}::text[], tags)
          where uid = ${uid} returning uid`;
            if (updated.length === 0) {
              throw new ApiError(404, "not_found", `Appliance "${uid}" does not exist`);
            }
            await refuseMovesFromRollouts(tx, [uid]);
            await staleCatalogOf(tx, uid);
            return await loadAppliance(tx, uid, now);
          }), async () => applianceJson(await loadAppliance(deps.db.sql, uid, now), now, grace));
        // A new interval reaches the agent with its next catalog: wake it to fetch one now.
        if (p.intervalS !== undefined && row.known_interval_s !== p.intervalS) {
          await deps.wakeups.trigger({ type: "appliance", value: uid }, c.get("admin"));
        }
        deps.log.info("appliance_updated", { uid, changes: p, by: c.get("admin") });
        setEtag(c, row.revision);
        return c.json(applianceJson(row, now, grace));
      },
    )
    .delete("/:uid/identity-conflict", validate("param", uidParam), async (c) => {
      // An operator clears the clone mark (after re-enrolling the copy, or after judging it a
      // restored backup): a later conflict marks the appliance, and notifies, again.
      const { uid } = c.req.valid("param");
      const now = deps.clock.now();
      const m = ifMatchOf(c);
      const row = await refusingStale(`Appliance ${uid}`, m, () =>
        deps.db.begin(async (tx) => {
          const [before] = await tx<{ identity_conflict: unknown; revision: number }>`
          select identity_conflict, revision from appliances where uid = ${uid} for update`;
          if (!before) throw new ApiError(404, "not_found", `Appliance "${uid}" does not exist`);
          expectRevision(m, before.revision);
          await tx`update appliances set identity_conflict = null where uid = ${uid}`;
          return { was: before.identity_conflict, row: await loadAppliance(tx, uid, now) };
        }), async () => applianceJson(await loadAppliance(deps.db.sql, uid, now), now, grace));
      setEtag(c, row.row.revision);
      deps.log.info("identity_conflict_cleared", {
        uid,
        was: row.was !== null,
        by: c.get("admin"),
      });
      return c.json(applianceJson(row.row, now, grace));
    })
    .post(
      "/:uid/revoke",
      validate("param", uidParam),
      validate("json", revokeSchema),
      async (c) => {
        const { uid } = c.req.valid("param");
        const { reason } = c.req.valid("json");
        const now = deps.clock.now();
        const m = ifMatchOf(c);
        const row = await refusingStale(`Appliance ${uid}`, m, () =>
          deps.db.begin(async (tx) => {
            const [cur] = await tx<{ revision: number }>`
            select revision from appliances where uid = ${uid} for update`;
            if (cur) expectRevision(m, cur.revision);
            const updated = await tx`
          update appliances set revoked_at = coalesce(revoked_at, ${now}), revoked_reason = ${reason}
          where uid = ${uid} returning uid`;
            if (updated.length === 0) {
              throw new ApiError(404, "not_found", `Appliance "${uid}" does not exist`);
            }
            await tx`
          update alerts set resolved_at = coalesce(resolved_at, ${now}),
            recovery_notified_at = coalesce(recovery_notified_at, ${now}),
            -- An alert a mass event held, open or resolved since, is not told after its appliance
            -- was revoked (reviews 23l, 23n); a told alert's pending recovery still is.
            notified_at = coalesce(notified_at, ${now})
          where uid = ${uid} and (resolved_at is null or notified_at is null)`;
            return await loadAppliance(tx, uid, now);
          }), async () => applianceJson(await loadAppliance(deps.db.sql, uid, now), now, grace));
        deps.log.warn("appliance_revoked", { uid, reason, by: c.get("admin") });
        setEtag(c, row.revision);
        return c.json(applianceJson(row, now, grace));
      },
    );
}
