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
 * The key a per-address limit counts `address` under: an IPv4 address as it is (an IPv4-mapped
 * IPv6 address as its IPv4 address), an IPv6 address by its /64 prefix (one subscriber's network:
 * rotating addresses within it buys nothing), anything else as it is.
 */
export function addressKey(address: string): string {
  let a = address.trim().toLowerCase();
  if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
  const zone = a.indexOf("%");
  if (zone >= 0) a = a.slice(0, zone);
  if (!a.includes(":") || !/^[0-9a-f:.]+$/.test(a)) return a;
  const halves = a.split("::");
  if (halves.length > 2) return a;
  // Groups as numbers; an embedded IPv4 tail (a.b.c.d) is two groups.
  const groups = (h: string): number[] =>
    h === "" ? [] : h.split(":").flatMap((g) => {
      if (!g.includes(".")) return [parseInt(g, 16)];
      const [w, x, y, z] = g.split(".").map(Number);
      return [((w ?? 0) << 8) | (x ?? 0), ((y ?? 0) << 8) | (z ?? 0)];
    });
  const head = groups(halves[0]!), tail = halves.length === 2 ? groups(halves[1]!) : [];
  const all = [...head, ...Array(Math.max(0, 8 - head.length - tail.length)).fill(0), ...tail];
  if (all.length !== 8 || all.some((g) => isNaN(g) || g < 0 || g > 0xffff)) return a;
  // An IPv4-mapped address (::ffff:a.b.c.d) counts as its IPv4 address.
  if (all.slice(0, 5).every((g) => g === 0) && all[5] === 0xffff) {
    return [all[6]! >> 8, all[6]! & 255, all[7]! >> 8, all[7]! & 255].join(".");
  }
  return `${all.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/** A limiter keyed by client address: counts each address under its {@link addressKey}. */
export function addressLimiter(inner: RateLimiter): RateLimiter {
  return { take: (address, what) => inner.take(addressKey(address), what) };
}

/** Which notice window a refusal belongs to: see {@link RefusalGate.noticeDue}. */
export type RefusalClass = "anonymous" | "identified";

/**
 * Refusals, kept by each NOC instance: what makes a refusal cheap. Counted per client address
 * (an IPv6 address by its /64, see {@link addressKey}): an address that has used up its refusals
 * is answered 429 before any work is done for its request ({@link RefusalGate.check}).
 *
 * Records (`auth_failures` rows) come from two budgets that cannot spend each other:
 * - anonymous refusals (no signature, an unknown key id, a wrong authority...) are recorded
 *   within their address's refusals and the instance's `recordsPerMinute`;
 * - refusals naming an enrolled identity (its key was found: a bad signature, a revoked key, a
 *   replay, a bad digest) within that identity's {@link perIdentityRecordsPerMin} and the
 *   instance's `identityRecordsPerMinute`, whatever anonymous traffic did;
 * - refused admin tokens only count against their address, and are never recorded.
 *
 * What is not recorded is counted in memory, per address or identity, and carried by its next
 * record (`held_back`). Nothing here touches the database.
 */
export interface RefusalGate {
  /**
   * Throws a 429 {@link ApiError} when `address` has no refusals left (counted as held back);
   * costs no token.
   */
  check(address: string): void;
  /**
   * Counts one anonymous refusal from `address`: `record` says whether to write it (within the
   * address's and the anonymous budget), `heldBack` how many of the address's refusals were not
   * written since its last record.
   */
  note(address: string): { record: boolean; heldBack: number };
  /**
   * Counts one refusal naming the enrolled identity `keyid`, from `address` (which it costs a
   * refusal too): `record` says whether to write it (within the identity's and the identified
   * budget, never the anonymous one), `heldBack` how many of the identity's refusals were not
   * written since its last record.
   */
  noteIdentity(keyid: string, address: string): { record: boolean; heldBack: number };
  /** Counts a refusal against `address` only (a refused admin token): never recorded. */
  count(address: string): void;
  /**
   * True at most once per `windowS` seconds on this instance for refusals of class `cls`: time to
   * try the administrator notice of that class.
   */
  noticeDue(windowS: number, cls?: RefusalClass): boolean;
}

/** Addresses (and identities) a {@link RefusalGate} remembers at most; the oldest are forgotten first. */
const maxRefusalAddresses = 50_000;

/** Records per minute of one enrolled identity's refusals; the rest are counted and carried. */
export const perIdentityRecordsPerMin = 6;

interface Bucket {
  tokens: number;
  at: number;
  heldBack: number;
}

/**
 * Creates a refusal gate: `perMinute` refusals per address (0: no limit, every anonymous refusal
 * recorded within `recordsPerMinute`), `recordsPerMinute` anonymous records from all addresses
 * together, `identityRecordsPerMinute` records of refusals naming enrolled identities (by default
 * as many as `recordsPerMinute`).
 */
export function refusalGate(
  clock: Clock,
  perMinute: number,
  recordsPerMinute: number,
  identityRecordsPerMinute = recordsPerMinute,
): RefusalGate {
  const addresses = new Map<string, Bucket>();
  const identities = new Map<string, Bucket>();
  const anonymous = { tokens: recordsPerMinute, at: clock.now().getTime() };
  const identified = { tokens: identityRecordsPerMinute, at: clock.now().getTime() };
  const sweeps = new Map<Map<string, Bucket>, number>();
  const lastNotice: Record<RefusalClass, number> = { anonymous: -Infinity, identified: -Infinity };
  const refill = (b: { tokens: number; at: number }, now: number, rate: number) => {
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 60_000) * rate);
    b.at = now;
  };
  const bucketOf = (map: Map<string, Bucket>, key: string, now: number, rate: number) => {
    if (now - (sweeps.get(map) ?? 0) > 60_000) {
      // Buckets that have refilled and hold nothing back are forgotten.
      for (const [k, b] of map) {
        if (b.heldBack === 0 && b.tokens + ((now - b.at) / 60_000) * rate >= rate) map.delete(k);
      }
      sweeps.set(map, now);
    }
    let b = map.get(key);
    if (!b) {
      if (map.size >= maxRefusalAddresses) map.delete(map.keys().next().value!);
      b = { tokens: rate, at: now, heldBack: 0 };
      map.set(key, b);
    }
    refill(b, now, rate);
    return b;
  };
  /** Spends one of `b`'s tokens and one of the class's, or holds the refusal back. */
  const slot = (
    b: Bucket,
    own: boolean,
    all: { tokens: number; at: number },
    now: number,
    rate: number,
  ) => {
    refill(all, now, rate);
    if (!own || all.tokens < 1) {
      b.heldBack++;
      return { record: false, heldBack: b.heldBack };
    }
    all.tokens -= 1;
    const heldBack = b.heldBack;
    b.heldBack = 0;
    return { record: true, heldBack };
  };
  const spend = (b: Bucket) => {
    const ok = b.tokens >= 1;
    if (ok) b.tokens -= 1;
    return ok;
  };
  return {
    check(address) {
      if (perMinute <= 0 || addresses.size === 0) return;
      const b = addresses.get(addressKey(address));
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
      if (perMinute <= 0) {
        refill(anonymous, now, recordsPerMinute);
        if (anonymous.tokens < 1) return { record: false, heldBack: 0 };
        anonymous.tokens -= 1;
        return { record: true, heldBack: 0 };
      }
      const b = bucketOf(addresses, addressKey(address), now, perMinute);
      return slot(b, spend(b), anonymous, now, recordsPerMinute);
    },
    noteIdentity(keyid, address) {
      const now = clock.now().getTime();
      if (perMinute > 0) spend(bucketOf(addresses, addressKey(address), now, perMinute));
      const b = bucketOf(identities, keyid, now, perIdentityRecordsPerMin);
      return slot(b, spend(b), identified, now, identityRecordsPerMinute);
    },
    count(address) {
      if (perMinute <= 0) return;
      spend(bucketOf(addresses, addressKey(address), clock.now().getTime(), perMinute));
    },
    noticeDue(windowS, cls = "anonymous") {
      const now = clock.now().getTime();
      if (now - lastNotice[cls] < windowS * 1000) return false;
      lastNotice[cls] = now;
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
  /** Enrolments (appliances and local servers) per client address (an IPv6 one by its /64). */
  enroll: RateLimiter;
  /** Console sign-in attempts per client address (an IPv6 one by its /64). */
  login: RateLimiter;
  /** Refused requests per client address (and refusal records per instance, per class). */
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
    identityRefusalRecordsPerMin?: number;
  },
): NocLimits {
  return {
    appliance: rateLimiter(clock, s.rateAppliancePerMin),
    localServer: rateLimiter(clock, s.rateLocalServerPerMin),
    enroll: addressLimiter(rateLimiter(clock, s.rateEnrollPerMin)),
    login: addressLimiter(rateLimiter(clock, s.rateLoginPerMin)),
    refusals: refusalGate(
      clock,
      s.rateRefusalsPerMin,
      s.refusalRecordsPerMin,
      s.identityRefusalRecordsPerMin ?? s.refusalRecordsPerMin,
    ),
  };
}
