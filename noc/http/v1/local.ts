/**
 * `/v1/local`: what local component servers ask of the NOC (spec, FIGURE 1,
 * blocks 18–19). A local server enrols with a one-time token made for a site,
 * syncs (reports on itself, learns what its site's catalogs reference, its
 * site's appliances revoked while their grants may still verify, and the
 * NOC's keys), fetches those components, and
 * sends back the downloads it served, which become the appliances' delivery
 * records when a catalog of the NOC's listed that component for that
 * appliance (anything else is refused, record by record, with its reason).
 *
 * @module
 */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import {
  idParam,
  localEnrollSchema,
  localRecordsSchema,
  localSyncSchema,
} from "../../../protocol/schemas.ts";
import { claimEnrollmentToken } from "../../services/enrollment_tokens.ts";
import { parseJsonBody, readBody, validate } from "../../../protocol/http/validate.ts";
import { clientAddress } from "../middleware/appliance_auth.ts";
import { localServerAuth } from "../middleware/local_server_auth.ts";
import { publishedKeys } from "../../services/publishing.ts";
import { staleSiteCatalogs } from "../../services/catalogs.ts";
import { applyLocalRecords, recentlyRevoked, siteStage } from "../../services/local_servers.ts";
import { gateRollouts } from "../../services/rollouts.ts";
import { GrantError, verifyGrant } from "../../../protocol/grants.ts";
import { throttleNotice } from "../../services/notifier.ts";
import { isHttps, type Served, servedBytes } from "./components.ts";
import { componentAnswer } from "../../../protocol/http/range.ts";
import { checkOfferedKeys, limitEnrolments, recordingRefusals } from "../middleware/enrolment.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** How often a local server is asked to sync, seconds. */
export const localSyncIntervalS = 60;

/**
 * How long a local server's stage (computed at its last sync) authorises its fetches, seconds: a
 * few syncs. A server that stops syncing cannot go on fetching what its site's catalogs dropped.
 */
export const stageLifetimeS = 3 * localSyncIntervalS;

/**
 * The least time between two changes of a local server's URL, seconds. Each change rebuilds the
 * catalogs of its site's appliances (and no others); a change sooner is not taken (the server
 * sends its URL at every sync, so it is taken at the first sync after the gap).
 */
export const urlChangeGapS = 15 * 60;

