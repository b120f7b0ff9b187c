/**
 * AES-GCM as the project uses it (package chunks): 96-bit IVs only (NIST SP
 * 800-38D's recommendation; other lengths derive the counter through GHASH
 * and Web Crypto supports few of them), 128-bit tags; seal, and open that
 * never throws — a wrong key, IV, AAD, ciphertext or tag is simply `null`.
 * Checked against every Wycheproof AES-GCM vector in the test suite.
 *
 * @module
 */

/** GCM tag length, bytes (the only one the project uses). */
export const tagBytes = 16;
/** GCM IV length, bytes (the only one the project uses). */
export const ivBytes = 12;

/** Encrypts `plaintext` under `key` with `iv` and `aad`; returns ciphertext followed by the 16-byte tag. */
export async function aesGcmSeal(
  key: CryptoKey,
  iv: Uint8Array<ArrayBuffer>,
  aad: Uint8Array<ArrayBuffer>,
  plaintext: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  if (iv.length !== ivBytes) {
    throw new RangeError(`AES-GCM IV is ${iv.length} bytes, not ${ivBytes}`);
  }
  return new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, key, plaintext),
  );
}

/**
 * Decrypts and authenticates ciphertext-and-tag `sealed`; null when it does
 * not authenticate (or cannot: an IV other than 96 bits, a body shorter than a tag).
 */
export async function aesGcmOpen(
  key: CryptoKey,
  iv: Uint8Array<ArrayBuffer>,
  aad: Uint8Array<ArrayBuffer>,
  sealed: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer> | null> {
  if (iv.length !== ivBytes || sealed.length < tagBytes) return null;
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, key, sealed),
    );
  } catch {
    return null;
  }
}
