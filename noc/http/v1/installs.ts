/**
 * `POST /v1/installs`: an appliance reports each install's outcome; rollouts are gated on them.
 * Only an outcome for a version the appliance was delivered moves a rollout's figures (see
 * `noc/services/rollouts.ts`); the answer lists the others as `uncounted`.
 *
 * A report may come again: the agent journals each outcome and sends it until the NOC acknowledges
 * it, so an answer lost to a crash or a cut connection means the same outcomes are sent once more.
 * Each outcome carries an idempotency key, `reportId` (a UUID the agent draws when the outcome
 * happens and keeps across re-sends). The keys go to `install_report_ids` (primary key: appliance
 * UID, key) with ON CONFLICT DO NOTHING, and only the outcomes whose key was new are stored: a
 * re-sent outcome is recorded once and answered as a success; two outcomes alike in every field
 * but the key (the same version installed again, the same failure twice) are both recorded. A key
 * the appliance already sent with a DIFFERENT outcome (a buggy or hostile agent) is not stored
 * either: the first outcome stays, and `install_report_id_reused` is logged. An outcome without a
 * key (an older agent) is stored as it comes. `recorded` counts the outcomes stored. Keys are
 * inserted in sorted order, so concurrent copies of one report wait on each other instead of
 * deadlocking; no lock on the appliance is needed.
 *
 * The keys are kept apart from the outcomes so that pruning an outcome (below, and the retention
 * job) never lets a late re-send of it be stored again as new, where it would become the latest
 * outcome of its version and change what the rollout's figures read. Each appliance keeps its newest
 * {@link REPORT_IDS_KEPT} keys: an agent holds at most 500 outcomes in its journal, and sends
 * them oldest first, so any outcome it can still send again is among them.
 *
 * What one appliance stores is bounded: a report's outcomes are written in one statement, and
 * the appliance keeps its newest `NOC_INSTALL_OUTCOMES_PER_APPLIANCE` outcomes, plus the latest
 * outcome of each version it was delivered (what its rollout figures read), which is never
 * pruned here. The retention job prunes older ones (noc/jobs/retention.ts).
 *
 * @module
 */
