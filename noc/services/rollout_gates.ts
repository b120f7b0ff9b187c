/**
 * The gates of phased rollouts (issue 20): what the appliances of a rollout's current phase
 * report, against its control sample, and the verdict on it. The rollout daemon
 * (noc/jobs/rollout_daemon.ts) runs, once per period, {@link pendingSamples} and
 * {@link spreadSamples}, then {@link writeSamples} beside {@link rolloutFigures}, then
 * {@link judgePhase} for each running rollout it did not leave waiting.
 *
 * - **Which members**: the current phase's members are judged on its first
 *   {@link evaluatedPerPhase} (1,000) members by UID — all of them in a phase that small, else a
 *   uniform sample (UIDs are random), the same at every pass, read from an index — so a pass costs
 *   the same at 100,000 appliances as at 2,000 (a share measured on 1,000 appliances is within
 *   about ±1.4 points at 95 % confidence). Revoked appliances are left out. Below, "members"
 *   means these.
 * - **Samples**: beat history keeps no application data (noc/http/v1/beats.ts `historyOf`), so
 *   each pass copies, for every running rollout whose current phase has a metric gate, the
 *   members' and the control sample's latest reports (`appliances.last_report`) into
 *   `rollout_samples`: one row per (rollout, appliance, beat time), written only when the
 *   appliance beat since its last sample and since the phase started — at most 1,000 members +
 *   1,000 control rows per rollout per pass, in one statement for every rollout, and at most
 *   {@link samplesPerPass} a pass: the rollouts beyond wait, unjudged ({@link spreadSamples}).
 * - **Install states** of the members: those noc/services/rollouts.ts `rolloutProgress` gives
 *   them scoped to them, read for every rollout at once (`classifiedPhases`, the same
 *   classification) in the statement that reads their health.
 * - **Healthy share**: members running the release (their latest report lists it), not missing
 *   and not reporting the release's application unhealthy (`apps[app].healthy === false`), of
 *   all members.
 * - **Plug-in health**: of the members that beat since phase start and whose latest report lists
 *   the release (as the metric gate judges members only on beats taken on the release), those
 *   whose latest report has `apps[app].healthy === false` (app: the release's application). A
 *   member still on the previous version says nothing about the release's plug-ins.
 * - **Metric** — the statistic: per appliance, the median of its samples since phase start (its
 *   samples of the last {@link medianWindowS} (12 hours), at most its latest
 *   {@link medianSamples}; only appliances with at least `minBeats` of them, taken while
 *   members ran the release and control appliances the previous version), kept up to date in
 *   `rollout_sample_medians` as samples come (each row keeps its window's times and values, so a
 *   new sample reads one row); per group, the median of those medians; judged on the
 *   ratio phase / control (as `1 + (phase − control) / |control|`, so a control of 0 or below
 *   still orders), once both groups have `minAppliances`. Medians shrug off outliers and busy
 *   appliances, do not care how many beats each appliance sent, cost one `percentile_cont` in
 *   SQL, and answer the operator's rule directly ("not more than 30 % below control"), where a
 *   Mann-Whitney U test says only "different or not" and flags trivial differences in large
 *   groups. No p-value is reported.
 * - **Beat regularity**: the share of the phase's members with a missed-heartbeat alert opened
 *   since phase start, minus the control sample's share, in percentage points.
 * - **Stop** (the error condition): failed share (`failed`, `reverted`, `other`, `missing`) of
 *   those counted (these and `running`, `unconfirmed`), once at least `minSample` are counted —
 *   or, in a phase of fewer evaluated members than that (a 1 % canary of a small fleet), all of
 *   them: otherwise such a phase could never stop, and its failure would page nobody. The
 *   plug-in health and beat-regularity gates take the same minimum.
 *
 * Every figure is one statement for all rollouts, never one per rollout or per appliance. On a
 * pool the figures' statements run side by side (and beside the sampling: only the metric's
 * statistic waits for it).
 *
 * **Cost** (bench/rollout_gates.ts, `deno task bench -- rollouts`): a pass samples the judged
 * appliances that beat since their rollout's last evaluation (an index range of
 * `appliances_last_beat`, a fifteenth of the fleet a minute), not every judged appliance, and
 * updates one median row per sample; the rest reads the judged members once per figure (each
 * report decompressed once per statement): membership, health and install states in one
 * statement that reads each evaluated member's row and report once, and looks up its latest
 * install outcome only where its state depends on it (not when it runs the release or is
 * missing). On PGlite (one connection: every statement waits for the one before) that statement
 * replaced 21 (health, then one install-state statement per rollout): a steady pass at 10,000
 * appliances took 22 % less time in an A/B run on a loaded machine (3.4 s against 4.4 s), and
 * 16 times the floor of bench/rollout_gates.ts against 27 before (bench/RESULTS.md, issue 20
 * item 5).
 *
 * @module
 */
import type { Sql } from "../db/db.ts";
import type { Phase } from "../../protocol/rollout_plan.ts";
import { fragment, runFragments } from "../db/fragment.ts";
import {
  classifiedPhases,
  failingStates,
  progressFrom,
  type RolloutProgress,
  type RolloutState,
  rolloutStates,
} from "./rollouts.ts";

