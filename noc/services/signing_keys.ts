/**
 * The NOC's Ed25519 signing key and the list of public keys appliances pin
 * (the current one first; older ones stay listed, with an end date, during a
 * rotation).
 *
 * @module
 */
import {
  type Ed25519Key,
  ed25519KeyObject,
  ed25519PublicOf,
  exportRawPublic,
  importEd25519Seed,
} from "../../protocol/crypto/ed25519.ts";
import { DhkemX25519HkdfSha256 } from "@hpke/core";
import { fromBase64Url, toBase64Url, utf8 } from "../../protocol/util/encoding.ts";
import { keyId, type KeyStatementEnvelope, type PublishedKey } from "../../protocol/keys.ts";

/** The NOC's keys. */
export interface NocKeys {
  /** AES-256-GCM key sealing content keys at rest. */
  atRest: CryptoKey;
  /** The NOC's X25519 key pair (HPKE): offline-signed uploads wrap their content key to it. */
  hpke: { privateKey: CryptoKey; publicKey: string };
  /** The current signing key's id. */
  kid: string;
  /** The current private signing key. */
  privateKey: Ed25519Key;
  /** Every key appliances should accept, current first. */
  published: PublishedKey[];
  /**
   * The key chain: the signed key-list statements (`noc-keys/1` envelopes, oldest first) that
   * lead from the NOC's first key to the current one (see noc/services/key_chain.ts). Empty
   * until the NOC has rotated.
   */
  chain: KeyStatementEnvelope[];
}

/** Options for {@link nocKeysFromSeed}. */
export interface NocKeyOptions {
  /** Retired public keys still accepted until `notAfter`. */
  retired?: Array<{ publicKey: string; notAfter: string }>;
  /** The master secret (32 bytes, base64url) for at-rest sealing and the NOC's X25519 key; random when absent. */
  master?: string;
  /** When true, the NOC key signs catalogs only and packages must carry a release key's signature. */
  releaseKeysOnly?: boolean;
}

function decodeSeed(text: string, what: string): Uint8Array<ArrayBuffer> {
  let seed: Uint8Array<ArrayBuffer>;
  try {
    seed = fromBase64Url(text.trim());
  } catch {
    throw new Error(`${what} is not base64url`);
  }
  if (seed.length !== 32) throw new Error(`${what} has ${seed.length} bytes, not 32`);
  return seed;
}

async function hkdf(
  master: Uint8Array<ArrayBuffer>,
  info: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const base = await crypto.subtle.importKey("raw", master, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: utf8(info) },
    base,
    256,
  );
  return new Uint8Array(bits);
}

const hpkeKem = new DhkemX25519HkdfSha256();

/** Builds {@link NocKeys} from the signing key's 32-byte seed (base64url). */
export async function nocKeysFromSeed(
  seedB64: string,
  options: NocKeyOptions = {},
): Promise<NocKeys> {
  const privateKey = await importEd25519Seed(decodeSeed(seedB64, "NOC signing key"));
  const pub = await ed25519PublicOf(privateKey);
  const raw = new Uint8Array(await exportRawPublic(pub));
  const kid = await keyId(raw);
  const nocUse: PublishedKey["use"] = options.releaseKeysOnly
    ? ["catalog"]
    : ["catalog", "package"];
  const published: PublishedKey[] = [{
    kid,
    alg: "ed25519",
    use: nocUse,
    publicKey: toBase64Url(raw),
    notAfter: null,
  }];
  for (const r of options.retired ?? []) {
    const rraw = fromBase64Url(r.publicKey);
    published.push({
      kid: await keyId(rraw),
      alg: "ed25519",
      use: nocUse,
      publicKey: r.publicKey,
      notAfter: r.notAfter,
    });
  }
  const master = options.master
    ? decodeSeed(options.master, "NOC master key")
    : crypto.getRandomValues(new Uint8Array(32));
  const atRest = await crypto.subtle.importKey(
    "raw",
    await hkdf(master, "appliance-noc at-rest/1"),
    "AES-GCM",
    false,
    [
      "encrypt",
      "decrypt",
    ],
  );
  const pair = await hpkeKem.deriveKeyPair((await hkdf(master, "appliance-noc x25519/1")).buffer);
  const hpkePublic = toBase64Url(new Uint8Array(await hpkeKem.serializePublicKey(pair.publicKey)));
  return {
    kid,
    privateKey: ed25519KeyObject(privateKey),
    published,
    chain: [],
    atRest,
    hpke: { privateKey: pair.privateKey, publicKey: hpkePublic },
  };
}

/** Seals a secret under the at-rest key, bound to `context` (e.g. the component it belongs to). */
export async function sealAtRest(
  keys: NocKeys,
  secret: Uint8Array<ArrayBuffer>,
  context: string,
): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: utf8(context) },
      keys.atRest,
      secret,
    ),
  );
  const out = new Uint8Array(12 + ct.length);
  out.set(iv);
  out.set(ct, 12);
  return toBase64Url(out);
}

/** Opens a secret sealed by {@link sealAtRest}; throws when the key or context differ. */
export async function openAtRest(
  keys: NocKeys,
  sealed: string,
  context: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = fromBase64Url(sealed);
  return new Uint8Array(
    await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytes.slice(0, 12), additionalData: utf8(context) },
      keys.atRest,
      bytes.slice(12),
    ),
  );
}
