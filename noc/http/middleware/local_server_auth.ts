/**
 * Authentication of local component server requests: the same RFC 9421
 * signature, authority, skew window and single-use nonce as appliance
 * requests, by the Ed25519 key the server registered at enrolment, checked
 * before any of the body is read.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { SignatureError } from "../../../protocol/http/signature.ts";
import { importEd25519Public } from "../../../protocol/crypto/ed25519.ts";
import { fromBase64Url } from "../../../protocol/util/encoding.ts";
import { verifySignedRequest } from "./appliance_auth.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv, LocalServerIdentity } from "../env.ts";

/** Middleware requiring a valid local server signature; sets `localServer` and `body`. */
export function localServerAuth(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    let identity: LocalServerIdentity | undefined;
    // The signature is checked before any of the body is read (see verifySignedRequest).
    const { body } = await verifySignedRequest(deps, c, async (keyid) => {
      const [row] = await deps.db.sql<{
        id: string;
        site: string;
        name: string;
        url: string;
        sign_key: string;
        revoked_at: Date | null;
      }>`select id, site, name, url, sign_key, revoked_at from local_servers where id = ${keyid}`;
      if (!row) {
        throw new SignatureError(
          "unknown_key",
          `Local component server "${keyid}" is not enrolled`,
          keyid,
        );
      }
      const key = await importEd25519Public(fromBase64Url(row.sign_key));
      if (row.revoked_at) {
        // Refused only once the signature verifies: proof that the sender holds the key.
        return {
          key,
          refusal: new SignatureError(
            "revoked_key",
            `Local component server "${keyid}" has been revoked`,
            keyid,
          ),
        };
      }
      identity = { id: row.id, site: row.site, name: row.name, url: row.url };
      return { key };
    });
    deps.limits.localServer.take(identity!.id, `local server "${identity!.id}"`);
    c.set("localServer", identity!);
    c.set("body", body);
    await next();
  };
}