/** A running rollout as the gates read it. */
export interface GatedRollout {
  /** The rollout's id. */
  id: number;
  /** The release: kind, application, name and version. */
  kind: string;
  /** Application of the release (its plug-ins' health flag is `apps[app].healthy`). */
  app: string;
  /** Component name. */
  name: string;
  /** The release's version. */
  version: string;
  /** What the control appliances run (null: anything but the release). */
  previousVersion: string | null;
  /** The current phase (0-based). */
  phase: number;
  /** When the current phase started. */
  phaseStartedAt: Date;
  /** The current phase's plan. */
  plan: Phase;
}

/** A group's metric figures. */
export interface GroupStatistic {
  /** Appliances with at least `minBeats` samples. */
  appliances: number;
  /** The median of their medians (null: none). */
  statistic: number | null;
  /**
   * The group's appliances (not revoked; the phase's evaluated members or the control sample):
   * a group smaller than `minAppliances` is judged once all of them are counted.
   */
  size: number;
}

/** The metric gate's figures. */
export interface MetricFigures {
  /** The metric's path (`app.key…`). */
  path: string;
  /** The phase's members running the release. */
  phase: GroupStatistic;
  /** The control sample running the previous version. */
  control: GroupStatistic;
  /** `1 + (phase − control) / |control|` (null: a group has no statistic, or control is 0). */
  ratio: number | null;
}

/** The beat-regularity gate's figures. */
export interface BeatFigures {
  /** The phase's evaluated members (not revoked). */
  members: number;
  /** Of them, those with a missed-heartbeat alert opened since phase start. */
  membersMissed: number;
  /** The control sample (not revoked). */
  control: number;
  /** Of them, those with a missed-heartbeat alert opened since phase start. */
  controlMissed: number;
}

/**
 * What the current phase's appliances report (one rollout). Every count but `members` is over
 * the `evaluated` members (all of them up to {@link evaluatedPerPhase}, else a uniform sample).
 */
export interface PhaseFigures {
  /** The phase (0-based). */
  phase: number;
  /** When it started (ISO 8601). */
  phaseStartedAt: string;
  /** Appliances that joined with this phase. */
  members: number;
  /** Members the figures are read from (not revoked; at most {@link evaluatedPerPhase}). */
  evaluated: number;
  /** Install states of the evaluated members the release was sent to (rollouts.ts figures). */
  install: RolloutProgress;
  /** Evaluated members the release was not sent to (yet). */
  notSent: number;
  /** Evaluated members running the release, not missing, not reporting the app unhealthy. */
  healthy: number;
  /** `healthy` of `evaluated`, percent with one decimal (100 when none are evaluated). */
  healthyPercent: number;
  /** Evaluated members that beat since phase start and whose latest report lists the release. */
  reporting: number;
  /** Of them, those whose latest report says `apps[app].healthy === false`. */
  unhealthy: number;
  /** The metric gate's figures, when the phase has one. */
  metric: MetricFigures | null;
  /** The beat-regularity gate's figures, when the phase has one. */
  beats: BeatFigures | null;
}

/** The names of the conditions judged: the error condition and the three gates. */
export type GateName = "stop" | "pluginHealth" | "metric" | "beatRegularity";

/** One condition's verdict. */
export interface GateResult {
  /** Which. */
  gate: GateName;
  /** Whether it had its minimum sample. */
  judged: boolean;
  /** Whether it fails the phase (only when judged). */
  fails: boolean;
  /** The figures in words, e.g. `3 of 10 failed (30 %; threshold 20 %): 3 failed`. */
  summary: string;
}

/** The verdict on a phase. */
export interface Judgement {
  /** Every condition the phase has, in order: stop, pluginHealth, metric, beatRegularity. */
  gates: GateResult[];
  /** The first failing one, if any: the rollout fails. */
  failed: GateResult | null;
  /** Whether the advance condition holds (no failure, every gate judged, healthy share met). */
  holds: boolean;
  /** Why it does not hold, in words (empty when it holds). */
  waiting: string[];
}

/** What a pass stores in `rollouts.last_evaluation`. */
export interface RolloutEvaluation {
  /** When (ISO 8601). */
  at: string;
  /** The figures. */
  figures: PhaseFigures;
  /** The verdict. */
  judgement: Judgement;
  /** Since when the advance condition holds (ISO 8601), if it does. */
  heldSince: string | null;
  /** When the phase advances by itself if it keeps holding (ISO 8601; null: not auto or not holding). */
  advanceAt: string | null;
}

const isoList = (ds: readonly Date[]) => ds.map((d) => d.toISOString());

/** Most members of a phase its figures are read from: its first ones by UID (see the module). */
export const evaluatedPerPhase = 1000;

/**
 * An appliance's median is taken over its samples of this many seconds before its latest (12
 * hours: 48 beats at the default interval); older samples are deleted as new ones come.
 */
export const medianWindowS = 12 * 3600;

/** At most this many of an appliance's latest samples are read for its median. */
export const medianSamples = 96;

/** What {@link pendingSamples} may skip (see there). */
export interface SampleSince {
  /**
   * Seconds before a rollout's last recorded evaluation (`rollouts.evaluated_at`, the clock of
   * the pass that sampled it) a beat may carry and still have come in after that pass read it
   * (clocks of two instances, each within the tolerance, plus a beat's way to the database).
   */
  marginS: number;
}

