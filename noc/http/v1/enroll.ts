/**
 * `POST /v1/enroll`: an appliance registers its keys with a one-time enrolment token.
 *
 * Re-enrolment (a re-imaged appliance enrolling again with new keys): when an active appliance
 * of the same hostname (case-insensitive) is in the token's site, the token's `reenrolment`, or
 * else `settings.reenrolment` (`NOC_REENROLMENT`), decides: `supersede` retires the old record
 * (revoked, linked to the new one, open alerts closed without a notice, history kept) in the
 * enrolment's transaction; `refuse` answers 409 `appliance_exists` and spends nothing. The agent
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
