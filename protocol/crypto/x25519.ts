/**
 * X25519 (RFC 7748) through Web Crypto, with the checks the project applies:
 * a shared secret of all zeros (a low-order peer key) is refused. The agent's
 * HPKE unwrap (`@hpke/core`) uses the same Web Crypto primitive (the NOC's wrap,
 * protocol/crypto/hpke_seal.ts, the runtime's synchronous one); the test suite runs this
 * function against every Wycheproof X25519 vector.
 *
 * @module
 */

/** PKCS#8 DER prefix of a raw 32-byte X25519 private key (Web Crypto imports no raw private keys). */
export const x25519Pkcs8Prefix = Uint8Array.fromHex("302e020100300506032b656e04220420");

/**
 * The X25519 shared secret of raw private key `priv` and raw public key
 * `pub`; null when either is malformed or the result is all zeros.
 */
export async function x25519(
  priv: Uint8Array,
  pub: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer> | null> {
  if (priv.length !== 32 || pub.length !== 32) return null;
  const der = new Uint8Array(x25519Pkcs8Prefix.length + 32);
  der.set(x25519Pkcs8Prefix);
  der.set(priv, x25519Pkcs8Prefix.length);
  try {
    const privateKey = await crypto.subtle.importKey("pkcs8", der, { name: "X25519" }, false, [
      "deriveBits",
    ]);
    const publicKey = await crypto.subtle.importKey("raw", pub, { name: "X25519" }, false, []);
    const shared = new Uint8Array(
      await crypto.subtle.deriveBits({ name: "X25519", public: publicKey }, privateKey, 256),
    );
    return shared.every((b) => b === 0) ? null : shared;
  } catch {
    return null;
  } finally {
    der.fill(0);
  }
}