/**
 * Most new samples one pass writes (see {@link spreadSamples}). A backlog shrinks each pass by
 * this less the steady rate (~2,700 a minute at 20 rollouts: a fifteenth of their 40,000 judged
 * appliances), so it is well above that: a full catch-up at 20 rollouts after a quarter of an
 * hour takes about 15 passes. At 6,000 it took 9, but a catch-up pass on PGlite at 10,000
 * appliances then took up to 2.1 s (the samples and their medians are most of a catch-up pass);
 * at 4,000 about thirty.
 */
export const samplesPerPass = 5000;

/** The judged appliances of metric-gated rollouts with a beat not sampled yet. */
export interface PendingSamples {
  /** Their rollouts' ids (parallel to `uids`). */
  ids: number[];
  /** The appliances. */
  uids: string[];
  /** How many each rollout has. */
  counts: Map<number, number>;
  /** Each rollout's last recorded evaluation (null: none; the order of catching up). */
  evaluatedAt: Map<number, Date | null>;
}

/**
 * The evaluated members of the current phase and the control appliances of every rollout in
 * `rollouts` whose phase has a metric gate whose latest beat is not sampled yet (two
 * statements). Only appliances that beat since the phase started and since the rollout's last
 * recorded evaluation less `since.marginS` are read — an index range of `appliances_last_beat`
 * hash-joined with the judged appliances: the pass that recorded it sampled every earlier beat (a
 * rollout the last pass did not judge — resumed, or waiting its turn to catch up — reads the beats
 * since it last was).
 */
export async function pendingSamples(
  sql: Sql,
  rollouts: readonly GatedRollout[],
  since: SampleSince = { marginS: 0 },
): Promise<PendingSamples> {
  const gated = rollouts.filter((r) => r.plan.gates.metric);
  const out: PendingSamples = { ids: [], uids: [], counts: new Map(), evaluatedAt: new Map() };
  if (gated.length === 0) return out;
  const recorded = await sql<{ id: number; evaluated_at: Date | null }>`
    select id, evaluated_at from rollouts where id = any(${gated.map((r) => r.id)}::bigint[])`;
  for (const x of recorded) out.evaluatedAt.set(x.id, x.evaluated_at);
  const lo = gated.map((r) => {
    const at = out.evaluatedAt.get(r.id);
    const from = at ? at.getTime() - since.marginS * 1000 : -Infinity;
    return new Date(Math.max(from, r.phaseStartedAt.getTime()));
  });
  const minLo = new Date(Math.min(...lo.map((d) => d.getTime())));
  // The judged appliances that beat since then: the members and control appliances joined with
  // an index range of appliances_last_beat, not looked up one by one; less those whose latest
  // beat is sampled already.
  const [fresh] = await sql<{ ids: number[]; uids: string[] }>`
    with r as (
      select * from unnest(${gated.map((r) => r.id)}::bigint[], ${
    gated.map((r) => r.phase)
  }::int[], ${isoList(lo)}::timestamptz[]) as r(id, phase, lo)
    ),
    who as (
      select r.id, r.lo, m.uid from r
      cross join lateral (
        select uid from rollout_members where rollout_id = r.id and phase = r.phase
        order by uid limit ${evaluatedPerPhase}
      ) m
      union all
      select r.id, r.lo, c.uid from r join rollout_control c on c.rollout_id = r.id
    ),
    recent as (
      select uid, last_beat_at from appliances
      where coalesce(last_beat_at, '-infinity'::timestamptz) >= ${minLo}
    )
    select coalesce(array_agg(w.id), '{}') as ids, coalesce(array_agg(w.uid), '{}') as uids
    from who w join recent x on x.uid = w.uid
    -- A primary-key probe each (a lateral: never a scan of every sample for an anti-join).
    left join lateral (
      select true as hit from rollout_samples s
      where s.rollout_id = w.id and s.uid = w.uid and s.at = x.last_beat_at
      limit 1
    ) done on true
    where x.last_beat_at >= w.lo and done.hit is null`;
  out.ids = fresh?.ids ?? [];
  out.uids = fresh?.uids ?? [];
  for (const id of out.ids) out.counts.set(id, (out.counts.get(id) ?? 0) + 1);
  return out;
}

/**
 * Which metric-gated rollouts a pass samples and judges, and which wait (pure): the rollouts
 * with pending samples in the order of their last recorded evaluation (never evaluated first,
 * then the longest ago), each taken while the samples so far stay within `budget` (the first
 * always: a rollout has at most 2,000 judged appliances). Those left wait for a later pass —
 * neither sampled nor judged nor recorded, so they keep their place at the head of the queue and
 * the next pass reads every beat since they were last judged: a rollout is never judged on a
 * sample missing beats it should have. A pass after a pause of a quarter of an hour (every judged
 * appliance beat) thus catches up over a few passes instead of in one long one. Returns the ids of
 * those that wait.
 */
