/**
 * The admission middleware (issue 23 item 1; noc/services/admission.ts): classifies each request
 * by its path, takes a slot of its class (or waits in its queue), and answers at once `503
 * overloaded` with `Retry-After` when the class is full — before anything reads the body or checks
 * a signature. A request whose client has gone while it waited is not processed. The time waited
 * is set for the request log (`queuedMs`) and observed in `noc_queue_wait_seconds`.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { AdmissionClass } from "../../services/admission.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The class of a request, or null when it is not counted (see noc/services/admission.ts). */
export function admissionClass(method: string, path: string): AdmissionClass | null {
  if (path === "/healthz" || path === "/metrics" || path === "/openapi.json" || path === "/docs") {
    return null;
  }
  if (path === "/v1/wake" || path.startsWith("/v1/wake/")) return null;
  if (path.startsWith("/v1/admin") || path === "/ui" || path.startsWith("/ui/")) return "admin";
  if (
    method === "POST" &&
    (path === "/v1/beats" || path === "/v1/checkin" || path === "/v1/enroll")
  ) return "checkin";
  if (path.startsWith("/v1/components")) return "download";
  return "fetch";
}

/** Middleware: admission by class (noc/services/admission.ts). */
export function admission(deps: Pick<AppDeps, "admission" | "metrics">): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const cls = admissionClass(c.req.method, c.req.path);
    if (cls === null) return await next();
    const entry = await deps.admission.enter(cls, c.req.raw.signal);
    c.set("queuedMs", Math.round(entry.queuedMs * 10) / 10);
    deps.metrics.observe("noc_queue_wait_seconds", { class: cls }, entry.queuedMs / 1000);
    if (!entry.ok) {
      deps.metrics.inc("noc_shed_total", { class: cls, reason: entry.reason });
      // Spread the retries a little: a fleet told the same second comes back in the same second.
      const retryAfter = deps.admission.retryAfterS +
        Math.floor(Math.random() * Math.max(1, deps.admission.retryAfterS / 2));
      c.header("Retry-After", String(retryAfter));
      // No `Connection: close`: a client coming back pays no new connection, nor does the NOC
      // (with it, every shed request of the overload bench cost one). The body is left unread.
      return c.json(
        {
          error: "overloaded",
          message: entry.reason === "client_gone"
            ? "The client went away while the request waited; it was not processed"
            : `The NOC is overloaded (${cls} requests: ${
              entry.reason === "queue_full" ? "queue full" : "waited too long"
            }); try again after ${retryAfter} s`,
        },
        503,
      );
    }
    try {
      await next();
    } finally {
      entry.leave();
      // Admitted while its client was there, which left before the answer: work done for no one.
      if (c.req.raw.signal.aborted) {
        deps.metrics.inc("noc_finished_client_gone_total", { class: cls });
      }
    }
  };
}
