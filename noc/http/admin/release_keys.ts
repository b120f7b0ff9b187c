/** `/v1/admin/release-keys`: offline release keys that may sign packages (required in release-keys-only mode). */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { kidParam, releaseKeySchema } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { keyId } from "../../../protocol/keys.ts";
import { parsePublicKey } from "../../../protocol/crypto/ed25519.ts";
import { bumpCatalogEpoch } from "../../services/catalogs.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** `/v1/admin/release-keys`: offline release keys. */
export function releaseKeyAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("json", releaseKeySchema), async (c) => {
      const k = c.req.valid("json");
      let raw: Uint8Array<ArrayBuffer>;
      try {
        raw = await parsePublicKey(k.publicKey, "Ed25519");
      } catch (e) {
        throw new ApiError(400, "invalid_body", `Field "publicKey": ${(e as Error).message}`, {
          issues: [{ path: "publicKey", message: (e as Error).message }],
        });
      }
      const kid = await keyId(raw);
      if (deps.keys.published.some((p) => p.kid === kid)) {
        throw new ApiError(409, "key_in_use", "That key is the NOC's own signing key");
      }
      const now = deps.clock.now();
      const rows = await deps.db.begin(async (tx) => {
        const r = await tx`
          insert into release_keys (kid, public_key, label, created_at, not_after)
          values (${kid}, ${k.publicKey}, ${k.label}, ${now}, ${
          k.notAfter ? new Date(k.notAfter) : null
        })
          on conflict do nothing returning kid`;
        if (r.length > 0) await bumpCatalogEpoch(tx);
        return r;
      });
      if (rows.length === 0) {
        throw new ApiError(409, "key_in_use", `Release key "${kid}" is already registered`);
      }
      deps.log.warn("release_key_registered", { kid, label: k.label, by: c.get("admin") });
      return c.json(
        { kid, publicKey: k.publicKey, label: k.label, notAfter: k.notAfter ?? null },
        201,
      );
    })
    .get("/", async (c) => {
      const rows = await deps.db.sql<
        { kid: string; public_key: string; label: string; created_at: Date; not_after: Date | null }
      >`
        select kid, public_key, label, created_at, not_after from release_keys order by created_at`;
      return c.json({
        items: rows.map((r) => ({
          kid: r.kid,
          publicKey: r.public_key,
          label: r.label,
          createdAt: r.created_at.toISOString(),
          notAfter: r.not_after?.toISOString() ?? null,
        })),
      });
    })
    .delete("/:kid", validate("param", kidParam), async (c) => {
      const { kid } = c.req.valid("param");
      const now = deps.clock.now();
      const rows = await deps.db.begin(async (tx) => {
        const r = await tx`
          update release_keys set not_after = least(coalesce(not_after, ${now}), ${now}) where kid = ${kid} returning kid`;
        if (r.length > 0) await bumpCatalogEpoch(tx);
        return r;
      });
      if (rows.length === 0) {
        throw new ApiError(404, "not_found", `Release key "${kid}" does not exist`);
      }
      deps.log.warn("release_key_retired", { kid, by: c.get("admin") });
      return c.body(null, 204);
    });
}
