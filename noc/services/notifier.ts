/**
 * Administrator notices through an outbox. A notice is written in the same
 * transaction as the change it reports, with one delivery row per target (the
 * structured log, then each webhook). Delivery happens after commit; every
 * target is a queue of its own, served independently of the others (a slow
 * or down webhook never delays another), in notice order, one notice at a
 * time, with retries and capped exponential backoff. A target that refuses
 * (an HTTP error, no connection) holds its queue and gets everything, in
 * order, once it is back. An attempt that gets no answer within the timeout
 * (`NOC_WEBHOOK_TIMEOUT_S`) may still have reached the receiver: the next one
 * waits twice as long, and after {@link maxTimeouts} timed-out attempts the
 * notice is given up (`notice_delivery_abandoned`) and the queue moves on, so
 * a receiver slower than the timeout gets each notice at most that many times
 * and never stalls the notices behind it. Delivery is at least once: the body
 * and the `X-NOC-Notice-Id` header carry the notice id to deduplicate on. A
 * lease per target keeps two NOC instances from sending the same notice twice.
 *
 * @module
 */
import type { Metrics } from "./metrics.ts";
import type { Clock } from "../clock.ts";
import type { Db, Sql } from "../db/db.ts";
import { sha256, toHex } from "../../protocol/util/encoding.ts";
import type { Logger } from "../../protocol/util/log.ts";

/** A notice to queue. */
export interface NoticeInput {
  /** Machine-readable kind, e.g. `missed_heartbeat`, `recovered`, `identity_failure`. */
  kind: string;
  /** One-line human text (the Slack-compatible `text` field of the webhook body). */
  text: string;
  /** The appliance concerned, if one. */
  uid?: string | null;
  /** Structured details. */
  payload: Record<string, unknown>;
}

/** A queued notice as delivered. */
export interface Notice extends NoticeInput {
  /** Outbox id; notices are delivered in id order. */
  id: number;
  /** When it was queued. */
  createdAt: Date;
}

/** Somewhere notices go. */
export interface Target {
  /** Stable key the delivery rows are kept under. */
  key: string;
  /** Human label (no secrets). */
  label: string;
  /**
   * Delivers one notice; throws when it was not accepted ({@link DeliveryTimeout} when no answer
   * came within `timeoutMs`, this attempt's time limit).
   */
  send(notice: Notice, timeoutMs: number): Promise<void>;
}

/** A delivery attempt that got no answer in time (the receiver may still have taken it). */
export class DeliveryTimeout extends Error {
  /** @param ms the attempt's time limit, milliseconds */
  constructor(ms: number) {
    super(`Timed out: no answer within ${ms / 1000} s`);
    this.name = "DeliveryTimeout";
  }
}

/** What one delivery pass did. */
export interface DeliveryReport {
  /** Notices accepted by a target. */
  delivered: number;
  /** Attempts that failed (each holds its target until its retry time). */
  failed: number;
  /** Notices given up after {@link maxTimeouts} timed-out attempts. */
  abandoned: number;
}

/** Queues notices and delivers them. */
export interface Notifier {
  /** The targets every new notice is queued for. */
  readonly targets: readonly Target[];
  /** Queues a notice inside transaction `tx`; it is delivered after commit. */
  enqueue(tx: Sql, notice: NoticeInput, now: Date): Promise<number>;
  /** Delivers every due notice to every target it can lease now. */
  deliver(): Promise<DeliveryReport>;
  /** Starts a delivery pass in the background (no-op when `autoDeliver` is off). */
  kick(): void;
}

/** Options for {@link createNotifier}. */
export interface NotifierOptions {
  /** The database holding the outbox. */
  db: Db;
  /** Time source for retry scheduling and leases. */
  clock: Clock;
  /** Where the `log` target writes. */
  log: Logger;
  /** Webhook URLs (JSON POST with a Slack-compatible `text`). */
  webhooks?: readonly string[];
  /** Fetch to deliver with (the global one by default). */
  fetch?: typeof fetch;
  /**
   * Time limit of a notice's first attempt to a webhook, milliseconds (`NOC_WEBHOOK_TIMEOUT_S`;
   * 10 s by default); it doubles with each attempt of that notice that timed out.
   */
  timeoutMs?: number;
  /** Whether `kick()` delivers in the background (true by default; tests call `deliver()`). */
  autoDeliver?: boolean;
  /** This instance's lease holder name. */
  holder?: string;
  /** Counts deliveries by outcome. */
  metrics?: Metrics;
}

/**
 * Timed-out attempts after which a notice is given up for a target (the queue then moves on):
 * the most times a receiver slower than every attempt's limit is sent one notice.
 */
export const maxTimeouts = 3;

