/** `POST /v1/beats`: the status monitor (spec, FIGURE 7) records a signed SecureBeat. */
import { Hono } from "hono";
import { applianceAuth, clientAddress } from "../middleware/appliance_auth.ts";
import { beatSchema } from "../../../protocol/schemas.ts";
import { parseJsonBody } from "../../../protocol/http/validate.ts";
import { ApiError } from "../../../protocol/http/errors.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The SecureBeat route. */
export function beatRoutes(deps: AppDeps) {
  const schema = beatSchema(deps.settings.maxAppDataBytes);
  return new Hono<AppEnv>().post("/", applianceAuth(deps), async (c) => {
    const beat = parseJsonBody(c, c.get("body"), schema);
    const a = c.get("appliance");
    const now = deps.clock.now();
    const nextDue = new Date(now.getTime() + a.intervalS * 1000);
    const sentAt = new Date(beat.sentAt);
    // Batched with other appliances' beats: one statement updates the status table, keeps the
    // history and resolves a missed-heartbeat alert.
    const written = await deps.checkins.recordBeat({
      uid: a.uid,
      receivedAt: now,
      nextDue,
      seq: beat.seq,
      sentAt,
      report: beat,
      address: clientAddress(c, deps.settings.trustProxy),
      agentVersion: beat.agentVersion ?? null,
    });
    if (!written) throw new ApiError(401, "unknown_key", `Appliance "${a.uid}" is not enrolled`);
    if (written.wasMissing) {
      deps.log.info("appliance_recovered", { uid: a.uid, hostname: a.hostname });
    }
    deps.metrics.inc("noc_beats_total");
    return c.json({
      uid: a.uid,
      receivedAt: now.toISOString(),
      intervalS: a.intervalS,
      nextBeatInS: a.intervalS,
      nextDueAt: nextDue.toISOString(),
      // Where this appliance's catalog server is, when it is not this server (spec, FIGURE 2).
      ...(deps.settings.catalogUrl ? { catalogUrl: deps.settings.catalogUrl } : {}),
    });
  });
}
