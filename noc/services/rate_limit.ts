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

/**
 * Which budget and notice window a refusal belongs to (see {@link RefusalGate}): `proven` when
 * the request's signature verified under the enrolled key its key id names (so the sender holds,
 * or replays a request signed with, that key), `anonymous` for everything else — whatever UID it
 * names, since UIDs are not secret.
 */
export type RefusalClass = "anonymous" | "proven";

/**
 * Refusals, kept by each NOC instance: what makes a refusal cheap. Counted per client address
 * (an IPv6 address by its /64, see {@link addressKey}): an address that has used up its refusals
 * is answered 429 before any work is done for its request ({@link RefusalGate.check}).
 *
 * Records (`auth_failures` rows) come from two budgets that cannot spend each other:
 * - anonymous refusals (no signature, a malformed one, an unknown key id, a wrong authority,
 *   clock skew, and a signature that does not verify under the key its key id names — a forger
 *   needs only a UID for that) are recorded within their address's refusals and the instance's
 *   `recordsPerMinute`;
 * - proven refusals (the signature verified under the enrolled key: a revoked key, a replay, a
 *   body that does not match its signed digest) within that identity's
 *   {@link perIdentityRecordsPerMin} and the instance's `provenRecordsPerMinute`, whatever
 *   anonymous traffic did; and an identity's first proven refusal after a quiet minute is written
 *   even past the instance's budget (at most one a minute per enrolled key, and only its holder
 *   can cause it);
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
   * Counts one proven refusal of the enrolled identity `keyid` (its signature verified), from
   * `address` (which it costs a refusal too): `record` says whether to write it (within the
   * identity's and the proven budget, never the anonymous one), `heldBack` how many of the
   * identity's proven refusals were not written since its last record.
   */
  noteProven(keyid: string, address: string): { record: boolean; heldBack: number };
  /** Counts a refusal against `address` only (a refused admin token): never recorded. */
  count(address: string): void;
  /**
   * True at most once per `windowS` seconds on this instance for refusals of class `cls`: time to
   * try the administrator notice of that class. The classes' windows are independent.
   */
  noticeDue(windowS: number, cls: RefusalClass): boolean;
}

/** Addresses (and identities) a {@link RefusalGate} remembers at most; the oldest are forgotten first. */
const maxRefusalAddresses = 50_000;

/** Records per minute of one enrolled identity's proven refusals; the rest are counted and carried. */
export const perIdentityRecordsPerMin = 6;

interface Bucket {
  tokens: number;
  at: number;
  heldBack: number;
}

/**
 * Creates a refusal gate: `perMinute` refusals per address (0: no limit, every anonymous refusal
 * recorded within `recordsPerMinute`), `recordsPerMinute` anonymous records from all addresses
 * together, `provenRecordsPerMinute` records of proven refusals (by default as many as
 * `recordsPerMinute`).
 */
export function createRefusalGate(
  clock: Clock,
  perMinute: number,
  recordsPerMinute: number,
  provenRecordsPerMinute = recordsPerMinute,
): RefusalGate {
  const addresses = new Map<string, Bucket>();
  const identities = new Map<string, Bucket>();
  const unlimited: Bucket = { tokens: 0, at: 0, heldBack: 0 };
  const anonymous = { tokens: recordsPerMinute, at: clock.now().getTime() };
  const proven = { tokens: provenRecordsPerMinute, at: clock.now().getTime() };
  const sweeps = new Map<Map<string, Bucket>, number>();
  const lastNotice: Record<RefusalClass, number> = { anonymous: -Infinity, proven: -Infinity };
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
  /**
   * Spends one of `b`'s tokens (`own`) and one of the class's, or holds the refusal back;
   * `always` writes it even when the class has none left.
   */
  const slot = (
    b: Bucket,
    own: boolean,
    all: { tokens: number; at: number },
    now: number,
    rate: number,
    always = false,
  ) => {
    refill(all, now, rate);
    if (!own || (all.tokens < 1 && !always)) {
      b.heldBack++;
      return { record: false, heldBack: b.heldBack };
    }
    all.tokens = Math.max(0, all.tokens - 1);
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
      // No per-address limit: one bucket for all, so what is held back is still counted.
      if (perMinute <= 0) return slot(unlimited, true, anonymous, now, recordsPerMinute);
      const b = bucketOf(addresses, addressKey(address), now, perMinute);
      return slot(b, spend(b), anonymous, now, recordsPerMinute);
    },
    noteProven(keyid, address) {
      const now = clock.now().getTime();
      if (perMinute > 0) spend(bucketOf(addresses, addressKey(address), now, perMinute));
      const b = bucketOf(identities, keyid, now, perIdentityRecordsPerMin);
      // A full bucket: nothing of this identity's written for a minute.
      const quiet = b.tokens >= perIdentityRecordsPerMin;
      return slot(b, spend(b), proven, now, provenRecordsPerMinute, quiet);
    },
    count(address) {
      if (perMinute <= 0) return;
      spend(bucketOf(addresses, addressKey(address), clock.now().getTime(), perMinute));
    },
    noticeDue(windowS, cls) {
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
    refusals: createRefusalGate(
      clock,
      s.rateRefusalsPerMin,
      s.refusalRecordsPerMin,
      s.identityRefusalRecordsPerMin ?? s.refusalRecordsPerMin,
    ),
  };
}
