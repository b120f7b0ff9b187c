/**
 * RFC 9421 HTTP Message Signatures for requests, with Ed25519: building the
 * signature base, signing, and verifying under a policy (required components,
 * time window, nonce).
 *
 * @module
 */
import { contentDigest, DigestError, verifyContentDigest } from "./content_digest.ts";
import { type Ed25519Key, ed25519Sign, ed25519Verify } from "../crypto/ed25519.ts";
import {
  type InnerList,
  isInnerList,
  type Params,
  parseDictionary,
  serializeInnerList,
  StructuredFieldError,
} from "./structured_fields.ts";
import { toBase64, utf8 } from "../util/encoding.ts";

/** The parts of a request that a signature can cover. */
export interface SignableRequest {
  /** HTTP method. */
  method: string;
  /** Absolute request URL. */
  url: string;
  /** Request headers. */
  headers: Headers;
  /**
   * The request's authority as the client addressed it, when it differs from the URL's (behind a
   * trusted proxy: its `X-Forwarded-Host`); `@authority` is this, lower-cased, when given.
   */
  authority?: string;
}

/** Why a signature was refused; `reason` is a stable machine-readable code. */
export class SignatureError extends Error {
  /** Creates an error with a stable `reason` code and the key id when known. */
  constructor(
    readonly reason:
      | "missing_signature"
      | "malformed_signature"
      | "unsupported_signature"
      | "missing_components"
      | "clock_skew"
      | "expired_signature"
      | "missing_nonce"
      | "bad_digest"
      | "unknown_key"
      | "revoked_key"
      | "bad_signature"
      | "replayed_signature"
      | "wrong_authority",
    message: string,
    readonly keyid?: string,
  ) {
    super(message);
  }
}

const derived = new Set([
  "@method",
  "@target-uri",
  "@authority",
  "@scheme",
  "@request-target",
  "@path",
  "@query",
]);

/**
 * The value of one covered component of `req`, as RFC 9421 §2 defines it. `url` is `req.url`
 * parsed, when the caller has it (a signature base parses it once, not once per component).
 */
export function componentValue(
  req: SignableRequest,
  name: string,
  url: URL = new URL(req.url),
): string {
  if (name.startsWith("@")) return derivedValue(req, name, url);
  if (!/^[!#$%&'*+.^_`|~0-9a-z-]{1,64}$/.test(name)) {
    throw new SignatureError(
      "malformed_signature",
      `Component "${name.slice(0, 64)}" is not a lower-case header name`,
    );
  }
  const v = req.headers.get(name);
  if (v === null) {
    throw new SignatureError(
      "missing_components",
      `Covered header "${name}" is not in the request`,
    );
  }
  return v.trim().replace(/\s*\r?\n\s*/g, " ");
}

/** A derived component's value (RFC 9421 §2.2). */
function derivedValue(req: SignableRequest, name: string, url: URL): string {
  switch (name) {
    case "@method":
      return req.method;
    case "@target-uri":
      return url.href;
    case "@authority":
      return (req.authority ?? url.host).toLowerCase();
    case "@scheme":
      return url.protocol.slice(0, -1).toLowerCase();
    case "@request-target":
      return url.pathname + url.search;
    case "@path":
      return url.pathname || "/";
    case "@query":
      return url.search || "?";
  }
  throw new SignatureError("unsupported_signature", `Component "${name}" is not supported`);
}

/** The signature base for `req` under the signature parameters `list` (RFC 9421 §2.5). */
export function signatureBase(req: SignableRequest, list: InnerList): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  const url = new URL(req.url);
  for (const item of list.items) {
    if (typeof item.value !== "string") {
      throw new SignatureError("malformed_signature", "Covered components must be strings");
    }
    if (item.params.length > 0) {
      throw new SignatureError(
        "unsupported_signature",
        `Component parameters on "${item.value}" are not supported`,
      );
    }
    if (seen.has(item.value)) {
      throw new SignatureError("malformed_signature", `Component "${item.value}" is covered twice`);
    }
    seen.add(item.value);
    lines.push(`"${item.value}": ${componentValue(req, item.value, url)}`);
  }
  lines.push(`"@signature-params": ${serializeInnerList(list)}`);
  return lines.join("\n");
}

/** What {@link signRequest} needs. */
export interface SignOptions {
  /** The signer's Ed25519 private key. */
  privateKey: Ed25519Key;
  /** The key id the verifier looks the public key up by (an appliance's UID). */
  keyid: string;
  /** Signing time, Unix seconds. */
  created: number;
  /** A fresh random value; omitted when absent. */
  nonce?: string;
  /** Components to cover; the appliance default covers method, authority, path, query and digest. */
  components?: readonly string[];
  /** Signature label; `sig1` by default. */
  label?: string;
  /** Whether to state `alg="ed25519"`; true by default. */
  withAlg?: boolean;
}