export function spreadSamples(pending: PendingSamples, budget: number): Set<number> {
  const order = [...pending.counts.keys()].sort((a, b) =>
    (pending.evaluatedAt.get(a)?.getTime() ?? -Infinity) -
      (pending.evaluatedAt.get(b)?.getTime() ?? -Infinity) || a - b
  );
  const wait = new Set<number>();
  let taken = 0;
  for (const id of order) {
    const n = pending.counts.get(id)!;
    if (taken > 0 && taken + n > budget) {
      wait.add(id);
      continue;
    }
    taken += n;
  }
  return wait;
}

/**
 * Copies into `rollout_samples` the latest report of each appliance of `pending` (less those of
 * the rollouts in `skip`) of the rollouts in `rollouts`: the metric (a number at the path, else
 * null), the plug-in health flag (null: not reported) and the release's component version it
 * runs. Then updates each sampled appliance's median (`rollout_sample_medians`): over its samples
 * of the phase in the {@link medianWindowS} before `now`, at most its latest
 * {@link medianSamples}, those taken while it ran the version its group is judged on. The
 * window's times and values are kept in its row (`window_at`, `window_values`), so a new sample
 * reads one row, not the window's ~48 samples; an appliance new to the phase's medians starts
 * from its samples. Deletes its samples older than the window. Three statements for all
 * rollouts; returns the rows written.
 */
export async function writeSamples(
  sql: Sql,
  rollouts: readonly GatedRollout[],
  pending: PendingSamples,
  now: Date,
  skip: ReadonlySet<number> = new Set(),
): Promise<number> {
  const gated = rollouts.filter((r) => r.plan.gates.metric && !skip.has(r.id));
  if (gated.length === 0) return 0;
  const take = new Set(gated.map((r) => r.id));
  const ids: number[] = [], uids: string[] = [];
  pending.ids.forEach((id, i) => {
    if (take.has(id)) ids.push(id), uids.push(pending.uids[i]!);
  });
  if (uids.length === 0) return 0;
  const [row] = await sql<
    {
      rollout_ids: number[];
      uids: string[];
      ats: string[];
      vals: (number | null)[];
      runs: (string | null)[];
    }
  >`
    with r as (
      select * from unnest(${gated.map((r) => r.id)}::bigint[], ${
    isoList(gated.map((r) => r.phaseStartedAt))
  }::timestamptz[], ${gated.map((r) => r.kind)}::text[], ${gated.map((r) => r.app)}::text[],
        ${gated.map((r) => r.name)}::text[], ${gated.map((r) => r.plan.gates.metric!.path)}::text[])
        as r(id, lo, kind, app, name, path)
    ),
    fresh as (
      select * from unnest(${ids}::bigint[], ${uids}::uuid[]) as f(id, uid)
    ),
    written as (
      insert into rollout_samples (rollout_id, uid, at, value, healthy, running)
      select r.id, ap.uid, ap.last_beat_at,
        case when jsonb_typeof(ap.last_report->'apps' #> string_to_array(r.path, '.')) = 'number'
          -- Clamped to ±1e100, so that no median, difference or ratio of them overflows.
          then least(greatest((ap.last_report->'apps' #> string_to_array(r.path, '.'))::numeric,
            -1e100), 1e100)::float8 end,
        case when jsonb_typeof(ap.last_report->'apps'->r.app->'healthy') = 'boolean'
          then (ap.last_report->'apps'->r.app->'healthy')::boolean end,
        run.running
      from fresh w
      join r on r.id = w.id
      join appliances ap on ap.uid = w.uid and ap.revoked_at is null
      left join lateral (
        select c->>'version' as running
        from jsonb_array_elements(case when jsonb_typeof(ap.last_report->'components') = 'array'
          then ap.last_report->'components' else '[]'::jsonb end) c
        where c->>'kind' = r.kind and c->>'app' = r.app and c->>'name' = r.name
        limit 1
      ) run on true
      where ap.last_beat_at >= r.lo
      on conflict do nothing
      returning rollout_id, uid, at, value, running
    )
    select coalesce(array_agg(rollout_id), '{}') as rollout_ids, coalesce(array_agg(uid), '{}')
      as uids, coalesce(array_agg(at), '{}') as ats, coalesce(array_agg(value), '{}') as vals,
      coalesce(array_agg(running), '{}') as runs
    from written`;
  const touched = {
    rolloutIds: row?.rollout_ids ?? [],
    uids: row?.uids ?? [],
    ats: (row?.ats ?? []).map((a) => new Date(a).toISOString()),
    vals: row?.vals ?? [],
    runs: row?.runs ?? [],
  };
  if (touched.uids.length === 0) return 0;
  const windowStart = new Date(now.getTime() - medianWindowS * 1000);
  // The sampled appliances' medians: their row's window with the new sample (one row each), or,
  // for an appliance new to the phase's medians, from its samples of the phase.
  await sql`
    with r as (
      select * from unnest(${gated.map((r) => r.id)}::bigint[], ${
    gated.map((r) => r.phase)
  }::int[], ${isoList(gated.map((r) => r.phaseStartedAt))}::timestamptz[],
        ${gated.map((r) => r.version)}::text[], ${gated.map((r) => r.previousVersion)}::text[])
        as r(id, phase, started, version, prev)
    ),
    t as (
      select * from unnest(${touched.rolloutIds}::bigint[], ${touched.uids}::uuid[],
        ${touched.ats}::timestamptz[], ${touched.vals}::float8[], ${touched.runs}::text[])
        as t(rollout_id, uid, at, value, running)
    ),
    tm as (
      select t.rollout_id, t.uid, t.at, t.value, r.started, r.version,
        (m.uid is not null) as member,
        case when m.uid is not null then r.version else r.prev end as want,
        greatest(r.started, ${windowStart}::timestamptz) as lo
      from t join r on r.id = t.rollout_id
      left join rollout_members m on m.rollout_id = t.rollout_id and m.uid = t.uid
        and m.phase = r.phase
    ),
    tk as (
      select tm.*, t.value is not null and case when tm.want is null
        then t.running is distinct from tm.version else t.running = tm.want end as counts
      from tm join t on t.rollout_id = tm.rollout_id and t.uid = tm.uid
    ),
    appended as (
      update rollout_sample_medians d set
        (window_at, window_values, beats, median) = (
          select f.window_at, f.window_values, f.beats, f.median
          from rollout_window(
            d.window_at || case when tk.counts then array[tk.at] else '{}'::timestamptz[] end,
            d.window_values || case when tk.counts then array[tk.value]
              else '{}'::float8[] end,
            tk.lo, ${medianSamples}::int) f)
      from tk
      where d.rollout_id = tk.rollout_id and d.uid = tk.uid and d.phase_started_at = tk.started
        and d.member = tk.member and d.window_at is not null
      returning d.rollout_id, d.uid
    ),
    seed as materialized (
      select tk.* from tk
      where not exists (
        select 1 from appended a where a.rollout_id = tk.rollout_id and a.uid = tk.uid)
    )
    insert into rollout_sample_medians (rollout_id, uid, phase_started_at, member, beats, median,
      window_at, window_values)
    select tk.rollout_id, tk.uid, tk.started, tk.member, f.beats, f.median, f.window_at,
      f.window_values
    from seed tk
    cross join lateral (
      select coalesce(array_agg(s.at), '{}') as ats, coalesce(array_agg(s.value), '{}') as vals
      from rollout_samples s
      where s.rollout_id = tk.rollout_id and s.uid = tk.uid and s.at >= tk.lo
        and s.value is not null and case when tk.want is null
          then s.running is distinct from tk.version else s.running = tk.want end
    ) w
    cross join lateral rollout_window(w.ats, w.vals, tk.lo, ${medianSamples}::int) f
    on conflict (rollout_id, uid) do update set phase_started_at = excluded.phase_started_at,
      member = excluded.member, beats = excluded.beats, median = excluded.median,
      window_at = excluded.window_at, window_values = excluded.window_values`;
  // Older samples of these appliances are read no more (an index range each: few rows).
  await sql`
    delete from rollout_samples s
    using unnest(${touched.rolloutIds}::bigint[], ${touched.uids}::uuid[]) as t(rollout_id, uid)
    where s.rollout_id = t.rollout_id and s.uid = t.uid and s.at < ${windowStart}`;
  return touched.uids.length;
}

