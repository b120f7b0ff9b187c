/** API errors and the one place they become JSON responses. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "../util/log.ts";
import { PackageError } from "../package/format.ts";
import { TarError } from "../package/tar.ts";
import { PayloadError } from "../package/payload.ts";

/** An error meant for the client: HTTP status, stable code, sentence-case message, optional details. */
export class ApiError extends HTTPException {
  /** Creates an error answered as `{ error: code, message, ...details }`. */
  constructor(
    status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(status, { message });
  }
}

const unavailableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "57P01",
  "57P02",
  "57P03",
  "53300",
]);

/** True when `err` says the database cannot be reached right now. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && unavailableCodes.has(code);
}

/**
 * The app's `onError` handler: API errors as JSON (a package that is not valid `bad_package`, a
 * package payload no agent could install `bad_payload`), database outages as 503, anything else as
 * a logged 500.
 */
export function errorHandler(log: Logger) {
  return (err: Error, c: Context): Response => {
    if (err instanceof ApiError) {
      return c.json(
        { error: err.code, message: err.message, ...err.details },
        err.status,
        err.headers,
      );
    }
    if (err instanceof PackageError) {
      return c.json({ error: "bad_package", reason: err.reason, message: err.message }, 400);
    }
    if (err instanceof PayloadError) {
      return c.json({ error: "bad_payload", message: err.message }, 400);
    }
    if (err instanceof TarError) {
      return c.json({ error: "bad_archive", message: err.message }, 400);
    }
    if (err instanceof HTTPException) {
      const malformed = /malformed json/i.test(err.message);
      return c.json(
        {
          error: malformed ? "malformed_json" : "bad_request",
          message: malformed ? "Request body is not valid JSON" : err.message || "Bad request",
        },
        err.status,
      );
    }
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && /^22[0-9A-Z]{3}$/.test(code)) {
      log.warn("data_exception", { code, message: err.message, path: c.req.path });
      return c.json({
        error: "invalid_input",
        message: `A value is not acceptable: ${err.message}`,
      }, 400);
    }
    if (isDatabaseUnavailable(err)) {
      log.error("database_unavailable", { message: err.message, path: c.req.path });
      return c.json(
        { error: "unavailable", message: "The NOC database is unreachable; retry later" },
        503,
        { "retry-after": "30" },
      );
    }
    log.error("unhandled_error", { message: err.message, stack: err.stack, path: c.req.path });
    return c.json({ error: "internal", message: "Internal error" }, 500);
  };
}