import { Hono } from "hono";
import { applianceAuth } from "../middleware/appliance_auth.ts";
import { installsSchema } from "../../../protocol/schemas.ts";
import { parseJsonBody } from "../../../protocol/http/validate.ts";
import { gateRollouts, pruneOutcomes } from "../../services/rollouts.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/**
 * How many report ids (`reportId`) each appliance keeps, newest first: twice the outcomes an agent
 * can hold for the NOC (its journal's 500), so that every outcome it may send again is known.
 */
export const REPORT_IDS_KEPT = 1000;

/** The install-outcome route. */
export function installRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().post("/", applianceAuth(deps), async (c) => {
    const parsed = parseJsonBody(c, c.get("body"), installsSchema);
    // Copies of one outcome in one report (the schema allows only copies to share a reportId)
    // count as one.
    const seen = new Set<string>();
    const results = parsed.results.filter((r) => {
      if (r.reportId === undefined) return true;
      const id = r.reportId.toLowerCase();
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
    const a = c.get("appliance");
    const now = deps.clock.now();
    const { delivered, fresh, reused } = await deps.db.begin(async (tx) => {
      // The keys first, sorted (so two copies of a report lock them in one order): the ones that
      // were new say which outcomes to store.
      const keys = results.flatMap((r) => r.reportId ? [r.reportId.toLowerCase()] : []).sort();
      const added = new Set<string>();
      if (keys.length > 0) {
        for (
          const k of await tx<{ id: string }>`
          insert into install_report_ids (uid, report_id, received_at)
          select ${a.uid}, k.id, ${now} from unnest(${keys}::uuid[]) as k(id) order by k.id
          on conflict do nothing
          returning report_id::text as id`
        ) added.add(k.id);
      }
      const fresh = results.filter((r) => !r.reportId || added.has(r.reportId.toLowerCase()));
      // One statement for the whole report, in the order reported.
      if (fresh.length > 0) {
        await tx`
        insert into install_outcomes
          (uid, kind, app, name, version, outcome, message, report_id, reported_at)
        select ${a.uid}, r.kind, r.app, r.name, r.version, r.outcome, r.message, r.report_id,
          ${now}
        from unnest(${fresh.map((r) => r.kind)}::text[], ${fresh.map((r) => r.app)}::text[],
          ${fresh.map((r) => r.name)}::text[], ${fresh.map((r) => r.version)}::text[],
          ${fresh.map((r) => r.outcome)}::text[], ${fresh.map((r) => r.message ?? null)}::text[],
          ${fresh.map((r) => r.reportId ?? null)}::uuid[])
          with ordinality as r(kind, app, name, version, outcome, message, report_id, n)
        order by r.n`;
        if (added.size > 0) {
          await tx`
          delete from install_report_ids o using (
            select report_id from install_report_ids where uid = ${a.uid}
            order by received_at desc, report_id offset ${REPORT_IDS_KEPT}
          ) old
          where o.uid = ${a.uid} and o.report_id = old.report_id`;
        }
      }
      // Keys sent before: a re-send, unless the outcome stored under the key differs (a key
      // reused for another outcome, which is not stored). Pruned outcomes cannot be compared.
      const again = results.filter((r) => r.reportId && !added.has(r.reportId.toLowerCase()));
      const reused = again.length === 0 ? [] : await tx<{ id: string }>`
        select s.report_id::text as id from install_outcomes s
        join unnest(${again.map((r) => r.reportId!)}::uuid[], ${again.map((r) => r.kind)}::text[],
          ${again.map((r) => r.app)}::text[], ${again.map((r) => r.name)}::text[],
          ${again.map((r) => r.version)}::text[], ${again.map((r) => r.outcome)}::text[],
          ${again.map((r) => r.message ?? null)}::text[])
          as r(report_id, kind, app, name, version, outcome, message) on r.report_id = s.report_id
        where s.uid = ${a.uid}
          and (s.kind, s.app, s.name, s.version, s.outcome, s.message)
            is distinct from (r.kind, r.app, r.name, r.version, r.outcome, r.message)`;
      await pruneOutcomes(tx, a.uid, deps.settings.installOutcomesPerAppliance);
      // Which of the reported versions were delivered to this appliance: only those count.
      const rows = await tx<{ key: string }>`
        select k.kind || '/' || k.app || '/' || k.name || '/' || k.version as key
        from deliveries d join components k on k.id = d.component_id
        where d.uid = ${a.uid}
          and (k.kind, k.app, k.name, k.version) in (
            select * from unnest(${results.map((r) => r.kind)}::text[], ${
        results.map((r) => r.app)
      }::text[], ${results.map((r) => r.name)}::text[], ${results.map((r) => r.version)}::text[]))`;
      return { delivered: new Set(rows.map((r) => r.key)), fresh, reused };
    });
    if (reused.length > 0) {
      deps.log.warn("install_report_id_reused", {
        uid: a.uid,
        reportIds: reused.map((r) => r.id),
        message: "a reportId this appliance sent before came with another outcome: not stored",
      });
    }
    const paused: number[] = [];
    const gated = new Set<string>();
    const uncounted = new Map<
      string,
      { kind: string; app: string; name: string; version: string }
    >();
    for (const r of results) {
      const key = `${r.kind}/${r.app}/${r.name}/${r.version}`;
      if (!delivered.has(key)) {
        uncounted.set(key, { kind: r.kind, app: r.app, name: r.name, version: r.version });
        continue;
      }
      if (r.outcome === "installed" || gated.has(key)) continue;
      gated.add(key);
      paused.push(...await gateRollouts(deps, r));
    }
    if (uncounted.size > 0) {
      deps.log.warn("install_outcomes_uncounted", {
        uid: a.uid,
        components: [...uncounted.values()],
      });
    }
    return c.json({
      recorded: fresh.length,
      pausedAssignments: paused,
      uncounted: [...uncounted.values()],
    });
  });
}
