/**
 * Back-pressure and back-off: how the agent keeps off a NOC that is overloaded or down, and how a
 * fleet comes back to one that recovers without meeting it all in the same second
 * (docs/agent.md, "Back-pressure and back-off").
 *
 * - **Retry-After.** Any request of the agent (the beat, the catalog, the key chain, component
 *   downloads, install reports, the wake-up long poll) answered `503` or `429` with a valid
 *   `Retry-After` (delay-seconds or an HTTP-date, RFC 9110 §10.2.3) stops the cycle's traffic: the
 *   {@link BackPressure} gate refuses every later request of that cycle without sending it, and
 *   every request of the process until the delay has passed. The next cycle starts no sooner than
 *   the delay, plus jitter ({@link retryDelayS}).
 * - **The delay is bounded by the signed catalog's interval.** `Retry-After` is not signed: a man
 *   in the middle could set it to a year. The agent never waits longer for it than the report
 *   interval of its last verified catalog (itself within the NOC's range, `INTERVAL_RANGE_S`), so
 *   a forged header can at most move a cycle to where the schedule had it anyway.
 * - **Full-jitter back-off.** After a failed cycle (the NOC unreachable, a 5xx, a timeout, a
 *   refused beat) the next comes after `random(0, min(interval, base × 2^(failures−1)))` seconds,
 *   at least {@link BACKOFF_FLOOR_S} ({@link cycleBackoffS}; "Exponential Backoff And Jitter", AWS
 *   Architecture Blog). `failures` counts the cycles in a row that failed; it is kept in
 *   `state.json` (across runs) and reset by a beat the NOC accepts.
 * - **First-cycle spread.** `run` waits `random(0, min(interval, startSpreadS))` before its first
 *   cycle ({@link startDelayS}), unless the agent never finished a cycle (just enrolled), so a
 *   fleet restarted together (a power cut, an upgrade) is spread out. After an outage the spread
 *   comes from the back-off's jitter.
 *
 * @module
 */
import { parseRetryAfter } from "../protocol/http/retry_after.ts";
import { INTERVAL_RANGE_S } from "../protocol/catalog.ts";

/** The shortest wait after a failed cycle, seconds: the loop is never tight. */
export const BACKOFF_FLOOR_S = 2;
/** The back-off's base, seconds (`backoffBaseS`): the first failure waits up to this. */
export const DEFAULT_BACKOFF_BASE_S = 30;
/** The first-cycle spread of `run`, seconds (`startSpreadS`; 0: the first cycle runs at once). */
export const DEFAULT_START_SPREAD_S = 60;

/** A random number in [0, 1). */
export type Random = () => number;

/**
 * The most the back-off waits after `failures` failed cycles in a row, seconds:
 * `min(interval, base × 2^(failures−1))`, and at least {@link BACKOFF_FLOOR_S}.
 */
export function backoffCeilingS(failures: number, intervalS: number, baseS: number): number {
  const f = Math.max(1, Math.min(failures, 40));
  return Math.max(BACKOFF_FLOOR_S, Math.min(intervalS, baseS * 2 ** (f - 1)));
}

/**
 * Seconds before the next cycle after `failures` failed cycles in a row ("full jitter"):
 * `random(0, ceiling)`, at least {@link BACKOFF_FLOOR_S}, at most the interval. Milliseconds kept.
 */
export function cycleBackoffS(
  failures: number,
  intervalS: number,
  baseS: number,
  random: Random = Math.random,
): number {
  const ceiling = backoffCeilingS(failures, intervalS, baseS);
  return ms(Math.min(ceiling, Math.max(BACKOFF_FLOOR_S, random() * ceiling)));
}

/**
 * Seconds before the next cycle after a `Retry-After` of `retryAfterS`: the delay, bounded by the
 * interval (the header is unsigned), plus full jitter up to the back-off's ceiling (never past the
 * interval), so a fleet told the same delay does not come back in the same second. At least
 * {@link BACKOFF_FLOOR_S}.
 */
export function retryDelayS(
  retryAfterS: number,
  failures: number,
  intervalS: number,
  baseS: number,
  random: Random = Math.random,
): number {
  const wait = boundRetryAfterS(retryAfterS, intervalS);
  const jitter = random() * Math.min(intervalS - wait, backoffCeilingS(failures, intervalS, baseS));
  return ms(Math.min(intervalS, Math.max(BACKOFF_FLOOR_S, wait + jitter)));
}

/** A `Retry-After` as the agent honours it: at most the interval, and the NOC's longest one. */
export function boundRetryAfterS(retryAfterS: number, intervalS: number): number {
  return Math.max(0, Math.min(retryAfterS, intervalS, INTERVAL_RANGE_S.max));
}

/**
 * Seconds `run` waits before its first cycle: `random(0, min(interval, spreadS))`, 0 for an agent
 * that never finished a cycle (a fresh enrolment runs at once).
 */
export function startDelayS(
  spreadS: number,
  intervalS: number,
  neverRan: boolean,
  random: Random = Math.random,
): number {
  if (neverRan || spreadS <= 0) return 0;
  return ms(random() * Math.min(intervalS, spreadS));
}

