/**
 * `GET`/`HEAD /v1/components/:id`: the component server (spec, FIGURE 9).
 * Authorised per appliance and per component: by a download grant from the
 * catalog (the NOC issues one only in a catalog listing that component for
 * that appliance) or by the appliance's request signature, and either way only
 * while the appliance's latest catalog still lists the component — anything
 * else is refused before anything is read or recorded. A grant is honoured
 * unsigned (local servers and plain mirrors fetch with it for the appliance),
 * but never when signed by another appliance. Files only over HTTPS; `Range`
 * for resuming. Every download is recorded, for the appliance the grant or
 * signature names: the appliance's configuration settings, progressively
 * assembled. One statement authorises and looks up a download.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import {
  applianceAuth,
  clientAddress,
  recordIdentityFailure,
} from "../middleware/appliance_auth.ts";
import { ApiError } from "../../../protocol/http/errors.ts";
import { GrantError, verifyGrant } from "../../../protocol/grants.ts";
import { readBlob } from "../../services/blobs.ts";
import { fileRange } from "../../services/blob_cache.ts";
import { fromBase64Url } from "../../../protocol/util/encoding.ts";
import { type ComponentVersion, idParam } from "../../../protocol/schemas.ts";
import { componentAnswer } from "../../../protocol/http/range.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** A component as the component server streams it. */
export interface Served extends ComponentVersion {
  blob_id: number;
  prefix: string | null;
}

/** Streams bytes `start`..`end` (inclusive) of component `c`: its stored prefix, then its blob. */
export async function* servedBytes(
  deps: AppDeps,
  c: Served,
  start: number,
  end: number,
): AsyncGenerator<Uint8Array> {
  const prefix = c.prefix ? fromBase64Url(c.prefix) : new Uint8Array();
  if (start < prefix.length) yield prefix.subarray(start, Math.min(prefix.length, end + 1));
  if (end >= prefix.length) {
    yield* readBlob(deps.db, c.blob_id, Math.max(0, start - prefix.length), end - prefix.length);
  }
}

/** True when the request reached the NOC over HTTPS (directly, or through a trusted proxy). */
export function isHttps(c: Context, trustProxy: boolean): boolean {
  if (new URL(c.req.url).protocol === "https:") return true;
  return trustProxy &&
    c.req.header("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase() === "https";
}

/** The component server routes. */
export function componentRoutes(deps: AppDeps) {
  const signed = applianceAuth(deps);
  const serve = async (c: Context<AppEnv>, head: boolean) => {
    const id = Number(c.req.param("id"));
    const grantToken = c.req.query("grant");
    let uid: string;
    if (grantToken !== undefined) {
      try {
        uid = (await verifyGrant(grantToken, id, deps.keys.published, deps.clock.now())).u;
      } catch (e) {
        if (!(e instanceof GrantError)) throw e;
        await recordIdentityFailure(deps, {
          reason: e.reason,
          keyid: null,
          method: c.req.method,
          path: c.req.path,
          address: clientAddress(c, deps.settings.trustProxy),
        });
        throw new ApiError(e.reason === "expired_grant" ? 401 : 403, e.reason, e.message);
      }
      // A grant is a bearer token for one appliance; presented by another (signed) appliance it is refused.
      if (c.req.header("signature-input") !== undefined) {
        await signed(c, () => Promise.resolve());
        const presenter = c.get("appliance").uid;
        if (presenter !== uid) {
          await recordIdentityFailure(deps, {
            reason: "wrong_appliance",
            keyid: presenter,
            // The presenter's signature verified: only the holder of its key could send this.
            proven: true,
            method: c.req.method,
            path: c.req.path,
            address: clientAddress(c, deps.settings.trustProxy),
          });
          throw new ApiError(
            403,
            "wrong_appliance",
            `Download grant is for another appliance, not "${presenter}"`,
          );
        }
      }
    } else {
      await signed(c, () => Promise.resolve());
      uid = c.get("appliance").uid;
    }
    // Grant or signature, only what the appliance's latest catalog lists (the NOC's own record of
    // it): a grant outlives its listing (a newer version, a move), and is refused from then on.
    const [comp] = await deps.db.sql<Served & { listed: boolean | null }>`
      select c.id, c.kind, c.app, c.name, c.version, c.size, c.sha256, c.blob_id, c.prefix,
        l.current as listed
      from components c join appliances a on a.uid = ${uid} and a.revoked_at is null
      left join catalog_listings l on l.uid = a.uid and l.component_id = c.id
      where c.id = ${id}`;
    if (!comp && grantToken !== undefined) {
      throw new ApiError(
        404,
        "not_found",
        `Component ${id} does not exist (or the appliance is revoked)`,
      );
    }
    if (!comp?.listed) {
      // Whether the component exists or not (no existence oracle).
      const byGrant = grantToken !== undefined;
      deps.log.warn("component_refused", {
        uid,
        componentId: id,
        reason: "not_in_catalog",
        byGrant,
      });
      throw new ApiError(
        403,
        "not_in_catalog",
        byGrant
          ? `Component ${id} is not in the catalog of appliance "${uid}" any more: its download grant is no longer honoured`
          : `Component ${id} is not in the catalog of appliance "${uid}"`,
      );
    }
    if (
      comp.kind === "file" && !isHttps(c, deps.settings.trustProxy) &&
      !deps.settings.allowPlainHttpFiles
    ) {
      throw new ApiError(403, "https_required", "Files are served over HTTPS only");
    }
    const { status, start, end, length, headers } = componentAnswer(c.req.header("range"), comp);
    if (head) return c.body(null, status, headers);
    const now = deps.clock.now();
    await deps.db.sql`
      insert into deliveries (uid, component_id, first_sent_at, last_sent_at) values (${uid}, ${id}, ${now}, ${now})
      on conflict (uid, component_id) do update set last_sent_at = excluded.last_sent_at,
        times = deliveries.times + 1, via = null`;
    deps.metrics.inc("noc_downloads_total", { kind: comp.kind });
    deps.metrics.inc(
      "noc_download_bytes_total",
      { kind: comp.kind },
      length,
    );
    if (length === 0) return c.body(null, status, headers);
    const cached = await deps.blobCache?.open(
      comp,
      () => servedBytes(deps, comp, 0, comp.size - 1),
    );
    if (cached) {
      // To the end of the file (a whole download or a resume): the runtime streams it natively.
      if (end === comp.size - 1) {
        try {
          if (start > 0) await cached.seek(start, Deno.SeekMode.Start);
        } catch (e) {
          cached.close();
          throw e;
        }
        return c.body(cached.readable, status, headers);
      }
      return c.body(fileRange(cached, start, length), status, headers);
    }
    return c.body(ReadableStream.from(servedBytes(deps, comp, start, end)), status, headers);
  };
  return new Hono<AppEnv>()
    .on("HEAD", "/:id", validate("param", idParam), (c) => serve(c, true))
    .get("/:id", validate("param", idParam), (c) => serve(c, c.req.method === "HEAD"));
}