/** The components every appliance request must cover. */
export const applianceComponents = [
  "@method",
  "@authority",
  "@path",
  "@query",
  "content-digest",
] as const;

/**
 * Signs a request in place: sets `Content-Digest` (when covered and absent),
 * `Signature-Input` and `Signature`.
 */
export async function signRequest(
  req: SignableRequest & { body?: Uint8Array<ArrayBuffer> },
  options: SignOptions,
): Promise<void> {
  const components = options.components ?? applianceComponents;
  if (components.includes("content-digest") && !req.headers.has("content-digest")) {
    req.headers.set("content-digest", await contentDigest(req.body ?? new Uint8Array()));
  }
  const params: Params = [["created", options.created], ["keyid", options.keyid]];
  if (options.nonce !== undefined) params.push(["nonce", options.nonce]);
  if (options.withAlg !== false) params.push(["alg", "ed25519"]);
  const list: InnerList = { items: components.map((c) => ({ value: c, params: [] })), params };
  const base = signatureBase(req, list);
  const sig = await ed25519Sign(options.privateKey, utf8(base));
  const label = options.label ?? "sig1";
  req.headers.set("signature-input", `${label}=${serializeInnerList(list)}`);
  req.headers.set("signature", `${label}=:${toBase64(sig)}:`);
}

/** The rules a signature must satisfy to be accepted. */
export interface VerifyPolicy {
  /** The verifier's current time, Unix seconds. */
  now: number;
  /** How far `created` may be from `now`, seconds. */
  maxSkewS: number;
  /** Components that must be covered. */
  requiredComponents: readonly string[];
  /** Whether a `nonce` parameter is required. */
  requireNonce: boolean;
  /** Returns the public key for `keyid`, or throws a {@link SignatureError}. */
  resolveKey(keyid: string): Promise<Ed25519Key>;
  /**
   * Whether the signed `@authority` names this server (RFC 9421 §2.2.3). When given, a
   * signature that does not cover `@authority`, or covers another authority, is refused
   * (`wrong_authority`) before its key is looked up: a request signed for another server is
   * not accepted here.
   */
  acceptAuthority?(authority: string): boolean;
}

/** A verified signature's parameters. */
export interface VerifiedSignature {
  /** Its label in `Signature-Input`. */
  label: string;
  /** The signer's key id. */
  keyid: string;
  /** Signing time, Unix seconds. */
  created: number;
  /** The nonce, when the signature has one. */
  nonce?: string;
  /** The signature bytes. */
  signature: Uint8Array;
}

function param(params: Params, name: string): unknown {
  return params.find(([k]) => k === name)?.[1];
}

/**
 * Verifies the first signature of `req` under `policy`, including its
 * `Content-Digest` against `body` when covered. Throws {@link SignatureError}.
 */
export async function verifyRequestSignature(
  req: SignableRequest,
  body: Uint8Array<ArrayBuffer>,
  policy: VerifyPolicy,
): Promise<VerifiedSignature> {
  const verified = await verifySignatureHeaders(req, policy);
  if (verified.coversDigest) await checkBodyDigest(req, body, verified.keyid);
  const { coversDigest: _, ...rest } = verified;
  return rest;
}

/**
 * Checks `body` against the request's `Content-Digest`; throws a `bad_digest`
 * {@link SignatureError} (for key `keyid`) when it is missing, malformed or
 * does not match.
 */
export async function checkBodyDigest(
  req: SignableRequest,
  body: Uint8Array<ArrayBuffer>,
  keyid?: string,
): Promise<void> {
  try {
    await verifyContentDigest(req.headers.get("content-digest"), body);
  } catch (e) {
    if (e instanceof DigestError) throw new SignatureError("bad_digest", e.message, keyid);
    throw e;
  }
}

/**
 * Verifies the first signature of `req` under `policy` without its body: the
 * parameters, the covered components (the `Content-Digest` header's value, not
 * the body it names), the authority and the signature itself. A server calls
 * it before reading any of the body, then checks the body with
 * {@link checkBodyDigest} when `coversDigest`: only a holder of the key can
 * make it read a body. Throws {@link SignatureError}.
 */