/** Time limit of an attempt after `timeouts` timed-out ones: `baseMs` doubling. */
export function attemptTimeoutMs(baseMs: number, timeouts: number): number {
  return baseMs * 2 ** Math.min(timeouts, maxTimeouts - 1);
}

/**
 * How long one delivery lease lasts without renewal, seconds: longer than the longest attempt
 * (renewed before each), so that no other instance sends while one still waits for an answer.
 */
export function leaseSeconds(baseMs: number): number {
  return Math.max(120, Math.ceil(attemptTimeoutMs(baseMs, maxTimeouts) / 1000) + 60);
}

/** Delay before retry `attempt` (1-based): 10 s doubling, capped at 10 minutes. */
export function retryDelayS(attempt: number): number {
  return Math.min(600, 10 * 2 ** Math.max(0, attempt - 1));
}

/** The webhook body for a notice. */
export function webhookBody(notice: Notice): Record<string, unknown> {
  return {
    text: slackText(notice.text),
    kind: notice.kind,
    noticeId: notice.id,
    createdAt: notice.createdAt.toISOString(),
    uid: notice.uid ?? null,
    ...notice.payload,
  };
}

/**
 * Escapes text for Slack-compatible receivers (`&`, `<`, `>` would otherwise
 * form mentions and links) and caps its length.
 */
export function slackText(text: string): string {
  const escaped = text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return escaped.length > 3000 ? `${escaped.slice(0, 2999)}…` : escaped;
}

/**
 * A webhook target for `url`; its key is derived from the URL so secrets in it are not stored
 * twice. `timeoutMs` is an attempt's time limit when `send` is given none.
 */
export async function webhookTarget(
  url: string,
  fetchImpl: typeof fetch = fetch,
  timeoutMs = 10_000,
): Promise<Target> {
  const key = `webhook:${toHex(await sha256(url)).slice(0, 16)}`;
  const u = new URL(url);
  return {
    key,
    label: `${u.origin}${u.pathname.length > 1 ? "/…" : "/"}`,
    async send(notice, limitMs = timeoutMs) {
      const signal = AbortSignal.timeout(limitMs);
      try {
        const res = await fetchImpl(url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "appliance-noc",
            "x-noc-notice-id": String(notice.id),
          },
          body: JSON.stringify(webhookBody(notice)),
          signal,
          // A receiver cannot send the NOC's POST on to another address (an internal one).
          redirect: "manual",
        });
        await res.body?.cancel();
        if (res.status >= 300 && res.status < 400) {
          throw new Error(`Webhook answered HTTP ${res.status}: redirects are not followed`);
        }
        if (!res.ok) throw new Error(`Webhook answered HTTP ${res.status}`);
      } catch (e) {
        if (signal.aborted) throw new DeliveryTimeout(limitMs);
        throw e;
      }
    },
  };
}

/** The target that writes each notice to the structured log. */
export function logTarget(log: Logger): Target {
  return {
    key: "log",
    label: "log",
    send(notice) {
      // A digest names its appliances here too (its first 50, and how many in all: every UID
      // is in the webhook's payload), so a log-only NOC says who is missing (review 23d).
      const digest = notice.kind.endsWith("_digest");
      log.warn("notice", {
        noticeId: notice.id,
        kind: notice.kind,
        text: notice.text,
        uid: notice.uid ?? null,
        ...(digest
          ? { count: notice.payload.count ?? null, appliances: notice.payload.appliances ?? [] }
          : {}),
      });
      return Promise.resolve();
    },
  };
}

