/** `/v1/admin/local-servers`: the sites' local component servers, their health and traffic; revocation. */
import { expectRevision, ifMatchOf, refusingStale, setEtag } from "./revisions.ts";
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { localServerListQuery, localServerParam, revokeSchema } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { bumpCatalogEpoch } from "../../services/catalogs.ts";
import { localSyncIntervalS } from "../v1/local.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { decodeCursor, pageOf } from "./paging.ts";
import { z } from "zod";

interface LocalServerRow {
  id: string;
  site: string;
  name: string;
  url: string;
  version: string | null;
  enrolled_at: Date;
  last_contact_at: Date | null;
  last_address: string | null;
  cache_bytes: number;
  cache_limit: number;
  cache_entries: number;
  hits: number;
  misses: number;
  served_bytes: number;
  pending_records: number;
  problems: unknown[];
  staged: number;
  fetched_bytes: number;
  revoked_at: Date | null;
  revoked_reason: string | null;
  revision: number;
}

/** A local server is `silent` when it has not synced for this many sync intervals. */
const silentAfterIntervals = 5;

function serverJson(r: LocalServerRow, now: Date): Record<string, unknown> {
  const hits = Number(r.hits), misses = Number(r.misses);
  const silent = r.last_contact_at === null ||
    now.getTime() - r.last_contact_at.getTime() > silentAfterIntervals * localSyncIntervalS * 1000;
  return {
    id: r.id,
    site: r.site,
    name: r.name,
    url: r.url,
    version: r.version,
    state: r.revoked_at ? "revoked" : silent ? "silent" : "ok",
    enrolledAt: r.enrolled_at.toISOString(),
    lastContactAt: r.last_contact_at?.toISOString() ?? null,
    lastAddress: r.last_address,
    cache: {
      bytes: Number(r.cache_bytes),
      limit: Number(r.cache_limit),
      entries: r.cache_entries,
      staged: r.staged,
    },
    hits,
    misses,
    hitRate: hits + misses === 0 ? null : Math.round((hits / (hits + misses)) * 1000) / 1000,
    servedBytes: Number(r.served_bytes),
    fetchedFromNocBytes: Number(r.fetched_bytes),
    pendingRecords: r.pending_records,
    problems: r.problems,
    revokedAt: r.revoked_at?.toISOString() ?? null,
    revokedReason: r.revoked_reason,
    // Its version (the ETag of GET /:id): If-Match on POST /:id/revoke (./revisions.ts).
    revision: Number(r.revision),
  };
}

/** The local component server admin routes. */
export function localServerAdminRoutes(deps: AppDeps) {
  const select = (
    where: { site?: string | undefined; id?: string; after?: [string, string] | null },
    limit = 1,
  ) =>
    deps.db.sql<LocalServerRow>`
      select l.id, l.site, l.name, l.url, l.version, l.enrolled_at, l.last_contact_at, l.last_address,
        l.cache_bytes, l.cache_limit, l.cache_entries, l.hits, l.misses, l.served_bytes, l.pending_records,
        l.problems, cardinality(l.stage_ids) as staged, l.revoked_at, l.revoked_reason,
        l.revision,
        coalesce((select sum(f.bytes) from local_server_fetches f where f.server_id = l.id), 0)::bigint
          as fetched_bytes
      from local_servers l
      where (${where.site ?? null}::text is null or l.site = ${where.site ?? null})
        and (${where.id ?? null}::uuid is null or l.id = ${where.id ?? null})
        and (${where.after?.[0] ?? null}::text is null
          or (l.site, l.id) > (${where.after?.[0] ?? null}::text, ${
      where.after?.[1] ?? null
    }::uuid))
      order by l.site, l.id limit ${limit}`;
  return new Hono<AppEnv>()
    .get("/", validate("query", localServerListQuery), async (c) => {
      const q = c.req.valid("query");
      // By site, keyset on (site, id) (noc/http/admin/paging.ts).
      const after = decodeCursor(q.cursor, z.tuple([z.string().max(300), z.uuid()]));
      const rows = await select({ site: q.site, after }, q.limit + 1);
      const page = pageOf(rows, q.limit, (r) => [r.site, r.id]);
      const now = deps.clock.now();
      return c.json({
        items: page.rows.map((r) => serverJson(r, now)),
        nextCursor: page.nextCursor,
      });
    })
    .get("/:id", validate("param", localServerParam), async (c) => {
      const { id } = c.req.valid("param");
      const [row] = await select({ id });
      if (!row) {
        throw new ApiError(404, "not_found", `Local component server "${id}" does not exist`);
      }
      const fetches = await deps.db.sql<{
        component_id: number;
        kind: string;
        app: string;
        name: string;
        version: string;
        times: number;
        bytes: number;
        last_at: Date;
      }>`
        select f.component_id, c.kind, c.app, c.name, c.version, f.times, f.bytes, f.last_at
        from local_server_fetches f join components c on c.id = f.component_id
        where f.server_id = ${id} order by f.last_at desc limit 200`;
      setEtag(c, row.revision);
      return c.json({
        ...serverJson(row, deps.clock.now()),
        fetchedFromNoc: fetches.map((f) => ({
          componentId: f.component_id,
          kind: f.kind,
          app: f.app,
          name: f.name,
          version: f.version,
          times: f.times,
          bytes: Number(f.bytes),
          lastAt: f.last_at.toISOString(),
        })),
      });
    })
    .post(
      "/:id/revoke",
      validate("param", localServerParam),
      validate("json", revokeSchema),
      async (c) => {
        const { id } = c.req.valid("param");
        const { reason } = c.req.valid("json");
        const now = deps.clock.now();
        const m = ifMatchOf(c);
        const found = await refusingStale(
          `Local component server "${id}"`,
          m,
          () =>
            deps.db.begin(async (tx) => {
              const [cur] = await tx<{ revision: number }>`
            select revision from local_servers where id = ${id} for update`;
              if (cur) expectRevision(m, cur.revision);
              const rows = await tx`
          update local_servers set revoked_at = coalesce(revoked_at, ${now}),
            revoked_reason = coalesce(revoked_reason, ${reason})
          where id = ${id} returning id`;
              // Catalogs stop listing its URLs.
              if (rows.length > 0) await bumpCatalogEpoch(tx);
              return rows.length > 0;
            }),
          async () => {
            const [r] = await select({ id });
            return r ? serverJson(r, deps.clock.now()) : null;
          },
        );
        if (!found) {
          throw new ApiError(
            404,
            "not_found",
            `Local component server "${id}" does not exist`,
          );
        }
        deps.log.info("local_server_revoked", { id, reason, by: c.get("admin") });
        const [row] = await select({ id });
        setEtag(c, row!.revision);
        return c.json(serverJson(row!, now));
      },
    );
}
