/**
 * `POST /v1/enroll`: an appliance registers its keys with a one-time enrolment token.
 *
 * Re-enrolment (a re-imaged appliance enrolling again with new keys): when an active appliance
 * of the same hostname (case-insensitive) is in the token's site, the token's `reenrolment`, or
 * else `settings.reenrolment` (`NOC_REENROLMENT`), decides: `supersede` retires the old record
 * (revoked, linked to the new one, open alerts closed without a recovered notice, history kept,
 * and one `appliance_superseded` notice to the admin) in the enrolment's transaction; `refuse` answers 409 `appliance_exists` and spends nothing. The agent
 * reports no hardware identity, so the name is what identifies the appliance.
 *
 * @module
 */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { enrollSchema } from "../../../protocol/schemas.ts";
import { claimEnrollmentToken } from "../../services/enrollment_tokens.ts";
import { parseJsonBody, readBody } from "../../../protocol/http/validate.ts";
import { clientAddress } from "../middleware/appliance_auth.ts";
import { publishedKeys } from "../../services/publishing.ts";
import {
  checkOfferedKeys,
  limitEnrolments,
  namesakesAllowed,
  recordingRefusals,
} from "../middleware/enrolment.ts";
import { lockNamesakes, retireSuperseded } from "../../services/appliances.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The enrolment route. */
export function enrollRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().post("/", async (c) => {
    limitEnrolments(deps, c);
    const input = parseJsonBody(
      c,
      // The token is the authentication, and it is in the body: read after the address's budget.
      await readBody(c, 16 * 1024, deps.settings.bodyTimeoutS),
      enrollSchema,
    );
    await checkOfferedKeys([
      { field: "signingKey", value: input.signingKey, alg: "Ed25519" },
      { field: "encryptionKey", value: input.encryptionKey, alg: "X25519" },
    ]);
    const now = deps.clock.now();
    const uid = crypto.randomUUID();
    const intervalS = deps.settings.reportIntervalS;
    const appliance = await recordingRefusals(deps, c, () =>
      deps.db.begin(async (tx) => {
        const tok = await claimEnrollmentToken(tx, input.token, "appliance", uid, now);
        const namesakes = await lockNamesakes(tx, tok.site, input.hostname);
        namesakesAllowed(namesakes, {
          hostname: input.hostname,
          site: tok.site,
          policy: tok.reenrolment ?? deps.settings.reenrolment,
        });
        const inserted = await tx<{ uid: string }>`
        insert into appliances (uid, model, hostname, site, channel, tags, sign_key, enc_key, agent_version,
          interval_s, enrolled_at, enrollment_token_id, next_due_at, last_address, supersedes)
        values (${uid}, ${input.model}, ${input.hostname}, ${tok.site}, ${
          tok.channel ?? "stable"
        }, ${tok.tags},
          ${input.signingKey}, ${input.encryptionKey}, ${
          input.agentVersion ?? null
        }, ${intervalS}, ${now},
          ${tok.id}, ${new Date(now.getTime() + intervalS * 1000)}, ${
          clientAddress(c, deps.settings.trustProxy)
        }, ${namesakes}::uuid[])
        on conflict (sign_key) do nothing
        returning uid`;
        if (inserted.length === 0) {
          throw new ApiError(
            409,
            "key_in_use",
            "Signing key is already enrolled for another appliance",
          );
        }
        if (namesakes.length > 0) {
          // Retiring a record is never silent: the admin hears of it, as a notice, whoever held
          // the token (a stolen one can knock out a live appliance of the name; this says so).
          const olds = await tx<{ uid: string; last_beat_at: Date | null; open_alerts: number }>`
            select a.uid, a.last_beat_at, (select count(*)::int from alerts al
              where al.uid = a.uid and al.resolved_at is null) as open_alerts
            from appliances a where a.uid = any(${namesakes}::uuid[]) order by a.uid`;
          const address = clientAddress(c, deps.settings.trustProxy);
          await deps.notifier.enqueue(tx, {
            kind: "appliance_superseded",
            uid,
            text: `:recycle: ${input.hostname}${
              tok.site ? ` (site ${tok.site})` : ""
            } enrolled again with new keys as ${uid} from ${address}: ${
              olds.map((o) =>
                `${o.uid} retired (last beat ${o.last_beat_at?.toISOString() ?? "never"}${
                  o.open_alerts > 0 ? `, ${o.open_alerts} open alert(s) closed` : ""
                })`
              ).join("; ")
            }. Not a re-image? Revoke ${uid} and enrol the appliance again.`,
            payload: {
              hostname: input.hostname,
              site: tok.site,
              supersedes: olds.map((o) => ({
                uid: o.uid,
                lastBeatAt: o.last_beat_at?.toISOString() ?? null,
                openAlertsClosed: o.open_alerts,
              })),
              enrollmentTokenId: tok.id,
              address,
            },
          }, now);
        }
        await retireSuperseded(tx, namesakes, uid, now);
        return {
          site: tok.site,
          channel: tok.channel ?? "stable",
          tags: tok.tags,
          supersedes: namesakes,
        };
      }));
    deps.log.info("appliance_enrolled", {
      uid,
      hostname: input.hostname,
      model: input.model,
      site: appliance.site,
    });
    if (appliance.supersedes.length > 0) {
      deps.notifier.kick();
      deps.log.info("appliance_superseded", {
        uid,
        hostname: input.hostname,
        site: appliance.site,
        superseded: appliance.supersedes,
      });
    }
    return c.json({
      uid,
      intervalS,
      nocKeys: await publishedKeys(deps),
      serverTime: now.toISOString(),
      ...appliance,
    }, 201);
  });
}
