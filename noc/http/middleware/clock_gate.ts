/**
 * The clock gate: while this instance's last clock check found its clock off the database's
 * beyond `settings.clockToleranceS` (noc/jobs/noc_time.ts), every appliance- and local-server-facing
 * request (`/v1/*` but the admin API) is answered 503 `noc_clock_skew` with `Retry-After`, before
 * anything else is done. Signature times, enrolment-token and grant expiry, nonce retention and due
 * times are all judged on the instance's clock: a wrong one would accept a stale signature or an
 * expired token, and date appliances wrongly. The admin API stays up, so an operator can look.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** Middleware refusing appliance-facing requests while this instance's clock is off (see module doc). */
export function clockGate(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const skewS = deps.checkins.instance.clockSkewS;
    if (skewS !== null && !c.req.path.startsWith("/v1/admin")) {
      throw new ApiError(
        503,
        "noc_clock_skew",
        `This NOC instance's clock is ${Math.abs(skewS)} s ${
          skewS > 0 ? "ahead of" : "behind"
        } its database's: it answers no appliance until they agree`,
        {},
        { "retry-after": "30" },
      );
    }
    await next();
  };
}