/**
 * {@link pendingSamples} then {@link writeSamples} for every metric-gated rollout in `rollouts`
 * (no budget): returns the rows written.
 */
export async function sampleRollouts(
  sql: Sql,
  rollouts: readonly GatedRollout[],
  now: Date,
  since: SampleSince = { marginS: 0 },
): Promise<number> {
  return await writeSamples(sql, rollouts, await pendingSamples(sql, rollouts, since), now);
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/**
 * The figures of each rollout's current phase (see the module): membership, health and the
 * members' install states (one statement, or `opts.parallel` side by side on a pool, each for a
 * share of the rollouts), the metric statistic of
 * the metric-gated ones (one statement, from {@link sampleRollouts}' rows) and the
 * missed-heartbeat shares of the beat-gated ones (one statement). Returns them by rollout id.
 */
export async function rolloutFigures(
  sql: Sql,
  rollouts: readonly GatedRollout[],
  opts: { now: Date; samplesReady?: Promise<unknown>; parallel?: number },
): Promise<Map<number, PhaseFigures>> {
  const out = new Map<number, PhaseFigures>();
  if (rollouts.length === 0) return out;
  const all = [...rollouts];
  // Membership, health and install states in one statement per part: each evaluated member's row
  // and report are read once (the install states are rollouts.ts's, `classifiedPhases`). On a pool
  // the rollouts are split into `opts.parallel` parts that run side by side.
  const healthOf = async (part: GatedRollout[]) => {
    const r = {
      ids: part.map((x) => x.id),
      phases: part.map((x) => x.phase),
      starts: isoList(part.map((x) => x.phaseStartedAt)),
    };
    const scopes = part.map((x) => ({
      rolloutId: x.id,
      phase: x.phase,
      sample: evaluatedPerPhase,
      ref: { kind: x.kind, app: x.app, name: x.name, version: x.version },
    }));
    return await runFragments<
      & {
        id: number;
        joined: number | null;
        evaluated: number;
        healthy: number;
        reporting: number;
        unhealthy: number;
        not_sent: number;
      }
      & Record<`n_${RolloutState}`, number | null>
    >(
      sql,
      classifiedPhases(scopes),
      fragment`,
    g as materialized (
      select u.*,
        jsonb_build_array(jsonb_build_object('kind', u.kind, 'app', u.app, 'name', u.name,
          'version', u.version)) as listed,
        (select p.joined from rollout_phases p where p.rollout_id = u.id and p.phase = u.phase)
          as joined
      from unnest(${r.ids}::bigint[], ${r.phases}::int[], ${r.starts}::timestamptz[],
        ${part.map((x) => x.kind)}::text[], ${part.map((x) => x.app)}::text[],
        ${part.map((x) => x.name)}::text[], ${part.map((x) => x.version)}::text[])
        as u(id, phase, started, kind, app, name, version)
    )
    select g.id, g.joined, f.* from g
    left join (
      select w.key, count(*)::int as evaluated,
        count(*) filter (where w.on_release and w.missing_since is null
          and w.flag is distinct from 'false'::jsonb)::int as healthy,
        count(*) filter (where w.recent and w.on_release)::int as reporting,
        count(*) filter (where w.recent and w.on_release and w.flag = 'false'::jsonb)::int
          as unhealthy,
        count(*) filter (where not w.delivered)::int as not_sent,
        count(*) filter (where w.state = 'running')::int as n_running,
        count(*) filter (where w.state = 'unconfirmed')::int as n_unconfirmed,
        count(*) filter (where w.state = 'pending')::int as n_pending,
        count(*) filter (where w.state = 'failed')::int as n_failed,
        count(*) filter (where w.state = 'reverted')::int as n_reverted,
        count(*) filter (where w.state = 'other')::int as n_other,
        count(*) filter (where w.state = 'missing')::int as n_missing,
        count(*) filter (where w.state = 'superseded')::int as n_superseded
      -- Each member's figures computed once (its state is one expression, its report one
      -- value), then counted: the aggregate reads narrow rows.
      from (
        select c.key, c.state, c.delivered, c.missing_since, c.last_beat_at >= g.started as recent,
          c.rep->'components' @> g.listed as on_release, c.rep->'apps'->g.app->'healthy' as flag
        from classified c
        join g on g.id = c.key
        offset 0
      ) w
      group by w.key
    ) f on f.key = g.id`,
    );
  };
  const parts = Math.max(1, Math.min(opts.parallel ?? 1, all.length));
  const healthRows = async () =>
    (await Promise.all(
      Array.from({ length: parts }, (_, i) => healthOf(all.filter((_, j) => j % parts === i))),
    )).flat();
  const beat = all.filter((x) => x.plan.gates.beatRegularity);
  const since = new Date(Math.min(...beat.map((x) => x.phaseStartedAt.getTime())));
  const beatRows = async () =>
    beat.length === 0 ? [] : await sql<{ id: number; control: boolean; n: number; missed: number }>`
      with r as (
        select * from unnest(${beat.map((x) => x.id)}::bigint[], ${
      beat.map((x) => x.phase)
    }::int[], ${isoList(beat.map((x) => x.phaseStartedAt))}::timestamptz[], ${
      beat.map((x) => x.kind)
    }::text[], ${beat.map((x) => x.app)}::text[], ${beat.map((x) => x.name)}::text[], ${
      beat.map((x) => x.version)
    }::text[])
          as r(id, phase, started, kind, app, name, version)
      ),
      revoked as materialized (
        select uid from appliances where revoked_at is not null
      ),
      missed as (
        select uid, max(opened_at) as last from alerts
        where kind = 'missed_heartbeat' and opened_at >= ${since}
        group by uid
      ),
      -- A member counts from its install of the release on, when it reported one (issue 22
      -- item 5), and a member still waiting for its install window is not judged on the release
      -- (its last report says install_deferred); control counts from the phase's start.
      who as (
        select r.id, greatest(r.started, i.at) as started, false as control, m.uid, i.at,
          r.kind, r.app, r.name, r.version from r
        cross join lateral (
          select uid from rollout_members where rollout_id = r.id and phase = r.phase
          order by uid limit ${evaluatedPerPhase}
        ) m
        cross join lateral (
          select min(o.reported_at) as at from install_outcomes o
          where o.uid = m.uid and o.kind = r.kind and o.app = r.app and o.name = r.name
            and o.version = r.version and o.outcome = 'installed'
        ) i
        union all
        select r.id, r.started, true, c.uid, null, r.kind, r.app, r.name, r.version from r
        join rollout_control c on c.rollout_id = r.id
      )
      select w.id, w.control, count(*)::int as n,
        -- The report is read only for a member that missed a beat and reported no install.
        count(*) filter (where case when x.last >= w.started then w.control or w.at is not null
          or not exists (select 1 from appliances d where d.uid = w.uid
            and deferred_in(d.last_report, w.kind, w.app, w.name, w.version, x.last))
          else false end)::int as missed
      from who w
      left join missed x on x.uid = w.uid
      where not exists (select 1 from revoked v where v.uid = w.uid)
      group by w.id, w.control`;
  // On a pool these overlap; the metric's statement waits for the samples (the daemon samples
  // meanwhile).
  const [health, beatCounts] = await Promise.all([healthRows(), beatRows()]);
  const byId = new Map(health.map((h) => [h.id, h]));
  for (const x of all) {
    const h = byId.get(x.id);
    const install = progressFrom(
      Object.fromEntries(rolloutStates.map((st) => [st, h?.[`n_${st}`] ?? 0])),
    );
    const evaluated = h?.evaluated ?? 0;
    const healthy = h?.healthy ?? 0;
    out.set(x.id, {
      phase: x.phase,
      phaseStartedAt: x.phaseStartedAt.toISOString(),
      members: h?.joined ?? 0,
      evaluated,
      install,
      notSent: h?.not_sent ?? 0,
      healthy,
      healthyPercent: evaluated === 0 ? 100 : round1((healthy * 100) / evaluated),
      reporting: h?.reporting ?? 0,
      unhealthy: h?.unhealthy ?? 0,
      metric: null,
      beats: null,
    });
  }

  const metric = all.filter((x) => x.plan.gates.metric);
  if (metric.length > 0) {
    await opts.samplesReady;
    // Only medians of appliances that still count: not revoked, still a member of the current
    // phase (among its evaluated ones) or of the control sample, with a sample in the window
    // before now — an appliance revoked, moved out or silent for 12 hours no longer speaks for
    // its group. And each group's size (not revoked), for the minimum of a small group.
    const windowStart = new Date(opts.now.getTime() - medianWindowS * 1000);
    const rows = await sql<{
      id: number;
      in_phase: boolean;
      appliances: number;
      statistic: number | null;
      size: number;
    }>`
      with r as (
        select * from unnest(${metric.map((x) => x.id)}::bigint[], ${
      metric.map((x) => x.phase)
    }::int[], ${isoList(metric.map((x) => x.phaseStartedAt))}::timestamptz[], ${
      metric.map((x) => x.plan.gates.metric!.minBeats)
    }::int[])
          as r(id, phase, started, min_beats)
      ),
      who as (
        select r.id, r.started, r.min_beats, true as in_phase, m.uid from r
        cross join lateral (
          select uid from rollout_members where rollout_id = r.id and phase = r.phase
          order by uid limit ${evaluatedPerPhase}
        ) m
        union all
        select r.id, r.started, r.min_beats, false, c.uid from r
        join rollout_control c on c.rollout_id = r.id
      )
      select w.id, w.in_phase, count(*)::int as size,
        count(d.median)::int as appliances,
        percentile_cont(0.5) within group (order by d.median) as statistic
      from who w
      join appliances ap on ap.uid = w.uid and ap.revoked_at is null
      left join rollout_sample_medians d on d.rollout_id = w.id and d.uid = w.uid
        and d.phase_started_at = w.started and d.member = w.in_phase and d.beats >= w.min_beats
        and d.window_at[cardinality(d.window_at)] >= ${windowStart}
      group by w.id, w.in_phase`;
    for (const x of metric) {
      const group = (inPhase: boolean): GroupStatistic => {
        const g = rows.find((r) => r.id === x.id && r.in_phase === inPhase);
        // A statistic that is not a finite number (no sample, or an overflow) is not judged on.
        const st = g?.statistic ?? null;
        return {
          appliances: g?.appliances ?? 0,
          statistic: st !== null && Number.isFinite(st) ? st : null,
          size: g?.size ?? 0,
        };
      };
      const phase = group(true), control = group(false);
      const raw = phase.statistic === null || control.statistic === null ||
          control.statistic === 0
        ? (phase.statistic !== null && phase.statistic === control.statistic ? 1 : null)
        : 1 + (phase.statistic - control.statistic) / Math.abs(control.statistic);
      // A control so near 0 that the ratio overflows is judged as a control of 0.
      const ratio = raw !== null && Number.isFinite(raw) ? raw : null;
      out.get(x.id)!.metric = { path: x.plan.gates.metric!.path, phase, control, ratio };
    }
  }

  if (beat.length > 0) {
    for (const x of beat) {
      const m = beatCounts.find((r) => r.id === x.id && !r.control);
      const c = beatCounts.find((r) => r.id === x.id && r.control);
      out.get(x.id)!.beats = {
        members: m?.n ?? 0,
        membersMissed: m?.missed ?? 0,
        control: c?.n ?? 0,
        controlMissed: c?.missed ?? 0,
      };
    }
  }
  return out;
}

const pct = (part: number, whole: number) => whole === 0 ? 0 : round1((part * 100) / whole);
/** `1 appliance`, `2 appliances`. */
const count = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const num = (x: number) => Number.isInteger(x) ? String(x) : x.toPrecision(4);

/**
 * Judges a phase on its figures (pure): the error condition and each gate the phase has, in
 * order, each judged once its minimum sample is there; the first that fails fails the phase. The
 * advance condition holds when nothing fails, every gate is judged, and the healthy share is at
 * least `advance.minHealthyPercent` (a phase with no evaluated members holds on that count). The
 * minimum sample is `stop.minSample`, or every evaluated member when there are fewer.
 */
export function judgePhase(plan: Phase, f: PhaseFigures): Judgement {
  const gates: GateResult[] = [];
  const counted = f.install.installed + f.install.failed;
  // A phase that added no appliances (10 % of 6 is the 1 % canary's one again) has nothing to
  // judge: every gate holds on it at once, and it advances after its soak time.
  const empty = f.evaluated === 0;
  const minSample = empty ? 0 : Math.max(1, Math.min(plan.stop.minSample, f.evaluated));
  {
    const judged = counted >= minSample;
    const fails = judged && f.install.failed * 100 > plan.stop.maxFailedPercent * counted;
    const why = failingStates.filter((s) => f.install.states[s] > 0)
      .map((s) => `${f.install.states[s]} ${s}`).join(", ");
    gates.push({
      gate: "stop",
      judged,
      fails,
      summary: empty
        ? "no appliances in this phase (it added none): nothing to judge"
        : `${f.install.failed} of ${counted} failed (${pct(f.install.failed, counted)} %; ` +
          `threshold ${plan.stop.maxFailedPercent} %, judged from ${minSample})` +
          (why ? `: ${why}` : ""),
    });
  }
  const ph = plan.gates.pluginHealth;
  if (ph) {
    const judged = f.reporting >= minSample;
    gates.push({
      gate: "pluginHealth",
      judged,
      fails: judged && f.unhealthy * 100 > ph.maxUnhealthyPercent * f.reporting,
      summary: `${f.unhealthy} of ${count(f.reporting, "reporting appliance")} unhealthy ` +
        `(${pct(f.unhealthy, f.reporting)} %; threshold ${ph.maxUnhealthyPercent} %, ` +
        `judged from ${minSample})`,
    });
  }
  const mg = plan.gates.metric;
  if (mg) {
    const m = f.metric ?? {
      path: mg.path,
      phase: { appliances: 0, statistic: null, size: mg.minAppliances },
      control: { appliances: 0, statistic: null, size: mg.minAppliances },
      ratio: null,
    };
    // As the other gates: a group smaller than the minimum is judged on all of it (a canary of
    // 3 under a minimum of 20 would otherwise wait for ever).
    const need = (size: number) => Math.max(1, Math.min(mg.minAppliances, size));
    const needPhase = need(m.phase.size), needControl = need(m.control.size);
    const judged = empty || (m.phase.appliances >= needPhase &&
      m.control.appliances >= needControl && m.phase.statistic !== null &&
      m.control.statistic !== null);
    const p = m.phase.statistic, c = m.control.statistic;
    let fails = false;
    let change = "";
    if (judged && p !== null && c !== null) {
      if (m.ratio === null) {
        // Control is 0 and the phase is not: any rise (or fall) is unbounded.
        fails = (p > c && mg.maxRisePercent !== undefined) ||
          (p < c && mg.maxDropPercent !== undefined);
        const zero = c === 0 ? "a control of 0" : "a control near 0";
        change = `${p > c ? "above" : "below"} ${zero}`;
      } else {
        const d = round1((m.ratio - 1) * 100);
        fails = (mg.maxDropPercent !== undefined && m.ratio < 1 - mg.maxDropPercent / 100) ||
          (mg.maxRisePercent !== undefined && m.ratio > 1 + mg.maxRisePercent / 100);
        change = d < 0 ? `${-d} % below control` : `${d} % above control`;
      }
    }
    const limits = [
      mg.maxDropPercent !== undefined ? `at most ${mg.maxDropPercent} % below` : "",
      mg.maxRisePercent !== undefined ? `at most ${mg.maxRisePercent} % above` : "",
    ].filter(Boolean).join(", ");
    gates.push({
      gate: "metric",
      judged,
      fails,
      summary: `${mg.path}: median ${p === null ? "–" : num(p)} over ` +
        `${count(m.phase.appliances, "appliance")} vs control ${c === null ? "–" : num(c)} over ` +
        `${m.control.appliances}` +
        (change ? ` (${change}; ${limits})` : ` (${limits}; judged from ` +
          `${count(needPhase, "appliance")} and ${needControl} in control, with ` +
          `${count(mg.minBeats, "beat")} each)`),
    });
  }
  const bg = plan.gates.beatRegularity;
  if (bg) {
    const b = f.beats ?? { members: 0, membersMissed: 0, control: 0, controlMissed: 0 };
    const judged = b.members >= minSample;
    const extra = round1(pct(b.membersMissed, b.members) - pct(b.controlMissed, b.control));
    gates.push({
      gate: "beatRegularity",
      judged,
      fails: judged && extra > bg.maxExtraMissedPercent,
      summary: `${b.membersMissed} of ${b.members} missed a beat ` +
        `(${pct(b.membersMissed, b.members)} %) vs control ${b.controlMissed} of ${b.control} ` +
        `(${pct(b.controlMissed, b.control)} %): ${extra} points more (threshold ` +
        `${bg.maxExtraMissedPercent})`,
    });
  }
  const failed = gates.find((g) => g.fails) ?? null;
  const waiting: string[] = [];
  if (failed) waiting.push(`${failed.gate} fails`);
  for (const g of gates) {
    if (g.gate !== "stop" && !g.judged) waiting.push(`${g.gate} not judged yet: ${g.summary}`);
  }
  if (f.evaluated > 0 && f.healthy * 100 < plan.advance.minHealthyPercent * f.evaluated) {
    waiting.push(
      `${f.healthy} of ${f.evaluated} healthy on the release (${f.healthyPercent} %; needs ` +
        `${plan.advance.minHealthyPercent} %)`,
    );
  }
  return { gates, failed, holds: waiting.length === 0, waiting };
}
