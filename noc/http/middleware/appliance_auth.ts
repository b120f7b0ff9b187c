/**
 * Authentication of appliance requests: an RFC 9421 signature by the
 * appliance's enrolled Ed25519 key, covering method, authority, path, query
 * and an RFC 9530 Content-Digest; `created` within the allowed skew; a nonce
 * never seen before (checked in the shared database, so across NOC
 * instances). Every refusal is recorded and raises a rate-limited notice.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import {
  applianceComponents,
  SignatureError,
  verifyRequestSignature,
} from "../../../protocol/http/signature.ts";
import { ApiError } from "../../../protocol/http/errors.ts";
import { readBody } from "../../../protocol/http/validate.ts";
import { throttleNotice } from "../../services/notifier.ts";
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
}

/**
 * Records a refused identity and, at most once per notice window across all
 * instances, notifies the administrator (with the count held back).
 */
export async function recordIdentityFailure(deps: AppDeps, f: IdentityFailure): Promise<void> {
  const now = deps.clock.now();
  const queued = await deps.db.begin(async (tx) => {
    await tx`
      insert into auth_failures (at, reason, keyid, method, path, address)
      values (${now}, ${f.reason}, ${f.keyid?.slice(0, 200) ?? null}, ${f.method}, ${
      f.path.slice(0, 500)
    }, ${f.address})`;
    const t = await throttleNotice(
      tx,
      "identity_failure",
      now,
      deps.settings.identityNoticeWindowS,
    );
    if (!t.allowed) return false;
    const more = t.suppressed > 0 ? ` (${t.suppressed} more refused since the last notice)` : "";
    // Only a well-formed UID is shown: the key id is attacker-chosen text.
    const shown = f.keyid === null ? "(none)" : uuidPattern.test(f.keyid) ? f.keyid : "(not a UID)";
    await deps.notifier.enqueue(tx, {
      kind: "identity_failure",
      text: `:warning: Refused an appliance request: ${f.reason} for key "${shown}" ` +
        `on ${f.method} ${f.path} from ${f.address ?? "unknown address"}${more}`,
      payload: {
        ...f,
        keyid: f.keyid?.slice(0, 200) ?? null,
        suppressedSinceLastNotice: t.suppressed,
      },
    }, now);
    return true;
  });
  deps.log.warn("identity_refused", { ...f });
  deps.metrics.inc("noc_identity_refusals_total");
  if (queued) deps.notifier.kick();
}

/**
 * Checks the RFC 9421 signature of request `c` over `body` with the key
 * `resolveKey` finds for its key id (a UUID), and spends its nonce. Every
 * refusal is recorded and answered 401.
 */
export async function verifySignedRequest(
  deps: AppDeps,
  c: Context,
  body: Uint8Array<ArrayBuffer>,
  resolveKey: (keyid: string) => Promise<Ed25519Key>,
): Promise<void> {
  const now = deps.clock.now();
  try {
    const verified = await verifyRequestSignature(
      { method: c.req.method, url: c.req.url, headers: c.req.raw.headers },
      body,
      {
        now: Math.floor(now.getTime() / 1000),
        maxSkewS: deps.settings.maxSkewS,
        requiredComponents: applianceComponents,
        requireNonce: true,
        resolveKey: (keyid) => {
          if (!uuidPattern.test(keyid)) {
            throw new SignatureError(
              "unknown_key",
              `Key id "${keyid.slice(0, 60)}" is not a UUID`,
              keyid,
            );
          }
          return resolveKey(keyid);
        },
      },
    );
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
  } catch (e) {
    if (!(e instanceof SignatureError)) throw e;
    await recordIdentityFailure(deps, {
      reason: e.reason,
      keyid: e.keyid ?? null,
      method: c.req.method,
      path: c.req.path,
      address: clientAddress(c, deps.settings.trustProxy),
    });
    throw new ApiError(401, e.reason, e.message, {}, {
      "www-authenticate": 'Signature realm="noc"',
    });
  }
}

/** Middleware requiring a valid appliance signature; sets `appliance` and `body`. */
export function applianceAuth(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const body = await readBody(c, deps.settings.maxBodyBytes);
    let identity: ApplianceIdentity | undefined;
    const store = deps.checkins;
    await verifySignedRequest(deps, c, body, async (keyid) => {
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
