/**
 * Admission control (issue 23 item 1): a bounded amount of work in flight and a bounded queue
 * per class of request; past them a request is answered at once — 503 `overloaded` with
 * `Retry-After` — before its body is read or its signature checked
 * (noc/http/middleware/admission.ts). Measured before it (the issue): offered twice its capacity,
 * the NOC queued without bound (p99 25 s, memory 301 → 920 MiB), shed nothing, and finished work
 * its clients had abandoned.
 *
 * Classes, each with its own slots and queue, so that what matters most is served first and the
 * operators can still work during an appliance overload:
 *
 * - `checkin`: SecureBeats (`NOC_MAX_IN_FLIGHT` slots, `NOC_MAX_QUEUE` waiting);
 * - `enrol`: enrolments of appliances and local servers (a quarter of each): their bodies are
 *   read before anything proves who sends them, so the middleware reads such a body (at most 64
 *   KiB, within 10 s, at most 16 of one client address at once) before it asks for a slot: a
 *   client trickling bodies holds no slot at all (reviews 23a, 23c);
 * - `fetch`: catalogs, install reports, keys, local servers' syncs (half of each: shed first);
 * - `download`: component downloads, the appliances' and the local servers' (a quarter of the
 *   slots: long, streamed; a download keeps its slot until its last byte is sent or its client
 *   goes, and is cut after 60 s in which its client took nothing);
 * - `admin`: the admin API and the signed-in console (slots of their own, 16, queue 64, a wait of
 *   at least 10 s: operators would rather wait than be refused; its 503 says to come back in a
 *   few seconds, not the fleet's `Retry-After`);
 * - `public`: the console's sign-in page and its static files, which anyone may ask for (8 slots,
 *   queue 32; a body read first, as an enrolment's): they cannot take the operators' slots.
 *
 * Not counted: `/healthz`, `/metrics`, the OpenAPI document and the wake-up long poll (idle
 * while it waits; bounded by its own per-appliance limits).
 *
 * A request waits in its class's queue at most `NOC_MAX_QUEUE_WAIT_MS`, and is refused at once when
 * it could not start within that wait anyway: a class's queue holds at most as many as its slots
 * start in half of `NOC_MAX_QUEUE_WAIT_MS` (the other half absorbs the estimate's error) at its
 * recent service time (the median of its latest 64 slot holds, each counted from the slot's
 * hand-over and at most the wait), and never more than its bound. Without it, under sustained
 * overload a first-come queue fills and each request in it waits the whole bound and is then
 * refused: in the overload bench a tenth of the 503s came after half a second instead of at once. One whose client has gone
 * meanwhile (its request's signal aborted) is dropped when it would start, never processed. The
 * time waited is the request log's `queuedMs` and the histogram `noc_queue_wait_seconds`; each
 * shed request counts in `noc_shed_total` by class and reason (`queue_full`, `expected_wait`,
 * `queue_timeout`, `client_gone`, `address_busy`), and the instance logs `requests_shed` with
 * the counts at the first shed and then at most once a minute while it sheds.
 *
 * Hand-written (a few dozen lines) because it is on the hot path of every request and needs
 * per-class bounds and abort-aware waiting that general-purpose limiters do not give together.
 *
 * @module
 */

/** A class of requests, with its own slots and queue. */
export type AdmissionClass = "checkin" | "enrol" | "fetch" | "download" | "admin" | "public";

/** Every class, in the order `/metrics` lists them. */
export const admissionClasses: readonly AdmissionClass[] = [
  "checkin",
  "enrol",
  "fetch",
  "download",
  "admin",
  "public",
];

/** Why a request was shed (`noc_shed_total`'s `reason`). */
export type ShedReason =
  | "queue_full"
  | "expected_wait"
  | "queue_timeout"
  | "client_gone"
  | "address_busy";

/** Every reason, in the order `/metrics` lists them. */
export const shedReasons: readonly ShedReason[] = [
  "queue_full",
  "expected_wait",
  "queue_timeout",
  "client_gone",
  "address_busy",
];

/** Its bounds. */
export interface ClassBounds {
  /** Requests processed at once. */
  inFlight: number;
  /** Requests waiting for a slot. */
  queue: number;
  /** The longest one waits, milliseconds. */
  waitMs: number;
  /**
   * For classes anyone may send: their bodies are read before a slot is asked for (by the
   * middleware), at most this many of one client address at once; past it a request is shed
   * `address_busy`.
   */
  perAddress?: number;
  /** The `Retry-After` of this class's 503, seconds, when not the settings'. */
  retryAfterS?: number;
}

