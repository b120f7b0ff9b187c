/**
 * The NOC's public keys as appliances, local servers and the CLI see them:
 * the published key record, its key id, and a fresh signing seed.
 *
 * @module
 */
import { sha256, toBase64Url, toHex } from "./util/encoding.ts";

/** A public key as published to appliances. */
export interface PublishedKey {
  /** What the key may sign: catalogs (the NOC key), packages (the NOC key unless release keys are required; release keys). */
  use: Array<"catalog" | "package">;
  /** Key id: the first 16 hex digits of SHA-256 of the raw public key. */
  kid: string;
  /** Always `ed25519`. */
  alg: "ed25519";
  /** Raw public key, base64url. */
  publicKey: string;
  /** When the key stops being accepted (ISO time), or null for the current key. */
  notAfter: string | null;
}

/** The key id for a raw Ed25519 public key. */
export async function keyId(raw: Uint8Array<ArrayBuffer>): Promise<string> {
  return toHex(await sha256(raw)).slice(0, 16);
}

/** A fresh random seed, base64url. */
export function newSeed(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}
