/**
 * Rate limits: token buckets kept by each NOC instance (so a limit applies
 * per instance), keyed by appliance, local server or client address. A
 * refused request gets 429 with `Retry-After`.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { ApiError } from "../../protocol/http/errors.ts";

/** A set of buckets: `perMinute` tokens a minute, holding at most `burst`. */
export interface RateLimiter {
  /** Takes a token for `key`, or throws a 429 {@link ApiError} naming `what`. */
  take(key: string, what: string): void;
}

/** Creates a limiter; `perMinute` 0 turns it off. */
export function rateLimiter(clock: Clock, perMinute: number, burst = perMinute): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>();
  let lastSweep = 0;
  return {
    take(key, what) {
      if (perMinute <= 0) return;
      const now = clock.now().getTime();
      // Buckets that have refilled are forgotten, so memory follows the active keys only.
      if (now - lastSweep > 60_000) {
        for (const [k, b] of buckets) {
          if (b.tokens + ((now - b.at) / 60_000) * perMinute >= burst) buckets.delete(k);
        }
        lastSweep = now;
      }
      const b = buckets.get(key) ?? { tokens: burst, at: now };
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 60_000) * perMinute);
      b.at = now;
      if (b.tokens < 1) {
        buckets.set(key, b);
        const retry = Math.max(1, Math.ceil(((1 - b.tokens) / perMinute) * 60));
        throw new ApiError(
          429,
          "rate_limited",
          `Too many requests from ${what}: at most ${perMinute} a minute; retry in ${retry} s`,
          {},
          { "retry-after": String(retry) },
        );
      }
      b.tokens -= 1;
      buckets.set(key, b);
    },
  };
}

/**
 * Refusals per client address, kept by each NOC instance: what makes a refusal
 * cheap. An address that has used up its refusals is answered 429 before any
 * work is done for its request ({@link RefusalGate.check}); of its refusals,
 * only as many as its budget (and the instance's budget for all addresses) are
 * recorded, the rest counted in memory and reported with its next record.
 * Nothing here touches the database.
 */
export interface RefusalGate {
  /**
   * Throws a 429 {@link ApiError} when `address` has no refusals left (counted as held back);
   * costs no token.
   */
  check(address: string): void;
  /**
   * Counts one refusal from `address`: `record` says whether to write it (within the address's
   * and the instance's budgets), `heldBack` how many of its refusals were not written since its
   * last record.
   */
  note(address: string): { record: boolean; heldBack: number };
  /** True at most once per `windowS` seconds on this instance: time to try the administrator notice. */
  noticeDue(windowS: number): boolean;
}

/** Addresses a {@link RefusalGate} remembers at most; the oldest are forgotten first. */
const maxRefusalAddresses = 50_000;

/**
 * Creates a refusal gate: `perMinute` refusals per address (0: no limit, every refusal
 * recorded within `recordsPerMinute`), `recordsPerMinute` records from all addresses together.
 */
export function refusalGate(
  clock: Clock,
  perMinute: number,
  recordsPerMinute: number,
): RefusalGate {
  const buckets = new Map<string, { tokens: number; at: number; heldBack: number }>();
  const all = { tokens: recordsPerMinute, at: clock.now().getTime() };
  let lastSweep = 0;
  let lastNotice = -Infinity;
  const refill = (b: { tokens: number; at: number }, now: number, rate: number) => {
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 60_000) * rate);
    b.at = now;
  };
  const bucketOf = (address: string, now: number) => {
    if (now - lastSweep > 60_000) {
      // Buckets that have refilled and hold nothing back are forgotten.
      for (const [k, b] of buckets) {
        if (b.heldBack === 0 && b.tokens + ((now - b.at) / 60_000) * perMinute >= perMinute) {
          buckets.delete(k);
        }
      }
      lastSweep = now;
    }
    let b = buckets.get(address);
    if (!b) {
      if (buckets.size >= maxRefusalAddresses) buckets.delete(buckets.keys().next().value!);
      b = { tokens: perMinute, at: now, heldBack: 0 };
      buckets.set(address, b);
    }
    refill(b, now, perMinute);
    return b;
  };
  return {
    check(address) {
      if (perMinute <= 0) return;
      const b = buckets.get(address);
      if (!b) return;
      const now = clock.now().getTime();
      refill(b, now, perMinute);
      if (b.tokens >= 1) return;
      // Counted with what the address holds back: its next record (and notice) says so.
      b.heldBack++;
      const retry = Math.max(1, Math.ceil(((1 - b.tokens) / perMinute) * 60));
      throw new ApiError(
        429,
        "rate_limited",
        `Too many refused requests from address ${address}: at most ${perMinute} a minute; ` +
          `retry in ${retry} s`,
        {},
        { "retry-after": String(retry) },
      );
    },
    note(address) {
      const now = clock.now().getTime();
      refill(all, now, recordsPerMinute);
      if (perMinute <= 0) {
        if (all.tokens < 1) return { record: false, heldBack: 0 };
        all.tokens -= 1;
        return { record: true, heldBack: 0 };
      }
      const b = bucketOf(address, now);
      const ok = b.tokens >= 1;
      if (ok) b.tokens -= 1;
      if (!ok || all.tokens < 1) {
        b.heldBack++;
        return { record: false, heldBack: b.heldBack };
      }
      all.tokens -= 1;
      const heldBack = b.heldBack;
      b.heldBack = 0;
      return { record: true, heldBack };
    },
    noticeDue(windowS) {
      const now = clock.now().getTime();
      if (now - lastNotice < windowS * 1000) return false;
      lastNotice = now;
      return true;
    },
  };
}

/** The NOC's limiters, one set per app (per `deps`). */
export interface NocLimits {
  /** Signed requests per appliance. */
  appliance: RateLimiter;
  /** Signed requests per local component server. */
  localServer: RateLimiter;
  /** Enrolments (appliances and local servers) per client address. */
  enroll: RateLimiter;
  /** Console sign-in attempts per client address. */
  login: RateLimiter;
  /** Refused requests per client address (and refusal records per instance). */
  refusals: RefusalGate;
}

/** The NOC's limiters, from its settings; built once by `createDeps()`. */
export function createLimits(
  clock: Clock,
  s: {
    rateAppliancePerMin: number;
    rateLocalServerPerMin: number;
    rateEnrollPerMin: number;
    rateLoginPerMin: number;
    rateRefusalsPerMin: number;
    refusalRecordsPerMin: number;
  },
): NocLimits {
  return {
    appliance: rateLimiter(clock, s.rateAppliancePerMin),
    localServer: rateLimiter(clock, s.rateLocalServerPerMin),
    enroll: rateLimiter(clock, s.rateEnrollPerMin),
    login: rateLimiter(clock, s.rateLoginPerMin),
    refusals: refusalGate(clock, s.rateRefusalsPerMin, s.refusalRecordsPerMin),
  };
}
