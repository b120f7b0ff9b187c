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
 * rate-limited notice. Refusals proven to come from the holder of an enrolled key (the signature
 * verified: a revoked key, a replay, a body not matching its signed digest) have a record budget
 * and a notice window of their own (noc/services/rate_limit.ts `RefusalGate`); every other
 * refusal is anonymous, whatever UID its key id names (UIDs are not secret).
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
import type { RefusalClass } from "../../services/rate_limit.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv, ApplianceIdentity } from "../env.ts";
import { beatsPerAppliance } from "../../services/admission.ts";

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
   * True only when the request's signature verified under the enrolled key its key id names
   * (the sender holds that key, or replays a request signed with it): such refusals have their
   * own record budget and notice window, which anonymous ones cannot spend. A key id alone
   * proves nothing: UIDs are not secret.
   */
  proven?: boolean;
}

/** The notice window (`notice_throttle` key) of each class of refusal. */
const noticeKeys: Record<RefusalClass, string> = {
  anonymous: "identity_failure",
  proven: "identity_failure_proven",
};

/**
 * Counts a refused identity against its client address and, within the budgets of its class
 * (see `RefusalGate`), records it: one row, no transaction, no lock. At most once per notice
 * window and class (per instance in memory, then across instances by {@link claimNoticeWindow}),
 * notifies the administrator with how many of that class were refused since its last notice —
 * whether or not this refusal was recorded. The two classes' windows are independent: neither
 * class's notice closes the other's, so no flood of one keeps the other from the administrator.
 */
export async function recordIdentityFailure(deps: AppDeps, f: IdentityFailure): Promise<void> {
  const proven = f.proven === true && f.keyid !== null;
  deps.metrics.inc("noc_identity_refusals_total");
  const gate = deps.limits.refusals;
  const slot = proven
    ? gate.noteProven(f.keyid!, f.address ?? "unknown")
    : gate.note(f.address ?? "unknown");
  const now = deps.clock.now();
  if (slot.record) {
    deps.log.warn("identity_refused", { ...f, proven, heldBack: slot.heldBack });
    await deps.db.sql`
      insert into auth_failures (at, reason, keyid, method, path, address, held_back, proven)
      values (${now}, ${f.reason}, ${f.keyid?.slice(0, 200) ?? null}, ${f.method}, ${
      f.path.slice(0, 500)
    }, ${f.address}, ${slot.heldBack}, ${proven})`;
  }
  const windowS = deps.settings.identityNoticeWindowS;
  const cls: RefusalClass = proven ? "proven" : "anonymous";
  if (!gate.noticeDue(windowS, cls)) return;
  const queued = await deps.db.begin(async (tx) => {
    const claim = await claimNoticeWindow(tx, noticeKeys[cls], now, windowS);
    if (!claim.won) return false;
    let suppressed = 0;
    if (claim.since !== null) {
      // Refused in this class since its last notice: the rows written since (but not the one
      // that notice named, nor this one), and the refusals their addresses or identities held back.
      const [seen] = await tx<{ n: number }>`
        select ((select count(*) from auth_failures where at >= ${claim.since} and at < ${now}
            and proven = ${proven})
          + (select coalesce(sum(held_back), 0) from auth_failures
             where at > ${claim.since} and at <= ${now} and proven = ${proven}))::int as n`;
      suppressed = Math.max(0, (seen?.n ?? 0) - 1);
    }
    const more = suppressed > 0 ? ` (${suppressed} more refused since the last notice)` : "";
    // Only a well-formed UID is shown: the key id is attacker-chosen text.
    const shown = f.keyid === null ? "(none)" : uuidPattern.test(f.keyid) ? f.keyid : "(not a UID)";
    const text = proven
      ? `:rotating_light: Refused a request signed with the enrolled key of "${shown}": ` +
        `${f.reason} on ${f.method} ${f.path} from ${f.address ?? "unknown address"}${more}`
      : `:warning: Refused an appliance request: ${f.reason} for claimed key "${shown}" ` +
        `(not proven) on ${f.method} ${f.path} from ${f.address ?? "unknown address"}${more}`;
    await deps.notifier.enqueue(tx, {
      kind: "identity_failure",
      text,
      payload: {
        ...f,
        proven,
        keyid: f.keyid?.slice(0, 200) ?? null,
        suppressedSinceLastNotice: suppressed,
      },
    }, now);
    return true;
  });
  if (queued) deps.notifier.kick();
}

