/**
 * `POST /v1/installs`: an appliance reports each install's outcome; rollouts are gated on them.
 * Only an outcome for a version the appliance was delivered moves a rollout's figures (see
 * `noc/services/rollouts.ts`); the answer lists the others as `uncounted`.
 *
 * A report may come again: the agent journals each outcome and sends it until the NOC acknowledges
 * it, so an answer lost to a crash or a cut connection means the same outcomes are sent once more.
 * Where a report's outcomes of a component begin with the appliance's latest outcomes of that
 * component, in the same order (same version, outcome and message), those are a re-send and are
 * not stored again; `recorded` counts the outcomes stored. (The agent numbers its attempts in the
 * message of a failure or rollback, so a retry that fails the same way is not taken for one.) Reports from one appliance are
 * taken one at a time (its row is locked), so two copies of one report cannot both be stored.
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

/** The install-outcome route. */
export function installRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().post("/", applianceAuth(deps), async (c) => {
    const { results } = parseJsonBody(c, c.get("body"), installsSchema);
    const a = c.get("appliance");
    const now = deps.clock.now();
    const { delivered, fresh } = await deps.db.begin(async (tx) => {
      await tx`select 1 from appliances where uid = ${a.uid} for update`;
      // A re-sent report: for each component, its outcomes in this report begin with what the
      // appliance's latest outcomes of it already are, in the same order. Those are not stored again.
      type Seen = { version: string; outcome: string; message: string | null };
      const reported = new Map<string, Seen[]>();
      for (const r of results) {
        const key = `${r.kind}/${r.app}/${r.name}`;
        reported.set(key, [...reported.get(key) ?? [], { ...r, message: r.message ?? null }]);
      }
      const most = Math.max(...[...reported.values()].map((s) => s.length));
      const tails = new Map<string, Seen[]>();
      for (
        const t of await tx<Seen & { key: string }>`
        select key, version, outcome, message from (
          select o.kind || '/' || o.app || '/' || o.name as key, o.version, o.outcome, o.message,
            row_number() over (partition by o.kind, o.app, o.name
              order by o.reported_at desc, o.id desc) as n
          from install_outcomes o
          where o.uid = ${a.uid} and (o.kind, o.app, o.name) in (
            select * from unnest(${results.map((r) => r.kind)}::text[], ${
          results.map((r) => r.app)
        }::text[], ${results.map((r) => r.name)}::text[]))
        ) t where n <= ${most} order by key, n desc`
      ) tails.set(t.key, [...tails.get(t.key) ?? [], t]);
      const same = (x: Seen, y: Seen) =>
        x.version === y.version && x.outcome === y.outcome && x.message === y.message;
      const repeats = new Map<string, number>();
      for (const [key, sent] of reported) {
        const tail = tails.get(key) ?? [];
        for (let k = Math.min(sent.length, tail.length); k > 0; k--) {
          if (sent.slice(0, k).every((x, i) => same(x, tail[tail.length - k + i]!))) {
            repeats.set(key, k);
            break;
          }
        }
      }
      const fresh = results.filter((r) => {
        const key = `${r.kind}/${r.app}/${r.name}`;
        const left = repeats.get(key) ?? 0;
        if (left > 0) repeats.set(key, left - 1);
        return left === 0;
      });
      // One statement for the whole report, in the order reported.
      if (fresh.length > 0) {
        await tx`
        insert into install_outcomes (uid, kind, app, name, version, outcome, message, reported_at)
        select ${a.uid}, r.kind, r.app, r.name, r.version, r.outcome, r.message, ${now}
        from unnest(${fresh.map((r) => r.kind)}::text[], ${fresh.map((r) => r.app)}::text[],
          ${fresh.map((r) => r.name)}::text[], ${fresh.map((r) => r.version)}::text[],
          ${fresh.map((r) => r.outcome)}::text[], ${
          fresh.map((r) => r.message ?? null)
        }::text[]) with ordinality as r(kind, app, name, version, outcome, message, n)
        order by r.n`;
      }
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
      return { delivered: new Set(rows.map((r) => r.key)), fresh };
    });
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
