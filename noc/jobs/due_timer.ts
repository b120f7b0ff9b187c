/**
 * Alerts on time (issue 23 item 0): the status daemon's cron job runs once a minute, so an
 * overdue appliance waited up to a minute for its alert (28.6 s median, 59.6 s worst, against
 * Icinga's 4 ms). The due timer wakes each instance that runs the status daemon at the next
 * moment an appliance becomes alertable — the earliest `next_due_at` plus the grace among
 * appliances not alerted and not revoked, read from the sweep's own partial index
 * (`appliances_due`, one index probe) — and runs a sweep then. The cron job stays as the backstop.
 *
 * An overdue appliance a shed check-in holds (noc/jobs/status_daemon.ts: the NOC told it to come
 * back later) is swept again when its hold ends ({@link DueStep.heldUntil}), not only at the cron's
 * next minute. A sweep another instance holds the lease of is tried again after 250 ms, then
 * twice as long each time, up to {@link maxWaitS}.
 *
 * Exactly once across instances: every instance's timer may fire at the same deadline; the sweep
 * takes its lease (one sweep at a time) and claims each appliance with `for update skip locked`
 * and `missing_since`, so each alert is raised once (noc/jobs/status_daemon.ts).
 *
 * A deadline is never waited on longer than {@link maxWaitS} seconds: the timer reads the next one
 * again at least that often, and a due time a beat writes is at least the shortest interval
 * (10 s) plus the grace ahead, so no deadline is missed. Deadlines already behind the last sweep's
 * cutoff (appliances a maintenance window holds) are not waited on — the sweep leaves them, and
 * the cron job catches their window's end — so a held appliance cannot make the timer spin.
 *
 * @module
 */
import type { AppDeps } from "../services/deps.ts";
import { statusDaemon, type SweepResult } from "./status_daemon.ts";
import { sleep } from "../../protocol/util/timer.ts";

/** The longest the timer sleeps before reading the next deadline again, seconds. */
export const maxWaitS = 5;

/** What one {@link dueTimerStep} did. */
export interface DueStep {
  /** The next deadline it found (null: none ahead). */
  deadline: Date | null;
  /** The sweep it ran, when a deadline had come. */
  swept: SweepResult | null;
  /** The cutoff of that sweep (deadlines at or before it are not waited on again). */
  cutoff: Date;
  /**
   * When the first overdue appliance a shed check-in holds stops being held (a sweep is due
   * then, though its deadline is behind the cutoff); null when none is.
   */
  heldUntil: Date | null;
}

/**
 * The earliest moment after `after` at which an appliance not alerted and not revoked becomes
 * alertable (its due time plus the grace), or null: one probe of the `appliances_due` index.
 */
export async function nextDeadline(deps: AppDeps, after: Date): Promise<Date | null> {
  const graceMs = deps.settings.graceS * 1000;
  const [r] = await deps.db.sql<{ due: Date | null }>`
    select min(next_due_at) as due from appliances
    where missing_since is null and revoked_at is null and next_due_at > ${new Date(
    after.getTime() - graceMs,
  )}`;
  return r?.due ? new Date(r.due.getTime() + graceMs) : null;
}

/**
 * One step of the timer at `deps.clock.now()`: when the deadline after `cutoff` has come, runs a
 * sweep (the status daemon's, as the cron job runs it); returns the deadline it found and the
 * cutoff to pass to the next step.
 */