export async function verifySignatureHeaders(
  req: SignableRequest,
  policy: VerifyPolicy,
): Promise<VerifiedSignature & { coversDigest: boolean }> {
  const inputHeader = req.headers.get("signature-input");
  const sigHeader = req.headers.get("signature");
  if (inputHeader === null || sigHeader === null) {
    throw new SignatureError(
      "missing_signature",
      "Request is not signed: Signature-Input and Signature headers are required",
    );
  }
  if (inputHeader.length > 2048 || sigHeader.length > 2048) {
    throw new SignatureError(
      "malformed_signature",
      "Signature headers are longer than 2048 characters",
    );
  }
  let inputs, sigs;
  try {
    inputs = parseDictionary(inputHeader);
    sigs = parseDictionary(sigHeader);
  } catch (e) {
    if (e instanceof StructuredFieldError) {
      throw new SignatureError(
        "malformed_signature",
        `Signature headers are malformed: ${e.message}`,
      );
    }
    throw e;
  }
  const first = inputs[0];
  if (!first) throw new SignatureError("missing_signature", "Signature-Input has no signature");
  const [label, list] = first;
  if (!isInnerList(list)) {
    throw new SignatureError(
      "malformed_signature",
      `Signature-Input "${label}" is not an inner list`,
    );
  }
  const sigMember = sigs.find(([k]) => k === label)?.[1];
  if (!sigMember || isInnerList(sigMember) || !(sigMember.value instanceof Uint8Array)) {
    throw new SignatureError(
      "malformed_signature",
      `Signature "${label}" is missing or not a byte sequence`,
    );
  }
  const keyid = param(list.params, "keyid");
  if (typeof keyid !== "string" || keyid === "") {
    throw new SignatureError("malformed_signature", "Signature parameter keyid is missing");
  }
  const alg = param(list.params, "alg");
  if (alg !== undefined && alg !== "ed25519") {
    throw new SignatureError(
      "unsupported_signature",
      `Signature algorithm "${String(alg)}" is not supported`,
      keyid,
    );
  }
  const created = param(list.params, "created");
  if (typeof created !== "number" || !Number.isInteger(created)) {
    throw new SignatureError(
      "malformed_signature",
      "Signature parameter created is missing",
      keyid,
    );
  }
  if (Math.abs(policy.now - created) > policy.maxSkewS) {
    throw new SignatureError(
      "clock_skew",
      `Signature created at ${created} is more than ${policy.maxSkewS} s from the server time ${policy.now}`,
      keyid,
    );
  }
  const expires = param(list.params, "expires");
  if (expires !== undefined && (typeof expires !== "number" || expires <= policy.now)) {
    throw new SignatureError("expired_signature", `Signature expired at ${String(expires)}`, keyid);
  }
  const nonce = param(list.params, "nonce");
  if (
    nonce !== undefined &&
    (typeof nonce !== "string" || !/^[A-Za-z0-9_\-+/=.]{16,128}$/.test(nonce))
  ) {
    throw new SignatureError(
      "malformed_signature",
      "Signature nonce must be 16 to 128 base64 characters",
      keyid,
    );
  }
  if (policy.requireNonce && nonce === undefined) {
    throw new SignatureError("missing_nonce", "Signature parameter nonce is required", keyid);
  }
  const covered = list.items.map((it) => it.value);
  const missing = policy.requiredComponents.filter((c) => !covered.includes(c));
  if (missing.length > 0) {
    throw new SignatureError(
      "missing_components",
      `Signature must cover ${missing.map((m) => `"${m}"`).join(", ")}`,
      keyid,
    );
  }
  for (const c of covered) {
    if (typeof c === "string" && c.startsWith("@") && !derived.has(c)) {
      throw new SignatureError("unsupported_signature", `Component "${c}" is not supported`, keyid);
    }
  }
  const coversDigest = covered.includes("content-digest");
  if (coversDigest && req.headers.get("content-digest") === null) {
    throw new SignatureError("bad_digest", "Content-Digest header is missing", keyid);
  }
  const base = signatureBase(req, list);
  if (policy.acceptAuthority) {
    const authority = covered.includes("@authority") ? componentValue(req, "@authority") : null;
    if (authority === null || !policy.acceptAuthority(authority)) {
      throw new SignatureError(
        "wrong_authority",
        authority === null
          ? "Signature must cover @authority"
          : `Request sent to authority "${authority.slice(0, 100)}" (its ${
            req.authority === undefined ? "Host" : "X-Forwarded-Host"
          }), which is not one of this server's names; @authority is taken from the request, ` +
            `so sign for, and send to, a name this server accepts`,
        keyid,
      );
    }
  }
  const key = await policy.resolveKey(keyid);
  const signature = sigMember.value as Uint8Array<ArrayBuffer>;
  if (!(await ed25519Verify(key, signature, utf8(base)))) {
    throw new SignatureError("bad_signature", "Signature does not verify", keyid);
  }
  return {
    label,
    keyid,
    created,
    ...(typeof nonce === "string" ? { nonce } : {}),
    signature,
    coversDigest,
  };
}
