/**
 * Prints a new 32-byte secret (base64url) for `NOC_SIGNING_KEY` or `NOC_MASTER_KEY`:
 * `deno task keygen`. The key id and public key of the seed, taken as a signing key, go to stderr.
 *
 * @module
 */
import { keyId, newSeed } from "../protocol/keys.ts";
import { ed25519PublicOf, exportRawPublic, importEd25519Seed } from "../protocol/crypto/ed25519.ts";
import { fromBase64Url, toBase64Url } from "../protocol/util/encoding.ts";

if (import.meta.main) {
  const seed = newSeed();
  const raw = new Uint8Array(
    await exportRawPublic(await ed25519PublicOf(await importEd25519Seed(fromBase64Url(seed)))),
  );
  console.error(`Key id ${await keyId(raw)}, public key ${toBase64Url(raw)}`);
  console.log(seed);
}
