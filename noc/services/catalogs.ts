/**
 * Serving catalogs cheaply: each appliance's signed catalog is kept with the
 * catalog epoch it was built at. Any change that can alter a catalog bumps
 * the fleet-wide epoch (or clears one appliance's, or one site's); until then a request
 * costs one statement, and `If-None-Match` gets a 304 with nothing
 * regenerated, re-signed or re-wrapped.
 *
 * Every answer, 200 and 304 alike, is bound to the request that asked (as
 * Omaha's CUP): one Ed25519 signature over the appliance, the request's
 * signature nonce and the SHA-256 of the catalog body, which is the ETag, so
 * nothing is hashed per request. A replayed answer fails on any appliance,
 * whatever state it lost.
 *
 * @module
 */
import { ApiError } from "../../protocol/http/errors.ts";
import type { CatalogTouchRow } from "./checkins.ts";
import { learnedInterval } from "./schedule_changes.ts";
import { windowFor } from "./install_windows.ts";
import type { AppDeps } from "./deps.ts";
import type { Sql } from "../db/db.ts";
import {
  type CatalogDocument,
  type CatalogEntry,
  signCatalog,
  signCatalogBinding,
} from "../../protocol/catalog.ts";
import { recordListing, resolveCatalog } from "./catalog_engine.ts";
import { claimNoticeWindow } from "./notifier.ts";
import { issueGrant } from "../../protocol/grants.ts";
import { publishedKeys } from "./publishing.ts";
import { x25519Recipient } from "../../protocol/crypto/hpke_seal.ts";
import { wrapContentKey } from "../../protocol/package/format.ts";
import { fromBase64Url, sha256, toHex } from "../../protocol/util/encoding.ts";
import { localServerUrls } from "./local_servers.ts";
import { catalogFileInfo, fileinfoOf } from "./fileinfo.ts";
import { BEAT_MAX_COMPONENTS, componentVersionOf } from "../../protocol/schemas.ts";
import type { ReportLimits } from "../../protocol/catalog.ts";
import type { Settings } from "../config.ts";

/**
 * The limits every catalog announces (issue 21): the NOC's own, so an agent fits its SecureBeat
 * to them before sending — the request body, one application's data, and the components a beat
 * may list (as many as a catalog may list: noc/services/catalog_engine.ts caps it).
 */
export function reportLimitsOf(settings: Pick<Settings, "maxBodyBytes" | "maxAppDataBytes">) {
  return {
    bodyBytes: settings.maxBodyBytes,
    appDataBytes: settings.maxAppDataBytes,
    components: BEAT_MAX_COMPONENTS,
  } satisfies ReportLimits;
}

/** Marks every catalog stale (a release, rollout, fileinfo or key change). */
export async function bumpCatalogEpoch(tx: Sql): Promise<void> {
  await tx`update catalog_epoch set epoch = epoch + 1`;
}

/** Marks one appliance's catalog stale (its placement or holds changed). */
export async function staleCatalogOf(tx: Sql, uid: string): Promise<void> {
  await tx`update appliances set catalog_epoch = 0 where uid = ${uid}`;
}

/**
 * Marks stale the catalogs of `site`'s appliances only (its local servers' URLs changed): they
 * rebuild at their next request, the rest of the fleet keeps its cached catalogs.
 */
export async function staleSiteCatalogs(tx: Sql, site: string): Promise<void> {
  await tx`update appliances set catalog_epoch = 0 where site = ${site} and catalog_epoch <> 0`;
}

/** A catalog answer as the cache gives it, before it is bound to a request. */
type CachedAnswer = { status: 304; etag: string } | { status: 200; etag: string; body: string };

/** A catalog answer, with `binding`: its `Catalog-Binding` header for the request's nonce. */
export type CatalogAnswer = CachedAnswer & { binding: string };

/** A catalog body's ETag: its whole SHA-256, hex, quoted (the digest the binding signs). */
const etagPattern = /^"[0-9a-f]{64}"$/;