export async function dueTimerStep(
  deps: AppDeps,
  cutoff: Date,
  heldUntil: Date | null = null,
  /**
   * The last `alerts_held_after_shed` line (how many were held, when, ms of the NOC's clock): a
   * line is written when the number changed and 10 s have passed, or a minute has, not at every
   * step (review 23f: 72 lines a minute for 40 held appliances; review 23m: 20 lines in 2 s while
   * the number grew). Updated here.
   */
  heldTold: { appliances: number; atMs: number } = { appliances: -1, atMs: -Infinity },
): Promise<DueStep> {
  const now = deps.clock.now();
  const deadline = await nextDeadline(deps, cutoff);
  const come = (d: Date | null) => d !== null && d.getTime() <= now.getTime();
  if (!come(deadline) && !come(heldUntil)) return { deadline, swept: null, cutoff, heldUntil };
  const swept = await statusDaemon(deps, { atDeadline: true });
  // Another instance sweeping (busy) may have begun before this deadline, and a skewed clock
  // judges nothing: the deadline stays ahead, to be tried again.
  if (swept.skipped) return { deadline, swept, cutoff, heldUntil };
  if (
    swept.heldAfterShed &&
    now.getTime() - heldTold.atMs >= (swept.heldAfterShed !== heldTold.appliances ? 10_000 : 60_000)
  ) {
    deps.log.info("alerts_held_after_shed", {
      appliances: swept.heldAfterShed,
      until: swept.heldUntil?.toISOString() ?? null,
    });
    heldTold.appliances = swept.heldAfterShed;
    heldTold.atMs = now.getTime();
  }
  if (swept.alerted.length > 0) {
    // Late against the deadline that woke it (a hold's end: the appliance's own came earlier).
    const woke = come(deadline) ? deadline! : heldUntil!;
    deps.log.info("due_sweep", {
      alerted: swept.alerted.length,
      lateMs: Math.max(0, now.getTime() - woke.getTime()),
      ms: Math.round(swept.durationMs),
      ...(come(deadline) ? {} : { afterShedHold: true }),
    });
  }
  return { deadline, swept, cutoff: now, heldUntil: swept.heldUntil ?? null };
}

/**
 * Milliseconds the timer waits after `step` (taken at `now`; `busy`: the sweeps found busy just
 * before it, in a row): none after a sweep that ran; after one another instance held the lease
 * (`busy`), 250 ms doubling to {@link maxWaitS}; after one skipped for another reason (this
 * instance's clock off the database's, whose deadline stays behind) the longest wait — waiting
 * "until" a deadline behind would not wait at all (review 23c: 300 sweeps a second); otherwise
 * until the next deadline or hold end, at most {@link maxWaitS}.
 */
export function timerWaitMs(step: DueStep, busy: number, now: Date): number {
  const most = maxWaitS * 1000;
  if (step.swept?.skipped === "busy") return Math.min(most, 250 * 2 ** busy);
  if (step.swept !== null) return step.swept.skipped ? most : 0;
  const until = (d: Date | null) => d === null ? Infinity : d.getTime() - now.getTime();
  return Math.max(0, Math.min(most, until(step.deadline), until(step.heldUntil)));
}

/** A running {@link startDueTimer}. */
export interface DueTimer {
  /** Stops it (a sweep under way finishes). */
  stop(): Promise<void>;
}

/**
 * Starts the due timer of an instance that runs the status daemon (roles `all` and `noc`): steps
 * until stopped, sleeping until the next deadline or {@link maxWaitS}, whichever comes first. A
 * step that fails (the database is down) is logged and retried after {@link maxWaitS}.
 */
export function startDueTimer(deps: AppDeps): DueTimer {
  const stop = new AbortController();
  const loop = (async () => {
    let cutoff = new Date(deps.clock.now().getTime() - deps.settings.graceS * 1000);
    let heldUntil: Date | null = null;
    const heldTold = { appliances: -1, atMs: -Infinity };
    // Consecutive sweeps found busy (another instance's lease): each waits longer, to 5 s.
    let busy = 0;
    while (!stop.signal.aborted) {
      let waitMs = maxWaitS * 1000;
      try {
        const step = await dueTimerStep(deps, cutoff, heldUntil, heldTold);
        cutoff = step.cutoff;
        heldUntil = step.heldUntil;
        waitMs = timerWaitMs(step, busy, deps.clock.now());
        busy = step.swept?.skipped === "busy" ? busy + 1 : 0;
      } catch (e) {
        deps.log.warn("due_timer_failed", { error: e instanceof Error ? e.message : String(e) });
      }
      if (waitMs > 0) await sleep(waitMs, stop.signal).catch(() => {});
    }
  })();
  return {
    async stop() {
      stop.abort();
      await loop;
    },
  };
}
