/**
 * Authentication of appliance requests: an RFC 9421 signature by the
 * appliance's enrolled Ed25519 key, covering method, authority (one of this
 * NOC's, see noc/services/authorities.ts), path, query and an RFC 9530
 * Content-Digest; `created` within the allowed skew; a nonce never seen before
 * (checked in the shared database, so across NOC instances).
 *
 * Order: an address that has used up its refusals is answered 429 first; then
 * the signature is verified over its headers (the digest header's value, not
 * the body), so only a holder of an enrolled key makes the NOC read a body;
 * then the body is read (bounded in size and time) and checked against the
 * digest; then the nonce is spent. Refusals are cheap: each is counted per
 * address (an IPv6 one by its /64), and only a bounded number is recorded, with a
 * rate-limited notice; refusals naming an enrolled identity have a record budget and a
 * notice window of their own (noc/services/rate_limit.ts `RefusalGate`).
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import {
  applianceComponents,
  checkBodyDigest,
  SignatureError,
  verifySignatureHeaders,
} from "../../../protocol/http/signature.ts";
import { ApiError } from "../../../protocol/http/errors.ts";
import { readBody } from "../../../protocol/http/validate.ts";
import { claimNoticeWindow } from "../../services/notifier.ts";
import type { Ed25519Key } from "../../../protocol/crypto/ed25519.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv, ApplianceIdentity } from "../env.ts";

/** Seconds a nonce is remembered beyond its signature's validity window. */
const nonceMarginS = 600;

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The client's address: the socket's peer, or — only when the NOC is told it
 * sits behind a trusted proxy — the last X-Forwarded-For hop that proxy added.
 */
export function clientAddress(c: Context, trustProxy: boolean): string | null {
  if (trustProxy) {
    const hops = c.req.header("x-forwarded-for")?.split(",").map((h) => h.trim()).filter((h) =>
      h !== ""
    );
    const last = hops?.[hops.length - 1];
    if (last && /^[0-9A-Fa-f:.]{2,45}$/.test(last)) return last;
  }
  const info = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return info?.remoteAddr?.hostname ?? null;
}

/**
 * The authority the client addressed: only behind a trusted proxy (`NOC_TRUST_PROXY`), the last
 * `X-Forwarded-Host` value that proxy set; otherwise undefined (the request URL's, from `Host`).
 */
export function forwardedAuthority(c: Context, trustProxy: boolean): string | undefined {
  if (!trustProxy) return undefined;
  const last = c.req.header("x-forwarded-host")?.split(",").map((h) => h.trim()).filter((h) =>
    h !== ""
  ).at(-1);
  return last && last.length <= 300 ? last : undefined;
}

/**
 * Middleware answering 429 to a client address that has used up its refusals, before anything
 * else is done for its request (no body read, no database).
 */
export function refusalGate(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    deps.limits.refusals.check(clientAddress(c, deps.settings.trustProxy) ?? "unknown");
    await next();
  };
}

/** What was refused, for the record. */
export interface IdentityFailure {
  /** Stable reason code. */
  reason: string;
  /** The key id (UID) claimed, if any. */
  keyid: string | null;
  /** Request method. */
  method: string;
  /** Request path. */
  path: string;
  /** Client address. */
  address: string | null;
  /**
   * True when the key id named an enrolled identity (its key was found, or it is revoked): such
   * refusals have their own record budget and notice window, which anonymous ones cannot spend.
   */
  identified?: boolean;
}

/** The notice window (`notice_throttle` key) of each class of refusal. */
const noticeKeys = { anonymous: "identity_failure", identified: "identity_failure_enrolled" };

/**
 * Counts a refused identity against its client address and, within the budgets of its class
 * (see `RefusalGate`), records it: one row, no transaction, no lock. At most once per notice
 * window and class (per instance in memory, then across instances by {@link claimNoticeWindow}),
 * notifies the administrator with how many were refused since the last notice — whether or not
 * this refusal was recorded. A refusal naming an enrolled identity claims its own window (and
 * closes the anonymous one), so no anonymous flood can keep it from the administrator.
 */