/**
 * Answers a catalog request from appliance `uid`: archives the connection
 * time (unless `touched`, the row a joined check-in's beat statement read when it archived it),
 * then serves the cached catalog (or 304) while it is current, and
 * builds, signs and caches a new one otherwise. The answer carries its binding
 * to `nonce` (the request's verified signature nonce).
 */
export async function answerCatalog(
  deps: AppDeps,
  uid: string,
  ifNoneMatch: string | undefined,
  baseUrl: string,
  nonce: string,
  touched?: CatalogTouchRow,
): Promise<CatalogAnswer> {
  const { answer, row } = await catalogAnswer(deps, uid, ifNoneMatch, baseUrl, touched);
  // The catalog answered carries the appliance's interval: from now on its agent is on it, and its
  // due time counts it (noc/services/schedule_changes.ts).
  if (row.known_interval_s !== row.interval_s) {
    await learnedInterval(deps.db.sql, uid, row.interval_s, deps.clock.now());
  }
  const binding = await signCatalogBinding(
    { kid: deps.keys.kid, privateKey: deps.keys.privateKey },
    uid,
    nonce,
    answer.etag.slice(1, -1),
  );
  return { ...answer, binding };
}

async function catalogAnswer(
  deps: AppDeps,
  uid: string,
  ifNoneMatch: string | undefined,
  baseUrl: string,
  touched?: CatalogTouchRow,
): Promise<{ answer: CachedAnswer; row: CatalogTouchRow }> {
  const now = deps.clock.now();
  const row = touched ?? await deps.checkins.touchCatalog(uid, now);
  // Revoked or deleted since the request was authenticated (GET /v1/catalog refuses these itself
  // first, recording the refusal: noc/http/v1/catalog.ts).
  if (row === "revoked") {
    throw new ApiError(401, "revoked_key", `Appliance "${uid}" has been revoked`);
  }
  if (!row) throw new ApiError(401, "unknown_key", `Appliance "${uid}" is not enrolled`);
  return { answer: await catalogAnswerOf(deps, uid, ifNoneMatch, baseUrl, row, now), row };
}

