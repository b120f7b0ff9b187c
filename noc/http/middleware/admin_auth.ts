/**
 * Admin API authentication: `Authorization: Bearer <admin token>`, checked against stored hashes
 * before anything of the request is read (the admin API's body limits come after it). A refused
 * token counts against its client address's refusals.
 */
import type { MiddlewareHandler } from "hono";
import { timingSafeEqual } from "node:crypto";
import { ApiError } from "../../../protocol/http/errors.ts";
import { adminTokenLabel } from "../../services/admin_tokens.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { clientAddress } from "./appliance_auth.ts";

/**
 * Middleware requiring a valid, unrevoked admin token; sets `admin` to its
 * label. The console's in-process calls carry `internalKey` instead (a random
 * key that never leaves the process) and the signed-in operator's label.
 */
export function adminAuth(deps: AppDeps, internalKey?: string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const internal = c.req.header("x-noc-internal");
    if (internalKey !== undefined && internal !== undefined && sameText(internal, internalKey)) {
      c.set("admin", `console:${c.req.header("x-noc-admin-label") ?? "?"}`);
      return await next();
    }
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S{1,200})$/i.exec(header);
    const challenge = { "www-authenticate": 'Bearer realm="noc-admin"' };
    if (!m) {
      throw new ApiError(
        401,
        "unauthorized",
        "Admin API requires Authorization: Bearer <admin token>",
        {},
        challenge,
      );
    }
    const label = await adminTokenLabel(deps.db, m[1]!);
    if (label === null) {
      // Counted against the address (never written, and no record budget spent): past its
      // budget it gets 429 before any lookup (app.ts refusalGate).
      deps.limits.refusals.count(clientAddress(c, deps.settings.trustProxy) ?? "unknown");
      throw new ApiError(401, "unauthorized", "Admin token is not valid", {}, challenge);
    }
    c.set("admin", label);
    await next();
  };
}

function sameText(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
