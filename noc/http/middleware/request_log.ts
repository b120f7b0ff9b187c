/**
 * The request log and the request-duration histogram: one JSON line per
 * request (per `NOC_REQUEST_LOG`: all, errors and slow ones, or off), every
 * log line written while the request runs carrying its request id (from
 * `hono/request-id`), and `noc_http_request_duration_seconds` by route
 * pattern, never by path, so the series stay bounded however many
 * appliances.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { inRequest } from "../../../protocol/util/log.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

const knownMethods = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** Middleware logging each request and observing its duration; needs `requestId()` before it. */
export function requestLog(deps: Pick<AppDeps, "log" | "metrics" | "settings">): MiddlewareHandler<
  AppEnv
> {
  return async (c, next) => {
    const id = c.get("requestId");
    const started = performance.now();
    await inRequest(id, next);
    const seconds = (performance.now() - started) / 1000;
    const route = c.req.matchedRoutes.filter((r) => r.method !== "ALL").at(-1)?.path ??
      "unmatched";
    deps.metrics.observe("noc_http_request_duration_seconds", {
      // Bounded: a client cannot mint new series with made-up methods.
      method: knownMethods.has(c.req.method) ? c.req.method : "other",
      route,
      status: `${Math.floor(c.res.status / 100)}xx`,
    }, seconds);
    const mode = deps.settings.requestLog;
    if (mode === "off" || (mode === "errors" && c.res.status < 400 && seconds < 1)) return;
    // Shed (503 overloaded): counted in noc_shed_total; a line each only with `all`, since under
    // overload one a request would add to the load (thousands a second).
    if (mode === "errors" && c.get("shed") !== undefined) return;
    deps.log.info("request", {
      requestId: id,
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(seconds * 10000) / 10,
      // The part of it spent waiting for admission (noc/http/middleware/admission.ts), and why
      // it was shed when it was (queue_full, queue_timeout, client_gone, address_busy).
      ...(c.get("queuedMs") !== undefined ? { queuedMs: c.get("queuedMs") } : {}),
      ...(c.get("shed") ? { shed: c.get("shed") } : {}),
    });
  };
}
