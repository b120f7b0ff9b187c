/**
 * The appliance side of the protocol: key generation, enrolment, and RFC 9421
 * signed requests. Shared by the agent, the tests and the protocol example.
 *
 * @module
 */
import { ERROR_BODY_LIMIT, readTextBounded } from "./http/bounded_body.ts";
import { signRequest } from "./http/signature.ts";
import {
  type Ed25519Key,
  ed25519KeyObject,
  exportEd25519Seed,
  exportRawPublic,
  generateEd25519,
  generateX25519,
  importEd25519Seed,
} from "./crypto/ed25519.ts";
import { fromBase64Url, toBase64Url, utf8 } from "./util/encoding.ts";
import type { PublishedKey } from "./keys.ts";

/** The most bytes of a successful NOC answer read here (enrolment and key answers are small). */
const ANSWER_LIMIT = 1024 * 1024;

/** Sends a request (global `fetch`, or an app's `request` in tests). */
export type Send = (req: Request) => Promise<Response>;

/** An appliance's key material, as kept in its state folder. */
export interface ApplianceKeys {
  /** Ed25519 private signing key, prepared for signing many requests. */
  signing: Ed25519Key;
  /** Ed25519 public key, raw, base64url. */
  signingPublic: string;
  /** Ed25519 seed, base64url (secret). */
  signingSeed: string;
  /** X25519 private key, PKCS#8, base64url (secret). */
  encryptionPrivate: string;
  /** X25519 public key, raw, base64url. */
  encryptionPublic: string;
}

/** Generates an appliance's Ed25519 and X25519 key pairs. */
export async function generateApplianceKeys(): Promise<ApplianceKeys> {
  const s = await generateEd25519();
  const x = await generateX25519();
  return {
    signing: ed25519KeyObject(s.privateKey),
    signingPublic: toBase64Url(await exportRawPublic(s.publicKey)),
    signingSeed: toBase64Url(await exportEd25519Seed(s.privateKey)),
    encryptionPrivate: toBase64Url(
      new Uint8Array(await crypto.subtle.exportKey("pkcs8", x.privateKey)),
    ),
    encryptionPublic: toBase64Url(await exportRawPublic(x.publicKey)),
  };
}

/** Restores the signing key from its seed, prepared for signing many requests. */
export async function signingKeyFromSeed(seed: string): Promise<Ed25519Key> {
  return ed25519KeyObject(await importEd25519Seed(fromBase64Url(seed)));
}

/** What the NOC answers to a successful enrolment. */
export interface Enrollment {
  /** The appliance's UID (its signature key id). */
  uid: string;
  /** Report interval, seconds. */
  intervalS: number;
  /** NOC public keys to pin. */
  nocKeys: PublishedKey[];
  /** NOC time at enrolment. */
  serverTime: string;
  /** Site from the enrolment token. */
  site: string | null;
  /** Channel from the enrolment token. */
  channel: string;
  /** Tags from the enrolment token. */
  tags: string[];
  /**
   * UIDs of the appliances of this host name at this site that the enrolment retired (a
   * re-imaged appliance's old record); empty or absent (older NOCs) when none.
   */
  supersedes?: string[];
}

/** An error answer from the NOC. */
export class NocError extends Error {
  /** Wraps an HTTP status and the NOC's JSON error body. */
  constructor(
    readonly status: number,
    readonly body: { error?: string | undefined; message?: string | undefined },
  ) {
    super(`NOC answered ${status}: ${body.error ?? "error"}: ${body.message ?? ""}`);
  }
}

/**
 * Reads a NOC answer's JSON body: at most `limit` bytes of a success (more throws
 * `BodyTooLargeError`), at most `ERROR_BODY_LIMIT` of a refusal, which throws {@link NocError}
 * (a body that is not JSON becomes `{ error: "not_json" }`). Returns the parsed body, unchecked.
 */
export async function readNocAnswer(res: Response, limit = ANSWER_LIMIT): Promise<unknown> {
  const text = await readTextBounded(res, res.ok ? limit : ERROR_BODY_LIMIT, {
    truncate: !res.ok,
  });
  let body: unknown = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = { error: "not_json", message: text.slice(0, 200) };
  }
  if (!res.ok) throw new NocError(res.status, body as { error?: string; message?: string });
  return body;
}

async function json<T>(res: Response): Promise<T> {
  return await readNocAnswer(res) as T;
}

/** Enrols with `token`; returns the NOC's answer. */
export async function enroll(
  send: Send,
  baseUrl: string,
  input: {
    token: string;
    model: string;
    hostname: string;
    keys: ApplianceKeys;
    agentVersion?: string;
  },
): Promise<Enrollment> {
  const res = await send(
    new Request(new URL("/v1/enroll", baseUrl), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        token: input.token,
        model: input.model,
        hostname: input.hostname,
        signingKey: input.keys.signingPublic,
        encryptionKey: input.keys.encryptionPublic,
        ...(input.agentVersion ? { agentVersion: input.agentVersion } : {}),
      }),
    }),
  );
  return await json<Enrollment>(res);
}

/** A random signature nonce (128 bits, base64url). */
export function newNonce(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}

/** What {@link signedParts} and {@link signedRequest} sign. */
export interface SignedRequestOptions {
  baseUrl: string;
  uid: string;
  key: Ed25519Key;
  method: string;
  path: string;
  body?: unknown;
  now?: Date;
  nonce?: string;
  /** Extra headers (not covered by the signature), e.g. `If-None-Match`. */
  headers?: Record<string, string>;
}

/**
 * A signed request's parts as appliance `uid` (JSON body when `body` is given): its absolute URL,
 * its headers (with `Content-Digest`, `Signature-Input` and `Signature`) and its body bytes, for a
 * client that writes them itself (the overload bench's bare client).
 */
export async function signedParts(
  options: SignedRequestOptions,
): Promise<{ url: string; headers: Headers; body: Uint8Array<ArrayBuffer> | undefined }> {
  const url = new URL(options.path, options.baseUrl).href;
  const headers = new Headers(options.headers);
  const bytes = options.body === undefined ? new Uint8Array() : utf8(JSON.stringify(options.body));
  if (options.body !== undefined) headers.set("content-type", "application/json");
  const req = { method: options.method, url, headers, body: bytes };
  await signRequest(req, {
    privateKey: options.key,
    keyid: options.uid,
    created: Math.floor((options.now ?? new Date()).getTime() / 1000),
    nonce: options.nonce ?? newNonce(),
  });
  return { url, headers, body: options.body === undefined ? undefined : bytes };
}

/** Builds a signed request as appliance `uid` (JSON body when `body` is given). */
export async function signedRequest(options: SignedRequestOptions): Promise<Request> {
  const { url, headers, body } = await signedParts(options);
  return new Request(url, { method: options.method, headers, ...(body ? { body } : {}) });
}

/** Sends a signed request and returns its JSON answer, throwing {@link NocError} on an error status. */
export async function signedCall<T>(
  send: Send,
  options: Parameters<typeof signedRequest>[0],
): Promise<T> {
  return await json<T>(await send(await signedRequest(options)));
}
