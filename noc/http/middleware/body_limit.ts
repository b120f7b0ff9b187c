/**
 * Body limits per sub-app: {@link bounded} mounts a resource's sub-app behind
 * a body limit of its own, so each resource says how large and how slow its
 * bodies may be, inside the router.
 *
 * Used with `requestSizeLimit` (protocol/http/validate.ts), which reads the
 * whole body before the routes run, for sub-apps whose authentication comes
 * first (the admin API, the console). The protocol's routes need none: they
 * authenticate a request before they read its body, and read it with
 * `readBody` (bounded in size and time) only once the signature verifies.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import type { AppEnv } from "../env.ts";

/** `sub` behind `limit`: the same routes (and route types), each body bounded first. */
export function bounded<T extends Hono<AppEnv>>(limit: MiddlewareHandler, sub: T): T {
  return new Hono<AppEnv>().use(limit).route("/", sub) as unknown as T;
}
