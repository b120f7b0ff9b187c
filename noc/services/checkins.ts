/**
 * The statements every check-in runs — finding the appliance, spending the
 * signature's nonce, recording the SecureBeat, archiving the catalog request —
 * each run through a {@link batcher}, so under load one statement serves many
 * appliances. Each batch is one statement (one implicit transaction): a beat
 * is answered only once it is committed, and a batch writes all or nothing.
 *
 * A beat's statement also spends its request's nonce (issue 23 item 3): one round trip records
 * the beat, refuses a replay, resolves the appliance's missed-heartbeat alert
 * (`resolve_missed_heartbeat`, migration 031) and marks a cloned identity, whose notice is queued
 * just after by {@link queueIdentityNotices}.
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
import type { NoticeInput, Notifier } from "./notifier.ts";
import type { Logger } from "../../protocol/util/log.ts";

/** An appliance row, as authentication needs it. */
export interface ApplianceAuthRow {
  uid: string;
  hostname: string;
  model: string;
  site: string | null;
  /** The interval its agent is on (the last catalog it fetched), else the one set, seconds. */
  interval_s: number;
  sign_key: string;
  revoked_at: Date | null;
}

/** One SecureBeat to record. */
export interface BeatWrite {
  uid: string;
  receivedAt: Date;
  seq: number;
  sentAt: Date;
  /** The whole report: the appliance's last report. */
  report: unknown;
  /** What the history keeps of it (bounded: see `historyOf` in noc/http/v1/beats.ts). */
  history: unknown;
  /**
   * Seconds since its last history row under which this beat adds none: this, or half the
   * appliance's interval when that is shorter (an operator who asks for frequent beats gets each
   * one kept).
   */
  historyMinGapS: number;
  /**
   * The request signature's nonce, spent by the beat's statement (unless already spent): a nonce
   * seen before records nothing and the beat comes back `"replayed"`.
   */
  nonce?: { value: string; expiresAt: Date };
  address: string | null;
  agentVersion: string | null;
  /** The agent process's instance id (issue 21 item 7), when the beat carries one. */
  instanceId?: string | null;
  /** The host name the appliance reports (issue 21 item 8), when the beat carries one. */
  hostname?: string | null;
  /**
   * The beat comes with a catalog request (`POST /v1/checkin`): the same statement archives the
   * request's time and reads what serving the catalog needs ({@link BeatRecorded.catalog}), so a
   * joined cycle updates the appliance's row once.
   */
  touchCatalog?: boolean;
}

/**
 * What recording a beat came to: recorded, or nothing written because its nonce was seen before
 * (`"replayed"`), the appliance was revoked meanwhile (`"revoked"`: its row may have come from
 * memory), or is not enrolled (undefined). The statement records a beat only for an appliance
 * not revoked; its key needs no check (an appliance's key never changes: a new key is a new
 * enrolment, a new UID).
 */
export type BeatOutcome = BeatRecorded | "replayed" | "revoked" | undefined;

/** What recording a beat found. */
export interface BeatRecorded {
  /** When the next beat is due: the beat's time plus the appliance's interval. */
  nextDue: Date;
  /** The interval its agent is on (the last catalog it fetched), else the one set, seconds. */
  intervalS: number;
  /** The appliance was missing until this beat (its alert is resolved). */
  wasMissing: boolean;
  /**
   * This beat raised an identity conflict (two devices beating under one identity): the
   * appliance is marked and one `cloned_identity` notice was queued in the beat's transaction.
   * False when there is none, or when the appliance was already marked.
   */
  newIdentityConflict: boolean;
  /** The name the appliance had until this beat renamed it; null when it kept its name. */
  renamedFrom: string | null;
  /** With {@link BeatWrite.touchCatalog}: the row a catalog request reads (as `touchCatalog`). */
  catalog?: CatalogTouchRow;
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
  /** The interval of the last catalog served to it (null: none yet; migration 026). */
  known_interval_s: number | null;
}

