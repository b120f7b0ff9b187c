/**
 * The rollout daemon (issue 20): a `Deno.cron` job (every minute, `main.ts`) that evaluates the
 * gates of every running phased rollout, then advances those whose advance condition has held
 * through their phase's soak time, and fails those a gate failed (one notice each, optional
 * rollback): noc/services/rollout_gates.ts measures and judges, noc/services/phased_rollouts.ts
 * changes the rollouts.
 *
 * **Exactly once per period across instances**: a pass first inserts its period's row into
 * `rollout_evaluations` (insert on conflict do nothing); the instance whose insert lands
 * evaluates the period, any other (or a retry of the same run) skips it. The period is the
 * injected clock's time rounded down to `periodS` (60 s). Each change a pass makes is also
 * conditional on the rollout's revision, so even passes of different periods that overlap, or an
 * operator acting meanwhile, cannot fail a rollout twice or advance it twice: one failure is one
 * notice.
 *
 * **Clock skew**: a pass first checks this instance's clock against the database's
 * (noc/jobs/noc_time.ts `checkClock`, as the status daemon's sweep does); beyond
 * `settings.clockToleranceS` (`NOC_CLOCK_TOLERANCE_S`) it takes no period and judges, advances
 * and fails nothing (`skipped: "clock_skew"`; the job logs `rollouts_skipped`, and the episode
 * raises one `clock_skew` notice): soak times and sample windows are read on the pass's clock.
 *
 * A pass's statements: the clock check; the lease; the running rollouts (1); the pending
 * samples (2: only the judged appliances that beat since their rollout's last recorded
 * evaluation, less a margin of twice the clock tolerance and 30 s, are read); the samples and
 * medians (3); the figures (3: membership, health and install states of all rollouts in one,
 * split in 4 parts side by side on PostgreSQL's pool; the metric; beat regularity), beside the
 * sampling; one update per rollout; the prunings (3). None per appliance, and each bounded:
 * a phase is judged on at most 1,000 of its members and 1,000 control appliances
 * (noc/services/rollout_gates.ts), and a pass writes at most `samplesPerPass` (5,000) new samples:
 * after a pause (every judged appliance beat), the rollouts beyond that wait for the next passes,
 * neither sampled nor judged nor recorded — never judged on samples short of beats they should
 * have — oldest evaluation first (rollout_gates.ts `spreadSamples`).
 *
 * @module
 */
import type { AppDeps } from "../services/deps.ts";
import { checkClock } from "./noc_time.ts";
import {
  advanceIfUnchanged,
  failIfUnchanged,
  recordEvaluation,
  runningRollouts,
} from "../services/phased_rollouts.ts";
import {
  type GatedRollout,
  judgePhase,
  pendingSamples,
  type RolloutEvaluation,
  rolloutFigures,
  samplesPerPass,
  spreadSamples,
  writeSamples,
} from "../services/rollout_gates.ts";

/** What a pass needs (settings and checkins: the clock check, noc/jobs/noc_time.ts). */
export type RolloutDaemonDeps = Pick<
  AppDeps,
  "db" | "clock" | "notifier" | "log" | "settings" | "checkins"
>;

/** Days samples of an ended rollout are kept. */
export const sampleRetentionDays = 30;
/**
 * Seconds a beat may take from its receipt time (`appliances.last_beat_at`) to its commit (the
 * check-in batcher, a busy database): with twice the clock tolerance (two instances' clocks),
 * how far before the last pass's start a beat it did not see may be dated.
 */
const beatLatencyS = 30;
/** Most sample rows one pass prunes. */
const pruneBatch = 20_000;