/** The local component server routes of the NOC. */
export function localServerRoutes(deps: AppDeps) {
  const signed = localServerAuth(deps);
  return new Hono<AppEnv>()
    .post("/enroll", async (c) => {
      limitEnrolments(deps, c);
      const input = parseJsonBody(
        c,
        await readBody(c, 16 * 1024, deps.settings.bodyTimeoutS),
        localEnrollSchema,
      );
      await checkOfferedKeys([{ field: "signingKey", value: input.signingKey, alg: "Ed25519" }]);
      const now = deps.clock.now();
      const id = crypto.randomUUID();
      const site = await recordingRefusals(deps, c, () =>
        deps.db.begin(async (tx) => {
          const tok = await claimEnrollmentToken(tx, input.token, "local-server", id, now);
          // A local-server token always names its site (the admin API requires one).
          if (tok.site === null) {
            throw new ApiError(401, "invalid_token", "Enrolment token has no site");
          }
          const inserted = await tx`
          insert into local_servers (id, site, name, url, sign_key, version, enrolled_at, enrollment_token_id,
            last_contact_at, last_address)
          values (${id}, ${tok.site}, ${input.name}, ${input.url}, ${input.signingKey}, ${
            input.version ?? null
          }, ${now}, ${tok.id}, ${now}, ${clientAddress(c, deps.settings.trustProxy)})
          on conflict (sign_key) do nothing returning id`;
          if (inserted.length === 0) {
            throw new ApiError(409, "key_in_use", "Signing key is already enrolled");
          }
          // The site's catalogs now list this server's URLs first (no other site's change).
          await staleSiteCatalogs(tx, tok.site);
          return tok.site;
        }));
      deps.log.info("local_server_enrolled", { id, site, name: input.name, url: input.url });
      return c.json({
        id,
        site,
        syncS: localSyncIntervalS,
        nocKeys: await publishedKeys(deps),
        serverTime: now.toISOString(),
      }, 201);
    })
    .post("/sync", signed, async (c) => {
      const me = c.get("localServer");
      const input = parseJsonBody(c, c.get("body"), localSyncSchema);
      const now = deps.clock.now();
      const { stage, revoked, noticed } = await deps.db.begin(async (tx) => {
        const stage = await siteStage(tx, me.site);
        const revoked = await recentlyRevoked(tx, me.site, now);
        const [prev] = await tx<
          { problems: Array<Record<string, unknown>>; url: string; url_changed_at: Date | null }
        >`
          select problems, url, url_changed_at from local_servers where id = ${me.id} for update`;
        const problems = [...input.problems, ...(prev?.problems ?? [])].slice(0, 50);
        // A new URL is taken at most once per urlChangeGapS, and marks stale its site's catalogs only.
        const oldUrl = prev?.url ?? me.url;
        const changed = input.url !== oldUrl;
        const takeUrl = changed && (prev?.url_changed_at == null ||
          now.getTime() - prev.url_changed_at.getTime() >= urlChangeGapS * 1000);
        if (changed && !takeUrl) {
          deps.log.warn("local_server_url_change_deferred", {
            server: me.id,
            url: input.url,
            current: oldUrl,
          });
        }
        await tx`
          update local_servers set url = ${takeUrl ? input.url : oldUrl},
            url_changed_at = ${takeUrl ? now : prev?.url_changed_at ?? null},
            version = ${input.version}, last_contact_at = ${now}, stage_at = ${now},
            last_address = ${clientAddress(c, deps.settings.trustProxy)},
            cache_bytes = ${input.cache.bytes}, cache_limit = ${input.cache.limit},
            cache_entries = ${input.cache.entries}, hits = ${input.hits}, misses = ${input.misses},
            served_bytes = ${input.servedBytes}, pending_records = ${input.pendingRecords},
            problems = ${JSON.stringify(problems)}::text::jsonb, stage_ids = ${
          stage.map((s) => s.id)
        }::bigint[]
          where id = ${me.id}`;
        if (takeUrl) await staleSiteCatalogs(tx, me.site);
        let noticed = false;
        if (input.problems.length > 0) {
          const t = await throttleNotice(
            tx,
            `local_server_problem:${me.id}`,
            now,
            deps.settings.identityNoticeWindowS,
          );
          if (t.allowed) {
            const first = input.problems[0]!;
            await deps.notifier.enqueue(tx, {
              kind: "local_server_problem",
              text:
                `:warning: Local component server "${me.name}" (site ${me.site}) reports ${input.problems.length} problem(s): ${first.code}: ${first.message}`,
              payload: { server: me.id, site: me.site, problems: input.problems },
            }, now);
            noticed = true;
          }
        }
        return { stage, revoked, noticed };
      });
      if (noticed) deps.notifier.kick();
      if (input.problems.length > 0) {
        deps.log.warn("local_server_problems", { server: me.id, problems: input.problems });
      }
      return c.json({
        id: me.id,
        site: me.site,
        syncS: localSyncIntervalS,
        serverTime: now.toISOString(),
        keys: await publishedKeys(deps),
        stage,
        revoked,
      });
    })
    .post("/deliveries", signed, async (c) => {
      const me = c.get("localServer");
      const input = parseJsonBody(c, c.get("body"), localRecordsSchema);
      const now = deps.clock.now();
      const { componentIds, ...r } = await deps.db.begin((tx) =>
        applyLocalRecords(tx, me, input, now)
      );
      if (r.refused > 0) {
        deps.log.warn("local_records_refused", {
          server: me.id,
          refused: r.refused,
          records: r.refusedRecords.slice(0, 20),
        });
      }
      // Outcomes reported before their delivery record arrived count now: the gate looks again.
      if (componentIds.length > 0) {
        const refs = await deps.db.sql<
          { kind: string; app: string; name: string; version: string }
        >`
          select distinct c.kind, c.app, c.name, c.version from components c
          join assignments a on a.kind = c.kind and a.app = c.app and a.name = c.name
            and a.version = c.version and not a.paused and a.failure_threshold_percent is not null
          where c.id = any(${componentIds}::bigint[])`;
        for (const ref of refs) await gateRollouts(deps, ref);
      }
      return c.json(r);
    })
    .get("/components/:id", validate("param", idParam), signed, async (c) => {
      const me = c.get("localServer");
      const { id } = c.req.valid("param");
      // The stage counts only while recent: one that stopped syncing keeps nothing since dropped.
      const fresh = new Date(deps.clock.now().getTime() - stageLifetimeS * 1000);
      const [comp] = await deps.db.sql<Served & { staged: boolean }>`
        select c.id, c.kind, c.app, c.name, c.version, c.size, c.sha256, c.blob_id, c.prefix,
          coalesce(c.id = any(l.stage_ids) and l.stage_at > ${fresh}, false) as staged
        from components c, local_servers l where c.id = ${id} and l.id = ${me.id}`;
      if (!comp) throw new ApiError(404, "not_found", `Component ${id} does not exist`);
      if (!comp.staged) {
        // Not (yet, or no longer) in its site's stage: only with an appliance's grant, for an
        // appliance of its site whose latest catalog lists the component.
        const grant = c.req.query("grant");
        if (grant === undefined) {
          throw new ApiError(
            403,
            "not_staged",
            `Component ${id} is not referenced by a catalog of site "${me.site}"`,
          );
        }
        let uid: string;
        try {
          uid = (await verifyGrant(grant, id, deps.keys.published, deps.clock.now())).u;
        } catch (e) {
          if (!(e instanceof GrantError)) throw e;
          throw new ApiError(403, e.reason, e.message);
        }
        const [a] = await deps.db.sql<{ listed: boolean | null }>`
          select l.current as listed from appliances a
          left join catalog_listings l on l.uid = a.uid and l.component_id = ${id}
          where a.uid = ${uid} and a.site = ${me.site} and a.revoked_at is null`;
        if (!a) {
          throw new ApiError(
            403,
            "wrong_site",
            `Download grant is for an appliance outside site "${me.site}"`,
          );
        }
        if (!a.listed) {
          throw new ApiError(
            403,
            "not_in_catalog",
            `Component ${id} is not in the catalog of appliance "${uid}" any more`,
          );
        }
      }
      if (
        comp.kind === "file" && !isHttps(c, deps.settings.trustProxy) &&
        !deps.settings.allowPlainHttpFiles
      ) {
        throw new ApiError(403, "https_required", "Files are served over HTTPS only");
      }
      const { status, start, end, length, headers } = componentAnswer(
        c.req.header("range"),
        comp,
      );
      const now = deps.clock.now();
      await deps.db.sql`
        insert into local_server_fetches (server_id, component_id, first_at, last_at, bytes)
        values (${me.id}, ${id}, ${now}, ${now}, ${length})
        on conflict (server_id, component_id) do update set last_at = excluded.last_at,
          times = local_server_fetches.times + 1, bytes = local_server_fetches.bytes + excluded.bytes`;
      headers["x-noc-component"] = JSON.stringify({
        id: comp.id,
        kind: comp.kind,
        app: comp.app,
        name: comp.name,
        version: comp.version,
        size: comp.size,
        sha256: comp.sha256,
      });
      if (length === 0) return c.body(null, status, headers);
      return c.body(
        ReadableStream.from(servedBytes(deps, comp, start, end)),
        status,
        headers,
      );
    });
}
