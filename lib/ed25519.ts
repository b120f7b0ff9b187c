/** Ed25519 and X25519 keys through Web Crypto, exchanged as raw 32-byte values. */
import { fromBase64Url, fromHex, toBase64Url } from "./encoding.ts";

const pkcs8Prefix = fromHex("302e020100300506032b657004220420");

/** Imports a raw 32-byte Ed25519 public key for verification; throws on a wrong length. */
export function importEd25519Public(raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  if (raw.length !== 32) throw new TypeError(`Ed25519 public key has ${raw.length} bytes, not 32`);
  return crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, true, ["verify"]);
}

/** Imports an Ed25519 private key from its 32-byte seed. */
export function importEd25519Seed(seed: Uint8Array): Promise<CryptoKey> {
  if (seed.length !== 32) throw new TypeError(`Ed25519 seed has ${seed.length} bytes, not 32`);
  const pkcs8 = new Uint8Array(48);
  pkcs8.set(pkcs8Prefix);
  pkcs8.set(seed, 16);
  return crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
}

/** The public half of an extractable Ed25519 private key. */
export async function ed25519PublicOf(privateKey: CryptoKey): Promise<CryptoKey> {
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  return await crypto.subtle.importKey(
    "jwk",
    { kty: "OKP", crv: "Ed25519", x: jwk.x! },
    "Ed25519",
    true,
    [
      "verify",
    ],
  );
}

/** The 32-byte seed of an extractable Ed25519 private key. */
export async function exportEd25519Seed(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.exportKey("pkcs8", key)).slice(16);
}

/** The raw 32 bytes of an Ed25519 or X25519 public key. */
export async function exportRawPublic(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.exportKey("raw", key));
}

/** A fresh extractable Ed25519 key pair. */
export function generateEd25519(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]) as Promise<
    CryptoKeyPair
  >;
}

/** A fresh extractable X25519 key pair. */
export function generateX25519(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]) as Promise<
    CryptoKeyPair
  >;
}

/** Signs `data` with an Ed25519 private key. */
export async function ed25519Sign(
  key: CryptoKey,
  data: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("Ed25519", key, data));
}

/** Verifies an Ed25519 signature; false (never a throw) for a malformed one. */
export async function ed25519Verify(
  key: CryptoKey,
  signature: Uint8Array<ArrayBuffer>,
  data: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  if (signature.length !== 64) return false;
  try {
    return await crypto.subtle.verify("Ed25519", key, signature, data);
  } catch {
    return false;
  }
}

/**
 * Checks that `text` is an unpadded base64url 32-byte public key that Web
 * Crypto accepts for `algorithm`; returns the raw bytes, or throws a message.
 */
export async function parsePublicKey(
  text: string,
  algorithm: "Ed25519" | "X25519",
): Promise<Uint8Array<ArrayBuffer>> {
  let raw: Uint8Array<ArrayBuffer>;
  try {
    raw = fromBase64Url(text);
  } catch {
    throw new TypeError(`${algorithm} public key "${text.slice(0, 60)}" is not base64url`);
  }
  if (raw.length !== 32) {
    throw new TypeError(`${algorithm} public key has ${raw.length} bytes, not 32`);
  }
  if (raw.every((b) => b === 0)) throw new TypeError(`${algorithm} public key is all zeros`);
  const usages: KeyUsage[] = algorithm === "Ed25519" ? ["verify"] : [];
  try {
    await crypto.subtle.importKey("raw", raw, { name: algorithm }, true, usages);
  } catch {
    throw new TypeError(`${algorithm} public key "${toBase64Url(raw)}" is not a valid key`);
  }
  return raw;
}
