/**
 * Appliance records as the admin API shows them, the state rules (ok, late, missing, revoked),
 * and re-enrolment: the retiring of a record a re-imaged appliance's new enrolment supersedes.
 */
import type { applianceStates } from "../../protocol/schemas.ts";
import type { Db, Sql } from "../db/db.ts";
import type { IdentityConflictJson } from "./checkins.ts";

/** An appliance state. */
export type ApplianceState = (typeof applianceStates)[number];

/** The columns the admin API reads for an appliance. */
export interface ApplianceRow {
  uid: string;
  hostname: string;
  model: string;
  site: string | null;
  channel: string;
  tags: string[];
  interval_s: number;
  /**
   * The interval of the catalog last served to it: the schedule its agent is on, which its due
   * time counts (noc/services/schedule_changes.ts). Absent from a row that did not select it.
   */
  known_interval_s?: number | null;
  agent_version: string | null;
  enrolled_at: Date;
  last_beat_at: Date | null;
  last_seq: number | null;
  last_address: string | null;
  next_due_at: Date;
  missing_since: Date | null;
  revoked_at: Date | null;
  revoked_reason: string | null;
  /** The appliance that replaced this one (a retired record), or null. */
  superseded_by: string | null;
  /** The records this one replaced when it enrolled. */
  supersedes: string[];
  maintenance: { id: number; endsAt: string; reason: string } | null;
  /** Its revision (migration 027): the ETag of `GET /v1/admin/appliances/:uid`. */
  revision?: number;
  /**
   * Two devices seen beating under this identity (issue 21 item 7; noc/services/checkins.ts),
   * until an operator clears it; null: none. Absent from a row that did not select it.
   */
  identity_conflict?: IdentityConflictJson | null;
}

/** The admin API's form of an appliance's identity conflict: ISO times, in a fixed shape. */
export function identityConflictJson(
  c: IdentityConflictJson | null | undefined,
): Record<string, unknown> | null {
  if (!c) return null;
  const t = (v: string | null | undefined) => (v ? new Date(v).toISOString() : null);
  return {
    reason: c.reason,
    firstAt: t(c.firstAt),
    lastAt: t(c.lastAt),
    beats: c.beats,
    seq: c.seq,
    lastSeq: c.lastSeq,
    stateUnwritable: c.stateUnwritable ?? null,
    instances: c.instances.map((i) => ({
      instanceId: i.instanceId,
      firstSeenAt: t(i.firstSeenAt),
      lastSeenAt: t(i.lastSeenAt),
      address: i.address ?? null,
    })),
  };
}

/**
 * The state of an appliance at `now`: `revoked`; `missing` once the sweep
 * alerted or its due time is more than `graceS` past; `late` once its due
 * time has passed; `ok` otherwise.
 */
export function applianceState(
  r: Pick<ApplianceRow, "revoked_at" | "missing_since" | "next_due_at">,
  now: Date,
  graceS: number,
): ApplianceState {
  if (r.revoked_at) return "revoked";
  const due = r.next_due_at.getTime();
  if (r.missing_since || due <= now.getTime() - graceS * 1000) return "missing";
  if (due <= now.getTime()) return "late";
  return "ok";
}

function iso(d: Date | null): string | null {
  return d ? d.toISOString() : null;
}

/** The admin API's JSON for an appliance. */
export function applianceJson(r: ApplianceRow, now: Date, graceS: number): Record<string, unknown> {
  return {
    uid: r.uid,
    hostname: r.hostname,
    model: r.model,
    site: r.site,
    channel: r.channel,
    tags: r.tags,
    state: applianceState(r, now, graceS),
    maintenance: r.maintenance,
    intervalS: r.interval_s,
    // The interval its agent is on (from the last catalog it fetched); differs from intervalS
    // until it fetches one with a changed interval.
    ...(r.known_interval_s !== undefined
      ? { knownIntervalS: r.known_interval_s ?? r.interval_s }
      : {}),
    agentVersion: r.agent_version,
    enrolledAt: r.enrolled_at.toISOString(),
    lastBeatAt: iso(r.last_beat_at),
    lastSeq: r.last_seq,
    lastAddress: r.last_address,
    nextDueAt: r.next_due_at.toISOString(),
    missingSince: iso(r.missing_since),
    revokedAt: iso(r.revoked_at),
    revokedReason: r.revoked_reason,
    // Retired by a re-enrolment: the appliance that replaced it; and those this one replaced.
    supersededBy: r.superseded_by,
    supersedes: r.supersedes,
    // Two devices beating under this identity (a copied state folder), until an operator clears it.
    identityConflict: identityConflictJson(r.identity_conflict),
    ...(r.revision !== undefined ? { revision: Number(r.revision) } : {}),
  };
}