async function catalogAnswerOf(
  deps: AppDeps,
  uid: string,
  ifNoneMatch: string | undefined,
  baseUrl: string,
  row: CatalogTouchRow,
  now: Date,
): Promise<CachedAnswer> {
  const halfLife = (deps.settings.catalogTtlS * 1000) / 2;
  const limits = reportLimitsOf(deps.settings);
  // How the limits read inside the envelope (the document is a JSON string there): a cached
  // body without them, or with other figures (the settings changed), is rebuilt.
  const limitsText = JSON.stringify(`"limits":${JSON.stringify(limits)}`).slice(1, -1);
  // A body cached under an older ETag form (a digest prefix) is rebuilt: the binding signs the
  // ETag. So is one signed by another key (a rotation): the envelope ends with its kid.
  const current = row.catalog_body !== null && row.catalog_etag !== null &&
    etagPattern.test(row.catalog_etag) &&
    row.catalog_body.includes(
      `","kid":"${deps.keys.kid}","signature":"`,
      row.catalog_body.length - 160,
    ) &&
    row.catalog_body.slice(0, 1000).includes(limitsText) &&
    row.catalog_epoch === row.epoch &&
    row.catalog_expires_at !== null && row.catalog_expires_at.getTime() - now.getTime() > halfLife;
  if (current) {
    if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, row.catalog_etag!)) {
      return { status: 304, etag: row.catalog_etag! };
    }
    return { status: 200, etag: row.catalog_etag!, body: row.catalog_body! };
  }
  return await deps.db.begin(async (tx) => {
    const chosen = await resolveCatalog(tx, {
      uid,
      model: row.model,
      site: row.site,
      channel: row.channel,
      tags: row.tags,
    });
    if (chosen.omitted > 0) await noticeOverLimit(deps, tx, uid, chosen, now);
    const expires = new Date(now.getTime() + deps.settings.catalogTtlS * 1000);
    const fileinfo = await fileinfoOf(tx, chosen.map((c) => c.app));
    const wrapped = new Map(
      (await tx<{ component_id: number; wrapped: string }>`
        select component_id, wrapped from wrapped_keys where uid = ${uid}
          and component_id = any(${chosen.map((c) => c.id)}::bigint[])`).map((
        w,
      ) => [w.component_id, w.wrapped]),
    );
    const signer = { kid: deps.keys.kid, privateKey: deps.keys.privateKey };
    // The site's local component servers first (spec, FIGURE 1: spare the WAN link), the NOC last.
    const mirrors = await localServerUrls(tx, row.site);
    // Content keys this appliance has no wrapped copy of yet: unsealed (once per NOC process, see
    // contentKeyCache), wrapped to the appliance, then stored in one statement.
    const unwrapped = chosen.filter((c) => c.kind === "package" && !wrapped.has(c.id));
    // The appliance's X25519 key, parsed once for all its wraps (and not at all when none is due).
    const recipient = unwrapped.length > 0 ? x25519Recipient(fromBase64Url(row.enc_key)) : null;
    const fresh = await Promise.all(
      unwrapped.map(async (c) => {
        const key = await deps.contentKeys.get({ ...c, sealed_key: c.sealedKey! });
        const w = await wrapContentKey(key, recipient!, {
          ...c,
          ciphertextSha256: c.ciphertextSha256!,
        });
        wrapped.set(c.id, w);
        return { id: c.id, w };
      }),
    );
    if (fresh.length > 0) {
      await tx`
        insert into wrapped_keys (uid, component_id, wrapped)
        select ${uid}, t.id, t.w from unnest(${fresh.map((f) => f.id)}::bigint[], ${
        fresh.map((f) => f.w)
      }::text[]) as t(id, w)
        on conflict do nothing`;
    }
    const grants = await Promise.all(chosen.map((c) => issueGrant(signer, uid, c.id, expires)));
    const components: CatalogEntry[] = [];
    for (const [i, c] of chosen.entries()) {
      const grant = grants[i]!;
      const { id: _, ...line } = componentVersionOf(c);
      const entry: CatalogEntry = {
        ...line,
        urls: [...mirrors, baseUrl].map((u) => `${u}/v1/components/${c.id}?grant=${grant}`),
      };
      if (c.urgent) entry.urgent = true;
      if (c.kind === "package") {
        entry.signer = c.signerKid!;
        entry.wrappedKey = wrapped.get(c.id)!;
      } else {
        const fi = fileinfo.find((f) => f.app === c.app && f.name === c.name);
        entry.fileinfo = fi ? catalogFileInfo(fi) : null;
      }
      components.push(entry);
    }
    // What this catalog lists (nothing an appliance or a local server says can write it), and its
    // serial, in one statement.
    const serial = await recordListing(tx, uid, chosen.map((c) => c.id), now);
    // When it may install (its own window, else its site's, else its model's): signed with it.
    const window = await windowFor(tx, { uid, site: row.site, model: row.model });
    const doc: CatalogDocument = {
      format: "noc-catalog/1",
      uid,
      serial,
      issuedAt: now.toISOString(),
      expiresAt: expires.toISOString(),
      intervalS: row.interval_s,
      limits,
      ...(window ? { installWindow: window } : {}),
      keys: await publishedKeys({ db: { ...deps.db, sql: tx }, keys: deps.keys }),
      components,
    };
    const body = JSON.stringify(await signCatalog(doc, signer));
    const etag = `"${toHex(await sha256(body))}"`;
    await tx`
      update appliances set catalog_epoch = ${row.epoch}, catalog_etag = ${etag}, catalog_body = ${body},
        catalog_expires_at = ${expires}
      where uid = ${uid}`;
    return { status: 200, etag, body };
  });
}