/** Creates the outbox notifier: the log target plus one target per webhook. */
export async function createNotifier(options: NotifierOptions): Promise<Notifier> {
  const { db, clock, log } = options;
  const baseMs = options.timeoutMs ?? 10_000;
  const leaseS = leaseSeconds(baseMs);
  const targets: Target[] = [logTarget(log)];
  for (const url of options.webhooks ?? []) {
    targets.push(await webhookTarget(url, options.fetch ?? fetch, baseMs));
  }
  const holder = options.holder ?? crypto.randomUUID();
  const keys = targets.map((t) => t.key);
  /** Per target: the pass under way, and whether another was asked for meanwhile. */
  const passes = new Map<string, { running: Promise<DeliveryReport>; again: boolean }>();
  /**
   * Per target: a pass due when its next retry is (with background delivery), so a retry comes
   * at its time, not at the next minute's delivery job. Unreferenced: it never keeps the
   * process alive.
   */
  const retryTimers = new Map<string, ReturnType<typeof setTimeout>>();
  const scheduleRetry = (target: Target, at: Date) => {
    if (options.autoDeliver === false) return;
    clearTimeout(retryTimers.get(target.key));
    const timer = setTimeout(() => {
      retryTimers.delete(target.key);
      passOf(target).catch((e) =>
        log.error("notice_delivery_pass_failed", { target: target.label, error: String(e) })
      );
    }, Math.max(0, at.getTime() - clock.now().getTime()));
    Deno.unrefTimer(timer);
    retryTimers.set(target.key, timer);
  };

  async function deliverTarget(target: Target, report: DeliveryReport): Promise<void> {
    // Taken, then renewed before every send: a long pass never outlives its lease.
    const lease = async () => {
      const now = clock.now();
      const until = new Date(now.getTime() + leaseS * 1000);
      const got = await db.sql`
        insert into delivery_leases (target, holder, until) values (${target.key}, ${holder}, ${until})
        on conflict (target) do update set holder = excluded.holder, until = excluded.until
          where delivery_leases.until <= ${now} or delivery_leases.holder = ${holder}
        returning holder`;
      return got.length > 0;
    };
    if (!(await lease())) return;
    try {
      for (;;) {
        const rows = await db.sql<{
          id: number;
          created_at: Date;
          kind: string;
          text: string;
          uid: string | null;
          payload: Record<string, unknown>;
          attempts: number;
          timeouts: number;
          next_attempt_at: Date;
        }>`
          select n.id, n.created_at, n.kind, n.text, n.uid, n.payload, d.attempts, d.timeouts,
            d.next_attempt_at
          from notice_deliveries d join notices n on n.id = d.notice_id
          where d.target = ${target.key} and d.delivered_at is null and d.abandoned_at is null
          order by d.notice_id limit 100`;
        if (rows.length === 0) return;
        for (const r of rows) {
          const at = clock.now();
          if (r.next_attempt_at.getTime() > at.getTime()) return;
          const notice: Notice = {
            id: r.id,
            createdAt: r.created_at,
            kind: r.kind,
            text: r.text,
            uid: r.uid,
            payload: r.payload,
          };
          if (!(await lease())) return;
          const limitMs = attemptTimeoutMs(baseMs, r.timeouts);
          try {
            await target.send(notice, limitMs);
          } catch (e) {
            const attempts = r.attempts + 1;
            const timedOut = e instanceof DeliveryTimeout;
            const timeouts = r.timeouts + (timedOut ? 1 : 0);
            const message = e instanceof Error ? e.message : String(e);
            if (timeouts >= maxTimeouts) {
              // It may well have arrived (the receiver is slow, not refusing): given up, and
              // the notices behind it go now.
              const gaveUp = await db.sql`
                update notice_deliveries set attempts = ${attempts}, timeouts = ${timeouts},
                  abandoned_at = ${clock.now()}, last_error = ${message.slice(0, 500)}
                where target = ${target.key} and notice_id = ${r.id} and delivered_at is null
                  and exists (select 1 from delivery_leases l
                    where l.target = ${target.key} and l.holder = ${holder})
                returning notice_id`;
              if (gaveUp.length === 0) return;
              report.abandoned++;
              options.metrics?.inc("noc_notice_deliveries_total", { outcome: "abandoned" });
              log.error("notice_delivery_abandoned", {
                target: target.label,
                noticeId: r.id,
                attempts,
                error: message,
                hint: "the receiver answers slower than NOC_WEBHOOK_TIMEOUT_S allows",
              });
              continue;
            }
            const nextAttempt = new Date(at.getTime() + retryDelayS(attempts) * 1000);
            await db.sql`
              update notice_deliveries set attempts = ${attempts}, timeouts = ${timeouts},
                next_attempt_at = ${nextAttempt}, last_error = ${message.slice(0, 500)}
              where target = ${target.key} and notice_id = ${r.id}`;
            report.failed++;
            scheduleRetry(target, nextAttempt);
            options.metrics?.inc("noc_notice_deliveries_total", { outcome: "failed" });
            log.warn("notice_delivery_failed", {
              target: target.label,
              noticeId: r.id,
              attempts,
              retryAt: nextAttempt.toISOString(),
              error: message,
            });
            return;
          }
          const marked = await db.sql`
            update notice_deliveries set delivered_at = ${at}, attempts = attempts + 1, last_error = null
            where target = ${target.key} and notice_id = ${r.id} and delivered_at is null
              and exists (select 1 from delivery_leases l where l.target = ${target.key} and l.holder = ${holder})
            returning notice_id`;
          if (marked.length === 0) return;
          report.delivered++;
          options.metrics?.inc("noc_notice_deliveries_total", { outcome: "delivered" });
        }
      }
    } finally {
      await db.sql`delete from delivery_leases where target = ${target.key} and holder = ${holder}`;
    }
  }

  /**
   * One target's pass, or the one under way (then another follows it): a target's queue is
   * served by one pass at a time per instance, and never waits for another target's.
   */
  function passOf(target: Target): Promise<DeliveryReport> {
    const current = passes.get(target.key);
    if (current) {
      current.again = true;
      return current.running;
    }
    const pass = { running: Promise.resolve(emptyReport()), again: false };
    pass.running = (async () => {
      const report = emptyReport();
      try {
        do {
          pass.again = false;
          await deliverTarget(target, report);
        } while (pass.again);
        return report;
      } finally {
        passes.delete(target.key);
      }
    })();
    passes.set(target.key, pass);
    return pass.running;
  }

  const notifier: Notifier = {
    targets,
    async enqueue(tx, notice, now) {
      // Held to commit: notices get their ids in commit order, so a later id is never delivered before an earlier one.
      await tx`select pg_advisory_xact_lock(hashtext(current_schema() || ':noc-outbox'))`;
      const [row] = await tx<{ id: number }>`
        insert into notices (created_at, kind, uid, text, payload)
        values (${now}, ${notice.kind}, ${notice.uid ?? null}, ${notice.text}, ${notice.payload})
        returning id`;
      await tx`
        insert into notice_deliveries (notice_id, target, next_attempt_at)
        select ${row!.id}, t, ${now} from unnest(${keys}::text[]) as t`;
      return row!.id;
    },
    async deliver() {
      const settled = await Promise.allSettled(targets.map(passOf));
      const report = emptyReport();
      for (const s of settled) {
        if (s.status === "rejected") throw s.reason;
        report.delivered += s.value.delivered;
        report.failed += s.value.failed;
        report.abandoned += s.value.abandoned;
      }
      return report;
    },
    kick() {
      if (options.autoDeliver === false) return;
      for (const t of targets) {
        passOf(t).catch((e) =>
          log.error("notice_delivery_pass_failed", { target: t.label, error: String(e) })
        );
      }
    },
  };
  return notifier;
}