function ms(s: number): number {
  return Math.round(s * 1000) / 1000;
}

/** A request not sent, or answered 503/429 with a `Retry-After`: the NOC asked for none now. */
export class BackPressureError extends Error {
  /** Creates the error: `retryAfterS` is the delay asked (bounded), `status` the answer's. */
  constructor(
    message: string,
    readonly retryAfterS: number,
    readonly status: number | null,
  ) {
    super(message);
  }
  /** A stable code, for problems (`describe`). */
  readonly reason = "back_pressure";
}

/**
 * The process's back-pressure gate. {@link wrap} gives a `fetch` that refuses (throws
 * {@link BackPressureError}, sending nothing) while a `Retry-After` holds, and turns a 503 or 429
 * carrying a valid one into that error after arming the hold. {@link forCycle} does the same and
 * also refuses everything after the first such answer in that cycle.
 */
export class BackPressure {
  /** Until when (ms since the epoch) no request is sent. */
  until = 0;
  /** When to resume after the hold: {@link until} plus jitter. */
  resumeAt = 0;
  /** The interval the hold is bounded by (the signed catalog's), seconds. */
  capS: number = INTERVAL_RANGE_S.max;
  /**
   * Origins of a site's local component servers (a catalog line's URLs before its last, the
   * NOC's): a `Retry-After` from one of them is that server's failure alone — the download goes
   * on to the next URL — never a pause of the NOC's traffic.
   */
  readonly mirrors = new Set<string>();

  /** `now` is the agent's clock (ms); `random` draws the jitter; `baseS` is the back-off base. */
  constructor(
    readonly now: () => number = Date.now,
    readonly random: Random = Math.random,
    readonly baseS: number = DEFAULT_BACKOFF_BASE_S,
  ) {}

  /** Arms the hold for `retryAfterS` (bounded by {@link capS}); returns the bounded delay. */
  hold(retryAfterS: number): number {
    const wait = boundRetryAfterS(retryAfterS, this.capS);
    const now = this.now();
    this.until = Math.max(this.until, now + wait * 1000);
    const resume = now + retryDelayS(wait, 1, this.capS, this.baseS, this.random) * 1000;
    this.resumeAt = Math.max(this.resumeAt, resume, this.until);
    return wait;
  }

  /**
   * Brings the hold back within {@link capS} of the clock now: after the clock was stepped back
   * (an NTP correction, a VM restored) a hold armed on the old time would otherwise outlast the
   * interval by the size of the step (review 23a).
   */
  rebase(): void {
    const most = this.now() + this.capS * 1000;
    this.until = Math.min(this.until, most);
    this.resumeAt = Math.min(this.resumeAt, most);
  }

  /** Seconds left of the hold (0 when none). */
  heldS(): number {
    return Math.max(0, (this.until - this.now()) / 1000);
  }

  /** `fetch` behind the gate. */
  wrap(inner: typeof fetch): typeof fetch {
    return (input, init) => this.#send(inner, input, init, null);
  }

  /**
   * `fetch` behind the gate for one cycle: after the first 503/429 with a `Retry-After`, its
   * {@link CycleGate.tripped} says the delay and every later request is refused unsent.
   */
  forCycle(inner: typeof fetch): CycleGate {
    const gate: CycleGate = {
      tripped: null,
      fetch: (input, init) => this.#send(inner, input, init, gate),
    };
    return gate;
  }

  async #send(
    inner: typeof fetch,
    input: string | URL | Request,
    init: RequestInit | undefined,
    cycle: CycleGate | null,
  ): Promise<Response> {
    if (cycle?.tripped) {
      throw new BackPressureError(
        `not sent: the NOC asked for a pause (Retry-After ${cycle.tripped.retryAfterS} s)`,
        cycle.tripped.retryAfterS,
        null,
      );
    }
    const left = this.heldS();
    if (left > 0) {
      const s = Math.ceil(left);
      if (cycle) cycle.tripped = { retryAfterS: s, status: null };
      throw new BackPressureError(`not sent: the NOC asked for a pause (${s} s left)`, s, null);
    }
    const res = await inner(input, init);
    if (res.status !== 503 && res.status !== 429) return res;
    const target = input instanceof Request ? input.url : String(input);
    if (this.mirrors.has(new URL(target).origin)) return res; // a mirror's own failure
    const asked = parseRetryAfter(res.headers.get("retry-after"), new Date(this.now()));
    if (asked === null) return res; // no valid Retry-After: an ordinary failure (the back-off)
    await res.body?.cancel().catch(() => {});
    const wait = this.hold(asked);
    if (cycle) cycle.tripped = { retryAfterS: wait, status: res.status };
    throw new BackPressureError(
      `${new URL(target).host} answered ${res.status} with Retry-After: ${asked}` +
        (wait < asked ? ` (held to ${wait} s, the catalog's interval)` : ""),
      wait,
      res.status,
    );
  }
}

/** One cycle's view of the gate. */
export interface CycleGate {
  /** Set by the first request the gate stopped: the delay asked (bounded), and the status. */
  tripped: { retryAfterS: number; status: number | null } | null;
  /** `fetch` behind the gate. */
  fetch: typeof fetch;
}