/** What one pass did. */
export interface RolloutPassResult {
  /** The period evaluated (ISO 8601). */
  periodStart: string;
  /**
   * Why nothing was done: `done`, another instance (or an earlier run) evaluated this period;
   * `clock_skew`, this instance's clock disagrees with the database's beyond
   * `settings.clockToleranceS` (noc/jobs/noc_time.ts `checkClock`), so it neither judges nor
   * changes a rollout, nor takes the period.
   */
  skipped?: "done" | "clock_skew";
  /** With `clock_skew`: this instance's clock less the database's, seconds. */
  skewS?: number;
  /** Running rollouts evaluated. */
  evaluated: number;
  /** Sample rows written. */
  sampled: number;
  /**
   * Running rollouts left for a later pass to catch up (their pending samples beyond the pass's
   * budget, `samplesPerPass`): not sampled, judged nor recorded this pass.
   */
  deferred: number[];
  /** Rollouts moved to their next phase. */
  advanced: number[];
  /** Rollouts completed (advanced past their last phase). */
  completed: number[];
  /** Rollouts failed (each with one notice). */
  failed: number[];
  /** Rollouts whose evaluation threw (logged; the others went on). */
  errors: number[];
  /** Sample and period rows pruned. */
  pruned: number;
  /** Wall time, milliseconds. */
  durationMs: number;
}

/**
 * One pass (see the module): takes the period's lease, samples, measures and judges every
 * running rollout, records each evaluation, fails or advances those due, prunes samples and
 * medians of rollouts ended more than 30 days ago and period rows older than a day. `periodS` (default 60)
 * is the job's period; `samplesPerPass` (default {@link samplesPerPass}) the most new samples it
 * writes (the rollouts beyond it wait: `deferred`).
 */
