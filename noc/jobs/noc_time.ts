/**
 * The NOC's own time, as the status daemon and nonce pruning rely on it.
 *
 * - **Clock check** ({@link checkClock}): an instance's clock is compared with the database's
 *   `clock_timestamp()`; beyond `settings.clockToleranceS` the instance does not sweep and does
 *   not prune nonces, answers no signed request (503 `noc_clock_skew`), and one `clock_skew`
 *   notice is raised per episode (from the first instance found off until none is), however many
 *   instances and sweeps see it.
 * - **Liveness** ({@link recordLiveness}): each instance records, on the database's clock, that
 *   the NOC is alive (every sweep, and every {@link livenessPeriodS} from main.ts with
 *   {@link startLivenessTicker}: 10 s, less with a grace under 30 s). An instance that was not
 *   alive without a break (it just started, its database was unreachable, or it was suspended)
 *   compares the database's clock with the last record of any instance: a gap longer than
 *   {@link livenessBoundS} (two periods) is time in which no beat could be received, and it is
 *   given back to the fleet before anyone is judged (the due times of appliances not yet alerted
 *   whose deadline fell in the gap move forward by it, in one statement), with one
 *   `noc_downtime_credited` log line.
 *
 * @module
 */
import { holdForSmallerGrace } from "../services/schedule_changes.ts";
import type { Clock } from "../clock.ts";
import type { Db, Sql } from "../db/db.ts";
import type { Notifier } from "../services/notifier.ts";
import type { Logger } from "../../protocol/util/log.ts";
import { isContinuous, type NocInstance } from "../services/noc_instance.ts";
import type { AppDeps } from "../services/deps.ts";

/**
 * Seconds between two liveness records of an instance ({@link startLivenessTicker}): 10, or a
 * third of the grace period when that is shorter (at least 1), so that an outage longer than the
 * grace (and than 2 s) always exceeds {@link livenessBoundS} and is credited. (A fixed 10 s let an
 * outage of 15 s go uncredited and page a fleet beating every 10 s with a grace of 5 s.)
 */
export function livenessPeriodS(graceS: number): number {
  return Math.min(10, Math.max(1, graceS / 3));
}

/**
 * Seconds with no instance alive above which the gap is credited to the fleet: two liveness
 * periods (20 s with a grace of 30 s or more), so the records of an instance that stayed up,
 * however late its ticker runs, never look like a gap.
 */
export function livenessBoundS(graceS: number): number {
  return 2 * livenessPeriodS(graceS);
}

/** Seconds after which a clock-skew record of an instance that stopped reporting is dropped. */
const skewRecordTtlS = 600;

/** What {@link checkClock} needs. */
export interface ClockCheckDeps {
  /** The database (its clock is the reference). */
  db: Db;
  /** This instance's clock. */
  clock: Clock;
  /** Where the one `clock_skew` notice of an episode goes. */
  notifier: Notifier;
  /** `settings.clockToleranceS`: largest allowed difference, seconds. */
  settings: { clockToleranceS: number };
  /** This instance (its id keys its skew record). */
  checkins: { instance: NocInstance };
  /** Structured log (a `clock_skew` warning each time work is refused). */
  log?: Logger;
}

/** What {@link checkClock} found. */
export interface ClockCheck {
  /** True when the instance's clock is within tolerance of the database's. */
  ok: boolean;
  /** Instance clock minus database clock, seconds. */
  skewS: number;
  /** True when this check raised the episode's notice. */
  noticed: boolean;
}

/**
 * Compares this instance's clock with the database's. Within tolerance: clears this instance's
 * skew record (ending the episode when it was the last). Beyond: records it, raises the
 * `clock_skew` notice when no other instance's record was open (one per episode), logs a
 * `clock_skew` warning, and returns `ok: false`: the caller must not sweep or prune.
 */
