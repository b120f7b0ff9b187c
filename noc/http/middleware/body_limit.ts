/**
 * Body limits per sub-app: {@link bounded} mounts a resource's sub-app behind
 * a `requestSizeLimit` of its own (protocol/http/validate.ts), so each
 * resource says how large and how slow its bodies may be, inside the router.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import type { AppEnv } from "../env.ts";

/** `sub` behind `limit`: the same routes (and route types), each body bounded first. */
export function bounded<T extends Hono<AppEnv>>(limit: MiddlewareHandler, sub: T): T {
  return new Hono<AppEnv>().use(limit).route("/", sub) as unknown as T;
}