/** The `notice_throttle` key of the fleet's `catalog_over_limit` notice (one a day). */
const overLimitNoticeKey = "catalog_over_limit";
/** The prefix of each cut appliance's own row (its last cut), which the notice counts. */
const overLimitApplianceKey = "catalog_over_limit:";

/**
 * Tells the operator that appliance `uid`'s catalog would list more components than a beat can
 * report back, so `chosen.omitted` were left out. The cause is fleet-wide (assignments name more
 * than the limit's distinct components), so every appliance it reaches would say the same: one
 * notice a day for the whole fleet, naming how many appliances' catalogs were cut since the last
 * such notice (or in the last 24 hours) and a few of them. Each cut appliance records when it was last cut (its own row, so a
 * large fleet does not queue on one); the day's notice is claimed without waiting for a lock.
 */
async function noticeOverLimit(
  deps: AppDeps,
  tx: Sql,
  uid: string,
  chosen: { length: number; omitted: number },
  now: Date,
): Promise<void> {
  deps.log.warn("catalog_over_limit", { uid, listed: chosen.length, omitted: chosen.omitted });
  await tx`
    insert into notice_throttle (key, window_started_at, suppressed)
    values (${overLimitApplianceKey + uid}, ${now}, 0)
    on conflict (key) do update set window_started_at = excluded.window_started_at`;
  const claimed = await claimNoticeWindow(tx, overLimitNoticeKey, now, 86400);
  if (!claimed.won) return;
  // The appliances cut since the last notice (the day's first ever: the last 24 hours).
  const since = claimed.since ?? new Date(now.getTime() - 86400 * 1000);
  const [counted] = await tx<{ n: number }>`
    select count(*)::int as n from notice_throttle
    where key like ${overLimitApplianceKey + "%"} and window_started_at >= ${since}`;
  // This appliance first, then the latest others cut.
  const examples = await tx<{ uid: string; hostname: string }>`
    select a.uid, a.hostname from notice_throttle t
    join appliances a on a.uid::text = substr(t.key, ${overLimitApplianceKey.length + 1})
    where t.key like ${overLimitApplianceKey + "%"} and t.window_started_at >= ${since}
    order by a.uid = ${uid} desc, t.window_started_at desc, a.uid limit 5`;
  const n = Math.max(counted?.n ?? 1, 1);
  const self = examples.find((e) => e.uid === uid);
  const hostname = self?.hostname ?? uid;
  const others = examples.filter((e) => e.uid !== uid).map((e) => e.hostname);
  const more = n - 1 - others.length;
  await deps.notifier.enqueue(tx, {
    kind: "catalog_over_limit",
    uid,
    text:
      `:warning: ${hostname}'s catalog would list ${
        chosen.length + chosen.omitted
      } components, more than the ${BEAT_MAX_COMPONENTS} a SecureBeat can report: ` +
      `${chosen.omitted} were left out. ${
        n === 1 ? "It is the only appliance" : `${n} appliances' catalogs were`
      } cut ${claimed.since ? "since the last such notice" : "in the last 24 hours"}${
        others.length > 0
          ? ` (also ${others.join(", ")}${more > 0 ? ` and ${more} more` : ""})`
          : ""
      }. Assignments name more than ${BEAT_MAX_COMPONENTS} distinct components fleet-wide: ` +
      "delete assignments no longer needed, or bundle files into a package. One notice a day " +
      "for the whole fleet",
    payload: {
      appliance: { uid, hostname: self?.hostname ?? null },
      limit: BEAT_MAX_COMPONENTS,
      components: chosen.length + chosen.omitted,
      omitted: chosen.omitted,
      appliances: n,
      examples: examples.map((e) => ({ uid: e.uid, hostname: e.hostname })),
    },
  }, now);
}

function etagMatches(header: string, etag: string): boolean {
  return header.split(",").some((t) => t.trim().replace(/^W\//, "") === etag || t.trim() === "*");
}
