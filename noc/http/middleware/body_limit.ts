/**
 * Body limits per sub-app: {@link bounded} mounts a resource's sub-app behind
 * a body limit of its own, so each resource says how large and how slow its
 * bodies may be, inside the router.
 *
 * Two kinds of limit: `requestSizeLimit` (protocol/http/validate.ts) reads the
 * whole body before the routes run, for sub-apps whose authentication comes
 * first (the admin API); {@link streamingLimit} reads nothing itself, for
 * sub-apps that authenticate a request before they read its body (appliance
 * and local-server signatures, whose body is read only once the signature
 * verifies).
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { limitStream } from "../../../protocol/util/bytes.ts";
import type { AppEnv } from "../env.ts";

/** `sub` behind `limit`: the same routes (and route types), each body bounded first. */
export function bounded<T extends Hono<AppEnv>>(limit: MiddlewareHandler, sub: T): T {
  return new Hono<AppEnv>().use(limit).route("/", sub) as unknown as T;
}

/**
 * A body limit that reads nothing: a declared `Content-Length` over `maxBytes` is refused (413)
 * at once, and the body stream is wrapped so that whoever reads it later — only after the
 * request is authenticated — gets at most `maxBytes`, all within `timeoutS` of starting to read
 * (else 413 or 408). A request whose body nobody reads costs no memory.
 */
export function streamingLimit(maxBytes: number, timeoutS: number): MiddlewareHandler {
  return async (c, next) => {
    const len = c.req.header("content-length");
    if (len !== undefined && Number(len) > maxBytes) {
      throw new ApiError(413, "body_too_large", `Request body is larger than ${maxBytes} bytes`);
    }
    const stream = c.req.raw.body;
    if (stream) {
      const limited = limitStream(stream, {
        maxBytes,
        onTooLarge: () =>
          new ApiError(413, "body_too_large", `Request body is larger than ${maxBytes} bytes`),
        deadlineS: timeoutS,
        onLate: () =>
          new ApiError(408, "request_timeout", `Request body did not arrive within ${timeoutS} s`),
      });
      c.req.raw = new Request(c.req.raw, { body: ReadableStream.from(limited) });
    }
    await next();
  };
}