/** The admission settings (docs/operations.md, "Throughput"). */
export interface AdmissionSettings {
  /** `checkin` slots; `fetch` gets half, `download` a quarter. */
  maxInFlight: number;
  /** `checkin` queue; `fetch` and `download` get half. */
  maxQueue: number;
  /** The longest a request waits for a slot, milliseconds. */
  maxQueueWaitMs: number;
  /** The `Retry-After` of a 503, seconds. */
  retryAfterS: number;
}

/** What {@link Admission.enter} gave. */
export type Entry =
  | { ok: true; queuedMs: number; leave: () => void }
  | { ok: false; reason: ShedReason; queuedMs: number };

/** Admission for one NOC instance (built in `createDeps()`). */
export interface Admission {
  /** The bounds of each class. */
  readonly bounds: Record<AdmissionClass, ClassBounds>;
  /** The `Retry-After` of a 503, seconds. */
  readonly retryAfterS: number;
  /**
   * Takes a slot of `cls` at once, or waits in its queue (at most the class's wait, or until
   * `signal` aborts); a full queue is refused at once. A slot taken must be given back with
   * `leave()` (once).
   */
  enter(cls: AdmissionClass, signal?: AbortSignal): Promise<Entry>;
  /**
   * Why {@link enter} would refuse `cls` at once now — no slot, and the queue full
   * (`queue_full`), or as long as its slots are expected to start within half the wait at the
   * recent service time (`expected_wait`) — or null when it would not.
   */
  full(cls: AdmissionClass): "queue_full" | "expected_wait" | null;
  /**
   * Counts a body of class `cls` being read for client `address` before its slot is asked for;
   * returns the function that ends it (once), or null when that address has the class's
   * `perAddress` being read already.
   */
  reading(cls: AdmissionClass, address: string): (() => void) | null;
  /**
   * Counts a SecureBeat of appliance `uid` whose body is about to be read (its signature
   * verified); returns the function that ends it (once), or null when the appliance has
   * {@link beatsPerAppliance} in flight already: one enrolled key cannot hold the check-in slots
   * by trickling its beats' bodies (review 23c).
   */
  beating(uid: string): (() => void) | null;
  /** Requests in flight and waiting, per class (for `/metrics` and tests). */
  load(): Record<AdmissionClass, { inFlight: number; queued: number }>;
  /**
   * For `/metrics`: per class, the service time — the median of its latest 64 slot holds, ms
   * (null: none measured yet) — and the most the queue holds now — its bound, or fewer: as many
   * as its slots are expected to start within half the wait.
   */
  pace(): Record<AdmissionClass, { serviceMs: number | null; queueLimit: number }>;
  /**
   * Counts a request shed; at most once a minute (of `nowMs`, monotonic) returns the sheds
   * counted since the last time, by class and reason, for one log line (null otherwise, or when
   * there were none).
   */
  shedSummary(
    cls: AdmissionClass,
    reason: ShedReason,
    nowMs: number,
  ): { sinceMs: number; counts: Record<string, number> } | null;
  /**
   * After {@link shedSummary} withheld a shed: the ms until a minute has passed since the last
   * line, when the closing line is due — once (null when it is armed already, or nothing is
   * withheld). Its caller then calls {@link shedFlush} (review 23m: a short overload's count
   * otherwise waited for the next overload's first shed).
   */
  shedFlushIn(nowMs: number): number | null;
  /**
   * The sheds withheld since the last line, by class and reason, once a minute has passed since
   * it (null: none, or not yet — then arm again with {@link shedFlushIn}); disarms.
   */
  shedFlush(nowMs: number): { sinceMs: number; counts: Record<string, number> } | null;
}

/**
 * SecureBeats of one appliance processed at once: its agent's cycle, and a `noc-agent once` run
 * beside it.
 */
export const beatsPerAppliance = 2;

/** The bounds of each class from the settings. */
export function classBounds(s: AdmissionSettings): Record<AdmissionClass, ClassBounds> {
  // A share of the slots is at least one; a share of the queue may be none (NOC_MAX_QUEUE=0).
  const slots = (d: number) => Math.max(1, Math.floor(s.maxInFlight / d));
  const queue = (d: number) => Math.floor(s.maxQueue / d);
  // An operator would rather wait than be refused: at least 10 s (a browser gives up later).
  const patient = Math.max(s.maxQueueWaitMs, 10_000);
  return {
    checkin: { inFlight: s.maxInFlight, queue: s.maxQueue, waitMs: s.maxQueueWaitMs },
    enrol: { inFlight: slots(4), queue: queue(4), waitMs: s.maxQueueWaitMs, perAddress: 16 },
    fetch: { inFlight: slots(2), queue: queue(2), waitMs: s.maxQueueWaitMs },
    download: { inFlight: slots(4), queue: queue(2), waitMs: s.maxQueueWaitMs },
    admin: { inFlight: 16, queue: 64, waitMs: patient, retryAfterS: 5 },
    public: { inFlight: 8, queue: 32, waitMs: patient, perAddress: 16, retryAfterS: 5 },
  };
}

