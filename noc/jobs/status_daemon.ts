/**
 * The status daemon (spec, FIGURE 13): finds appliances whose beat is overdue
 * past the grace period and raises exactly one missed-heartbeat alert for
 * each, however many NOC instances sweep at once; sends a `recovered` notice
 * for each alert a returning beat resolved. The work is proportional to the
 * number of overdue appliances: it reads only the partial index of appliances
 * not yet alerted, by due time.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Db, Sql } from "../db/db.ts";
import type { NoticeInput, Notifier } from "../services/notifier.ts";
import type { AppDeps } from "../services/deps.ts";
import { gateRollouts } from "../services/rollouts.ts";
import { queueIdentityNotices } from "../services/checkins.ts";
import { sleep } from "../../protocol/util/timer.ts";
import { INTERVAL_RANGE_S } from "../../protocol/catalog.ts";
import { pruneNonces } from "./retention.ts";
import { checkClock, type ClockCheckDeps, type LivenessDeps, recordLiveness } from "./noc_time.ts";

/** What {@link sweep} needs. */
export interface SweepDeps extends ClockCheckDeps, LivenessDeps {
  /** The database. */
  db: Db;
  /** Time source. */
  clock: Clock;
  /** Where notices go. */
  notifier: Notifier;
  /** Seconds past the due time before an appliance counts as missing. */
  graceS: number;
  /** Appliances handled per transaction (1000 by default). */
  batchSize?: number;
  /**
   * Re-checks health-gated rollouts after every sweep that judged the fleet (appliances that went
   * missing, reverted or run another version count as failures).
   */
  gate?: () => Promise<unknown>;
  /**
   * Above this many alerts (or recoveries) in one notice step, one summary notice is sent
   * instead of one each (10 by default).
   */
  digestAbove?: number;
  /**
   * A sweep the due timer runs at an appliance's deadline (noc/jobs/due_timer.ts), not the cron
   * job's: it notifies a missed heartbeat at once unless more than `digestAbove` were raised in
   * the last minute — a mass event, whose further alerts the cron job's next sweep sends as one
   * digest — and leaves recoveries to the cron job's sweep, save those of the appliances it alerts,
   * which go first (an appliance's recovery is never told after its next alert). (Sweeping at each
   * deadline, it would otherwise send a fleet falling silent over a few seconds as hundreds of notices: review 23b.)
   */
  atDeadline?: boolean;
}

/** What a sweep did. */
export interface SweepResult {
  /** UIDs that got a missed-heartbeat alert in this sweep. */
  alerted: string[];
  /** UIDs whose recovery was notified in this sweep. */
  recovered: string[];
  /** Notices queued. */
  notices: number;
  /** Wall time, milliseconds. */
  durationMs: number;
  /**
   * Why nothing was judged, when nothing was: `clock_skew` (this instance's clock disagrees with
   * the database's), `busy` (another sweep holds the sweep lease and does the work).
   */
  skipped?: "clock_skew" | "busy";
  /** Seconds of NOC downtime credited to the fleet before judging (0: none). */
  creditedS: number;
  /** Why re-checking the gated rollouts failed, if it did (the sweep itself stands). */
  gateFailed?: string;
  /**
   * When the first overdue appliance a shed check-in holds stops being held (the next sweep
   * should run then); absent when none is.
   */
  heldUntil?: Date | null;
  /** Overdue appliances a shed check-in holds now (not alerted yet: see the sweep's statement). */
  heldAfterShed?: number;
}

interface MissedRow {
  /** The alert's id. */
  id: number;
  uid: string;
  /** When it was resolved, for an alert resolved before it was told (a mass event held it). */
  resolved_at: Date | null;
  hostname: string;
  model: string;
  site: string | null;
  last_beat_at: Date | null;
  next_due_at: Date;
  /** The problems the last beat reported (`lastCycle.problems`), at most 5; null: none. */
  problems?: { code: string; message: string }[] | null;
  /** What the last beat said it left out (`dropped`), at most 5; null: none. */
  dropped?: string[] | null;
}

/** The last beat's reasons, as a missed-heartbeat notice names them (empty: none reported). */
export function lastReasons(r: Pick<MissedRow, "problems" | "dropped">): string {
  const parts: string[] = [];
  const problems = Array.isArray(r.problems) ? r.problems : [];
  if (problems.length > 0) {
    parts.push(
      `last reported problem${problems.length > 1 ? "s" : ""}: ` +
        problems.slice(0, 3).map((p) => `${p.code} (${String(p.message).slice(0, 200)})`)
          .join("; "),
    );
  }
  const dropped = Array.isArray(r.dropped) ? r.dropped : [];
  if (dropped.length > 0) {
    parts.push(`its last report left out ${dropped.slice(0, 3).join("; ")}`);
  }
  return parts.join("; ");
}

