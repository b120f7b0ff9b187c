/**
 * Health-gated rollouts: a staged release pauses itself, and notifies, when
 * the share of its appliances that failed to install it (or rolled it back),
 * or that went missing after installing it, passes the release's threshold.
 * Only appliances the release was delivered to count: an outcome from an
 * appliance with no delivery record of that version is kept (it shows in the
 * appliance's history) but moves no figure, so appliances that were never
 * sent a release cannot pause it.
 *
 * An appliance's latest outcome for a version it was delivered is what these figures read: the
 * bounds on install history ({@link pruneOutcomes}, the retention job) never remove it while it
 * counts.
 *
 * @module
 */
import type { AppDeps } from "./deps.ts";
import type { Sql } from "../db/db.ts";
import { bumpCatalogEpoch } from "./catalogs.ts";

/** An assignment's health figures, over the appliances the version was delivered to. */
export interface RolloutHealth {
  /** Appliances sent it whose latest outcome for this version is `installed`. */
  installed: number;
  /** Appliances sent it whose latest outcome is `failed` or `rolled_back`. */
  failed: number;
  /** Appliances sent it that installed it and are now missing. */
  missingAfterInstall: number;
  /** Appliances the component server sent it to. */
  sent: number;
}

/** Health figures for one component version. */
export async function rolloutHealth(
  deps: Pick<AppDeps, "db">,
  c: { kind: string; app: string; name: string; version: string },
): Promise<RolloutHealth> {
  const [row] = await deps.db.sql<RolloutHealth>`
    with latest as (
      select distinct on (o.uid) o.uid, o.outcome from install_outcomes o
      where o.kind = ${c.kind} and o.app = ${c.app} and o.name = ${c.name} and o.version = ${c.version}
        and exists (select 1 from deliveries d join components k on k.id = d.component_id
          where d.uid = o.uid and k.kind = o.kind and k.app = o.app and k.name = o.name
            and k.version = o.version)
      order by o.uid, o.reported_at desc, o.id desc
    )
    select
      count(*) filter (where l.outcome = 'installed')::int as installed,
      count(*) filter (where l.outcome <> 'installed')::int as failed,
      count(*) filter (where l.outcome = 'installed' and ap.missing_since is not null)::int as "missingAfterInstall",
      (select count(*)::int from deliveries d join components k on k.id = d.component_id
        where k.kind = ${c.kind} and k.app = ${c.app} and k.name = ${c.name} and k.version = ${c.version}) as sent
    from latest l join appliances ap on ap.uid = l.uid`;
  return row!;
}

/**
 * Pauses every unpaused, gated assignment whose failure share has passed its
 * threshold (optionally only those of one component). Returns the paused ids.
 */
export async function gateRollouts(
  deps: AppDeps,
  only?: { kind: string; app: string; name: string; version: string },
): Promise<number[]> {
  const gated = await deps.db.sql<{
    id: number;
    kind: string;
    app: string;
    name: string;
    version: string;
    failure_threshold_percent: number;
    min_sample: number;
  }>`
    select id, kind, app, name, version, failure_threshold_percent, min_sample from assignments
    where not paused and failure_threshold_percent is not null
      and (${only?.kind ?? null}::text is null or (kind = ${only?.kind ?? null} and app = ${
    only?.app ?? null
  }
        and name = ${only?.name ?? null} and version = ${only?.version ?? null}))`;
  const paused: number[] = [];
  for (const a of gated) {
    const h = await rolloutHealth(deps, a);
    const total = h.installed + h.failed;
    const bad = h.failed + h.missingAfterInstall;
    if (total < a.min_sample || bad * 100 <= a.failure_threshold_percent * total) continue;
    const share = Math.round((bad * 1000) / total) / 10;
    const reason =
      `${share}% of ${total} appliances failed or went missing (threshold ${a.failure_threshold_percent}%)`;
    const now = deps.clock.now();
    const done = await deps.db.begin(async (tx) => {
      const r = await tx`
        update assignments set paused = true, paused_reason = ${reason}, updated_at = ${now}
        where id = ${a.id} and not paused returning id`;
      if (r.length === 0) return false;
      await bumpCatalogEpoch(tx);
      await deps.notifier.enqueue(tx, {
        kind: "rollout_paused",
        text:
          `:double_vertical_bar: Rollout of ${a.kind} ${a.app}/${a.name} ${a.version} paused: ${reason}`,
        payload: {
          assignmentId: a.id,
          component: { kind: a.kind, app: a.app, name: a.name, version: a.version },
          ...h,
        },
      }, now);
      return true;
    });
    if (done) paused.push(a.id);
  }
  if (paused.length > 0) deps.notifier.kick();
  return paused;
}

/**
 * Keeps appliance `uid`'s newest `keep` install outcomes and, beyond them, only the latest outcome
 * of each version it was delivered (the one its rollout figures read). One statement; it reads
 * the appliance's rows by the (uid, reported_at) index.
 */
export async function pruneOutcomes(sql: Sql, uid: string, keep: number): Promise<number> {
  const gone = await sql`
    delete from install_outcomes o using (
      select id from install_outcomes where uid = ${uid}
      order by reported_at desc, id desc offset ${keep}
    ) old
    where o.id = old.id
      and not (
        exists (select 1 from deliveries d join components k on k.id = d.component_id
          where d.uid = o.uid and k.kind = o.kind and k.app = o.app and k.name = o.name
            and k.version = o.version)
        and not exists (select 1 from install_outcomes n
          where n.kind = o.kind and n.app = o.app and n.name = o.name and n.version = o.version
            and n.uid = o.uid and (n.reported_at, n.id) > (o.reported_at, o.id)))
    returning 1`;
  return gone.length;
}