/** The check-in statements of one database. */
export interface CheckinStore {
  /** The appliance with UID `uid`, if enrolled. */
  findAppliance(uid: string): Promise<ApplianceAuthRow | undefined>;
  /**
   * The appliance with UID `uid`, as {@link findAppliance}, but from this instance's memory once
   * it has been read (a row not revoked; at most 50,000 kept, the oldest forgotten first). Only
   * for a route whose own statement checks again that the appliance is enrolled and not revoked
   * (a SecureBeat's), and which then calls {@link forgetAppliance}: an appliance's key never
   * changes, and what else the row holds may be stale.
   */
  findApplianceCached(uid: string): Promise<ApplianceAuthRow | undefined>;
  /** Forgets what {@link findApplianceCached} kept of `uid` (revoked, deleted). */
  forgetAppliance(uid: string): void;
  /** Records nonce `nonce` of `uid` until `expiresAt`; false when it was already used. */
  spendNonce(uid: string, nonce: string, expiresAt: Date): Promise<boolean>;
  /**
   * Records a beat — the status table, the last report, and a history row unless the
   * appliance's last one is less than `historyGapS` old; says whether the appliance was missing
   * until now (its alert is then resolved).
   */
  recordBeat(beat: BeatWrite): Promise<BeatOutcome>;
  /**
   * Archives a catalog request's time and reads what serving it needs; `"revoked"` when the
   * appliance is revoked (as its row's latest version says once locked: nothing is archived),
   * undefined when it is not enrolled.
   */
  touchCatalog(uid: string, at: Date): Promise<CatalogTouchRow | "revoked" | undefined>;
  /** Ed25519 public key from its raw base64url form (imported once per key, as a `KeyObject`). */
  publicKey(raw: string): Promise<Ed25519Key>;
  /**
   * This instance (one check-in store per instance): its id and whether it has been able to
   * receive beats without a break (noc/jobs/noc_time.ts).
   */
  readonly instance: NocInstance;
}

/** A row the beat statement returns: one per item, recorded or not. */
interface BeatRow extends CatalogTouchRow {
  /** The item's UID (`uid` is null when nothing was recorded). */
  item: string;
  /** Its nonce was spent by this statement (or it brought none). */
  fresh: boolean;
  /** Nothing was recorded for a fresh item because the appliance is revoked. */
  revoked: boolean;
  uid: string | null;
  next_due_at: Date;
  due_interval_s: number;
  was_missing: Date | null;
  new_conflict: boolean;
  renamed_from: string | null;
  hostname: string;
  model: string;
  site: string | null;
  identity_conflict: IdentityConflictJson | null;
  /** The beat came with a catalog request: the columns below are its {@link CatalogTouchRow}. */
  touched: boolean;
}

/** An appliance's `identity_conflict` as stored (migration 025). */
export interface IdentityConflictJson {
  reason: "seq_not_increasing";
  firstAt: string;
  lastAt: string;
  beats: number;
  seq: number;
  lastSeq: number | null;
  /**
   * The `state_unwritable` problem (its message) of the beat that raised the mark, or of the
   * report before it: separate runs on a state folder that cannot be written repeat seq. Absent
   * from marks made before it was kept.
   */
  stateUnwritable?: string | null;
  instances: {
    /** Null: a beat that carried no instanceId (review 21c). */
    instanceId: string | null;
    firstSeenAt: string | null;
    lastSeenAt: string | null;
    /** The source address of its latest beat seen (absent from marks made before it was kept). */
    address?: string | null;
  }[];
}

/** An appliance marked with an identity conflict, as its notice names it. */
interface ConflictRow {
  uid: string;
  hostname: string;
  model: string;
  site: string | null;
  identity_conflict: IdentityConflictJson | null;
}

