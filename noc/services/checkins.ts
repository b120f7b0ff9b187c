/**
 * The statements every check-in runs — finding the appliance, spending the
 * signature's nonce, recording the SecureBeat, archiving the catalog request —
 * each run through a {@link batcher}, so under load one statement serves many
 * appliances. Each batch is one statement (one implicit transaction): a beat
 * is answered only once it is committed, and a batch writes all or nothing.
 *
 * @module
 */
import { batcher } from "./batcher.ts";
import type { Db } from "../db/db.ts";
import {
  type Ed25519Key,
  ed25519KeyObject,
  importEd25519Public,
} from "../../protocol/crypto/ed25519.ts";
import { fromBase64Url } from "../../protocol/util/encoding.ts";
import { createNocInstance, type NocInstance } from "./noc_instance.ts";

/** An appliance row, as authentication needs it. */
export interface ApplianceAuthRow {
  uid: string;
  hostname: string;
  model: string;
  site: string | null;
  interval_s: number;
  sign_key: string;
  revoked_at: Date | null;
}

/** One SecureBeat to record. */
export interface BeatWrite {
  uid: string;
  receivedAt: Date;
  nextDue: Date;
  seq: number;
  sentAt: Date;
  /** The whole report: the appliance's last report. */
  report: unknown;
  /** What the history keeps of it (bounded: see `historyOf` in noc/http/v1/beats.ts). */
  history: unknown;
  /** Seconds since its last history row under which this beat adds none. */
  historyGapS: number;
  address: string | null;
  agentVersion: string | null;
}

/** The appliance row a catalog request reads (after archiving its time). */
export interface CatalogTouchRow {
  catalog_epoch: number;
  catalog_etag: string | null;
  catalog_body: string | null;
  catalog_expires_at: Date | null;
  epoch: number;
  model: string;
  site: string | null;
  channel: string;
  tags: string[];
  enc_key: string;
  interval_s: number;
}

/** The check-in statements of one database. */
export interface CheckinStore {
  /** The appliance with UID `uid`, if enrolled. */
  findAppliance(uid: string): Promise<ApplianceAuthRow | undefined>;
  /** Records nonce `nonce` of `uid` until `expiresAt`; false when it was already used. */
  spendNonce(uid: string, nonce: string, expiresAt: Date): Promise<boolean>;
  /**
   * Records a beat — the status table, the last report, and a history row unless the
   * appliance's last one is less than `historyGapS` old; says whether the appliance was missing
   * until now (its alert is then resolved).
   */
  recordBeat(beat: BeatWrite): Promise<{ wasMissing: boolean } | undefined>;
  /** Archives a catalog request's time and reads what serving it needs. */
  touchCatalog(uid: string, at: Date): Promise<CatalogTouchRow | undefined>;
  /** Ed25519 public key from its raw base64url form (imported once per key, as a `KeyObject`). */
  publicKey(raw: string): Promise<Ed25519Key>;
  /**
   * This instance (one check-in store per instance): its id and whether it has been able to
   * receive beats without a break (noc/jobs/noc_time.ts).
   */
  readonly instance: NocInstance;
}

/**
 * True for an error the database server raised for the statement (it has an SQLSTATE code), so
 * the statement's transaction wrote nothing; false for a lost connection, after which a commit may
 * or may not have happened, and running the items again could repeat it.
 */
function isStatementError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code);
}
const maxCachedKeys = 50_000;

/**
 * The check-in store of `db`: one per NOC instance (built by `createDeps()`), so batches span
 * every route of the instance.
 */
