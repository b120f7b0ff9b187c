/**
 * The admission middleware (issue 23 item 1; noc/services/admission.ts): classifies each request
 * by its path, takes a slot of its class (or waits in its queue), and answers at once `503
 * overloaded` with `Retry-After` when the class is full — before anything reads the body or checks
 * a signature. A request whose client has gone while it waited is not processed. The time waited
 * is set for the request log (`queuedMs`) and observed in `noc_queue_wait_seconds`.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import type { AdmissionClass, ShedReason } from "../../services/admission.ts";
import { requestSizeLimit } from "../../../protocol/http/validate.ts";
import { clientAddress } from "./appliance_auth.ts";
import { addressKey } from "../../services/rate_limit.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The class of a request, or null when it is not counted (see noc/services/admission.ts). */
export function admissionClass(method: string, path: string): AdmissionClass | null {
  if (path === "/healthz" || path === "/metrics" || path === "/openapi.json" || path === "/docs") {
    return null;
  }
  if (path === "/v1/wake" || path.startsWith("/v1/wake/")) return null;
  // Anyone may ask for the sign-in page and the console's files: not the operators' slots.
  if (path === "/ui/login" || path.startsWith("/ui/static/")) return "public";
  if (path.startsWith("/v1/admin") || path === "/ui" || path.startsWith("/ui/")) return "admin";
  if (method === "POST" && (path === "/v1/beats" || path === "/v1/checkin")) return "checkin";
  // Bodies read before anything proves who sends them: a class of their own.
  if (method === "POST" && (path === "/v1/enroll" || path === "/v1/local/enroll")) return "enrol";
  if (path.startsWith("/v1/components") || path.startsWith("/v1/local/components")) {
    return "download";
  }
  return "fetch";
}

/** The most of a body nothing authenticates that is read before its slot (enrolment, sign-in). */
export const strangerBodyBytes = 64 * 1024;

/**
 * Seconds such a body has to arrive (408 `request_timeout` after), or `NOC_BODY_TIMEOUT_S` when
 * that is shorter.
 */
export const strangerBodyS = 10;

/** Milliseconds a download may go without its client taking a byte before it is cut. */
export const downloadIdleMs = 60_000;

/**
 * `body` passed through as it is read, calling `done` once when it ends, fails, is cancelled
 * (its client went), or its reader takes nothing for `idleMs` (the stream is then cut): a
 * download keeps its admission slot until then, not just until its handler returned.
 */
