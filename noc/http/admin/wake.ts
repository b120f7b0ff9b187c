/**
 * `POST /v1/admin/wake`: asks one appliance, a site or the whole fleet to cycle now (a revoked
 * appliance is refused: 409 `appliance_revoked`).
 */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { wakeSchema } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { WakeTarget } from "../../services/wakeups.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The admin wake-up route. */
export function wakeAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().post("/", validate("json", wakeSchema), async (c) => {
    const body = c.req.valid("json");
    let target: WakeTarget;
    if ("uid" in body) {
      const [row] = await deps.db.sql<{ revoked: boolean }>`
        select revoked_at is not null as revoked from appliances where uid = ${body.uid}`;
      if (!row) throw new ApiError(404, "not_found", `Appliance "${body.uid}" does not exist`);
      // A revoked appliance's requests are refused: a wake-up would only make it call in vain.
      if (row.revoked) {
        throw new ApiError(409, "appliance_revoked", `Appliance "${body.uid}" is revoked`);
      }
      target = { type: "appliance", value: body.uid };
    } else if ("site" in body) {
      target = { type: "site", value: body.site };
    } else {
      target = { type: "all", value: null };
    }
    const id = await deps.wakeups.trigger(target, c.get("admin"));
    deps.log.info("wake_requested", { id, target: target.type, value: target.value });
    return c.json({ id, target }, 202);
  });
}