type Waiter = { grant: () => void };

/**
 * How many of a class's latest slot holds its service time is the median of. A median, not a
 * mean: one enrolled key trickling its two beats' bodies (review 23g: two 500 ms holds a second,
 * without end) made a moving average of ten times the fleet's holds, and the queue refused the
 * fleet's bursts; it cannot move the median of the fleet's many.
 */
const serviceSamples = 64;

/**
 * The share of a class's wait that a queued request is expected to use at most: the rest absorbs
 * the estimate's error (at a full share, in the overload bench, 7 % of the 503s still came after
 * waiting the whole bound).
 */
export const expectedWaitShare = 0.5;

/**
 * Whether a request arriving now is expected to wait longer than {@link expectedWaitShare} of
 * `waitMs` for a slot: `queued` ahead of it, `slots` starting one each `serviceMs` on average
 * (null: not measured yet, no estimate).
 */
export function wouldWaitTooLong(
  queued: number,
  slots: number,
  serviceMs: number | null,
  waitMs: number,
): boolean {
  return serviceMs !== null && (queued + 1) * serviceMs / slots > waitMs * expectedWaitShare;
}

/**
 * Counts one more under `key` in `counts` unless it has `most` already (then null); returns the
 * function that counts it back (once). Keys at 0 are forgotten: the map holds what is in flight.
 */
function claim(counts: Map<string, number>, key: string, most: number): (() => void) | null {
  const n = counts.get(key) ?? 0;
  if (n >= most) return null;
  counts.set(key, n + 1);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const left = (counts.get(key) ?? 1) - 1;
    if (left <= 0) counts.delete(key);
    else counts.set(key, left);
  };
}

/**
 * Creates the admission of one instance; `now` (ms, monotonic: `performance.now()` by default)
 * times the slots' hold for the service-time average.
 */
