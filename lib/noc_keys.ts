/**
 * The NOC's Ed25519 signing key and the list of public keys appliances pin
 * (the current one first; older ones stay listed, with an end date, during a
 * rotation).
 *
 * @module
 */
import { ed25519PublicOf, exportRawPublic, importEd25519Seed } from "./ed25519.ts";
import { fromBase64Url, sha256, toBase64Url, toHex } from "./encoding.ts";

/** A public key as published to appliances. */
export interface PublishedKey {
  /** Key id: the first 16 hex digits of SHA-256 of the raw public key. */
  kid: string;
  /** Always `ed25519`. */
  alg: "ed25519";
  /** Raw public key, base64url. */
  publicKey: string;
  /** When the key stops being accepted (ISO time), or null for the current key. */
  notAfter: string | null;
}

/** The NOC's keys. */
export interface NocKeys {
  /** The current signing key's id. */
  kid: string;
  /** The current private signing key. */
  privateKey: CryptoKey;
  /** Every key appliances should accept, current first. */
  published: PublishedKey[];
}

/** The key id for a raw Ed25519 public key. */
export async function keyId(raw: Uint8Array<ArrayBuffer>): Promise<string> {
  return toHex(await sha256(raw)).slice(0, 16);
}

/** Builds {@link NocKeys} from a 32-byte seed (base64url), plus retired public keys still accepted. */
export async function nocKeysFromSeed(
  seedB64: string,
  retired: Array<{ publicKey: string; notAfter: string }> = [],
): Promise<NocKeys> {
  let seed: Uint8Array;
  try {
    seed = fromBase64Url(seedB64.trim());
  } catch {
    throw new Error("NOC signing key is not base64url");
  }
  if (seed.length !== 32) {
    throw new Error(`NOC signing key has ${seed.length} bytes, not a 32-byte Ed25519 seed`);
  }
  const privateKey = await importEd25519Seed(seed);
  const pub = await ed25519PublicOf(privateKey);
  const raw = new Uint8Array(await exportRawPublic(pub));
  const kid = await keyId(raw);
  const published: PublishedKey[] = [{
    kid,
    alg: "ed25519",
    publicKey: toBase64Url(raw),
    notAfter: null,
  }];
  for (const r of retired) {
    const rraw = fromBase64Url(r.publicKey);
    published.push({
      kid: await keyId(rraw),
      alg: "ed25519",
      publicKey: r.publicKey,
      notAfter: r.notAfter,
    });
  }
  return { kid, privateKey, published };
}

/** A fresh random seed, base64url. */
export function newSeed(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}