/**
 * What a key id resolves to: the enrolled public key, and when the identity may not be served
 * (a revoked key), the refusal to answer — raised only once the signature verifies under `key`,
 * so that it is proof that the sender holds the key. A signature that does not verify is
 * `bad_signature` whatever the identity's state (a forger learns nothing of it).
 */
export interface ResolvedKey {
  /** The identity's enrolled public key. */
  key: Ed25519Key;
  /** The refusal to raise after the signature verifies (a revoked identity), if any. */
  refusal?: SignatureError;
}

/**
 * Authenticates request `c` (behind the clock gate, noc/http/middleware/clock_gate.ts): checks
 * its RFC 9421 signature with the key
 * `resolveKey` finds for its key id (a UUID) before reading any of its body,
 * raises the identity's refusal if it has one (a revoked key), then reads the
 * body (at most `NOC_MAX_BODY_BYTES`, within the body deadline), checks it
 * against the signed `Content-Digest`, and spends the nonce. Every refusal is
 * counted (and, within budget, recorded) and answered 401; only those after the
 * signature verified are proven (`revoked_key`, `bad_digest` of the body,
 * `replayed_signature`). Returns the body and the signature's nonce (verified
 * and spent: never seen before).
 */
export async function verifySignedRequest(
  deps: AppDeps,
  c: Context,
  resolveKey: (keyid: string) => Promise<ResolvedKey>,
  options: { spendNonce?: boolean; beforeBody?: (keyid: string) => void } = {},
): Promise<{ body: Uint8Array<ArrayBuffer>; nonce: string; nonceExpiresAt: Date }> {
  const now = deps.clock.now();
  // An address past its refusals was already answered 429 by refusalGate, in front of every route.
  const address = clientAddress(c, deps.settings.trustProxy);
  const authority = forwardedAuthority(c, deps.settings.trustProxy);
  const req = {
    method: c.req.method,
    url: c.req.url,
    headers: c.req.raw.headers,
    ...(authority === undefined ? {} : { authority }),
  };
  // Set once the signature verified under the enrolled key: refusals from then on are proven.
  let proven = false;
  let refusal: SignatureError | undefined;
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
        const resolved = await resolveKey(keyid);
        refusal = resolved.refusal;
        return resolved.key;
      },
    });
    proven = true;
    if (refusal) throw refusal;
    // Authenticated; what the route bounds per identity before a body (beats in flight).
    options.beforeBody?.(verified.keyid);
    // Only now is the body read.
    const body = await readBody(c, deps.settings.maxBodyBytes, deps.settings.bodyTimeoutS);
    if (verified.coversDigest) await checkBodyDigest(req, body, verified.keyid);
    // Kept well past the signature's validity, so NOC instances with drifting clocks cannot be replayed between.
    const expires = new Date((verified.created + deps.settings.maxSkewS + nonceMarginS) * 1000);
    // Unless the route spends it in its own statement (a SecureBeat's: noc/services/checkins.ts).
    if (options.spendNonce !== false) {
      const fresh = await deps.checkins.spendNonce(verified.keyid, verified.nonce!, expires);
      if (!fresh) throw replayed(verified.keyid);
    }
    return { body, nonce: verified.nonce!, nonceExpiresAt: expires };
  } catch (e) {
    if (!(e instanceof SignatureError)) throw e;
    await recordIdentityFailure(deps, {
      reason: e.reason,
      keyid: e.keyid ?? null,
      method: c.req.method,
      path: c.req.path,
      address,
      proven,
    });
    throw new ApiError(401, e.reason, e.message, {}, {
      "www-authenticate": 'Signature realm="noc"',
    });
  }
}