export async function checkClock(deps: ClockCheckDeps): Promise<ClockCheck> {
  const { db, clock } = deps;
  const id = deps.checkins.instance.id;
  const before = clock.now().getTime();
  const [row] = await db.sql<{ db_now: Date }>`select clock_timestamp() as db_now`;
  const after = clock.now().getTime();
  const dbNow = row!.db_now;
  const skewMs = clock.offsetFrom
    ? clock.offsetFrom(dbNow)
    : (before + after) / 2 - dbNow.getTime();
  const skewS = Math.round(skewMs) / 1000;
  const toleranceS = deps.settings.clockToleranceS;
  if (Math.abs(skewS) <= toleranceS) {
    deps.checkins.instance.clockSkewS = null;
    await db.sql`
      delete from clock_skew
      where instance = ${id} or seen_at < clock_timestamp() - make_interval(secs => ${skewRecordTtlS})`;
    return { ok: true, skewS, noticed: false };
  }
  deps.checkins.instance.clockSkewS = skewS;
  // The notice is dated on true time (this clock less its skew), as the outbox delivers by it.
  const trueNow = new Date(after - skewMs);
  const noticed = await db.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext(current_schema() || ':noc-clock-skew'))`;
    const [open] = await tx<{ n: number }>`
      select count(*)::int as n from clock_skew
      where seen_at >= clock_timestamp() - make_interval(secs => ${skewRecordTtlS})`;
    await tx`
      insert into clock_skew (instance, skew_s, seen_at) values (${id}, ${skewS}, clock_timestamp())
      on conflict (instance) do update set skew_s = excluded.skew_s, seen_at = excluded.seen_at`;
    if ((open?.n ?? 0) > 0) return false;
    await deps.notifier.enqueue(tx, {
      kind: "clock_skew",
      text: `:warning: A NOC instance's clock is ${Math.abs(skewS)} s ${
        skewS > 0 ? "ahead of" : "behind"
      } the database's (tolerance ${toleranceS} s): it does not sweep or prune nonces until it agrees`,
      payload: {
        instance: id,
        skewS,
        toleranceS,
        databaseTime: dbNow.toISOString(),
        instanceTime: new Date(after).toISOString(),
      },
    }, trueNow);
    return true;
  });
  deps.log?.warn("clock_skew", { instance: id, skewS, toleranceS, noticed });
  if (noticed) deps.notifier.kick();
  return { ok: false, skewS, noticed };
}

/**
 * Now on the database's timeline: its `clock_timestamp()`, or, for a test clock whose time is not
 * on the database's timeline ({@link Clock.offsetFrom} of a ManualClock), that clock less the
 * offset it reports (the test's true time).
 */
async function timelineNow(tx: Sql, clock: Clock): Promise<Date> {
  const [row] = await tx<{ db_now: Date }>`select clock_timestamp() as db_now`;
  const dbNow = row!.db_now;
  return clock.offsetFrom ? new Date(clock.now().getTime() - clock.offsetFrom(dbNow)) : dbNow;
}

/** What {@link recordLiveness} needs. */
export interface LivenessDeps {
  /** The database. */
  db: Db;
  /** This instance's clock (checked by {@link checkClock} first). */
  clock: Clock;
  /** This instance. */
  checkins: { instance: NocInstance };
  /** Structured log. */
  log?: Logger;
}

/** What {@link recordLiveness} did. */
export interface LivenessResult {
  /** Seconds credited to the fleet (0: the NOC was alive throughout). */
  creditedS: number;
  /** Appliances whose due time moved. */
  credited: number;
  /**
   * The latest check-in any instance shed (503 `overloaded`), this one's included; null when none
   * ever was (the sweep's hold then needs no query).
   */
  checkinShedAt: Date | null;
}

/**
 * Records that the NOC is alive now, on the database's timeline (see {@link timelineNow}; the
 * caller has checked this instance's clock).
 * When this instance was not alive without a break, and no instance recorded liveness for more
 * than {@link livenessBoundS} of `graceS`, first gives that gap to every appliance not yet
 * alerted whose deadline (due time plus `graceS`) fell after the last record and whose due time
 * has passed.
 * The liveness row is locked meanwhile, so a gap is credited once however many instances start
 * together. Throws when the database fails (this instance is then no longer continuous).
 */