/** The `cloned_identity` notice of an appliance just marked. */
function clonedIdentityNotice(r: ConflictRow): NoticeInput {
  const c = r.identity_conflict!;
  const ids = c.instances.map((i) => i.instanceId ?? "(none: the beat carried no instanceId)");
  const from = (i: IdentityConflictJson["instances"][number] | undefined) =>
    i?.address ? ` (from ${i.address})` : "";
  const why = c.reason === "seq_not_increasing"
    ? `a beat from agent instance ${ids[ids.length - 1]}${
      from(c.instances[c.instances.length - 1])
    } carried seq ${c.seq} after instance ${ids[0]}${
      from(c.instances[0])
    } had sent seq ${c.lastSeq}`
    : `agent instances ${ids.join(" and ")} take turns beating`;
  // A state folder that cannot be written repeats seq too: said first, so the operator looks
  // there before hunting a copy.
  const unwritable = c.stateUnwritable
    ? ` The appliance also reported state_unwritable (${c.stateUnwritable}): separate agent ` +
      "runs on a state folder that cannot be written start from the same saved seq and look " +
      "like this; if so, make the folder writable and clear the mark."
    : "";
  return {
    kind: "cloned_identity",
    uid: r.uid,
    text:
      `:warning: One identity, two devices? ${r.hostname} (${r.model}${
        r.site ? `, site ${r.site}` : ""
      }): ${why}.${unwritable} A copied state folder (a cloned VM or golden image) makes two ` +
      "devices report as one: on the copy, enrol again with a new token and its own host name " +
      "(`noc-agent enroll --force --token <new token> --hostname <its own name>`: under the " +
      "original's name it would retire the original), then clear the mark " +
      '(docs/operations.md, "Cloned identities")',
    payload: {
      appliance: { uid: r.uid, hostname: r.hostname, model: r.model, site: r.site },
      identityConflict: c,
    },
  };
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

/** Most pending notices one pass of {@link queueIdentityNotices} queues without `uids`. */
const identityNoticeBatch = 100;

/**
 * Queues the `cloned_identity` notice of each appliance whose mark is pending
 * (`identity_notice_pending`, set by the beat statement that marked it: migration 031) — of those
 * in `uids` when given (just after that statement), else up to 100 left pending by an instance
 * that stopped in between (the status daemon's pass) — and clears the flag in the same
 * transaction: each mark gets its notice exactly once, across instances (clearing the row claims
 * it). Returns how many it queued; kicks the notifier when any.
 */
export async function queueIdentityNotices(
  db: Db,
  notifier: Notifier,
  now: Date,
  uids?: readonly string[],
): Promise<number> {
  // The sweep's pass: one probe of the partial index, and no transaction, when none is pending.
  if (uids === undefined) {
    const [any] = await db.sql<{ n: number }>`
      select count(*)::int as n from (select 1 from appliances where identity_notice_pending
        limit 1) p`;
    if ((any?.n ?? 0) === 0) return 0;
  }
  const queued = await db.begin(async (tx) => {
    // Rows are locked in UID order, as the beat statement locks them.
    const rows = uids === undefined
      ? await tx<ConflictRow>`
        update appliances ap set identity_notice_pending = false
        from (select uid from appliances where identity_notice_pending
          order by uid limit ${identityNoticeBatch} for update skip locked) p
        where ap.uid = p.uid and ap.identity_notice_pending
        returning ap.uid, ap.hostname, ap.model, ap.site, ap.identity_conflict`
      : await tx<ConflictRow>`
        update appliances ap set identity_notice_pending = false
        from (select uid from appliances where uid = any(${uids}::uuid[])
          and identity_notice_pending order by uid for update) p
        where ap.uid = p.uid and ap.identity_notice_pending
        returning ap.uid, ap.hostname, ap.model, ap.site, ap.identity_conflict`;
    let n = 0;
    for (const r of rows) {
      // A mark cleared before its notice went out needs none.
      if (r.identity_conflict === null) continue;
      await notifier.enqueue(tx, clonedIdentityNotice(r), now);
      n++;
    }
    return n;
  });
  if (queued > 0) notifier.kick();
  return queued;
}

/** The catalog columns of a row the beat statement returned for a joined check-in. */
function catalogTouchOf(r: CatalogTouchRow): CatalogTouchRow {
  return {
    catalog_epoch: r.catalog_epoch,
    catalog_etag: r.catalog_etag,
    catalog_body: r.catalog_body,
    catalog_expires_at: r.catalog_expires_at,
    epoch: r.epoch,
    model: r.model,
    site: r.site,
    channel: r.channel,
    tags: r.tags,
    enc_key: r.enc_key,
    interval_s: r.interval_s,
    known_interval_s: r.known_interval_s,
  };
}

/**
 * The check-in store of `db`: one per NOC instance (built by `createDeps()`), so batches span
 * every route of the instance.
 */
export function createCheckinStore(db: Db, notifier?: Notifier, log?: Logger): CheckinStore {
  const keys = new Map<string, Promise<Ed25519Key>>();
  const known = new Map<string, ApplianceAuthRow>();
  // PGlite runs one statement at a time in this thread: a second batch in flight would only wait.
  const maxInFlight = db.kind === "pglite" ? 1 : 2;

  const find = batcher<string, ApplianceAuthRow | undefined>({
    maxInFlight,
    retrySingly: isStatementError,
    key: (uid) => uid,
    run: async (uids) => {
      const rows = await db.sql<ApplianceAuthRow>`
        -- The interval its agent is on (the last catalog it fetched) counts its due time.
        select uid, hostname, model, site, coalesce(known_interval_s, interval_s) as interval_s,
          sign_key, revoked_at from appliances
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

  const beats = batcher<BeatWrite, BeatOutcome>({
    maxInFlight,
    key: (b) => b.uid,
    maxBatch: 200,
    retrySingly: isStatementError,
    run: async (items) => {
      // One statement, its own transaction: rows are locked in UID order, so concurrent batches
      // cannot deadlock; nonces are inserted in key order for the same reason.
      const rows = await db.sql<BeatRow>`
        with raw as (
          select * from jsonb_to_recordset(${
        JSON.stringify(items.map((b) => ({
          ...b,
          nonce: b.nonce?.value ?? null,
          nonceExpiresAt: b.nonce?.expiresAt ?? null,
          instanceId: b.instanceId ?? null,
          hostname: b.hostname ?? null,
          touchCatalog: b.touchCatalog ?? false,
        })))
      }::text::jsonb) as t(
            uid uuid, "receivedAt" timestamptz, seq bigint,
            "sentAt" timestamptz, report jsonb, history jsonb, "historyMinGapS" double precision,
            address text, "agentVersion" text, "instanceId" uuid, hostname text,
            "touchCatalog" boolean, nonce text, "nonceExpiresAt" timestamptz)
        ),
        -- The request's nonce, spent with its beat: a replay (across instances: the shared
        -- table's key) records nothing.
        spent as (
          insert into request_nonces (uid, nonce, expires_at)
          select r.uid, r.nonce, r."nonceExpiresAt" from raw r where r.nonce is not null
          order by r.uid, r.nonce
          on conflict do nothing returning uid
        ),
        input as (
          select r.* from raw r where r.nonce is null or r.uid in (select uid from spent)
        ),
        prev as (
          select a.uid, a.missing_since, a.last_history_at, a.hostname, a.identity_conflict,
            a.instance_id, a.prev_instance_id, a.instance_since, a.last_seq, a.interval_s,
            -- Revoked or not (its row may have come from the instance's memory), as the row's
            -- latest version says once locked: a revocation committed while the beat waited for
            -- the lock is seen here, and the beat records nothing (upd) and says so (review 23h:
            -- read from the statement's snapshot it was answered unknown_key, unrecorded).
            a.revoked_at,
            i.seq = any(a.recent_seqs) as seq_seen,
            -- The highest seq recorded from a beat that could save its state (null: none yet).
            (select max(x) from unnest(a.recent_seqs) x) as saved_seq,
            -- The newest report so far, in the order beats arrive (row-locked per appliance),
            -- never by a time the appliance could put ahead (review 21: a beat dated 2099 froze
            -- name, reasons and the clone check). A beat replaces nothing when it is late: sent
            -- before the newest report (its sentAt, which the route holds to the NOC's clock
            -- within the tolerance), with a seq below the last one, not more than 32 below, that
            -- was never recorded — a beat held back by the network within the signature window,
            -- from any instance (a restart's last beat, a 'noc-agent once' run's, the same
            -- process's after a stall: reviews 21c, 21d). A copy cannot pass for late for long:
            -- the original records every seq in turn. An agent that sends no instanceId (older
            -- ones) is ordered by its sentAt alone.
            case when i."instanceId" is null and a.instance_id is null
              then not coalesce(a.last_sent_at > i."sentAt", false)
              else not coalesce(i."sentAt" < a.last_sent_at and i.seq < a.last_seq
                and i.seq > a.last_seq - 32 and not i.seq = any(a.recent_seqs), false)
              end as newest,
            a.last_address,
            -- The state_unwritable problem the newest report so far carried, if any.
            (select e->>'message' from jsonb_array_elements(
                case when jsonb_typeof(a.last_report->'lastCycle'->'problems') = 'array'
                  then a.last_report->'lastCycle'->'problems' else '[]'::jsonb end) e
              where e->>'code' = 'state_unwritable' limit 1) as prev_unwritable
          from appliances a join input i on i.uid = a.uid
          -- The batch's rows by the primary key, whatever the planner's statistics say. Joined on
          -- the input alone, with statistics from before the fleet enrolled (autovacuum had not
          -- analysed it yet; PGlite never does), the planner hashed every appliance for each
          -- batch, 5 ms at 2,000, and with the key list and "revoked_at is null" here it still
          -- read the whole partial index of active names (that is its predicate), 2.5 ms: a quiet
          -- rate's single-beat batches paid either in full.
          where a.uid = any(${items.map((b) => b.uid)}::uuid[])
          order by a.uid for update of a
        ),
        -- Two devices under one identity (docs/protocol.md, "Cloned identities"): a beat from
        -- another agent instance whose seq does not pass the last one seen. A restart (a new
        -- instance, its seq going on) is not, nor a 'noc-agent once' run beside the service (it takes the
        -- next seq from the shared state folder: instances may take turns as long as seq rises),
        -- nor a beat delayed behind a newer one (the old instance's last beat arriving after its
        -- successor's first). Two copies of one state folder cannot keep seq rising for long:
        -- both count on from the same number.
        --
        -- Nor is a new instance after a report that carried state_unwritable: that process could
        -- not save its seq, so the next one (a 'noc-agent once' on a read-only folder or full
        -- disk, a restarted service, the first run once the folder is writable) counts on from the
        -- last seq saved and repeats it. Two copies taking turns still are: the instance before
        -- the previous one coming back (prev_instance_id) is judged as ever.
        judged as (
          -- Any beat whose seq does not pass the last one, once the appliance has reported an
          -- instance: from another instance, from the same one (one process never repeats a seq
          -- the NOC recorded: a copy reusing its id does), or without an instanceId (a copy
          -- leaving it out) — review 21c.
          -- And any beat whose seq was recorded already (one of the last 32), late or not: a
          -- beat held back by the network carries a seq never seen (review 21c), a copy's
          -- with a slow clock one seen (review 21).
          --
          -- The state_unwritable exception holds only for a seq above the highest one recorded
          -- from a beat that could save its state: what an honest run from the last saved state
          -- sends (review 21d: a copy faking the problem could otherwise reset the count).
          select i.uid, coalesce(p.instance_id is not null
              and ((p.newest and i.seq <= p.last_seq) or p.seq_seen)
              and not (p.prev_unwritable is not null
                and i."instanceId" is distinct from p.instance_id
                and i."instanceId" is distinct from p.prev_instance_id
                and i.seq > coalesce(p.saved_seq, -1)), false)
              as clash,
            'seq_not_increasing' as reason,
            -- A state folder that cannot be written makes separate runs repeat seq, which looks
            -- like a copied one: the mark and its notice say so (this beat's problem, else the
            -- previous report's).
            coalesce(o.own_unwritable, p.prev_unwritable) as unwritable,
            o.own_unwritable is not null as own_unwritable
          from input i join prev p on p.uid = i.uid
          cross join lateral (select (select e->>'message' from jsonb_array_elements(
              case when jsonb_typeof(i.report->'lastCycle'->'problems') = 'array'
                then i.report->'lastCycle'->'problems' else '[]'::jsonb end) e
            where e->>'code' = 'state_unwritable' limit 1) as own_unwritable) o
        ),
        upd as (
          -- The interval its agent is on (the last catalog it fetched) counts its due time.
          update appliances ap set last_beat_at = i."receivedAt",
            next_due_at = i."receivedAt"
              + make_interval(secs => coalesce(ap.known_interval_s, ap.interval_s)),
            missing_since = null,
            -- A beat delayed past a newer one still counts as a sign of life, but does not replace the newer report.
            last_seq = case when p.newest then i.seq else ap.last_seq end,
            -- Not a seq its agent could not save (this beat says state_unwritable): the next
            -- process counts on from the last one saved and sends it again.
            -- A newest beat also forgets the seqs above its own: after a state folder is restored
            -- from a backup (one mark), the restored agent's next seqs are its own, not a copy's
            -- (review 21d).
            recent_seqs = (select coalesce(array_agg(x order by n), '{}') from (
                select x, n from unnest(case when j.own_unwritable then ap.recent_seqs
                  else ap.recent_seqs || i.seq end) with ordinality as u(x, n)
                where not (p.newest and x > i.seq)
                order by n desc limit 32) k),
            last_report = case when p.newest then i.report else ap.last_report end,
            last_sent_at = case when p.newest then i."sentAt" else ap.last_sent_at end,
            last_address = i.address,
            agent_version = case when p.newest then coalesce(i."agentVersion", ap.agent_version)
              else ap.agent_version end,
            -- The name the appliance reports is its name; the one it replaces goes to its history.
            hostname = case when p.newest and i.hostname is not null then i.hostname
              else ap.hostname end,
            hostname_history = case
              when p.newest and i.hostname is not null and i.hostname <> ap.hostname
              then appliance_name_history(ap.hostname_history, ap.hostname, i."receivedAt")
              else ap.hostname_history end,
            -- The instance of the newest report (a delayed beat's instance is not the current one).
            instance_id = case when p.newest then coalesce(i."instanceId", ap.instance_id)
              else ap.instance_id end,
            instance_since = case when p.newest and i."instanceId" is distinct from ap.instance_id
              and i."instanceId" is not null then i."receivedAt" else ap.instance_since end,
            prev_instance_id = case when p.newest and i."instanceId" is distinct from ap.instance_id
              and i."instanceId" is not null then ap.instance_id else ap.prev_instance_id end,
            -- A new mark's notice is queued just after this statement (queueIdentityNotices).
            identity_notice_pending = ap.identity_notice_pending
              or (j.clash and ap.identity_conflict is null),
            identity_conflict = case
              when not j.clash then ap.identity_conflict
              when ap.identity_conflict is null then jsonb_build_object(
                'reason', j.reason, 'firstAt', i."receivedAt", 'lastAt', i."receivedAt",
                'beats', 1, 'seq', i.seq, 'lastSeq', ap.last_seq,
                'stateUnwritable', j.unwritable,
                'instances', jsonb_build_array(
                  -- Each instance with the source address of its latest beat seen (the
                  -- previous beat's, for the instance that sent it). A copy reusing the
                  -- instance's id shows as the same id twice; one sending none, as null.
                  jsonb_build_object('instanceId', ap.instance_id,
                    'firstSeenAt', ap.instance_since, 'lastSeenAt', ap.last_beat_at,
                    'address', p.last_address),
                  jsonb_build_object('instanceId', i."instanceId",
                    'firstSeenAt', i."receivedAt", 'lastSeenAt', i."receivedAt",
                    'address', i.address)))
              else (
                select c || jsonb_build_object(
                  'stateUnwritable', coalesce(c->>'stateUnwritable', j.unwritable),
                  'instances', (
                    select jsonb_agg(case when e->>'instanceId' = i."instanceId"::text
                        then e || jsonb_build_object('address', i.address) else e end
                      order by n)
                    from jsonb_array_elements(c->'instances') with ordinality as x(e, n)))
                from (select identity_conflict_seen(ap.identity_conflict, i."instanceId",
                  i."receivedAt") as c) s)
            end,
            -- A joined check-in archives its catalog request here (noc/http/v1/checkin.ts).
            last_catalog_at = case when i."touchCatalog" then i."receivedAt"
              else ap.last_catalog_at end,
            -- One history row per gap at most, however often the appliance beats.
            last_history_at = case
              when p.last_history_at is null
                or p.last_history_at <= i."receivedAt" - make_interval(secs => least(
                  i."historyMinGapS", coalesce(ap.known_interval_s, ap.interval_s) / 2.0))
              then i."receivedAt" else p.last_history_at end
          from input i join prev p on p.uid = i.uid join judged j on j.uid = i.uid
          where ap.uid = i.uid and p.revoked_at is null
          returning ap.uid, p.missing_since as was_missing, ap.next_due_at,
            coalesce(ap.known_interval_s, ap.interval_s) as due_interval_s,
            ap.last_history_at is distinct from p.last_history_at as keep,
            j.clash and p.identity_conflict is null as new_conflict,
            case when ap.hostname <> p.hostname then p.hostname end as renamed_from,
            ap.hostname, ap.model, ap.site, ap.identity_conflict,
            -- What a catalog request reads (as the catalog statement below returns it): the
            -- stored body only for a joined check-in, the rest is small.
            i."touchCatalog" as touched, ap.catalog_epoch, ap.catalog_etag,
            case when i."touchCatalog" then ap.catalog_body end as catalog_body,
            ap.catalog_expires_at, ap.channel, ap.tags, ap.enc_key, ap.interval_s,
            ap.known_interval_s
        ),
        ins as (
          insert into beats (uid, received_at, seq, sent_at, report)
          select i.uid, i."receivedAt", i.seq, i."sentAt", i.history from input i
          join upd u on u.uid = i.uid where u.keep
        )
        select r.uid as item, r.nonce is null or s.uid is not null as fresh,
          u.uid is null and (r.nonce is null or s.uid is not null)
            and p.revoked_at is not null as revoked,
          -- An appliance missing until this beat: its alert resolved, seen from a snapshot taken
          -- after the row's lock (one the status daemon committed meanwhile included).
          case when u.was_missing is not null
            then resolve_missed_heartbeat(u.uid, r."receivedAt") end as resolved,
          u.*, (select epoch from catalog_epoch) as epoch
        from raw r left join spent s on s.uid = r.uid left join upd u on u.uid = r.uid
          left join prev p on p.uid = r.uid`;
      const conflicts = rows.filter((r) => r.new_conflict).map((r) => r.uid!);
      if (conflicts.length > 0 && notifier) {
        // After the statement: its mark stands whatever happens here, and the status daemon
        // queues a notice left pending (an instance stopped in between, a database error).
        try {
          await queueIdentityNotices(db, notifier, items[0]!.receivedAt, conflicts);
        } catch (e) {
          log?.error("identity_notice_deferred", { uids: conflicts, error: String(e) });
        }
      }
      const byUid = new Map(rows.map((r) => [r.item, r]));
      return items.map((b): BeatOutcome => {
        const r = byUid.get(b.uid);
        if (!r) return undefined;
        if (!r.fresh) return "replayed";
        if (r.uid === null) return r.revoked ? "revoked" : undefined;
        return {
          nextDue: r.next_due_at,
          intervalS: r.due_interval_s,
          wasMissing: r.was_missing !== null,
          newIdentityConflict: r.new_conflict,
          renamedFrom: r.renamed_from,
          ...(r.touched ? { catalog: catalogTouchOf(r) } : {}),
        };
      });
    },
  });

  const catalogs = batcher<{ uid: string; at: Date }, CatalogTouchRow | "revoked" | undefined>({
    maxInFlight,
    retrySingly: isStatementError,
    key: (t) => t.uid,
    run: async (items) => {
      const uids = items.map((t) => t.uid);
      const rows = await db.sql<
        Partial<CatalogTouchRow> & { item: string; revoked: boolean; uid: string | null }
      >`
        with input as (
          select * from jsonb_to_recordset(${
        JSON.stringify(items)
      }::text::jsonb) as t(uid uuid, at timestamptz)
        ),
        -- By the primary key, whatever the statistics say (as the beat statement above); revoked
        -- or not as the row's latest version says once locked: a revocation committed while the
        -- request waited for the lock is seen, and nothing is archived or answered (review 23h: a
        -- signed catalog went to an appliance revoked meanwhile).
        locked as (
          select a.uid, a.revoked_at from appliances a where a.uid = any(${uids}::uuid[])
          order by a.uid for update of a
        ),
        upd as (
          update appliances ap set last_catalog_at = i.at
          from input i join locked l on l.uid = i.uid
          where ap.uid = i.uid and ap.uid = any(${uids}::uuid[]) and l.revoked_at is null
          returning ap.uid, ap.catalog_epoch, ap.catalog_etag, ap.catalog_body,
            ap.catalog_expires_at, ap.model, ap.site, ap.channel, ap.tags, ap.enc_key,
            ap.interval_s, ap.known_interval_s, (select epoch from catalog_epoch) as epoch
        )
        select l.uid as item, l.revoked_at is not null as revoked, u.*
        from locked l left join upd u on u.uid = l.uid`;
      const byUid = new Map(rows.map((r) => [r.item, r]));
      return items.map((t) => {
        const r = byUid.get(t.uid);
        if (r?.revoked) return "revoked";
        return r?.uid ? r as CatalogTouchRow : undefined;
      });
    },
  });

  return {
    instance: createNocInstance(),
    findAppliance: find,
    async findApplianceCached(uid) {
      const kept = known.get(uid);
      if (kept) return kept;
      const row = await find(uid);
      if (row && row.revoked_at === null) {
        if (known.size >= maxCachedKeys) known.delete(known.keys().next().value!);
        known.set(uid, row);
      }
      return row;
    },
    forgetAppliance: (uid) => void known.delete(uid),
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
