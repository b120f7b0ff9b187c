/**
 * HPKE base-mode single-shot seal (RFC 9180, section 6.1) for one suite:
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM — the suite content
 * keys are wrapped with. It runs on the runtime's synchronous primitives,
 * several times faster per wrap than the generic library (which awaits a
 * Web Crypto call for every HMAC), and its output is byte for byte what
 * `@hpke/core` produces for the same ephemeral key (tests/hpke_seal_test.ts),
 * so appliances open it with that library unchanged.
 *
 * @module
 */
import {
  createCipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { Buffer } from "node:buffer";
import { concatBytes } from "../util/bytes.ts";
import { x25519Pkcs8Prefix } from "./x25519.ts";

const kemId = 0x0020; // DHKEM(X25519, HKDF-SHA256)
const kdfId = 0x0001; // HKDF-SHA256
const aeadId = 0x0002; // AES-256-GCM

const enc = new TextEncoder();
const u16 = (n: number) => new Uint8Array([n >> 8, n & 0xff]);
const concat = (...parts: Uint8Array[]) => concatBytes(parts);
const kemSuite = concat(enc.encode("KEM"), u16(kemId));
const hpkeSuite = concat(enc.encode("HPKE"), u16(kemId), u16(kdfId), u16(aeadId));
const version = enc.encode("HPKE-v1");

function extract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return new Uint8Array(
    createHmac("sha256", salt.length === 0 ? new Uint8Array(32) : salt).update(ikm).digest(),
  );
}

function expand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let t = new Uint8Array(0);
  for (let i = 1, o = 0; o < length; i++) {
    t = new Uint8Array(
      createHmac("sha256", prk).update(concat(t, info, new Uint8Array([i]))).digest(),
    );
    out.set(t.subarray(0, Math.min(t.length, length - o)), o);
    o += t.length;
  }
  return out;
}

const labeledExtract = (suite: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array) =>
  extract(salt, concat(version, suite, enc.encode(label), ikm));

const labeledExpand = (
  suite: Uint8Array,
  prk: Uint8Array,
  label: string,
  info: Uint8Array,
  length: number,
) => expand(prk, concat(u16(length), version, suite, enc.encode(label), info), length);

// DER prefixes of an X25519 SubjectPublicKeyInfo and PKCS#8 private key (RFC 8410).
const spkiPrefix = Uint8Array.fromHex("302a300506032b656e032100");

/**
 * A recipient's X25519 public key, parsed once (see {@link x25519Recipient}): a catalog wraps many
 * content keys to one appliance, and parsing its key costs more than a seal's arithmetic.
 */
export interface X25519Recipient {
  /** The raw public key, 32 bytes (part of the KEM context). */
  raw: Uint8Array;
  /** The same key as the runtime's `KeyObject`. */
  key: KeyObject;
}

/** Parses a raw 32-byte X25519 public key for {@link hpkeSealBase}; throws when it is not one. */
export function x25519Recipient(raw: Uint8Array): X25519Recipient {
  if (raw.length !== 32) throw new Error(`X25519 public key is ${raw.length} bytes, not 32`);
  return { raw, key: publicKeyFromRaw(raw) };
}

function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: Buffer.from(concat(spkiPrefix, raw)),
    format: "der",
    type: "spki",
  });
}

/** An ephemeral X25519 key pair, raw (tests pass one to compare with other implementations). */
export interface EphemeralKey {
  /** Private scalar, 32 bytes. */
  privateRaw: Uint8Array;
  /** Public key, 32 bytes. */
  publicRaw: Uint8Array;
}

function freshEphemeral(): { privateKey: KeyObject; publicRaw: Uint8Array } {
  const pair = generateKeyPairSync("x25519");
  const spki = pair.publicKey.export({ format: "der", type: "spki" });
  return { privateKey: pair.privateKey, publicRaw: new Uint8Array(spki).slice(-32) };
}

/**
 * Seals `plaintext` to the X25519 public key `recipientPublic` (raw, 32
 * bytes) with `info` and no associated data; returns `enc || ciphertext`.
 * Throws when the key is not a usable X25519 public key.
 */
export function hpkeSealBase(
  recipientPublic: Uint8Array | X25519Recipient,
  info: Uint8Array,
  plaintext: Uint8Array,
  ephemeral?: EphemeralKey,
): Uint8Array<ArrayBuffer> {
  const e = ephemeral
    ? {
      privateKey: createPrivateKey({
        key: Buffer.from(concat(x25519Pkcs8Prefix, ephemeral.privateRaw)),
        format: "der",
        type: "pkcs8",
      }),
      publicRaw: ephemeral.publicRaw,
    }
    : freshEphemeral();
  const recipient = recipientPublic instanceof Uint8Array
    ? x25519Recipient(recipientPublic)
    : recipientPublic;
  const dh = new Uint8Array(diffieHellman({ privateKey: e.privateKey, publicKey: recipient.key }));
  // RFC 9180 7.1.4: an all-zero shared secret means a low-order public key.
  if (dh.every((b) => b === 0)) throw new Error("X25519 public key is of low order");
  const kemContext = concat(e.publicRaw, recipient.raw);
  const eaePrk = labeledExtract(kemSuite, new Uint8Array(), "eae_prk", dh);
  const sharedSecret = labeledExpand(kemSuite, eaePrk, "shared_secret", kemContext, 32);
  const empty = new Uint8Array();
  const pskIdHash = labeledExtract(hpkeSuite, empty, "psk_id_hash", empty);
  const infoHash = labeledExtract(hpkeSuite, empty, "info_hash", info);
  const context = concat(new Uint8Array([0]), pskIdHash, infoHash);
  const secret = labeledExtract(hpkeSuite, sharedSecret, "secret", empty);
  const key = labeledExpand(hpkeSuite, secret, "key", context, 32);
  const nonce = labeledExpand(hpkeSuite, secret, "base_nonce", context, 12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  const body = concat(new Uint8Array(cipher.update(plaintext)), new Uint8Array(cipher.final()));
  const out = new Uint8Array(32 + body.length + 16);
  out.set(e.publicRaw);
  out.set(body, 32);
  out.set(new Uint8Array(cipher.getAuthTag()), 32 + body.length);
  return out;
}
