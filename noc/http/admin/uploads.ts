/**
 * `/v1/admin/packages` and `/v1/admin/files`: publishing by streamed upload.
 * These two resources read their bodies themselves, bounded by
 * `NOC_MAX_UPLOAD_BYTES` and an idle limit, instead of the small body limit.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { componentQuery } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { limitStream } from "../../../protocol/util/bytes.ts";
import {
  componentJson,
  publishFile,
  publishPayload,
  publishSignedPackage,
} from "../../services/publishing.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

function uploadBody(c: Context, deps: AppDeps): AsyncIterable<Uint8Array> {
  const max = deps.settings.maxUploadBytes;
  const len = c.req.header("content-length");
  const tooLarge = () => new ApiError(413, "body_too_large", `Upload is larger than ${max} bytes`);
  if (len !== undefined && Number(len) > max) throw tooLarge();
  const body = c.req.raw.body ?? ReadableStream.from<Uint8Array>([]);
  const idleS = deps.settings.uploadIdleS;
  const stalled = () =>
    new ApiError(408, "request_timeout", `Upload stalled: no bytes for ${idleS} s`);
  return limitStream(body, { maxBytes: max, onTooLarge: tooLarge, idleS, onIdle: stalled });
}

/**
 * The Content-Types of a package payload for the NOC to sign (a gzip'd tar): `application/gzip`,
 * and what some tools send for the same bytes.
 */
const payloadTypes: readonly string[] = [
  "application/gzip",
  "application/x-gzip",
  "application/octet-stream",
];

/**
 * `/v1/admin/packages`: publishes a package (streamed upload): a payload for the NOC to sign
 * (`application/gzip`, `application/x-gzip` or `application/octet-stream`) or a package signed
 * offline (`application/vnd.noc-package`); any other type is refused `415 unsupported_media_type`,
 * naming the accepted ones. Either way the payload is checked as it streams in; one no agent could
 * install is refused `400 bad_payload` (noc/services/publishing.ts).
 */
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
      } else if (payloadTypes.includes(type)) {
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
          `Content-Type must be ${
            payloadTypes.join(", ")
          } (a gzip'd tar payload for the NOC to sign) or application/vnd.noc-package (a package signed offline), not ${
            type === "" ? "none" : `"${type}"`
          }`,
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