function heldUntilSent(
  body: ReadableStream<Uint8Array>,
  done: () => void,
  idleMs: number,
  timers: Timers,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let finished = false;
  let idle: unknown;
  const clearTimeout = (h: unknown) => h !== undefined && timers.clear(h);
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(idle);
    done();
  };
  // Armed whenever the client has taken what was sent: cut if it takes nothing more for idleMs.
  const arm = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    idle = timers.set(() => {
      controller.error(new Error("download idle"));
      reader.cancel("download idle").catch(() => {});
      finish();
    }, idleMs);
  };
  return new ReadableStream<Uint8Array>({
    start: arm,
    async pull(controller) {
      clearTimeout(idle);
      try {
        const { done: end, value } = await reader.read();
        if (end) {
          controller.close();
          finish();
          return;
        }
        controller.enqueue(value);
      } catch (e) {
        controller.error(e);
        finish();
        return;
      }
      arm(controller);
    },
    cancel(reason) {
      finish();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Timers (the global ones by default; tests fire them by hand). */
export interface Timers {
  /** Calls `fn` after `ms`; returns a handle for {@link Timers.clear}. */
  set(fn: () => void, ms: number): unknown;
  /** Cancels a timer `set` returned. */
  clear(handle: unknown): void;
  /** The monotonic time, ms (`performance.now()` when absent). */
  now?(): number;
}

const globalTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as number),
};

/** Global timers that do not keep the process alive (the closing `requests_shed` line's). */
const unrefTimers: Timers = {
  set: (fn, ms) => {
    const id = setTimeout(fn, ms);
    Deno.unrefTimer(id);
    return id;
  },
  clear: (h) => clearTimeout(h as number),
};

/**
 * Counts a request of `cls` shed for `reason` and gives its 503's `Retry-After` (seconds) and
 * JSON body: `{ error: "overloaded", message }`.
 */
function refusal(
  deps: Pick<AppDeps, "admission" | "metrics" | "clock" | "checkins" | "log">,
  cls: AdmissionClass,
  reason: ShedReason,
  timers: Timers,
): { retryAfter: number; body: { error: "overloaded"; message: string } } {
  deps.metrics.inc("noc_shed_total", { class: cls, reason });
  // Whatever NOC_REQUEST_LOG says, the log tells that the instance sheds: at the first shed, then
  // a line a minute with the counts (not a line per request: thousands a second), and a closing
  // line a minute after the last one when sheds were withheld since (review 23m).
  const told = (summary: { sinceMs: number; counts: Record<string, number> }) =>
    deps.log.warn("requests_shed", {
      sinceS: Math.round(summary.sinceMs / 1000),
      counts: summary.counts,
    });
  const clock = () => timers.now?.() ?? performance.now();
  const arm = (now: number) => {
    const inMs = deps.admission.shedFlushIn(now);
    if (inMs === null) return;
    timers.set(() => {
      const at = clock();
      const rest = deps.admission.shedFlush(at);
      // Not yet when a shed's own line came since: armed again for the minute after it.
      if (rest) told(rest);
      else arm(at);
    }, inMs);
  };
  const now = clock();
  const summary = deps.admission.shedSummary(cls, reason, now);
  if (summary) told(summary);
  else arm(now);
  // A SecureBeat told to come back later: its appliance is not paged for the pause asked of it
  // (noc/jobs/status_daemon.ts holds overdue appliances after a shed check-in).
  if (cls === "checkin") deps.checkins.instance.checkinShedAt = deps.clock.now();
  // Spread the retries a little: a fleet told the same second comes back in the same second.
  // Operators are told a few seconds, not the fleet's pause.
  const base = deps.admission.bounds[cls].retryAfterS ?? deps.admission.retryAfterS;
  const retryAfter = base + Math.floor(Math.random() * Math.max(1, base / 2));
  // The body is left unread. No `Connection: close` of ours; Deno.serve adds it itself to an
  // answer whose request body is unread (review 24a), so a shed POST still costs its client a
  // new connection, and a shed GET does not.
  const why = reason === "queue_full"
    ? "queue full"
    : reason === "expected_wait"
    ? "its queue holds what can start within the wait"
    : reason === "address_busy"
    ? "too many from this address at once"
    : "waited too long";
  return {
    retryAfter,
    body: {
      error: "overloaded",
      message: reason === "client_gone"
        ? "The client went away while the request waited; it was not processed"
        : `The NOC is overloaded (${cls} requests: ${why}); try again after ${retryAfter} s`,
    },
  };
}

/**
 * Middleware, first of all: a request whose class is full as it arrives (no slot, the queue full
 * or longer than its slots start within the wait) is answered 503 here, before the request id,
 * the request log and the secure headers — the same answer as {@link admission}'s, with the
 * secure headers' set (read once from `secure`), `Retry-After`, `Content-Type` and
 * `Cache-Control: no-store`, but no request id. Under overload most requests are such: through
 * the whole middleware chain each cost the NOC about two fifths of a served check-in's CPU, here
 * about a fifth (estimated from the overload bench's CPU shares; issue 23). Counted in
 * `noc_shed_total` as before; not in the request log or `noc_http_request_duration_seconds`
 * (with `NOC_REQUEST_LOG=all`, which logs each shed request, this step is skipped).
 */
export function shedAtOnce(
  deps: Pick<AppDeps, "admission" | "metrics" | "settings" | "clock" | "checkins" | "log">,
  /** The app's `secureHeaders()`: its headers are set on this 503 too (review 23e). */
  secure: MiddlewareHandler,
  /** Runs the closing `requests_shed` line's timer (global, unreferenced, by default). */
  timers: Timers = unrefTimers,
): MiddlewareHandler<AppEnv> {
  // The secure headers as that middleware sets them, read once from a response it has seen.
  let secureHeaders: Promise<[string, string][]> | null = null;
  const headersOf = () =>
    secureHeaders ??= Promise.resolve(
      new Hono().use(secure).get("/", (c) => c.body(null)).request("/"),
    ).then((r) => [...r.headers]);
  return async (c, next) => {
    if (deps.settings.requestLog === "all") return await next();
    const cls = admissionClass(c.req.method, c.req.path);
    const full = cls === null ? null : deps.admission.full(cls);
    if (cls === null || full === null) return await next();
    const { retryAfter, body } = refusal(deps, cls, full, timers);
    const headers = new Headers(await headersOf());
    headers.set("content-type", "application/json");
    headers.set("retry-after", String(retryAfter));
    headers.set("cache-control", "no-store");
    return new Response(JSON.stringify(body), { status: 503, headers });
  };
}

/**
 * Middleware: admission by class (noc/services/admission.ts). `downloadIdleMs`: how long a
 * download may go without its client taking a byte (60 s); `timers` run that bound.
 */
export function admission(
  deps: Pick<AppDeps, "admission" | "metrics" | "settings" | "clock" | "checkins" | "log">,
  options: { downloadIdleMs?: number; timers?: Timers } = {},
): MiddlewareHandler<AppEnv> {
  const idleMs = options.downloadIdleMs ?? downloadIdleMs;
  const timers = options.timers ?? globalTimers;
  const flushTimers = options.timers ?? unrefTimers;
  const readStranger = requestSizeLimit(
    strangerBodyBytes,
    Math.min(strangerBodyS, deps.settings.bodyTimeoutS),
  );
  return async (c, next) => {
    const cls = admissionClass(c.req.method, c.req.path);
    if (cls === null) return await next();
    const bounds = deps.admission.bounds[cls];
    const shed = (reason: ShedReason) => {
      c.set("shed", reason);
      if (c.get("queuedMs") === undefined) c.set("queuedMs", 0);
      const { retryAfter, body } = refusal(deps, cls, reason, flushTimers);
      c.header("Retry-After", String(retryAfter));
      return c.json(body, 503);
    };
    // A body nothing authenticates (an enrolment, a sign-in) is read before a slot is asked for,
    // bounded: a client trickling it holds no slot (reviews 23a, 23c). A full class is still
    // answered before anything is read.
    if (bounds.perAddress !== undefined && c.req.raw.body !== null) {
      const full = deps.admission.full(cls);
      if (full !== null) return shed(full);
      const address = addressKey(clientAddress(c, deps.settings.trustProxy) ?? "unknown");
      const done = deps.admission.reading(cls, address);
      if (done === null) return shed("address_busy");
      try {
        await readStranger(c, () => Promise.resolve());
      } finally {
        done();
      }
    }
    const entry = await deps.admission.enter(cls, c.req.raw.signal);
    c.set("queuedMs", Math.round(entry.queuedMs * 10) / 10);
    // What waited in the queue: not what was refused at once (a full queue), which would fill
    // the lowest bucket and drag every quantile toward nought.
    if (entry.ok || entry.reason === "queue_timeout" || entry.reason === "client_gone") {
      deps.metrics.observe("noc_queue_wait_seconds", { class: cls }, entry.queuedMs / 1000);
    }
    if (!entry.ok) return shed(entry.reason);
    let streaming = false;
    const finished = () => {
      entry.leave();
      // Admitted while its client was there, which left before the answer: work done for no one.
      if (c.req.raw.signal.aborted) {
        deps.metrics.inc("noc_finished_client_gone_total", { class: cls });
      }
    };
    try {
      await next();
      // A download is sent after its handler returns: its slot is held until the last byte.
      // Not a HEAD's: Hono runs the GET handler and drops its body unread (review 23c).
      if (cls === "download" && c.req.method === "GET" && c.res.body !== null) {
        const res = c.res;
        c.res = new Response(heldUntilSent(res.body!, finished, idleMs, timers), res);
        streaming = true;
      }
    } finally {
      if (!streaming) finished();
    }
  };
}
