/**
 * Download grants: short-lived, signed by the NOC, naming one appliance and
 * one component. A component server — the NOC's own, a local one, or a CDN
 * edge — checks them with the NOC public keys alone, with no database.
 *
 * Format: `base64url(JSON payload) "." base64url(Ed25519 signature)`, the
 * signature over `noc-grant/1\n` followed by the first part.
 *
 * @module
 */
import { z } from "zod";
import {
  type Ed25519Key,
  ed25519Sign,
  ed25519Verify,
  importEd25519Public,
} from "./crypto/ed25519.ts";
import { fromBase64Url, toBase64Url, utf8 } from "./util/encoding.ts";
import type { PublishedKey } from "./keys.ts";

const payloadSchema = z.strictObject({
  u: z.uuid(),
  c: z.number().int().min(1),
  exp: z.number().int(),
  kid: z.string().max(32),
});

/** What a grant allows. */
export type Grant = z.infer<typeof payloadSchema>;

/** A grant that does not allow the download; `reason` is a stable code. */
export class GrantError extends Error {
  /** Creates an error with a stable reason code. */
  constructor(
    readonly reason: "malformed_grant" | "bad_grant" | "expired_grant" | "wrong_component",
    message: string,
  ) {
    super(message);
  }
}

function signed(part: string): Uint8Array<ArrayBuffer> {
  return utf8(`noc-grant/1\n${part}`);
}

/** Issues a grant for appliance `uid` to fetch component `componentId` until `expires`. */
export async function issueGrant(
  signer: { kid: string; privateKey: Ed25519Key },
  uid: string,
  componentId: number,
  expires: Date,
): Promise<string> {
  const payload: Grant = {
    u: uid,
    c: componentId,
    exp: Math.floor(expires.getTime() / 1000),
    kid: signer.kid,
  };
  const part = toBase64Url(utf8(JSON.stringify(payload)));
  return `${part}.${toBase64Url(await ed25519Sign(signer.privateKey, signed(part)))}`;
}

/** Checks a grant for `componentId` at `now` against the NOC keys; returns it, or throws {@link GrantError}. */
export async function verifyGrant(
  token: string,
  componentId: number,
  keys: readonly PublishedKey[],
  now: Date,
): Promise<Grant> {
  const [part, sig, extra] = token.split(".");
  if (!part || !sig || extra !== undefined || token.length > 1000) {
    throw new GrantError("malformed_grant", "Download grant is malformed");
  }
  let grant: Grant;
  let sigBytes: Uint8Array<ArrayBuffer>;
  try {
    grant = payloadSchema.parse(JSON.parse(new TextDecoder().decode(fromBase64Url(part))));
    sigBytes = fromBase64Url(sig);
  } catch {
    throw new GrantError("malformed_grant", "Download grant is malformed");
  }
  const key = keys.find((k) => k.kid === grant.kid && k.use.includes("catalog"));
  if (!key || (key.notAfter && Date.parse(key.notAfter) <= now.getTime())) {
    throw new GrantError("bad_grant", `Download grant is signed by unknown key "${grant.kid}"`);
  }
  const ok = await ed25519Verify(
    await importEd25519Public(fromBase64Url(key.publicKey)),
    sigBytes,
    signed(part),
  );
  if (!ok) throw new GrantError("bad_grant", "Download grant signature does not verify");
  if (grant.c !== componentId) {
    throw new GrantError(
      "wrong_component",
      `Download grant is for component ${grant.c}, not ${componentId}`,
    );
  }
  if (grant.exp * 1000 <= now.getTime()) {
    throw new GrantError(
      "expired_grant",
      `Download grant expired at ${new Date(grant.exp * 1000).toISOString()}`,
    );
  }
  return grant;
}