interface RecoveredRow {
  id: number;
  uid: string;
  hostname: string;
  site: string | null;
  opened_at: Date;
  resolved_at: Date;
}

function iso(d: Date | null): string | null {
  return d ? d.toISOString() : null;
}

/** A span for a notice's text: seconds under a minute (review 23m: "0 min"), then minutes, hours. */
function minutes(ms: number): string {
  if (ms < 59_500) return `${Math.max(0, Math.round(ms / 1000))} s`;
  const m = Math.round(ms / 60_000);
  return m < 120 ? `${m} min` : `${Math.round(m / 60)} h`;
}

function missedNotices(rows: MissedRow[], graceS: number, digestAbove: number): NoticeInput[] {
  if (rows.length > digestAbove) {
    const bySite = new Map<string, number>();
    for (const r of rows) {
      bySite.set(r.site ?? "(no site)", (bySite.get(r.site ?? "(no site)") ?? 0) + 1);
    }
    const sites = [...bySite].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${s}: ${n}`);
    // The first ten by name, with why each may have stopped (review 23j: a real outage's one
    // appliance, sent in a mass event's digest, was otherwise a count without its name).
    const named = rows.slice(0, 10).map((r) => {
      const reasons = lastReasons(r);
      return `${r.hostname}${reasons ? ` (${reasons})` : ""}`;
    });
    return [{
      kind: "missed_heartbeat_digest",
      text: `:red_circle: ${rows.length} appliances missed their heartbeat (${
        sites.slice(0, 10).join(", ")
      }): ${named.join("; ")}${rows.length > 10 ? `; and ${rows.length - 10} more` : ""}`,
      payload: {
        count: rows.length,
        bySite: Object.fromEntries(bySite),
        uids: rows.map((r) => r.uid),
        appliances: rows.slice(0, 50).map((r) => ({
          uid: r.uid,
          hostname: r.hostname,
          site: r.site,
          problems: r.problems ?? [],
        })),
      },
    }];
  }
  return rows.map((r) => {
    // Why it may have stopped: what its last beat said went wrong (issue 21).
    const reasons = lastReasons(r);
    return {
      kind: "missed_heartbeat",
      uid: r.uid,
      text:
        `:red_circle: Missed heartbeat: ${r.hostname} (${r.model}${
          r.site ? `, site ${r.site}` : ""
        }) ` +
        `was due at ${r.next_due_at.toISOString()}; last beat ${iso(r.last_beat_at) ?? "never"}` +
        (reasons ? `; ${reasons}` : ""),
      payload: {
        appliance: { uid: r.uid, hostname: r.hostname, model: r.model, site: r.site },
        lastBeatAt: iso(r.last_beat_at),
        dueAt: r.next_due_at.toISOString(),
        graceS,
        problems: r.problems ?? [],
        dropped: r.dropped ?? [],
      },
    };
  });
}

function recoveredNotices(rows: RecoveredRow[], digestAbove: number): NoticeInput[] {
  if (rows.length > digestAbove) {
    return [{
      kind: "recovered_digest",
      text: `:large_green_circle: ${rows.length} appliances are beating again`,
      payload: {
        count: rows.length,
        uids: rows.map((r) => r.uid),
        appliances: rows.slice(0, 50).map((r) => ({
          uid: r.uid,
          hostname: r.hostname,
          site: r.site,
        })),
      },
    }];
  }
  return rows.map((r) => ({
    kind: "recovered",
    uid: r.uid,
    text:
      `:large_green_circle: Recovered: ${r.hostname} beat again at ${r.resolved_at.toISOString()} ` +
      `after ${minutes(r.resolved_at.getTime() - r.opened_at.getTime())} missing`,
    payload: {
      appliance: { uid: r.uid, hostname: r.hostname, site: r.site },
      alertId: r.id,
      missingSince: r.opened_at.toISOString(),
      recoveredAt: r.resolved_at.toISOString(),
    },
  }));
}

const statement = (strings: TemplateStringsArray, ..._: unknown[]) => strings;

/**
 * The sweep's selecting statement; its values are `(cutoff, now, cutoff, now, cutoff, now,
 * graceS, now, graceS, limit, now)`. A maintenance window holds its appliances until one interval
 * plus the grace after it ends (`ends_at > cutoff - interval`): an appliance back from maintenance
 * has a full interval to beat (noc/services/schedule_changes.ts). A check-in shed (503
 * `overloaded`, by any instance: `noc_liveness.checkin_shed_at`) holds every overdue appliance
 * until one of its intervals plus the grace after it — an agent told to come back later does so
 * within its interval (docs/agent.md) — but not past three intervals after its own deadline: a
 * NOC that sheds without end still pages (review 23b).
 */
const alertStatement = statement`
    with due as (
      select a.uid from appliances a
      where a.next_due_at <= ${0} and a.missing_since is null and a.revoked_at is null
        and not exists (
          select 1 from maintenance_windows m
          where m.uid = a.uid and m.starts_at <= ${0} and m.ends_at > ${0}::timestamptz
            - make_interval(secs => greatest(a.interval_s, coalesce(a.known_interval_s, 0))))
        and not exists (
          select 1 from maintenance_windows m
          where m.site = a.site and m.starts_at <= ${0} and m.ends_at > ${0}::timestamptz
            - make_interval(secs => greatest(a.interval_s, coalesce(a.known_interval_s, 0))))
        and not exists (
          select 1 from noc_liveness l
          where l.id = 1 and ${0}::timestamptz < l.checkin_shed_at + make_interval(secs =>
              greatest(a.interval_s, coalesce(a.known_interval_s, 0)) + ${0}::double precision)
            and ${0}::timestamptz < a.next_due_at + make_interval(secs =>
              3 * greatest(a.interval_s, coalesce(a.known_interval_s, 0)) + ${0}::double precision))
      order by a.next_due_at
      limit ${0}
      for update of a skip locked
    )
    update appliances a set missing_since = ${0}
    from due where a.uid = due.uid and a.missing_since is null
    returning a.uid, a.hostname, a.model, a.site, a.last_beat_at, a.next_due_at`;

/** The query plan of the sweep's own statement (nothing is executed), for tests and diagnosis. */
export async function explainSweep(
  tx: Sql,
  now: Date,
  cutoff: Date,
  limit = 1000,
): Promise<string> {
  const explain = Object.assign(["explain " + alertStatement[0], ...alertStatement.slice(1)], {
    raw: ["explain " + alertStatement.raw[0], ...alertStatement.raw.slice(1)],
  }) as unknown as TemplateStringsArray;
  const rows = await tx<Record<string, string>>(explain, ...alertValues(now, cutoff, limit));
  return rows.map((r) => Object.values(r)[0]).join("\n");
}

/** The values of {@link alertStatement}, in its order. */
function alertValues(now: Date, cutoff: Date, limit: number): [Date, ...(Date | number)[]] {
  const graceS = (now.getTime() - cutoff.getTime()) / 1000;
  return [cutoff, now, cutoff, now, cutoff, now, graceS, now, graceS, limit, now];
}

async function alertBatch(tx: Sql, now: Date, cutoff: Date, limit: number): Promise<string[]> {
  const rows = await tx<MissedRow>(alertStatement, ...alertValues(now, cutoff, limit));
  if (rows.length > 0) {
    await tx`
      insert into alerts (kind, uid, opened_at, detail)
      select 'missed_heartbeat', r.uid, ${now},
        jsonb_build_object('dueAt', r.due, 'lastBeatAt', r.last) ||
          -- The reasons its last beat gave (issue 21): shown with the alert.
          coalesce((select jsonb_strip_nulls(jsonb_build_object(
              'lastProblems', case when jsonb_typeof(ap.last_report->'lastCycle'->'problems') = 'array'
                and jsonb_array_length(ap.last_report->'lastCycle'->'problems') > 0
                then ap.last_report->'lastCycle'->'problems' end,
              'lastDropped', case when jsonb_typeof(ap.last_report->'dropped') = 'array'
                and jsonb_array_length(ap.last_report->'dropped') > 0
                then ap.last_report->'dropped' end))
            from appliances ap where ap.uid = r.uid), '{}')
      from unnest(${rows.map((r) => r.uid)}::uuid[], ${
      rows.map((r) => r.next_due_at.toISOString())
    }::text[],
                  ${rows.map((r) => iso(r.last_beat_at) ?? "")}::text[]) as r(uid, due, last)
      on conflict do nothing`;
  }
  return rows.map((r) => r.uid);
}

/** The window in which more than `digestAbove` alerts make a mass event (see `atDeadline`). */
const stormWindowMs = 60_000;

/** Most alerts (or recoveries) one notice step covers; a larger event gets one notice per this many. */
const noticeCap = 100_000;

/**
 * The notice step: every missed-heartbeat alert not yet notified and every recovery not yet
 * notified (at a deadline, only those of the appliances alerted now), in one transaction and one
 * notice each (a digest above `digestAbove`), whichever sweep or batch raised them, queued so that
 * each appliance's notices are delivered in the order of what happened to it (see below).
 */
async function noticeStep(
  tx: Sql,
  notifier: Notifier,
  now: Date,
  graceS: number,
  digestAbove: number,
  atDeadline: boolean,
): Promise<{ recovered: RecoveredRow[]; notices: number; more: boolean }> {
  const [recent] = await tx<{ n: number }>`
    select count(*)::int as n from alerts
    where kind = 'missed_heartbeat' and opened_at > ${new Date(now.getTime() - stormWindowMs)}`;
  // A mass event (more than `digestAbove` alerts raised in the last minute): at the due timer its
  // further alerts wait for the cron job's sweep, which sends what is left as one digest however
  // few are left (review 23i: 18 appliances falling silent made 9 notices at once, then 9 more).
  const massEvent = (recent?.n ?? 0) > digestAbove;
  if (atDeadline && massEvent) return { recovered: [], notices: 0, more: false };
  const missed = await tx<MissedRow>`
    with p as (
      select id from alerts
      where notified_at is null and kind = 'missed_heartbeat'
      order by opened_at, id
      limit ${noticeCap}
      for update skip locked
    )
    update alerts al set notified_at = ${now}
    from p, appliances ap
    where al.id = p.id and ap.uid = al.uid
    returning al.id, al.uid, ap.hostname, ap.model, ap.site, al.resolved_at,
      nullif(al.detail->>'lastBeatAt', '')::timestamptz as last_beat_at,
      coalesce((al.detail->>'dueAt')::timestamptz, al.opened_at) as next_due_at,
      (select jsonb_agg(jsonb_build_object('code', p->>'code', 'message', p->>'message'))
       from (select p from jsonb_array_elements(case
               when jsonb_typeof(ap.last_report->'lastCycle'->'problems') = 'array'
               then ap.last_report->'lastCycle'->'problems' else '[]' end) p limit 5) x)
        as problems,
      (select jsonb_agg(d) from (select d from jsonb_array_elements_text(case
               when jsonb_typeof(ap.last_report->'dropped') = 'array'
               then ap.last_report->'dropped' else '[]' end) d limit 5) y)
        as dropped`;
  missed.sort((a, b) => a.next_due_at.getTime() - b.next_due_at.getTime());
  // Recoveries are not urgent: the cron job's sweep sends them, a mass return as one digest. At a
  // deadline only those of the appliances alerted now go, so that an appliance's recovery is never
  // told after its next alert (review 23k: interval and grace under a minute).
  const alertedNow = atDeadline ? missed.map((m) => m.uid) : null;
  const recovered = alertedNow?.length === 0 ? [] : await tx<RecoveredRow>`
    with r as (
      select id from alerts
      where resolved_at is not null and recovery_notified_at is null and kind = 'missed_heartbeat'
        and notified_at is not null
        and (${alertedNow === null} or uid = any(${alertedNow ?? []}::uuid[]))
      order by resolved_at
      limit ${noticeCap}
      for update skip locked
    )
    update alerts al set recovery_notified_at = ${now}
    from r, appliances ap
    where al.id = r.id and ap.uid = al.uid
    returning al.id, al.uid, ap.hostname, ap.site, al.opened_at, al.resolved_at`;
  recovered.sort((a, b) => a.resolved_at.getTime() - b.resolved_at.getTime());
  let notices = 0;
  const queue = async (inputs: NoticeInput[]) => {
    for (const n of inputs) {
      await notifier.enqueue(tx, n, now);
      notices++;
    }
  };
  // The notices go out in the order they are queued, so each appliance's notices follow its
  // story (an appliance has at most one open alert, always its latest event):
  // 1. the recoveries of alerts told in earlier steps (before an appliance's next alert);
  // 2. alerts resolved before they were told (a mass event held them), then their recoveries
  //    (review 23l saw such a recovery sent before its alert);
  // 3. the alerts still open (review 23n: a flap within a held mass event told its second alert
  //    before the first one's recovery, ending on "recovered" while the appliance was down).
  // Digest or not is decided on all the recoveries, and on all the alerts.
  const toldNow = new Set(missed.map((m) => m.id));
  const digestRecoveries = recovered.length > digestAbove;
  const recoveries = (rows: RecoveredRow[]) =>
    recoveredNotices(rows, digestRecoveries && rows.length > 1 ? 0 : digestAbove);
  // In a mass event what is left goes as one digest; one appliance left is one notice all the
  // same, with its own uid and text.
  const digestMissed = massEvent ? missed.length > 1 : missed.length > digestAbove;
  const alerts = (rows: MissedRow[]) =>
    missedNotices(rows, graceS, digestMissed && rows.length > 1 ? 0 : digestAbove);
  await queue(recoveries(recovered.filter((r) => !toldNow.has(r.id))));
  const over = missed.filter((m) => m.resolved_at !== null);
  await queue(alerts(over));
  await queue(recoveries(recovered.filter((r) => toldNow.has(r.id))));
  await queue(alerts(missed.filter((m) => m.resolved_at === null)));
  return {
    recovered,
    notices,
    more: missed.length === noticeCap || recovered.length === noticeCap,
  };
}

/**
 * How many overdue appliances a shed check-in holds (see the sweep's statement), and the earliest
 * moment one stops being held (null: none is): the due timer wakes then (noc/jobs/due_timer.ts).
 */
async function shedHold(
  db: Db,
  now: Date,
  cutoff: Date,
): Promise<{ until: Date | null; held: number }> {
  const graceS = (now.getTime() - cutoff.getTime()) / 1000;
  const [r] = await db.sql<{ until: Date | null; held: number }>`
    select count(*)::int as held, min(least(
        l.checkin_shed_at + make_interval(secs => iv + ${graceS}::double precision),
        a.next_due_at + make_interval(secs => 3 * iv + ${graceS}::double precision))) as until
    from noc_liveness l
    join appliances a on a.next_due_at <= ${cutoff} and a.missing_since is null
      and a.revoked_at is null
    cross join lateral (select greatest(a.interval_s, coalesce(a.known_interval_s, 0)) as iv) i
    where l.id = 1 and l.checkin_shed_at is not null
      and ${now}::timestamptz < l.checkin_shed_at + make_interval(secs => iv + ${graceS}::double precision)
      and ${now}::timestamptz < a.next_due_at + make_interval(secs => 3 * iv + ${graceS}::double precision)`;
  return { until: r?.until ?? null, held: r?.held ?? 0 };
}

/** How long a sweep lease lasts without renewal, seconds of the database's clock. */
const sweepLeaseS = 30;

/**
 * The status daemon's pass as the cron job, the admin API and the due timer (`atDeadline`, see
 * {@link SweepDeps.atDeadline}) run it: sweep, then re-check gated rollouts.
 */
export async function statusDaemon(
  deps: AppDeps,
  options: { atDeadline?: boolean } = {},
): Promise<SweepResult> {
  const r = await sweep({
    ...deps,
    graceS: deps.settings.graceS,
    gate: () => gateRollouts(deps),
    atDeadline: options.atDeadline === true,
  });
  deps.metrics.inc("noc_sweeps_total");
  deps.metrics.inc("noc_alerts_raised_total", {}, r.alerted.length);
  deps.metrics.observe("noc_sweep_duration_seconds", {}, r.durationMs / 1000);
  return r;
}

/**
 * Runs one sweep: checks this instance's clock against the database's (judging nothing when
 * they disagree beyond `settings.clockToleranceS`: `skipped: "clock_skew"`), records the NOC's
 * liveness (first crediting the fleet any time no instance was alive), then, holding the sweep
 * lease (one sweep at a time across instances; otherwise `skipped: "busy"`), raises
 * missed-heartbeat alerts in batches and notifies in one step every alert and recovery not yet
 * notified: one event is one notice (a digest above `digestAbove`), and queues any cloned-identity
 * notice an instance left pending.
 */
export async function sweep(deps: SweepDeps): Promise<SweepResult> {
  const started = performance.now();
  const result: SweepResult = {
    alerted: [],
    recovered: [],
    notices: 0,
    durationMs: 0,
    creditedS: 0,
  };
  const done = () => {
    result.durationMs = performance.now() - started;
    return result;
  };
  if (!(await checkClock(deps)).ok) {
    result.skipped = "clock_skew";
    return done();
  }
  const liveness = await recordLiveness(deps, deps.graceS);
  result.creditedS = liveness.creditedS;
  const { sql } = deps.db;
  const holder = crypto.randomUUID();
  const lease = async () =>
    (await sql`
      insert into sweep_lease (id, holder, until)
      values (1, ${holder}, clock_timestamp() + make_interval(secs => ${sweepLeaseS}))
      on conflict (id) do update set holder = excluded.holder, until = excluded.until
        where sweep_lease.until <= clock_timestamp() or sweep_lease.holder = ${holder}
      returning holder`).length > 0;
  if (!(await lease())) {
    result.skipped = "busy";
    return done();
  }
  try {
    // Read after the liveness record: any downtime is credited before anyone is judged.
    const now = deps.clock.now();
    const cutoff = new Date(now.getTime() - deps.graceS * 1000);
    const limit = deps.batchSize ?? 1000;
    const digestAbove = deps.digestAbove ?? 10;
    for (;;) {
      const uids = await deps.db.begin((tx) => alertBatch(tx, now, cutoff, limit));
      result.alerted.push(...uids);
      if (uids.length < limit || !(await lease())) break;
    }
    for (;;) {
      const step = await deps.db.begin((tx) =>
        noticeStep(tx, deps.notifier, now, deps.graceS, digestAbove, deps.atDeadline === true)
      );
      result.recovered.push(...step.recovered.map((r) => r.uid));
      result.notices += step.notices;
      if (!step.more) break;
    }
    // Cloned-identity notices an instance left pending, stopped between a beat's statement that
    // marked the appliance and queueing its notice (noc/services/checkins.ts).
    result.notices += await queueIdentityNotices(deps.db, deps.notifier, now);
    // Only after a shed recent enough to hold anyone (the longest interval plus the grace): no
    // query for a NOC that never shed, or not for a day.
    const shedAt = liveness.checkinShedAt;
    if (
      shedAt !== null &&
      now.getTime() < shedAt.getTime() + (INTERVAL_RANGE_S.max + deps.graceS) * 1000
    ) {
      const hold = await shedHold(deps.db, now, cutoff);
      result.heldUntil = hold.until;
      result.heldAfterShed = hold.held;
    }
  } finally {
    await sql`delete from sweep_lease where holder = ${holder}`;
  }
  // Every sweep re-checks the gated rollouts, not only one that raised alerts: a beat showing an
  // appliance back on the old version, or on a third one, counts against its release as soon as
  // the next sweep runs (the gate reads only rollouts not paused).
  if (deps.gate) {
    // A gate that fails (a database error, a statement past its bound) costs this sweep's rollout
    // check only: the alerts and notices above stand, and the job goes on to prune nonces.
    try {
      await deps.gate();
    } catch (e) {
      result.gateFailed = e instanceof Error ? e.message : String(e);
    }
  }
  if (result.notices > 0) deps.notifier.kick();
  return done();
}

/**
 * The status daemon's cron job (every minute, `main.ts`): one sweep, then the pruning of spent
 * nonces, logged as one `sweep` line with counts and durations (ms).
 */
export async function statusDaemonJob(deps: AppDeps): Promise<void> {
  let r = await statusDaemon(deps);
  // Another instance (or this one's due timer) holding the lease for a moment: this sweep sends
  // the minute's digests and recoveries, so it tries again a few times, a second apart.
  for (let i = 0; i < 5 && r.skipped === "busy"; i++) {
    await sleep(1_000);
    r = await statusDaemon(deps);
  }
  const pruneStart = performance.now();
  const nonces = await pruneNonces(deps);
  deps.log.info("sweep", {
    alerted: r.alerted.length,
    recovered: r.recovered.length,
    notices: r.notices,
    ms: Math.round(r.durationMs),
    noncesPruned: nonces,
    pruneMs: Math.round(performance.now() - pruneStart),
    ...(r.skipped ? { skipped: r.skipped } : {}),
    ...(r.creditedS > 0 ? { creditedS: Math.round(r.creditedS) } : {}),
    ...(r.gateFailed ? { gateFailed: r.gateFailed } : {}),
    // Overdue appliances not alerted yet because the NOC shed check-ins ("Throughput").
    ...(r.heldAfterShed ? { heldAfterShed: r.heldAfterShed } : {}),
  });
}
