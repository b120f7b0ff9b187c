/**
 * `GET /v1/keys`: the public keys appliances pin (the NOC's, current first,
 * then retired ones, then registered release keys), the NOC's X25519 key that
 * offline-signed packages wrap their content key to, and the key chain: the
 * signed key-list statements (`noc-keys/1`, oldest first) an appliance walks
 * from the key it pins to the current one after a rotation.
 */
import { Hono } from "hono";
import { publishedKeys } from "../../services/publishing.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The public key route. */
export function keyRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().get(
    "/",
    async (c) =>
      c.json({
        keys: await publishedKeys(deps),
        encryptionKey: deps.keys.hpke.publicKey,
        chain: deps.keys.chain,
      }),
  );
}
