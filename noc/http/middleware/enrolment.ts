/**
 * What appliance enrolment (`POST /v1/enroll`) and local-server enrolment
 * (`POST /v1/local/enroll`) share: the per-address rate limit, the check of
 * the public keys offered, and the recording of a refused token as an
 * identity failure (rate-limited admin notice) before the refusal is answered;
 * and the re-enrolment rule an appliance enrolment applies to an active
 * appliance of the same name.
 *
 * @module
 */
import type { Context } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { parsePublicKey } from "../../../protocol/crypto/ed25519.ts";
import { clientAddress, recordIdentityFailure } from "./appliance_auth.ts";
import type { AppDeps } from "../../services/deps.ts";

/** Takes one enrolment from the client address's budget; throws 429 `rate_limited` past it. */
export function limitEnrolments(deps: AppDeps, c: Context): void {
  const address = clientAddress(c, deps.settings.trustProxy) ?? "unknown";
  deps.limits.enroll.take(address, `address ${address}`);
}

/**
 * Checks each offered public key (base64url, raw) is a usable key of its
 * algorithm; throws 400 `invalid_body` naming the field otherwise.
 */
export async function checkOfferedKeys(
  keys: Array<{ field: string; value: string; alg: "Ed25519" | "X25519" }>,
): Promise<void> {
  for (const { field, value, alg } of keys) {
    try {
      await parsePublicKey(value, alg);
    } catch (e) {
      throw new ApiError(400, "invalid_body", `Field "${field}": ${(e as Error).message}`, {
        issues: [{ path: field, message: (e as Error).message }],
      });
    }
  }
}

/**
 * Runs an enrolment's transaction; when it refuses the token (a 401
 * {@link ApiError}), the refusal is recorded as an identity failure first,
 * then thrown on.
 */
export async function recordingRefusals<T>(
  deps: AppDeps,
  c: Context,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      await recordIdentityFailure(deps, {
        reason: e.code,
        keyid: null,
        method: c.req.method,
        path: c.req.path,
        address: clientAddress(c, deps.settings.trustProxy),
      });
    }
    throw e;
  }
}

/**
 * Applies the re-enrolment rule: when `namesakes` (UIDs of the active appliances named
 * `hostname` in `site`) is not empty and `policy` is `refuse`, throws 409 `appliance_exists`
 * naming them (the enrolment's transaction then rolls back: the token stays unused). With
 * `supersede`, or no namesake, it returns: the caller retires them.
 */
export function namesakesAllowed(
  namesakes: string[],
  at: { hostname: string; site: string | null; policy: "supersede" | "refuse" },
): void {
  if (namesakes.length === 0 || at.policy === "supersede") return;
  const where = at.site === null ? "with no site" : `at site "${at.site}"`;
  throw new ApiError(
    409,
    "appliance_exists",
    `An active appliance named "${at.hostname}" ${where} is enrolled already (${
      namesakes.join(", ")
    }); this enrolment does not supersede it (re-enrolment: refuse). Revoke it first, or enrol ` +
      `with a token created with "reenrolment": "supersede"`,
    { existing: namesakes, hostname: at.hostname, site: at.site },
  );
}