export async function recordIdentityFailure(deps: AppDeps, f: IdentityFailure): Promise<void> {
  const identified = f.identified === true && f.keyid !== null;
  deps.metrics.inc("noc_identity_refusals_total");
  const gate = deps.limits.refusals;
  const slot = identified
    ? gate.noteIdentity(f.keyid!, f.address ?? "unknown")
    : gate.note(f.address ?? "unknown");
  const now = deps.clock.now();
  if (slot.record) {
    deps.log.warn("identity_refused", { ...f, identified, heldBack: slot.heldBack });
    await deps.db.sql`
      insert into auth_failures (at, reason, keyid, method, path, address, held_back, identified)
      values (${now}, ${f.reason}, ${f.keyid?.slice(0, 200) ?? null}, ${f.method}, ${
      f.path.slice(0, 500)
    }, ${f.address}, ${slot.heldBack}, ${identified})`;
  }
  const windowS = deps.settings.identityNoticeWindowS;
  const cls = identified ? "identified" : "anonymous";
  if (!gate.noticeDue(windowS, cls)) return;
  const queued = await deps.db.begin(async (tx) => {
    const claim = await claimNoticeWindow(tx, noticeKeys[cls], now, windowS);
    if (!claim.won) return false;
    // An identified notice names the worse event: the anonymous window is closed with it.
    if (identified) await claimNoticeWindow(tx, noticeKeys.anonymous, now, windowS);
    let suppressed = 0;
    if (claim.since !== null) {
      // Refused since the last notice of this class: the rows written since (but not the one
      // that notice named, nor this one), and the refusals their addresses or identities held back.
      const [seen] = await tx<{ n: number }>`
        select ((select count(*) from auth_failures where at >= ${claim.since} and at < ${now}
            and (identified or not ${identified}))
          + (select coalesce(sum(held_back), 0) from auth_failures
             where at > ${claim.since} and at <= ${now} and (identified or not ${identified})))::int as n`;
      suppressed = Math.max(0, (seen?.n ?? 0) - 1);
    }
    const more = suppressed > 0 ? ` (${suppressed} more refused since the last notice)` : "";
    // Only a well-formed UID is shown: the key id is attacker-chosen text.
    const shown = f.keyid === null ? "(none)" : uuidPattern.test(f.keyid) ? f.keyid : "(not a UID)";
    const what = identified ? "a request signed for an enrolled identity" : "an appliance request";
    await deps.notifier.enqueue(tx, {
      kind: "identity_failure",
      text: `:warning: Refused ${what}: ${f.reason} for key "${shown}" ` +
        `on ${f.method} ${f.path} from ${f.address ?? "unknown address"}${more}`,
      payload: {
        ...f,
        identified,
        keyid: f.keyid?.slice(0, 200) ?? null,
        suppressedSinceLastNotice: suppressed,
      },
    }, now);
    return true;
  });
  if (queued) deps.notifier.kick();
}

/**
 * Authenticates request `c`: checks its RFC 9421 signature with the key
 * `resolveKey` finds for its key id (a UUID) before reading any of its body,
 * then reads the body (at most `NOC_MAX_BODY_BYTES`, within the body
 * deadline), checks it against the signed `Content-Digest`, and spends the
 * nonce. Every refusal is counted (and, within budget, recorded) and answered
 * 401. Returns the body.
 */
export async function verifySignedRequest(
  deps: AppDeps,
  c: Context,
  resolveKey: (keyid: string) => Promise<Ed25519Key>,
): Promise<Uint8Array<ArrayBuffer>> {
  const now = deps.clock.now();
  const address = clientAddress(c, deps.settings.trustProxy);
  deps.limits.refusals.check(address ?? "unknown");
  const authority = forwardedAuthority(c, deps.settings.trustProxy);
  const req = {
    method: c.req.method,
    url: c.req.url,
    headers: c.req.raw.headers,
    ...(authority === undefined ? {} : { authority }),
  };
  // Set once the key id is found enrolled: refusals from then on name an enrolled identity.
  let enrolled = false;
  try {
    const verified = await verifySignatureHeaders(req, {
      now: Math.floor(now.getTime() / 1000),
      maxSkewS: deps.settings.maxSkewS,
      requiredComponents: applianceComponents,
      requireNonce: true,
      acceptAuthority: (a) => deps.authorities.accepts(a),
      resolveKey: async (keyid) => {
        if (!uuidPattern.test(keyid)) {
          throw new SignatureError(
            "unknown_key",
            `Key id "${keyid.slice(0, 60)}" is not a UUID`,
            keyid,
          );
        }
        const key = await resolveKey(keyid);
        enrolled = true;
        return key;
      },
    });
    // Authenticated: only now is the body read.
    const body = await readBody(c, deps.settings.maxBodyBytes, deps.settings.bodyTimeoutS);
    if (verified.coversDigest) await checkBodyDigest(req, body, verified.keyid);
    // Kept well past the signature's validity, so NOC instances with drifting clocks cannot be replayed between.
    const expires = new Date((verified.created + deps.settings.maxSkewS + nonceMarginS) * 1000);
    const fresh = await deps.checkins.spendNonce(verified.keyid, verified.nonce!, expires);
    if (!fresh) {
      throw new SignatureError(
        "replayed_signature",
        "Signature nonce was already used",
        verified.keyid,
      );
    }
    return body;
  } catch (e) {
    if (!(e instanceof SignatureError)) throw e;
    await recordIdentityFailure(deps, {
      reason: e.reason,
      keyid: e.keyid ?? null,
      method: c.req.method,
      path: c.req.path,
      address,
      identified: enrolled || e.reason === "revoked_key",
    });
    throw new ApiError(401, e.reason, e.message, {}, {
      "www-authenticate": 'Signature realm="noc"',
    });
  }
}

/** Middleware requiring a valid appliance signature; sets `appliance` and `body`. */
export function applianceAuth(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    let identity: ApplianceIdentity | undefined;
    const store = deps.checkins;
    const body = await verifySignedRequest(deps, c, async (keyid) => {
      const row = await store.findAppliance(keyid);
      if (!row) {
        throw new SignatureError(
          "unknown_key",
          `Appliance "${keyid}" is not enrolled`,
          keyid,
        );
      }
      if (row.revoked_at) {
        throw new SignatureError(
          "revoked_key",
          `Appliance "${keyid}" has been revoked`,
          keyid,
        );
      }
      identity = {
        uid: row.uid,
        hostname: row.hostname,
        model: row.model,
        site: row.site,
        intervalS: row.interval_s,
      };
      return await store.publicKey(row.sign_key);
    });
    deps.limits.appliance.take(identity!.uid, `appliance "${identity!.uid}"`);
    c.set("appliance", identity!);
    c.set("body", body);
    await next();
  };
}
