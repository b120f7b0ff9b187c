/** `POST /v1/beats`: the status monitor (spec, FIGURE 7) records a signed SecureBeat. */
import { Hono } from "hono";
import { applianceAuth, clientAddress } from "../lib/appliance_auth.ts";
import { beatSchema } from "../lib/schemas.ts";
import { parseJsonBody } from "../lib/validate.ts";
import type { AppDeps, AppEnv } from "../lib/deps.ts";

/** The SecureBeat route. */
export function beatRoutes(deps: AppDeps) {
  const schema = beatSchema(deps.settings.maxAppDataBytes);
  return new Hono<AppEnv>().post("/", applianceAuth(deps), async (c) => {
    const beat = parseJsonBody(c, c.get("body"), schema);
    const a = c.get("appliance");
    const now = deps.clock.now();
    const nextDue = new Date(now.getTime() + a.intervalS * 1000);
    const sentAt = new Date(beat.sentAt);
    const recovered = await deps.db.begin(async (tx) => {
      const [row] = await tx<{ was_missing: Date | null }>`
        with prev as (select uid, missing_since from appliances where uid = ${a.uid} for update)
        update appliances ap set last_beat_at = ${now}, next_due_at = ${nextDue}, missing_since = null,
          -- A beat delayed past a newer one still counts as a sign of life, but does not replace the newer report.
          last_seq = case when ap.last_sent_at > ${sentAt} then ap.last_seq else ${beat.seq} end,
          last_report = case when ap.last_sent_at > ${sentAt} then ap.last_report else ${beat} end,
          last_sent_at = greatest(ap.last_sent_at, ${sentAt}), last_address = ${
        clientAddress(c, deps.settings.trustProxy)
      },
          agent_version = coalesce(${beat.agentVersion ?? null}, ap.agent_version)
        from prev where ap.uid = prev.uid
        returning prev.missing_since as was_missing`;
      await tx`
        insert into beats (uid, received_at, seq, sent_at, report)
        values (${a.uid}, ${now}, ${beat.seq}, ${sentAt}, ${beat})`;
      if (!row?.was_missing) return false;
      await tx`
        update alerts set resolved_at = ${now}
        where uid = ${a.uid} and kind = 'missed_heartbeat' and resolved_at is null`;
      return true;
    });
    if (recovered) deps.log.info("appliance_recovered", { uid: a.uid, hostname: a.hostname });
    deps.metrics.inc("noc_beats_total");
    return c.json({
      uid: a.uid,
      receivedAt: now.toISOString(),
      intervalS: a.intervalS,
      nextBeatInS: a.intervalS,
      nextDueAt: nextDue.toISOString(),
    });
  });
}