function emptyReport(): DeliveryReport {
  return { delivered: 0, failed: 0, abandoned: 0 };
}

/**
 * A shared rate limit for notices: allows one notice per `key` per window
 * across all NOC instances. Returns whether this one may be sent and how many
 * were held back since the last one that was.
 */
export async function throttleNotice(
  tx: Sql,
  key: string,
  now: Date,
  windowS: number,
): Promise<{ allowed: boolean; suppressed: number }> {
  const windowStart = new Date(now.getTime() - windowS * 1000);
  const [prev] = await tx<{ window_started_at: Date; suppressed: number }>`
    select window_started_at, suppressed from notice_throttle where key = ${key} for update`;
  if (!prev) {
    const ins = await tx`
      insert into notice_throttle (key, window_started_at, suppressed) values (${key}, ${now}, 0)
      on conflict (key) do nothing returning key`;
    if (ins.length > 0) return { allowed: true, suppressed: 0 };
    await tx`update notice_throttle set suppressed = suppressed + 1 where key = ${key}`;
    return { allowed: false, suppressed: 0 };
  }
  if (prev.window_started_at.getTime() <= windowStart.getTime()) {
    await tx`update notice_throttle set window_started_at = ${now}, suppressed = 0 where key = ${key}`;
    return { allowed: true, suppressed: prev.suppressed };
  }
  await tx`update notice_throttle set suppressed = suppressed + 1 where key = ${key}`;
  return { allowed: false, suppressed: 0 };
}

/**
 * Claims the notice window `key` for `now`, across instances, without holding a lock while
 * anything else happens: true (with when the previous window began, null the first time) when
 * the last window began at least `windowS` seconds ago, and this call started a new one. It
 * never waits for the row's lock (a row another transaction holds is skipped), and callers gate
 * it in memory first (see `RefusalGate.noticeDue`), so a flood of refusals never queues on it.
 */
export async function claimNoticeWindow(
  sql: Sql,
  key: string,
  now: Date,
  windowS: number,
): Promise<{ won: boolean; since: Date | null }> {
  const windowStart = new Date(now.getTime() - windowS * 1000);
  // Skip locked: while another instance holds the row (claiming the same window), this one
  // does not wait for it; that instance sends the notice.
  const [moved] = await sql<{ since: Date }>`
    update notice_throttle t set window_started_at = ${now}, suppressed = 0
    from (
      select key, window_started_at as since from notice_throttle
      where key = ${key} and window_started_at <= ${windowStart}
      for update skip locked
    ) p
    where t.key = p.key
    returning p.since`;
  if (moved) return { won: true, since: moved.since };
  const inserted = await sql`
    insert into notice_throttle (key, window_started_at, suppressed) values (${key}, ${now}, 0)
    on conflict (key) do nothing returning key`;
  return { won: inserted.length > 0, since: null };
}
