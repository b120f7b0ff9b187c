/**
 * Rollout progress and health-gated rollouts. What each appliance a release was sent to runs is
 * read from its latest SecureBeat (`appliances.last_report`'s components); its install outcomes
 * only explain it (an outcome newer than its last beat says what it did since). Each appliance the
 * release was delivered to is in exactly one {@link RolloutState}, and the gate counts against
 * the release the ones that failed, reverted to an older version, run a version that is neither
 * older nor the release (`other`), or went missing after it was sent (an open missed-heartbeat
 * alert: the status daemon re-checks the gate at the sweep that raises it).
 *
 * Only appliances the release was delivered to count: an outcome from an appliance with no
 * delivery record of that version is kept (it shows in the appliance's history) but moves no
 * figure, so appliances that were never sent a release cannot pause it.
 *
 * Every figure is one statement over the release's delivery records (index
 * `deliveries_component`), however many releases or appliances: no query per appliance or per
 * assignment.
 *
 * An appliance's latest outcome for a version it was delivered is what these figures read: the
 * bounds on install history ({@link pruneOutcomes}, the retention job) never remove it while it
 * counts.
 *
 * @module
 */
import { concat, type Fragment, fragment, runFragments } from "../db/fragment.ts";
import type { AppDeps } from "./deps.ts";
import type { Sql } from "../db/db.ts";
import { bumpCatalogEpoch } from "./catalogs.ts";

/** A component version: what a rollout releases. */
export interface ComponentRef {
  /** `package` or `file`. */
  kind: string;
  /** Application. */
  app: string;
  /** Component name. */
  name: string;
  /** Version (the rollout's new version). */
  version: string;
}

/**
 * Where one appliance the release was sent to stands, from what its latest beat says it runs:
 *
 * - `running`: it runs the release.
 * - `unconfirmed`: it reported `installed` and has not beaten since (its next beat says).
 * - `pending`: it runs an older version (one published before the release) or none, and has
 *   reported nothing about the release.
 * - `failed`: it reported `failed` or `rolled_back`, and runs an older version or none (or has not
 *   beaten since).
 * - `reverted`: it reported `installed` but its beats since say it runs an older version or none
 *   (it rolled back by itself).
 * - `other`: it runs a version that is neither the release nor one published before it, and that
 *   the NOC has not sent it since.
 * - `missing`: it has an open missed-heartbeat alert (whatever it last ran), unless its last report
 *   said the release's install waited for an install window that opens after it went missing
 *   (`install_deferred` with `opensAt`): then it is judged as if present (issue 22 item 5: gates
 *   count from install time; once the window opened, the install may be what silenced it).
 * - `superseded`: it runs a version the NOC sent it after the release (a newer release, or an
 *   operator's return to an older one): no longer this rollout's business.
 */
export type RolloutState = (typeof rolloutStates)[number];

/** Every {@link RolloutState}, in the order the NOC shows them (the API's enum too). */
export const rolloutStates = [
  "running",
  "unconfirmed",
  "pending",
  "failed",
  "reverted",
  "other",
  "missing",
  "superseded",
] as const;

/** The states the health gate counts against a release. */
export const failingStates: readonly RolloutState[] = ["failed", "reverted", "other", "missing"];

/** A rollout's figures, over the (not revoked) appliances the version was delivered to. */
export interface RolloutProgress {
  /** Appliances the component server (or a local server) sent it to. */
  sent: number;
  /** The gate's successes: states `running` and `unconfirmed`. */
  installed: number;
  /** The gate's failures: states `failed`, `reverted`, `other` and `missing`. */
  failed: number;
  /** Appliances in each state (they add up to `sent`). */
  states: Record<RolloutState, number>;
}

/** An appliance a release was sent to, and where it stands. */
export interface RolloutAppliance {
  /** Its UID. */
  uid: string;
  /** Host name. */
  hostname: string;
  /** Site, if any. */
  site: string | null;
  /** Where it stands. */
  state: RolloutState;
  /** The version of the component its latest beat lists (null: none listed, or no beat yet). */
  runningVersion: string | null;
  /** Its latest outcome for the release, if any: the explanation, not the state. */
  outcome: { outcome: string; message: string | null; reportedAt: string } | null;
  /** When it last beat (ISO 8601), if ever. */
  lastBeatAt: string | null;
  /** When it was first sent the release (ISO 8601). */
  sentAt: string;
  /** Since when it has been missing (ISO 8601), if it is. */
  missingSince: string | null;
}