export function createAdmission(
  s: AdmissionSettings,
  now: () => number = () => performance.now(),
): Admission {
  const bounds = classBounds(s);
  const state = Object.fromEntries(
    (Object.keys(bounds) as AdmissionClass[]).map((
      c,
    ) => [c, { inFlight: 0, queue: [] as Waiter[], holds: [] as number[], next: 0, median: null }]),
  ) as Record<
    AdmissionClass,
    { inFlight: number; queue: Waiter[]; holds: number[]; next: number; median: number | null }
  >;
  /** A class's service time, ms: the median of its latest holds (null before any). */
  const serviceMsOf = (cls: AdmissionClass): number | null => {
    const st = state[cls];
    if (st.holds.length === 0) return null;
    if (st.median === null) {
      const sorted = [...st.holds].sort((a, b) => a - b);
      st.median = sorted[Math.floor(sorted.length / 2)]!;
    }
    return st.median;
  };
  // Bodies being read before a slot, by class and client address.
  const held = new Map<string, number>();
  // SecureBeats in flight, by appliance.
  const beats = new Map<string, number>();
  // Sheds since the last summary line, by "class reason"; when that line was written.
  const sheds = new Map<string, number>();
  let summarizedAt: number | null = null;
  let flushArmed = false;
  // `granted`: when the slot became the request's — for one that waited, when the slot was
  // handed to it, not when its continuation ran (on a busy event loop, later): the hand-over is
  // part of the slot's hold, or the average would promise more than the slots deliver.
  const leaver = (cls: AdmissionClass, granted: number) => {
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const st = state[cls];
      // A hold longer than the wait counts as the wait: the estimate asks whether queued requests
      // start within it, and one slot held 30 s (a trickled body, an idle download) says nothing
      // of the others — uncapped, one enrolled key's two trickled beats made the queue refuse
      // bursts for the next 90 check-ins (review 23e).
      const held = Math.min(bounds[cls].waitMs, Math.max(0, now() - granted));
      if (st.holds.length < serviceSamples) st.holds.push(held);
      else st.holds[st.next] = held;
      st.next = (st.next + 1) % serviceSamples;
      st.median = null;
      const next = st.queue.shift();
      // The slot passes straight to the next waiter (first come, first served).
      if (next) next.grant();
      else st.inFlight--;
    };
  };
  /** The counts withheld since the last line, or null while that line is under a minute old. */
  const takeSheds = (nowMs: number) => {
    if (summarizedAt !== null && nowMs - summarizedAt < 60_000) return null;
    const counts = Object.fromEntries(sheds);
    sheds.clear();
    const sinceMs = summarizedAt === null ? 0 : nowMs - summarizedAt;
    summarizedAt = nowMs;
    return { sinceMs, counts };
  };
  return {
    bounds,
    retryAfterS: s.retryAfterS,
    load: () =>
      Object.fromEntries(
        Object.entries(state).map((
          [c, st],
        ) => [c, { inFlight: st.inFlight, queued: st.queue.length }]),
      ) as Record<AdmissionClass, { inFlight: number; queued: number }>,
    beating: (uid) => claim(beats, uid, beatsPerAppliance),
    pace: () =>
      Object.fromEntries(
        (Object.keys(bounds) as AdmissionClass[]).map((c) => {
          const b = bounds[c];
          const serviceMs = serviceMsOf(c);
          const bySpeed = serviceMs === null || serviceMs <= 0
            ? b.queue
            : Math.floor(b.waitMs * expectedWaitShare * b.inFlight / serviceMs);
          return [c, { serviceMs, queueLimit: Math.min(b.queue, bySpeed) }];
        }),
      ) as Record<AdmissionClass, { serviceMs: number | null; queueLimit: number }>,
    shedSummary(cls, reason, nowMs) {
      const key = `${cls} ${reason}`;
      sheds.set(key, (sheds.get(key) ?? 0) + 1);
      // The first shed is told at once; then at most a line a minute.
      return takeSheds(nowMs);
    },
    shedFlushIn(nowMs) {
      if (flushArmed || sheds.size === 0 || summarizedAt === null) return null;
      flushArmed = true;
      return Math.max(0, summarizedAt + 60_000 - nowMs);
    },
    shedFlush(nowMs) {
      flushArmed = false;
      if (sheds.size === 0) return null;
      // A shed's own line came first (review 23n: two lines a few ms apart): not yet.
      return takeSheds(nowMs);
    },
    full: (cls) => {
      const st = state[cls];
      const b = bounds[cls];
      if (st.inFlight < b.inFlight) return null;
      if (st.queue.length >= b.queue) return "queue_full";
      return wouldWaitTooLong(st.queue.length, b.inFlight, serviceMsOf(cls), b.waitMs)
        ? "expected_wait"
        : null;
    },
    reading(cls, address) {
      const most = bounds[cls].perAddress;
      if (most === undefined) return () => {};
      return claim(held, `${cls} ${address}`, most);
    },
    async enter(cls, signal) {
      const st = state[cls];
      const b = bounds[cls];
      if (signal?.aborted) return { ok: false, reason: "client_gone", queuedMs: 0 };
      if (st.inFlight < b.inFlight) {
        st.inFlight++;
        return { ok: true, queuedMs: 0, leave: leaver(cls, now()) };
      }
      if (st.queue.length >= b.queue) return { ok: false, reason: "queue_full", queuedMs: 0 };
      if (wouldWaitTooLong(st.queue.length, b.inFlight, serviceMsOf(cls), b.waitMs)) {
        return { ok: false, reason: "expected_wait", queuedMs: 0 };
      }
      const started = now();
      let granted = started;
      const outcome = await new Promise<"granted" | "timeout" | "gone">((resolve) => {
        const waiter: Waiter = {
          grant: () => {
            granted = now();
            cleanup();
            resolve("granted");
          },
        };
        const drop = (why: "timeout" | "gone") => {
          const i = st.queue.indexOf(waiter);
          if (i >= 0) st.queue.splice(i, 1);
          cleanup();
          resolve(why);
        };
        const timer = setTimeout(() => drop("timeout"), b.waitMs);
        const onAbort = () => drop("gone");
        const cleanup = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        st.queue.push(waiter);
      });
      const queuedMs = now() - started;
      if (outcome === "granted") {
        // Granted, but its client left just then: the slot goes on to the next, unused.
        if (signal?.aborted) {
          leaver(cls, granted)();
          return { ok: false, reason: "client_gone", queuedMs };
        }
        return { ok: true, queuedMs, leave: leaver(cls, granted) };
      }
      return {
        ok: false,
        reason: outcome === "timeout" ? "queue_timeout" : "client_gone",
        queuedMs,
      };
    },
  };
}
