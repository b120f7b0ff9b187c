/**
 * Publishing and inspecting components (`/v1/admin/packages`, `/files`,
 * `/components`), offline release keys (`/release-keys`) and fileinfo
 * (`/apps/:app/fileinfo`).
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import {
  appParam,
  componentQuery,
  fileinfoParam,
  fileinfoSchema,
  idParam,
  kidParam,
  listComponentsQuery,
  releaseKeySchema,
} from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { limitBytes, limitIdle } from "../../../protocol/util/bytes.ts";
import {
  componentJson,
  type ComponentRow,
  publishFile,
  publishPayload,
  publishSignedPackage,
} from "../../services/publishing.ts";
import { keyId } from "../../../protocol/keys.ts";
import { parsePublicKey } from "../../../protocol/crypto/ed25519.ts";
import { bumpCatalogEpoch } from "../../services/catalogs.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { fileinfoJson, type FileinfoRow } from "../../services/fileinfo.ts";

/** The paths whose bodies are uploads (streamed, with their own size limit). */
export const uploadPaths = /^\/v1\/admin\/(packages|files)$/;

function uploadBody(c: Context, deps: AppDeps): AsyncIterable<Uint8Array> {
  const max = deps.settings.maxUploadBytes;
  const len = c.req.header("content-length");
  const tooLarge = () => new ApiError(413, "body_too_large", `Upload is larger than ${max} bytes`);
  if (len !== undefined && Number(len) > max) throw tooLarge();
  const body = c.req.raw.body ?? ReadableStream.from<Uint8Array>([]);
  const idleS = deps.settings.uploadIdleS;
  const stalled = () =>
    new ApiError(408, "request_timeout", `Upload stalled: no bytes for ${idleS} s`);
  return limitIdle(limitBytes(body, max, tooLarge), idleS, stalled);
}

/** `/v1/admin/packages`: publishes a package (streamed upload). */
export function packageAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", async (c) => {
      const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
      const wrapped = c.req.header("x-noc-wrapped-key");
      let result;
      if (type === "application/vnd.noc-package") {
        if (!wrapped || !/^[A-Za-z0-9_-]{100,120}$/.test(wrapped)) {
          throw new ApiError(
            400,
            "missing_wrapped_key",
            "A signed package needs its content key wrapped to the NOC in X-NOC-Wrapped-Key",
          );
        }
        if (c.req.query("app") !== undefined) {
          throw new ApiError(
            400,
            "invalid_query",
            "A signed package names itself: give no app, name or version",
          );
        }
        result = await publishSignedPackage(deps, uploadBody(c, deps), wrapped);
      } else if (type === "application/gzip" || type === "application/octet-stream") {
        const q = componentQuery.safeParse(c.req.query());
        if (!q.success) {
          const first = q.error.issues[0]!;
          throw new ApiError(
            400,
            "invalid_query",
            `Field "${first.path.join(".")}": ${first.message}`,
            {
              issues: q.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
            },
          );
        }
        result = await publishPayload(deps, q.data, uploadBody(c, deps));
      } else {
        throw new ApiError(
          415,
          "unsupported_media_type",
          `Content-Type must be application/gzip (a payload for the NOC to sign) or application/vnd.noc-package (signed), not "${type}"`,
        );
      }
      deps.log.info("component_published", {
        ...componentJson(result.row),
        created: result.created,
        by: c.get("admin"),
      });
      return c.json(componentJson(result.row), result.created ? 201 : 200);
    });
}

/** `/v1/admin/files`: publishes a file (streamed upload). */
export function fileAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("query", componentQuery), async (c) => {
      const result = await publishFile(deps, c.req.valid("query"), uploadBody(c, deps));
      deps.log.info("component_published", {
        ...componentJson(result.row),
        created: result.created,
        by: c.get("admin"),
      });
      return c.json(componentJson(result.row), result.created ? 201 : 200);
    });
}

/** `/v1/admin/components`: published components. */
export function componentAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", listComponentsQuery), async (c) => {
      const f = c.req.valid("query");
      const rows = await deps.db.sql<ComponentRow>`
        select id, kind, app, name, version, size, sha256, content_sha256, signer_kid, created_at from components
        where (${f.kind ?? null}::text is null or kind = ${f.kind ?? null})
          and (${f.app ?? null}::text is null or app = ${f.app ?? null})
          and (${f.name ?? null}::text is null or name = ${f.name ?? null})
        order by id desc limit ${f.limit}`;
      return c.json({ items: rows.map(componentJson) });
    })
    .get("/:id", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const [row] = await deps.db.sql<ComponentRow & { header: unknown }>`
        select id, kind, app, name, version, size, sha256, content_sha256, signer_kid, created_at, header
        from components where id = ${id}`;
      if (!row) throw new ApiError(404, "not_found", `Component ${id} does not exist`);
      const [sent] = await deps.db.sql<{ n: number }>`
        select count(*)::int as n from deliveries where component_id = ${id}`;
      return c.json({ ...componentJson(row), header: row.header, sentTo: sent!.n });
    });
}

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

/** `/v1/admin/apps/:app/fileinfo`: install instructions for an application's files. */
export function fileinfoAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/:app/fileinfo", validate("param", appParam), async (c) => {
      const { app } = c.req.valid("param");
      const rows = await deps.db.sql<FileinfoRow>`
        select app, name, destination, mode, action, upload_dir, upload_server, updated_at
        from fileinfo where app = ${app} order by name`;
      return c.json({ app, items: rows.map(fileinfoJson) });
    })
    .put(
      "/:app/fileinfo/:name",
      validate("param", fileinfoParam),
      validate("json", fileinfoSchema),
      async (c) => {
        const { app, name } = c.req.valid("param");
        const f = c.req.valid("json");
        const now = deps.clock.now();
        const row = await deps.db.begin(async (tx) => {
          const [r] = await tx<FileinfoRow>`
          insert into fileinfo (app, name, destination, mode, action, upload_dir, upload_server, updated_at)
          values (${app}, ${name}, ${f.destination}, ${f.mode.padStart(4, "0")},
            ${f.action ? JSON.stringify(f.action) : null}, ${f.uploadDir ?? null}, ${
            f.uploadServer ?? null
          }, ${now})
          on conflict (app, name) do update set destination = excluded.destination, mode = excluded.mode,
            action = excluded.action, upload_dir = excluded.upload_dir, upload_server = excluded.upload_server,
            updated_at = excluded.updated_at
          returning app, name, destination, mode, action, upload_dir, upload_server, updated_at`;
          await bumpCatalogEpoch(tx);
          return r!;
        });
        deps.log.info("fileinfo_saved", { app, name, by: c.get("admin") });
        return c.json(fileinfoJson(row));
      },
    )
    .delete("/:app/fileinfo/:name", validate("param", fileinfoParam), async (c) => {
      const { app, name } = c.req.valid("param");
      const rows = await deps.db.begin(async (tx) => {
        const r =
          await tx`delete from fileinfo where app = ${app} and name = ${name} returning name`;
        if (r.length > 0) await bumpCatalogEpoch(tx);
        return r;
      });
      if (rows.length === 0) throw new ApiError(404, "not_found", `No fileinfo for ${app}/${name}`);
      return c.body(null, 204);
    });
}