/**
 * Appliances by state at `now` (the same rules as {@link applianceState}). Retired records (superseded
 * by a re-enrolment) are not counted: the appliance is counted once, as its current record.
 */
export async function fleetCounts(
  db: Db,
  now: Date,
  graceS: number,
): Promise<{ ok: number; late: number; missing: number; revoked: number }> {
  const cutoff = new Date(now.getTime() - graceS * 1000);
  const [row] = await db.sql<{ ok: number; late: number; missing: number; revoked: number }>`
    select
      count(*) filter (where revoked_at is null and missing_since is null and next_due_at > ${now})::int as ok,
      count(*) filter (where revoked_at is null and missing_since is null and next_due_at <= ${now}
                         and next_due_at > ${cutoff})::int as late,
      count(*) filter (where revoked_at is null and (missing_since is not null or next_due_at <= ${cutoff}))::int
        as missing,
      count(*) filter (where revoked_at is not null)::int as revoked
    from appliances where superseded_by is null`;
  return row ?? { ok: 0, late: 0, missing: 0, revoked: 0 };
}

/**
 * The active appliances an appliance enrolling as `hostname` in `site` would take the place of:
 * not revoked, same site (null matches null), same hostname ignoring case. Called in the
 * enrolment's transaction `tx`: it first takes a transaction lock on that name, so that two
 * enrolments of one name run one after the other and the second sees the first (no two active
 * records of a name come out of concurrent enrolments), then locks the rows found. UIDs, oldest
 * enrolment first.
 */
export async function lockNamesakes(
  tx: Sql,
  site: string | null,
  hostname: string,
): Promise<string[]> {
  await tx`select pg_advisory_xact_lock(hashtext(current_schema() || ':noc-appliance-name:' ||
    ${site ?? ""} || '/' || lower(${hostname})))`;
  const rows = await tx<{ uid: string }>`
    select uid from appliances
    where coalesce(site, '') = ${site ?? ""} and lower(hostname) = lower(${hostname})
      and revoked_at is null
    order by enrolled_at, uid
    for update`;
  return rows.map((r) => r.uid);
}

/**
 * Retires the appliances `olds`, superseded at `now` by the newly enrolled `by`, in the
 * enrolment's transaction `tx`: each is revoked (its key refused as `revoked_key`; the status
 * daemon's sweep reads only appliances not revoked; local servers learn of it at their next
 * sync) with the reason naming `by`, and linked to it (`superseded_by`); any open alert on it is
 * closed as already notified, so no "recovered" notice follows. Its beats, alerts, install
 * outcomes and deliveries stay, under its own UID.
 */
export async function retireSuperseded(
  tx: Sql,
  olds: string[],
  by: string,
  now: Date,
): Promise<void> {
  if (olds.length === 0) return;
  await tx`
    update appliances set revoked_at = ${now}, superseded_by = ${by},
      revoked_reason = ${`superseded by ${by}: enrolled again (re-imaged) with new keys`}
    where uid = any(${olds}::uuid[]) and revoked_at is null`;
  await tx`
    update alerts set resolved_at = coalesce(resolved_at, ${now}),
      recovery_notified_at = coalesce(recovery_notified_at, ${now}),
      notified_at = coalesce(notified_at, ${now}),
      detail = case when resolved_at is null
        then detail || jsonb_build_object('closedBecause', 'superseded', 'supersededBy', ${by}::text)
        else detail end
    -- Open alerts, and those a mass event held that were resolved before they were told (review
    -- 23n); a told alert's pending recovery is still sent.
    where uid = any(${olds}::uuid[]) and (resolved_at is null or notified_at is null)`;
}