/**
 * Restricts the figures to the members of phased rollout `rolloutId` (`rollout_members`,
 * noc/services/phased_rollouts.ts), of its phase `phase` when given: only those of the release's
 * appliances count.
 */
export interface MemberScope {
  /** The rollout's id. */
  rolloutId: number;
  /** Only the members that joined with this phase (0-based); absent: every member. */
  phase?: number | undefined;
  /**
   * With `phase`: only its first `sample` members by UID (UIDs are random, so a uniform sample,
   * the same one every time), read from the index `rollout_members_phase`. Absent: all.
   */
  sample?: number | undefined;
}

/** The delivery records `sent` starts from: all of the release's, or those of `scope`'s members. */
function deliveriesOf(scope: MemberScope | undefined): Fragment {
  if (!scope) return fragment`join deliveries d on d.component_id = rel.id`;
  if (scope.phase === undefined) {
    return fragment`join rollout_members m on m.rollout_id = ${scope.rolloutId}
      join deliveries d on d.component_id = rel.id and d.uid = m.uid`;
  }
  if (scope.sample === undefined) {
    return fragment`join rollout_members m on m.rollout_id = ${scope.rolloutId}
      and m.phase = ${scope.phase}
      join deliveries d on d.component_id = rel.id and d.uid = m.uid`;
  }
  return fragment`join (
        select uid from rollout_members where rollout_id = ${scope.rolloutId}
          and phase = ${scope.phase} order by uid limit ${scope.sample}
      ) m on true
      join deliveries d on d.component_id = rel.id and d.uid = m.uid`;
}

/**
 * The appliances each release in `refs` was delivered to (not revoked), each with its state, as a
 * CTE `classified` (a statement goes on with `select … from classified`). The running version is
 * the first entry of the component in the appliance's last report; "older" means published before
 * the release (a lower component id); the latest outcome is newer than the last beat when its
 * report came at or after it. With `scope`, only the members it names.
 */
function classified(refs: ComponentRef[], scope?: MemberScope): Fragment {
  return concat(
    fragment`
    with releases as (
      select k.id, k.kind, k.app, k.name, k.version from components k
      join unnest(${refs.map((r) => r.kind)}::text[], ${refs.map((r) => r.app)}::text[],
        ${refs.map((r) => r.name)}::text[], ${refs.map((r) => r.version)}::text[])
        as r(kind, app, name, version)
        on k.kind = r.kind and k.app = r.app and k.name = r.name and k.version = r.version
    ),
    sent as (
      select rel.id as cid, rel.kind, rel.app, rel.name, rel.version, d.uid, d.first_sent_at,
        ap.hostname, ap.site, ap.missing_since, ap.last_beat_at, run.running, true as delivered,
        true as explained,
        ap.missing_since is not null and deferred_in(ap.last_report, rel.kind, rel.app, rel.name,
          rel.version, ap.missing_since) as deferred
      from releases rel
      `,
    deliveriesOf(scope),
    fragment`
      join appliances ap on ap.uid = d.uid and ap.revoked_at is null
      -- A lateral subquery with a limit is computed once per row, however often its column is read.
      left join lateral (
        select c->>'version' as running
        from jsonb_array_elements(case when jsonb_typeof(ap.last_report->'components') = 'array'
          then ap.last_report->'components' else '[]'::jsonb end) c
        where c->>'kind' = rel.kind and c->>'app' = rel.app and c->>'name' = rel.name
        limit 1
      ) run on true
    ),`,
    classifiedCte,
  );
}