/** The refusal of a signature whose nonce was seen before. */
export function replayed(keyid: string): SignatureError {
  return new SignatureError("replayed_signature", "Signature nonce was already used", keyid);
}

/**
 * Refuses a request whose signature verified but whose route's own statement found it may not be
 * served (noc/services/checkins.ts `BeatOutcome`): a replayed nonce or a revoked key, both proven
 * (the sender holds the key, or replays what its holder signed). Records it as every refusal is;
 * throws the 401.
 */
export async function refuseVerified(
  deps: AppDeps,
  c: Context,
  uid: string,
  why: "replayed" | "revoked",
): Promise<never> {
  const e: SignatureError = why === "replayed"
    ? replayed(uid)
    : new SignatureError("revoked_key", `Appliance "${uid}" has been revoked`, uid);
  await recordIdentityFailure(deps, {
    reason: e.reason,
    keyid: uid,
    method: c.req.method,
    path: c.req.path,
    address: clientAddress(c, deps.settings.trustProxy),
    proven: true,
  });
  throw new ApiError(401, e.reason, e.message, {}, {
    "www-authenticate": 'Signature realm="noc"',
  });
}

/** Options of {@link applianceAuth}. */
export interface ApplianceAuthOptions {
  /**
   * The route spends the nonce in its own statement, with what it writes (SecureBeats:
   * noc/services/checkins.ts), and refuses a replay with {@link refuseVerified}: the middleware
   * sets `nonceToSpend` instead of spending it. Nothing the route does before that statement
   * may write. The appliance's row may come from this instance's memory
   * (`CheckinStore.findApplianceCached`): that statement checks again that the appliance is
   * enrolled and not revoked, and the route forgets the row when it is not.
   */
  routeSpendsNonce?: boolean;
}

/**
 * Middleware requiring a valid appliance signature; sets `appliance`, `body` and `nonce` (and
 * `nonceToSpend` with `routeSpendsNonce`).
 */
export function applianceAuth(
  deps: AppDeps,
  options: ApplianceAuthOptions = {},
): MiddlewareHandler<AppEnv> {
  const spendNonce = options.routeSpendsNonce !== true;
  return async (c, next) => {
    let identity: ApplianceIdentity | undefined;
    const store = deps.checkins;
    // Before its body is read: the appliance's rate, and for a SecureBeat at most two of one
    // appliance in flight (review 23c: one key trickling beats' bodies held the check-in slots).
    let beatDone: (() => void) | null = null;
    const beforeBody = (uid: string) => {
      deps.limits.appliance.take(uid, `appliance "${uid}"`);
      if (spendNonce) return;
      beatDone = deps.admission.beating(uid);
      if (beatDone === null) {
        throw new ApiError(
          429,
          "rate_limited",
          `Appliance "${uid}" has ${beatsPerAppliance} SecureBeats in flight already`,
          {},
          { "retry-after": "5" },
        );
      }
    };
    try {
      const { body, nonce, nonceExpiresAt } = await verifySignedRequest(deps, c, async (keyid) => {
        // A route that checks the row again in its own statement may take it from memory.
        const row = spendNonce
          ? await store.findAppliance(keyid)
          : await store.findApplianceCached(keyid);
        if (!row) {
          throw new SignatureError("unknown_key", `Appliance "${keyid}" is not enrolled`, keyid);
        }
        const key = await store.publicKey(row.sign_key);
        if (row.revoked_at) {
          // Refused only once the signature verifies: proof that the sender holds the key.
          return {
            key,
            refusal: new SignatureError(
              "revoked_key",
              `Appliance "${keyid}" has been revoked`,
              keyid,
            ),
          };
        }
        identity = {
          uid: row.uid,
          hostname: row.hostname,
          model: row.model,
          site: row.site,
          intervalS: row.interval_s,
        };
        return { key };
      }, { spendNonce, beforeBody });
      c.set("appliance", identity!);
      c.set("body", body);
      c.set("nonce", nonce);
      if (!spendNonce) c.set("nonceToSpend", { value: nonce, expiresAt: nonceExpiresAt });
      await next();
    } finally {
      (beatDone as (() => void) | null)?.();
    }
  };
}
