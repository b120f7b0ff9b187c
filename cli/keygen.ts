/** Prints a new NOC signing key seed (base64url) for NOC_SIGNING_KEY: `deno task keygen`. */
import { newSeed, nocKeysFromSeed } from "../noc/services/signing_keys.ts";

if (import.meta.main) {
  const seed = newSeed();
  const keys = await nocKeysFromSeed(seed);
  console.error(`Key id ${keys.kid}, public key ${keys.published[0]!.publicKey}`);
  console.log(seed);
}