/**
 * The CTE `classified` over CTE `sent` (one row per appliance, with `cid`, `kind`, `app`,
 * `name`, `version` of the release, the delivery's `first_sent_at`, the appliance's `uid`,
 * `missing_since`, `last_beat_at`, its `running` version, whether the release was `delivered` to
 * it, and whether its latest outcome is read (`explained`: at least for every delivered row
 * whose state depends on it, i.e. not missing and not running the release)): each row with its
 * latest outcome and its `state` (null when not delivered). Every figure shares it.
 */
const classifiedCte = fragment`
    classified as (
      select s.*, o.outcome, o.message, o.reported_at,
        case
          when not s.delivered then null
          -- Missing counts against the release from its install on: not while it waited for its
          -- install window (its last report said install_deferred for the release).
          when s.missing_since is not null and not s.deferred then 'missing'
          when s.running = s.version then 'running'
          when exists (
            select 1 from deliveries d2 join components k2 on k2.id = d2.component_id
            where d2.uid = s.uid and k2.kind = s.kind and k2.app = s.app and k2.name = s.name
              and k2.version = s.running and k2.id <> s.cid and d2.last_sent_at > s.first_sent_at)
            then 'superseded'
          when o.outcome is not null and (s.last_beat_at is null or o.reported_at >= s.last_beat_at)
            then case when o.outcome = 'installed' then 'unconfirmed' else 'failed' end
          when s.running is null or exists (
            select 1 from components k3
            where k3.kind = s.kind and k3.app = s.app and k3.name = s.name
              and k3.version = s.running and k3.id < s.cid)
            then case when o.outcome is null then 'pending'
              when o.outcome = 'installed' then 'reverted' else 'failed' end
          else 'other'
        end as state
      from sent s
      left join lateral (
        select o.outcome, o.message, o.reported_at from install_outcomes o
        where s.explained and o.kind = s.kind and o.app = s.app and o.name = s.name
          and o.version = s.version and o.uid = s.uid
        order by o.reported_at desc, o.id desc limit 1
      ) o on true
    )`;

/**
 * One phase of a phased rollout: its first `sample` members by UID (as a {@link MemberScope}
 * with `phase` and `sample`), and its release.
 */
export interface PhaseScope {
  /** The rollout's id (one scope per rollout). */
  rolloutId: number;
  /** The phase (0-based). */
  phase: number;
  /** Only its first `sample` members by UID. */
  sample: number;
  /** The rollout's release. */
  ref: ComponentRef;
}

/**
 * Every (not revoked) member of each scope in `scopes` (unique rollout ids), as CTE
 * `classified` (see {@link classified}) keyed by `key` (the rollout id): one row per member,
 * whether its release was delivered to it or not (`delivered`; `state` is null when not), with
 * `rep`, its latest report (`{}` when none), decompressed once for every reference to it, and
 * its latest outcome only where its state depends on it (not for a member missing or running
 * the release: `outcome` is null there). The
 * state of a delivered member is the one {@link rolloutProgress} gives it with the scope's
 * {@link MemberScope}. For statements that read the members' install states beside other
 * figures of the same rows (noc/services/rollout_gates.ts); {@link phaseProgress} counts them.
 */
