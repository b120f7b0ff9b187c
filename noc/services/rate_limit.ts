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
}

/** The NOC's limiters, from its settings; built once by `createDeps()`. */
export function createLimits(
  clock: Clock,
  s: {
    rateAppliancePerMin: number;
    rateLocalServerPerMin: number;
    rateEnrollPerMin: number;
    rateLoginPerMin: number;
  },
): NocLimits {
  return {
    appliance: rateLimiter(clock, s.rateAppliancePerMin),
    localServer: rateLimiter(clock, s.rateLocalServerPerMin),
    enroll: rateLimiter(clock, s.rateEnrollPerMin),
    login: rateLimiter(clock, s.rateLoginPerMin),
  };
}
