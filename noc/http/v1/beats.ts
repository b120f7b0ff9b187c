/**
 * `POST /v1/beats`: the status monitor (spec, FIGURE 7) records a signed
 * SecureBeat: the whole report as the appliance's last report, and in its
 * history only the health figures and the cycle's outcome ({@link historyOf}),
 * at most one row per history gap. So what one appliance stores is bounded
 * however large or frequent its reports: one last report (the body limit),
 * and at most retention ÷ gap history rows of at most a few KiB.
 *
 * The beat's `hostname` renames the appliance (its old name goes to its name history), and its
 * `instanceId` is checked against the previous beats' for two devices sharing one identity
 * (noc/services/checkins.ts; docs/security.md, "Cloned identities").
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { applianceAuth, clientAddress, refuseVerified } from "../middleware/appliance_auth.ts";
import { type Beat, beatSchema } from "../../../protocol/schemas.ts";
import { parseJsonBody } from "../../../protocol/http/validate.ts";
import { ApiError } from "../../../protocol/http/errors.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { CatalogTouchRow } from "../../services/checkins.ts";
import type { AppEnv } from "../env.ts";

/** Disks a history row keeps, and the longest mount path it keeps of each. */
const historyDisks = 16;
const historyMount = 64;

/**
 * What the beat history keeps of a report: load, memory, the first 16 disks (mount paths cut to
 * 64 characters), uptime, the cycle's outcome and how many components were reported. Never the
 * application data, the component list or the cycle's messages: those are in the last report
 * only. At most about 2.5 KiB of JSON.
 */
export function historyOf(beat: Beat): Record<string, unknown> {
  const h = beat.health;
  return {
    seq: beat.seq,
    sentAt: beat.sentAt,
    health: {
      load: h.load,
      memory: h.memory,
      disks: h.disks.slice(0, historyDisks).map((d) => ({
        mount: d.mount.slice(0, historyMount),
        totalBytes: d.totalBytes,
        freeBytes: d.freeBytes,
      })),
      uptimeS: h.uptimeS,
    },
    lastCycle: { outcome: beat.lastCycle.outcome },
    components: beat.components.length,
  };
}

/** The answer to a SecureBeat (`POST /v1/beats` 200; the `receipt` of `POST /v1/checkin`). */
export interface BeatAnswer {
  uid: string;
  /** When the NOC recorded it, ISO 8601. */
  receivedAt: string;
  /** The appliance's report interval, seconds (informative: the signed catalog's governs). */
  intervalS: number;
  nextBeatInS: number;
  /** When the next beat is due, ISO 8601. */
  nextDueAt: string;
  /** The catalog server's base URL, only when it runs apart from this server (spec, FIGURE 2). */
  catalogUrl?: string;
}

/**
 * Records the SecureBeat of authenticated request `c` (behind {@link applianceAuth} with
 * `routeSpendsNonce`: its body is read, its nonce spent here with the beat) and returns its answer. Throws {@link ApiError} 400 `invalid_body`
 * for a body that is not a SecureBeat or a `sentAt` beyond the skew tolerance, 401
 * `unknown_key` when the appliance vanished meanwhile, 401 `replayed_signature` for a nonce seen
 * before (nothing written), `revoked_key` when the appliance was revoked since its row was read.
 * Shared by `POST /v1/beats` and
 * `POST /v1/checkin` (noc/http/v1/checkin.ts), which asks `touchCatalog`: the same statement
 * archives the catalog request and reads the catalog's row (`catalog`).
 */
export async function acceptBeat(
  deps: AppDeps,
  c: Context<AppEnv>,
  schema: ReturnType<typeof beatSchema>,
  opts: { touchCatalog?: boolean } = {},
): Promise<{ answer: BeatAnswer; catalog?: CatalogTouchRow }> {
  const beat = parseJsonBody(c, c.get("body"), schema);
  const a = c.get("appliance");
  const now = deps.clock.now();
  const sentAt = new Date(beat.sentAt);
  // Beats are ordered as they arrive; a sentAt far from the NOC's clock is a lie (the request's
  // signature time is held to the same tolerance), and would order reports wrongly.
  const skewS = Math.abs(sentAt.getTime() - now.getTime()) / 1000;
  if (skewS > deps.settings.maxSkewS) {
    throw new ApiError(
      400,
      "invalid_body",
      `Field "sentAt": ${beat.sentAt} is ${Math.round(skewS)} s from the NOC's clock (at most ` +
        `${deps.settings.maxSkewS} s, as for the request's signature): set the appliance's clock`,
      { issues: [{ path: "sentAt", message: "too far from the NOC's clock" }] },
    );
  }
  // Batched with other appliances' beats: one statement spends the request's nonce (nothing
  // above wrote anything), updates the status table, keeps the history and resolves a
  // missed-heartbeat alert.
  const spend = c.get("nonceToSpend");
  const written = await deps.checkins.recordBeat({
    uid: a.uid,
    receivedAt: now,
    seq: beat.seq,
    sentAt,
    report: beat,
    history: historyOf(beat),
    historyMinGapS: deps.settings.historyMinGapS,
    nonce: spend,
    address: clientAddress(c, deps.settings.trustProxy),
    agentVersion: beat.agentVersion ?? null,
    // Issue 21: the agent process (clone detection) and the name the appliance runs under.
    instanceId: beat.instanceId ?? null,
    hostname: beat.hostname ?? null,
    // POST /v1/checkin: the catalog request's time archived, its row read, in the same statement.
    ...(opts.touchCatalog ? { touchCatalog: true } : {}),
  });
  if (written === undefined || written === "revoked") {
    // Deleted or revoked since its row was kept: read afresh next time.
    deps.checkins.forgetAppliance(a.uid);
  }
  if (!written) throw new ApiError(401, "unknown_key", `Appliance "${a.uid}" is not enrolled`);
  if (typeof written === "string") return await refuseVerified(deps, c, a.uid, written);
  if (written.wasMissing) {
    deps.log.info("appliance_recovered", { uid: a.uid, hostname: a.hostname });
  }
  if (written.renamedFrom !== null) {
    deps.log.info("appliance_renamed", {
      uid: a.uid,
      from: written.renamedFrom,
      to: beat.hostname,
    });
  }
  if (written.newIdentityConflict) {
    deps.log.warn("identity_conflict", { uid: a.uid, instanceId: beat.instanceId });
    deps.notifier.kick();
  }
  deps.metrics.inc("noc_beats_total");
  const answer: BeatAnswer = {
    uid: a.uid,
    receivedAt: now.toISOString(),
    intervalS: written.intervalS,
    nextBeatInS: written.intervalS,
    nextDueAt: written.nextDue.toISOString(),
    // Where this appliance's catalog server is, when it is not this server (spec, FIGURE 2).
    ...(deps.settings.catalogUrl ? { catalogUrl: deps.settings.catalogUrl } : {}),
  };
  return { answer, ...(written.catalog ? { catalog: written.catalog } : {}) };
}

/** The SecureBeat route. */
export function beatRoutes(deps: AppDeps) {
  const schema = beatSchema(deps.settings.maxAppDataBytes);
  return new Hono<AppEnv>().post(
    "/",
    applianceAuth(deps, { routeSpendsNonce: true }),
    async (c) => c.json((await acceptBeat(deps, c, schema)).answer),
  );
}