export function classifiedPhases(scopes: readonly PhaseScope[]): Fragment {
  return concat(
    fragment`
    with releases as (
      select r.key, r.phase, r.sample, k.id, r.kind, r.app, r.name, r.version
      from unnest(${scopes.map((s) => s.rolloutId)}::bigint[], ${
      scopes.map((s) => s.phase)
    }::int[], ${scopes.map((s) => s.sample)}::int[], ${scopes.map((s) => s.ref.kind)}::text[],
        ${scopes.map((s) => s.ref.app)}::text[], ${scopes.map((s) => s.ref.name)}::text[],
        ${scopes.map((s) => s.ref.version)}::text[])
        as r(key, phase, sample, kind, app, name, version)
      left join components k on k.kind = r.kind and k.app = r.app and k.name = r.name
        and k.version = r.version
    ),
    sent as (
      select rel.key, rel.id as cid, rel.kind, rel.app, rel.name, rel.version, ap.uid,
        d.first_sent_at, ap.hostname, ap.site, ap.missing_since, ap.last_beat_at, run.rep,
        run.running, d.uid is not null as delivered,
        -- The outcome is read only where the state depends on it.
        d.uid is not null and ap.missing_since is null and run.running is distinct from rel.version
          as explained,
        ap.missing_since is not null and deferred_in(run.rep, rel.kind, rel.app, rel.name,
          rel.version, ap.missing_since) as deferred
      from releases rel
      cross join lateral (
        select uid from rollout_members where rollout_id = rel.key and phase = rel.phase
        order by uid limit rel.sample
      ) m
      join appliances ap on ap.uid = m.uid and ap.revoked_at is null
      left join deliveries d on d.component_id = rel.id and d.uid = m.uid
      -- The report is decompressed once per appliance, not once per reference to it, and the
      -- running version read once per row (both subqueries are kept whole by their offset).
      cross join lateral (
        select y.rep, (
          select c->>'version'
          from jsonb_array_elements(case when jsonb_typeof(y.rep->'components') = 'array'
            then y.rep->'components' else '[]'::jsonb end) c
          where c->>'kind' = rel.kind and c->>'app' = rel.app and c->>'name' = rel.name
          limit 1
        ) as running
        from (select ap.last_report || '{}'::jsonb as rep offset 0) y
        offset 0
      ) run
    ),`,
    classifiedCte,
  );
}

const refKey = (r: ComponentRef) => `${r.kind}/${r.app}/${r.name}/${r.version}`;

function emptyProgress(): RolloutProgress {
  return {
    sent: 0,
    installed: 0,
    failed: 0,
    states: Object.fromEntries(rolloutStates.map((s) => [s, 0])) as Record<RolloutState, number>,
  };
}

/**
 * The figures of every release in `refs`, in one statement (with `scope`: over the members of
 * that phased rollout only). Returns a map keyed `kind/app/name/version`; a release nobody was
 * sent has all-zero figures.
 */
export async function rolloutProgress(
  sql: Sql,
  refs: ComponentRef[],
  scope?: MemberScope,
): Promise<Map<string, RolloutProgress>> {
  const out = new Map<string, RolloutProgress>(refs.map((r) => [refKey(r), emptyProgress()]));
  if (refs.length === 0) return out;
  // One release once, however many of `refs` name it (several assignments of one version would
  // otherwise count each appliance once per assignment).
  const unique = [...new Map(refs.map((r) => [refKey(r), r])).values()];
  const rows = await runFragments<ComponentRef & { state: RolloutState; n: number }>(
    sql,
    classified(unique, scope),
    fragment`
    select kind, app, name, version, state, count(*)::int as n from classified
    group by kind, app, name, version, state`,
  );
  for (const r of rows) addState(out.get(refKey(r)), r.state, r.n);
  return out;
}

/** Counts `n` appliances in state `state` into `p` (if any). */
function addState(p: RolloutProgress | undefined, state: RolloutState, n: number): void {
  if (!p) return;
  p.states[state] = n;
  p.sent += n;
  if (state === "running" || state === "unconfirmed") p.installed += n;
  if (failingStates.includes(state)) p.failed += n;
}

/**
 * The figures of many phased rollouts' releases, each over the members of its scope, in one
 * statement: for each, what {@link rolloutProgress} returns for its release with the scope's
 * {@link MemberScope} (`phase` and `sample`). Returns a map by rollout id (the first scope of a
 * rollout named twice); a rollout whose release none of its members was sent has all-zero
 * figures.
 */
export async function phaseProgress(
  sql: Sql,
  scopes: readonly PhaseScope[],
): Promise<Map<number, RolloutProgress>> {
  const byId = new Map<number, PhaseScope>();
  for (const s of scopes) if (!byId.has(s.rolloutId)) byId.set(s.rolloutId, s);
  const all = [...byId.values()];
  const out = new Map<number, RolloutProgress>(all.map((s) => [s.rolloutId, emptyProgress()]));
  if (all.length === 0) return out;
  const rows = await runFragments<{ key: number; state: RolloutState; n: number }>(
    sql,
    classifiedPhases(all),
    fragment`
    select key, state, count(*)::int as n from classified where delivered group by key, state`,
  );
  for (const r of rows) addState(out.get(Number(r.key)), r.state, r.n);
  return out;
}