export function createCheckinStore(db: Db): CheckinStore {
  const keys = new Map<string, Promise<Ed25519Key>>();
  // PGlite runs one statement at a time in this thread: a second batch in flight would only wait.
  const maxInFlight = db.kind === "pglite" ? 1 : 2;

  const find = batcher<string, ApplianceAuthRow | undefined>({
    maxInFlight,
    retrySingly: isStatementError,
    key: (uid) => uid,
    run: async (uids) => {
      const rows = await db.sql<ApplianceAuthRow>`
        select uid, hostname, model, site, interval_s, sign_key, revoked_at from appliances
        where uid = any(${uids}::uuid[])`;
      const byUid = new Map(rows.map((r) => [r.uid, r]));
      return uids.map((u) => byUid.get(u));
    },
  });

  const spend = batcher<{ uid: string; nonce: string; expiresAt: Date }, boolean>({
    maxInFlight,
    retrySingly: isStatementError,
    key: (n) => `${n.uid} ${n.nonce}`,
    run: async (items) => {
      const rows = await db.sql<{ uid: string; nonce: string }>`
        insert into request_nonces (uid, nonce, expires_at)
        select t.uid, t.nonce, t."expiresAt"
        from jsonb_to_recordset(${JSON.stringify(items)}::text::jsonb)
          as t(uid uuid, nonce text, "expiresAt" timestamptz)
        -- In key order, so two batches holding the same (replayed) nonces cannot deadlock.
        order by t.uid, t.nonce
        on conflict do nothing returning uid, nonce`;
      const fresh = new Set(rows.map((r) => `${r.uid} ${r.nonce}`));
      return items.map((n) => fresh.has(`${n.uid} ${n.nonce}`));
    },
  });

  const beats = batcher<BeatWrite, { wasMissing: boolean } | undefined>({
    maxInFlight,
    key: (b) => b.uid,
    maxBatch: 200,
    retrySingly: isStatementError,
    run: (items) =>
      db.begin(async (tx) => {
        // Rows are locked in UID order, so concurrent batches cannot deadlock.
        const rows = await tx<{ uid: string; was_missing: Date | null }>`
        with input as (
          select * from jsonb_to_recordset(${JSON.stringify(items)}::text::jsonb) as t(
            uid uuid, "receivedAt" timestamptz, "nextDue" timestamptz, seq bigint,
            "sentAt" timestamptz, report jsonb, history jsonb, "historyGapS" double precision,
            address text, "agentVersion" text)
        ),
        prev as (
          select a.uid, a.missing_since, a.last_history_at from appliances a join input i on i.uid = a.uid
          order by a.uid for update of a
        ),
        upd as (
          update appliances ap set last_beat_at = i."receivedAt", next_due_at = i."nextDue",
            missing_since = null,
            -- A beat delayed past a newer one still counts as a sign of life, but does not replace the newer report.
            last_seq = case when ap.last_sent_at > i."sentAt" then ap.last_seq else i.seq end,
            last_report = case when ap.last_sent_at > i."sentAt" then ap.last_report else i.report end,
            last_sent_at = greatest(ap.last_sent_at, i."sentAt"), last_address = i.address,
            agent_version = coalesce(i."agentVersion", ap.agent_version),
            -- One history row per gap at most, however often the appliance beats.
            last_history_at = case
              when p.last_history_at is null
                or p.last_history_at <= i."receivedAt" - make_interval(secs => i."historyGapS")
              then i."receivedAt" else p.last_history_at end
          from input i join prev p on p.uid = i.uid
          where ap.uid = i.uid
          returning ap.uid, p.missing_since as was_missing,
            ap.last_history_at is distinct from p.last_history_at as keep
        ),
        ins as (
          insert into beats (uid, received_at, seq, sent_at, report)
          select i.uid, i."receivedAt", i.seq, i."sentAt", i.history from input i
          join upd u on u.uid = i.uid where u.keep
        )
        select uid, was_missing from upd`;
        // A second statement, so it sees an alert the status daemon committed while this batch
        // waited for its row locks (the first statement's snapshot predates it).
        const missing = rows.filter((r) => r.was_missing !== null).map((r) => r.uid);
        if (missing.length > 0) {
          const at = items.filter((b) => missing.includes(b.uid)).map((b) => ({
            uid: b.uid,
            at: b.receivedAt,
          }));
          await tx`
            update alerts al set resolved_at = t.at
            from jsonb_to_recordset(${
            JSON.stringify(at)
          }::text::jsonb) as t(uid uuid, at timestamptz)
            where al.uid = t.uid and al.kind = 'missed_heartbeat' and al.resolved_at is null`;
        }
        const byUid = new Map(rows.map((r) => [r.uid, r]));
        return items.map((b) => {
          const r = byUid.get(b.uid);
          return r ? { wasMissing: r.was_missing !== null } : undefined;
        });
      }),
  });

  const catalogs = batcher<{ uid: string; at: Date }, CatalogTouchRow | undefined>({
    maxInFlight,
    retrySingly: isStatementError,
    key: (t) => t.uid,
    run: async (items) => {
      const rows = await db.sql<CatalogTouchRow & { uid: string }>`
        with input as (
          select * from jsonb_to_recordset(${
        JSON.stringify(items)
      }::text::jsonb) as t(uid uuid, at timestamptz)
        ),
        locked as (
          select a.uid from appliances a join input i on i.uid = a.uid order by a.uid for update of a
        )
        update appliances ap set last_catalog_at = i.at
        from input i join locked l on l.uid = i.uid
        where ap.uid = i.uid
        returning ap.uid, ap.catalog_epoch, ap.catalog_etag, ap.catalog_body, ap.catalog_expires_at,
          ap.model, ap.site, ap.channel, ap.tags, ap.enc_key, ap.interval_s,
          (select epoch from catalog_epoch) as epoch`;
      const byUid = new Map(rows.map((r) => [r.uid, r]));
      return items.map((t) => byUid.get(t.uid));
    },
  });

  return {
    instance: createNocInstance(),
    findAppliance: find,
    spendNonce: (uid, nonce, expiresAt) => spend({ uid, nonce, expiresAt }),
    recordBeat: beats,
    touchCatalog: (uid, at) => catalogs({ uid, at }),
    publicKey(raw) {
      let key = keys.get(raw);
      if (!key) {
        key = importEd25519Public(fromBase64Url(raw)).then(ed25519KeyObject);
        key.catch(() => keys.delete(raw));
        if (keys.size >= maxCachedKeys) keys.delete(keys.keys().next().value!);
        keys.set(raw, key);
      }
      return key;
    },
  };
}
