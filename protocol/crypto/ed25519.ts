/**
 * Ed25519 and X25519 keys (Web Crypto keys, exchanged as raw 32-byte values); Ed25519 signing
 * and verification on the runtime's synchronous primitives.
 */
import { fromBase64Url, fromHex, toBase64Url, toHex } from "../util/encoding.ts";
import { KeyObject, sign as nodeSign, verify as nodeVerify } from "node:crypto";

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

/**
 * An Ed25519 key: a Web Crypto `CryptoKey`, or the runtime's `KeyObject` made from one by
 * {@link ed25519KeyObject}. Hot paths (the NOC's signing key, appliances' public keys in the
 * check-in store) hold the `KeyObject`: converting a `CryptoKey` costs about 25 µs, more than an
 * Ed25519 signature (about 18 µs), and is done on every call otherwise.
 */
export type Ed25519Key = CryptoKey | KeyObject;

/** The runtime's `KeyObject` for an Ed25519 `CryptoKey` (make once, sign or verify many times). */
export function ed25519KeyObject(key: CryptoKey): KeyObject {
  if (key.algorithm.name !== "Ed25519") {
    throw new TypeError(`Key "${key.algorithm.name}" is not an Ed25519 key`);
  }
  return KeyObject.from(key);
}

function keyKind(key: Ed25519Key): { ed25519: boolean; type: string } {
  if (key instanceof KeyObject) {
    return { ed25519: key.asymmetricKeyType === "ed25519", type: key.type };
  }
  return { ed25519: key.algorithm.name === "Ed25519", type: key.type };
}

function keyObjectOf(key: Ed25519Key): KeyObject {
  return key instanceof KeyObject ? key : ed25519KeyObject(key);
}

/** Signs `data` with an Ed25519 private key; throws a `TypeError` for any other key. */
export async function ed25519Sign(
  key: Ed25519Key,
  data: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  const kind = keyKind(key);
  if (!kind.ed25519 || kind.type !== "private") {
    throw new TypeError(`Key (${kind.type}) is not an Ed25519 private key`);
  }
  // Synchronous, like ed25519Verify: the same signature (Ed25519 is deterministic), no thread trip.
  return await Promise.resolve(new Uint8Array(nodeSign(null, data, keyObjectOf(key))));
}

/** The Ed25519 group order L, little-endian. */
const groupOrder = fromHex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");

/** True when the little-endian 32-byte scalar `s` is below L (a canonical signature's S half). */
export function isCanonicalScalar(s: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    if (s[i]! < groupOrder[i]!) return true;
    if (s[i]! > groupOrder[i]!) return false;
  }
  return false;
}

/**
 * Verifies an Ed25519 signature; false (never a throw) for a malformed one.
 * Non-canonical signatures (S ≥ L) are refused, which Web Crypto alone may accept.
 */
export async function ed25519Verify(
  key: Ed25519Key,
  signature: Uint8Array<ArrayBuffer>,
  data: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  if (signature.length !== 64 || !isCanonicalScalar(signature.subarray(32))) return false;
  // Web Crypto refuses a private key here; node:crypto would derive the public half and accept it.
  const kind = keyKind(key);
  if (kind.type !== "public" || !kind.ed25519) return false;
  try {
    // The runtime's synchronous verify: the same check as Web Crypto's (tests/wycheproof_test.ts),
    // without a trip to a worker thread, which under load cost more than the check itself.
    return await Promise.resolve(nodeVerify(null, data, keyObjectOf(key), signature));
  } catch {
    return false;
  }
}

// Points of small order (and their non-canonical encodings), sign bit ignored: a key among them
// would let anyone forge signatures (Ed25519) or force a known shared secret (X25519).
const ed25519SmallOrder = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];
const x25519SmallOrder = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

/** True when a 32-byte field element encoding (sign bit ignored) is ≥ p = 2^255 − 19. */
function nonCanonicalField(raw: Uint8Array): boolean {
  if ((raw[31]! & 0x7f) !== 0x7f) return false;
  for (let i = 30; i >= 1; i--) if (raw[i] !== 0xff) return false;
  return raw[0]! >= 0xed;
}

/** Why a raw public key is weak, or null: small order, or a non-canonical encoding. */
export function weakPublicKey(raw: Uint8Array, algorithm: "Ed25519" | "X25519"): string | null {
  const masked = raw.slice();
  masked[31] = masked[31]! & 0x7f;
  const hex = toHex(masked);
  if ((algorithm === "Ed25519" ? ed25519SmallOrder : x25519SmallOrder).includes(hex)) {
    return "is a point of small order";
  }
  if (nonCanonicalField(raw)) return "is not canonically encoded";
  return null;
}

/**
 * Checks that `text` is an unpadded, canonical base64url 32-byte public key,
 * not of small order, that Web Crypto accepts for `algorithm`; returns the
 * raw bytes, or throws a message.
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
  if (toBase64Url(raw) !== text) {
    throw new TypeError(`${algorithm} public key "${text}" is not canonical base64url`);
  }
  const weak = weakPublicKey(raw, algorithm);
  if (weak) throw new TypeError(`${algorithm} public key ${weak}`);
  const usages: KeyUsage[] = algorithm === "Ed25519" ? ["verify"] : [];
  try {
    await crypto.subtle.importKey("raw", raw, { name: algorithm }, true, usages);
  } catch {
    throw new TypeError(`${algorithm} public key "${toBase64Url(raw)}" is not a valid key`);
  }
  return raw;
}
