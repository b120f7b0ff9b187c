/** Appliance records as the admin API shows them, and the state rules (ok, late, missing, revoked). */
import type { applianceStates } from "../../protocol/schemas.ts";
import type { Db } from "../db/db.ts";

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
  agent_version: string | null;
  enrolled_at: Date;
  last_beat_at: Date | null;
  last_seq: number | null;
  last_address: string | null;
  next_due_at: Date;
  missing_since: Date | null;
  revoked_at: Date | null;
  revoked_reason: string | null;
  maintenance: { id: number; endsAt: string; reason: string } | null;
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
    agentVersion: r.agent_version,
    enrolledAt: r.enrolled_at.toISOString(),
    lastBeatAt: iso(r.last_beat_at),
    lastSeq: r.last_seq,
    lastAddress: r.last_address,
    nextDueAt: r.next_due_at.toISOString(),
    missingSince: iso(r.missing_since),
    revokedAt: iso(r.revoked_at),
    revokedReason: r.revoked_reason,
  };
}

/** Appliances by state at `now` (the same rules as {@link applianceState}). */
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
    from appliances`;
  return row ?? { ok: 0, late: 0, missing: 0, revoked: 0 };
}