/** A release's figures from the number of its appliances in each state (absent: none). */
export function progressFrom(counts: Partial<Record<RolloutState, number>>): RolloutProgress {
  const p = emptyProgress();
  for (const st of rolloutStates) addState(p, st, counts[st] ?? 0);
  return p;
}

/** The figures of one release (as {@link rolloutProgress}). */
export async function rolloutHealth(
  deps: Pick<AppDeps, "db">,
  c: ComponentRef,
): Promise<RolloutProgress> {
  return (await rolloutProgress(deps.db.sql, [c])).get(refKey(c))!;
}

/**
 * The appliances release `c` was sent to, in UID order after `after`, at most `limit`, optionally
 * only those in one of `states` (none or empty: every state), and only `scope`'s members when
 * given: one statement.
 */
export async function rolloutAppliances(
  sql: Sql,
  c: ComponentRef,
  opts: { states?: readonly RolloutState[]; after?: string; limit: number; scope?: MemberScope },
): Promise<RolloutAppliance[]> {
  const states = opts.states && opts.states.length > 0 ? [...opts.states] : null;
  const rows = await runFragments<{
    uid: string;
    hostname: string;
    site: string | null;
    state: RolloutState;
    running: string | null;
    outcome: string | null;
    message: string | null;
    reported_at: Date | null;
    last_beat_at: Date | null;
    first_sent_at: Date;
    missing_since: Date | null;
  }>(
    sql,
    classified([c], opts.scope),
    fragment`
    select uid, hostname, site, state, running, outcome, message, reported_at, last_beat_at,
      first_sent_at, missing_since
    from classified
    where (${states === null}::boolean or state = any(${states ?? []}::text[]))
      and (${opts.after ?? null}::uuid is null or uid > ${opts.after ?? null}::uuid)
    order by uid limit ${opts.limit}`,
  );
  return rows.map((r) => ({
    uid: r.uid,
    hostname: r.hostname,
    site: r.site,
    state: r.state,
    runningVersion: r.running,
    outcome: r.outcome
      ? { outcome: r.outcome, message: r.message, reportedAt: r.reported_at!.toISOString() }
      : null,
    lastBeatAt: r.last_beat_at?.toISOString() ?? null,
    sentAt: r.first_sent_at.toISOString(),
    missingSince: r.missing_since?.toISOString() ?? null,
  }));
}

/**
 * Pauses every unpaused, gated assignment whose share of failing appliances (states `failed`,
 * `reverted`, `other`, `missing`, of those counted: these and `running`, `unconfirmed`) has
 * passed its threshold, once at least `min_sample` are counted (optionally only the assignments
 * of one component version). The figures of every gated release are read in one statement.
 * Returns the paused ids.
 */
export async function gateRollouts(
  deps: AppDeps,
  only?: ComponentRef,
): Promise<number[]> {
  const gated = await deps.db.sql<
    ComponentRef & {
      id: number;
      failure_threshold_percent: number;
      min_sample: number;
    }
  >`
    select id, kind, app, name, version, failure_threshold_percent, min_sample from assignments
    where not paused and failure_threshold_percent is not null
      and (${only?.kind ?? null}::text is null or (kind = ${only?.kind ?? null} and app = ${
    only?.app ?? null
  }
        and name = ${only?.name ?? null} and version = ${only?.version ?? null}))`;
  if (gated.length === 0) return [];
  const figures = await rolloutProgress(deps.db.sql, gated);
  const paused: number[] = [];
  for (const a of gated) {
    const h = figures.get(refKey(a))!;
    const total = h.installed + h.failed;
    const bad = h.failed;
    if (total < a.min_sample || bad * 100 <= a.failure_threshold_percent * total) continue;
    const share = Math.round((bad * 1000) / total) / 10;
    const why = failingStates.filter((s) => h.states[s] > 0).map((s) => `${h.states[s]} ${s}`)
      .join(", ");
    const reason =
      `${share}% of ${total} appliances failed or went missing (${why}; threshold ${a.failure_threshold_percent}%)`;
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