export async function recordLiveness(
  deps: LivenessDeps,
  graceS: number,
): Promise<LivenessResult> {
  const { instance } = deps.checkins;
  const continuous = isContinuous(instance);
  try {
    const result = await deps.db.begin(async (tx) => {
      const [row] = await tx<{ alive_at: Date; checkin_shed_at: Date | null }>`
        select alive_at, checkin_shed_at from noc_liveness where id = 1 for update`;
      // On the database's timeline, whichever instance writes: instances' clocks may each be off
      // by up to the tolerance, and a gap measured between two of them would be off by twice that.
      const now = await timelineNow(tx, deps.clock);
      let out: Omit<LivenessResult, "checkinShedAt"> & { at: Date } = {
        creditedS: 0,
        credited: 0,
        at: now,
      };
      const gapMs = row ? now.getTime() - row.alive_at.getTime() : 0;
      if (row && !continuous && gapMs > livenessBoundS(graceS) * 1000) {
        const gapS = gapMs / 1000;
        const from = new Date(row.alive_at.getTime() - graceS * 1000);
        const [c] = await tx<{ n: number }>`
          with moved as (
            update appliances set next_due_at = next_due_at + make_interval(secs => ${gapS})
            where missing_since is null and revoked_at is null
              and next_due_at > ${from} and next_due_at <= ${now}
            returning 1)
          select count(*)::int as n from moved`;
        out = { creditedS: gapS, credited: c?.n ?? 0, at: now };
      }
      // An instance's first record says which grace it runs with; a smaller one than the last
      // applies from each appliance's next beat (noc/services/schedule_changes.ts).
      const starting = instance.lastAliveMono === null;
      if (starting) {
        const [g] = await tx<{ grace_s: number | null }>`
          select grace_s from noc_liveness where id = 1`;
        const held = await holdForSmallerGrace(tx, g?.grace_s ?? null, graceS, now);
        if (held > 0) {
          deps.log?.warn("noc_grace_reduced", { from: g!.grace_s, to: graceS, appliances: held });
        }
      }
      // The latest check-in this instance shed since its last record, for every instance's sweep.
      const shedAt = instance.checkinShedAt;
      await tx`
        insert into noc_liveness (id, alive_at, grace_s, checkin_shed_at)
        values (1, ${now}, ${graceS}, ${shedAt})
        on conflict (id) do update set alive_at = greatest(noc_liveness.alive_at, excluded.alive_at),
          grace_s = case when ${starting} then excluded.grace_s else noc_liveness.grace_s end,
          checkin_shed_at = greatest(noc_liveness.checkin_shed_at, excluded.checkin_shed_at)`;
      const stored = row?.checkin_shed_at ?? null;
      const latest = stored === null || (shedAt !== null && shedAt > stored) ? shedAt : stored;
      return { ...out, shedAt, checkinShedAt: latest };
    });
    // Recorded: cleared unless a later one came meanwhile.
    if (instance.checkinShedAt === result.shedAt) instance.checkinShedAt = null;
    instance.lastAliveMono = performance.now();
    if (result.creditedS > 0) {
      deps.log?.warn("noc_downtime_credited", {
        seconds: Math.round(result.creditedS),
        appliances: result.credited,
        until: result.at.toISOString(),
      });
    }
    return result;
  } catch (e) {
    instance.lastAliveMono = null;
    throw e;
  }
}

/** A running {@link startLivenessTicker}. */
export interface LivenessTicker {
  /** Settles once the first tick (clock check, then liveness record) is done, whatever it found. */
  first: Promise<void>;
  /** Stops the ticker. */
  stop(): void;
}

/**
 * Checks this instance's clock every `periodS` seconds ({@link livenessPeriodS} of the grace
 * setting by default) from start-up on, and, with `record` (the roles that sweep), then records
 * its liveness, so an instance starting after downtime credits the gap before its first sweep.
 * Every role runs it: an instance whose clock is off answers no appliance-facing request
 * (noc/http/middleware/clock_gate.ts), whichever role it serves. A record missing for three
 * periods (a suspended process) breaks the instance's continuity.
 */
export function startLivenessTicker(
  deps: AppDeps,
  options: { periodS?: number; record?: boolean } = {},
): LivenessTicker {
  const periodS = options.periodS ?? livenessPeriodS(deps.settings.graceS);
  const record = options.record ?? true;
  if (record) deps.checkins.instance.maxQuietMs = 3 * periodS * 1000;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      if ((await checkClock(deps)).ok && record) {
        await recordLiveness(deps, deps.settings.graceS);
      }
    } catch (e) {
      deps.checkins.instance.lastAliveMono = null;
      deps.log.warn("liveness_failed", { error: e instanceof Error ? e.message : String(e) });
    } finally {
      busy = false;
    }
  };
  const first = tick();
  const timer = setInterval(tick, periodS * 1000);
  return { first, stop: () => clearInterval(timer) };
}