export async function rolloutPass(
  deps: RolloutDaemonDeps,
  opts: { periodS?: number; samplesPerPass?: number } = {},
): Promise<RolloutPassResult> {
  const started = performance.now();
  const now = deps.clock.now();
  const periodMs = (opts.periodS ?? 60) * 1000;
  const periodStart = new Date(Math.floor(now.getTime() / periodMs) * periodMs);
  const result: RolloutPassResult = {
    periodStart: periodStart.toISOString(),
    evaluated: 0,
    sampled: 0,
    deferred: [],
    advanced: [],
    completed: [],
    failed: [],
    errors: [],
    pruned: 0,
    durationMs: 0,
  };
  const done = () => {
    result.durationMs = performance.now() - started;
    return result;
  };
  // An instance whose clock is off would judge soak times and windows on the wrong time (and take
  // a wrong period): it does nothing, as the status daemon does not sweep.
  const clockCheck = await checkClock(deps);
  if (!clockCheck.ok) {
    result.skipped = "clock_skew";
    result.skewS = clockCheck.skewS;
    return done();
  }
  const { sql } = deps.db;
  const holder = crypto.randomUUID();
  const lease = await sql`
    insert into rollout_evaluations (period_start, holder, started_at)
    values (${periodStart}, ${holder}, ${now})
    on conflict do nothing
    returning 1`;
  if (lease.length === 0) {
    result.skipped = "done";
    return done();
  }
  const all = await runningRollouts(sql);
  const gated: GatedRollout[] = all.map((r) => ({
    id: r.id,
    ...r.component,
    previousVersion: r.previousVersion,
    phase: r.phase,
    phaseStartedAt: r.phaseStartedAt,
    plan: r.plan,
  }));
  // Each rollout's pending samples (the beats since its last recorded evaluation); those beyond
  // the pass's budget wait for a later pass, unjudged (rollout_gates.ts spreadSamples).
  const pending = await pendingSamples(sql, gated, {
    marginS: 2 * deps.settings.clockToleranceS + beatLatencyS,
  });
  const wait = spreadSamples(pending, opts.samplesPerPass ?? samplesPerPass);
  result.deferred = all.filter((r) => wait.has(r.id)).map((r) => r.id);
  const running = all.filter((r) => !wait.has(r.id));
  const judged = gated.filter((r) => !wait.has(r.id));
  result.evaluated = running.length;
  if (running.length > 0) {
    // The figures that do not read samples are measured while sampling runs (on a pool).
    const sampling = writeSamples(sql, judged, pending, now);
    const [sampled, figures] = await Promise.all([
      sampling,
      rolloutFigures(sql, judged, {
        now,
        samplesReady: sampling,
        // On PostgreSQL's pool the figures of a few groups of rollouts are read side by side.
        parallel: deps.db.kind === "postgres" ? 4 : 1,
      }),
    ]);
    result.sampled = sampled;
    for (const r of running) {
      try {
        const f = figures.get(r.id)!;
        const judgement = judgePhase(r.plan, f);
        // Held since the period began (passes run just after it): a soak of one period advances
        // at the next pass, not a period later for the milliseconds this pass started late.
        const heldSince = judgement.holds ? r.heldSince ?? periodStart : null;
        const advanceAt = heldSince && r.plan.auto
          ? new Date(heldSince.getTime() + r.plan.soakS * 1000)
          : null;
        const evaluation: RolloutEvaluation = {
          at: now.toISOString(),
          figures: f,
          judgement,
          heldSince: heldSince?.toISOString() ?? null,
          advanceAt: advanceAt?.toISOString() ?? null,
        };
        if (judgement.failed) {
          const failed = await failIfUnchanged(deps, r.id, r.revision, {
            gate: judgement.failed.gate,
            reason: judgement.failed.summary,
            evaluation,
          });
          if (failed) result.failed.push(r.id);
          continue;
        }
        const recorded = await recordEvaluation(sql, r.id, r.revision, evaluation, now);
        if (recorded && advanceAt && now.getTime() >= advanceAt.getTime()) {
          if (await advanceIfUnchanged(deps, r.id, r.revision, r.phase, evaluation)) {
            (r.last ? result.completed : result.advanced).push(r.id);
          }
        }
      } catch (e) {
        result.errors.push(r.id);
        deps.log.error("rollout_evaluation_failed", {
          rolloutId: r.id,
          message: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }
  const cut = new Date(now.getTime() - sampleRetentionDays * 86400_000);
  const [pruned] = await sql<{ n: number }>`
    with gone as (
      delete from rollout_samples where ctid in (
        select s.ctid from rollout_samples s join rollouts r on r.id = s.rollout_id
        where r.ended_at < ${cut}
        limit ${pruneBatch})
      returning 1
    )
    select count(*)::int as n from gone`;
  const [medians] = await sql<{ n: number }>`
    with gone as (
      delete from rollout_sample_medians d using rollouts r
      where r.id = d.rollout_id and r.ended_at < ${cut}
      returning 1
    )
    select count(*)::int as n from gone`;
  const [periods] = await sql<{ n: number }>`
    with gone as (
      delete from rollout_evaluations
      where period_start < ${new Date(now.getTime() - 86400_000)}
      returning 1
    )
    select count(*)::int as n from gone`;
  result.pruned = (pruned?.n ?? 0) + (medians?.n ?? 0) + (periods?.n ?? 0);
  await sql`
    update rollout_evaluations set finished_at = ${deps.clock.now()},
      evaluated = ${result.evaluated}
    where period_start = ${periodStart} and holder = ${holder}`;
  return done();
}

/**
 * The rollout daemon's cron job (every minute, `main.ts`): one pass, logged as one `rollouts`
 * line with its counts and duration (ms) when it evaluated anything or changed a rollout.
 */
export async function rolloutDaemonJob(deps: AppDeps): Promise<void> {
  const r = await rolloutPass(deps);
  if (r.skipped === "clock_skew") {
    deps.log.warn("rollouts_skipped", {
      reason: "clock_skew",
      skewS: r.skewS,
      toleranceS: deps.settings.clockToleranceS,
    });
    return;
  }
  if (r.skipped || (r.evaluated === 0 && r.deferred.length === 0 && r.pruned === 0)) return;
  deps.log.info("rollouts", {
    evaluated: r.evaluated,
    sampled: r.sampled,
    ...(r.deferred.length > 0 ? { deferred: r.deferred } : {}),
    advanced: r.advanced,
    completed: r.completed,
    failed: r.failed,
    ...(r.errors.length > 0 ? { errors: r.errors } : {}),
    pruned: r.pruned,
    ms: Math.round(r.durationMs),
  });
}
