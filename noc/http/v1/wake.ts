/**
 * `GET /v1/wake`: the agent's long poll. It is answered as soon as an admin
 * wakes this appliance, its site or the whole fleet (on any NOC instance), or
 * with `wake: false` after `wait` seconds.
 */
import { Hono } from "hono";
import { applianceAuth } from "../middleware/appliance_auth.ts";
import { wakeQuery } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { ApiError } from "../../../protocol/http/errors.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The long-poll route. */
export function wakeRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().get(
    "/",
    applianceAuth(deps),
    validate("query", wakeQuery),
    async (c) => {
      const { after, wait } = c.req.valid("query");
      const a = c.get("appliance");
      if (deps.wakeups.closed) {
        throw new ApiError(503, "shutting_down", "This NOC instance is shutting down; poll again");
      }
      const answer = await deps.wakeups.wait(
        { uid: a.uid, site: a.site },
        after ?? null,
        // Not tied to the request signal: a poll whose client left ends at its wait time or at shutdown.
        (wait ?? 50) * 1000,
      );
      c.header("cache-control", "no-store");
      return c.json(answer);
    },
  );
}
