/**
 * Phased rollouts (issue 20): a release taken to a target in ordered phases, each widened only
 * when the previous one is healthy (noc/services/rollout_gates.ts judges, the rollout daemon
 * noc/jobs/rollout_daemon.ts acts), with pause, resume, cancel and "advance now" by hand, every
 * change recorded as an event with its actor.
 *
 * - **The assignment.** Creating a rollout creates its assignment (the existing table: no health
 *   gate of its own) and the `rollouts` row for it, in one transaction. The assignment includes
 *   the appliances whose fine bucket (`catalog_engine.ts` `fineBucket`, SQL `fine_bucket`) is
 *   below its `phase_limit`; the others fall through to the next candidate assignment of the
 *   component (the previous version's), which is how the control group and rolled-back
 *   appliances keep or get the old version. Paused, failed and cancelled rollouts pause the
 *   assignment (appliances already sent it keep it; nobody new gets it); a completed one leaves
 *   it unpaused with its last limit (2^32 after a 100 % phase).
 * - **Selection**, at each phase start: N = the target's appliances (not revoked) now; k = the
 *   phase's `count`, or ceil(percent × N / 100), at most N; the limit = max(previous limit, the
 *   k-th smallest fine bucket of the target + 1), or 2^32 for a 100 % phase. Every target
 *   appliance below the limit that is not yet a member joins (`rollout_members`) with this
 *   phase: an appliance is in one phase only, and widening never drops one. The control sample
 *   (`rollout_control`) is chosen anew: up to 1,000 target appliances at or above the limit, the
 *   highest fine buckets first (the last to get the release). Three statements, however large
 *   the target.
 * - **Rollback** on failure (when asked for): the assignment's `excluded_from` becomes the failed
 *   phase's lower limit, so that phase's appliances (and any later one's) fall through to the
 *   previous version's assignment: their catalogs list it again, and the agent installs it as an
 *   ordinary version change.
 *
 * Errors are {@link ApiError}s: 404 `not_found` (no such rollout or component version), 400
 * `invalid_body` (a plan or target that cannot run, naming the field), 409 `rollout_exists`
 * (the component has a running or paused rollout already), 409 `rollout_state` (the action does
 * not apply in the rollout's state; `state` names it).
 *
 * @module
 */
import { expectRevision, type IfMatch } from "./revisions.ts";
import { refuseOverComponentLimit } from "./component_limit.ts";
import { type Fragment, fragment as frag, runFragments } from "../db/fragment.ts";
import type { Sql } from "../db/db.ts";
import type { AppDeps } from "./deps.ts";
import { ApiError } from "../../protocol/http/errors.ts";
import { invalid } from "../../protocol/http/validate.ts";
import {
  type CreateRolloutInput,
  createRolloutSchema,
  maxControl,
  type MemberStateName,
  type Phase,
  type RolloutEventKind,
  type RolloutStateName,
} from "../../protocol/rollout_plan.ts";
import { fineBucketLimit, targetOrder, type TargetType } from "./catalog_engine.ts";
import { bumpCatalogEpoch } from "./catalogs.ts";
import { type ComponentRef, type RolloutAppliance, rolloutAppliances } from "./rollouts.ts";
import type { RolloutEvaluation } from "./rollout_gates.ts";
import type { NoticeInput } from "./notifier.ts";

/** What the rollout functions need: the database and the clock. */
export type RolloutDeps = Pick<AppDeps, "db" | "clock">;

/** The actor of what the rollout daemon does by itself (automatic advances, failures). */
export const daemonActor = "noc (rollout daemon)";

/** A rollout's target, as assignments store it (`value` null for `all`). */
export interface RolloutTarget {
  /** `all`, `model`, `channel`, `site`, `tag` or `appliance`. */
  type: TargetType;
  /** The model, channel, site, tag or UID; null for `all`. */
  value: string | null;
}

/** How a phase started (from `rollout_phases`). */
export interface PhaseStart {
  /** When (ISO 8601). */
  at: string;
  /** Who started it (an operator, or {@link daemonActor}). */
  by: string;
  /** The previous phase's limit (0 for the first): its own appliances have fine buckets from here. */
  lowerLimit: number;
  /** The assignment's `phase_limit` while it runs (fine buckets below it are included; 2^32: all). */
  limit: number;
  /** N: the target's appliances (not revoked) when it started. */
  targetSize: number;
  /** k: how many the phase asked for then (count, or ceil(percent × N / 100), at most N). */
  wanted: number;
  /** Appliances that joined with it. */
  joined: number;
  /** The control sample chosen then. */
  control: number;
  /** When it ended (advanced, failed, cancelled, completed), if it has. */
  endedAt: string | null;
}

/** One phase of a rollout: its plan, and how it started if it has. */
export interface RolloutPhase {
  /** 0-based. */
  index: number;
  /** The plan (defaults filled in). */
  plan: Phase;
  /** Null for a phase not started yet. */
  started: PhaseStart | null;
  /** Its members now (not revoked). */
  members: number;
}

/** A rollout event: who did what, when. */
export interface RolloutEvent {
  /** Event id (ascending in time). */
  id: number;
  /** When (ISO 8601). */
  at: string;
  /** The operator (the admin token's label), or {@link daemonActor}. */
  actor: string;
  /** What happened. */
  kind: RolloutEventKind;
  /**
   * Details: `note` (an operator's), `phase`, `from`/`to` (advanced), `auto`, `gate`, `reason`,
   * `figures` (failed, advanced automatically), `excludedFrom` (rolled_back), `limit`,
   * `targetSize`, `wanted`, `joined`, `control` (phase_started).
   */
  detail: Record<string, unknown>;
}

/** A rollout in a list. */
export interface RolloutSummary {
  /** Its id. */
  id: number;
  /** Its assignment's id. */
  assignmentId: number;
  /** The release. */
  component: ComponentRef;
  /** The target. */
  target: RolloutTarget;
  /** State. */
  state: RolloutStateName;
  /** Current phase (0-based). */
  phase: number;
  /** Number of phases. */
  phaseCount: number;
  /** What the target ran before (the version rolled back to). */
  previousVersion: string | null;
  /** Whether a failure sends the failed phase back to the previous version. */
  rollback: boolean;
  /** Who created it. */
  createdBy: string;
  /** ISO 8601. */
  createdAt: string;
  /** ISO 8601: the last change. */
  updatedAt: string;
  /** ISO 8601: when it failed, was cancelled or completed. */
  endedAt: string | null;
}

/** A rollout in full: {@link getRollout}. */
export interface RolloutDetail extends RolloutSummary {
  /** When the current phase started (ISO 8601). */
  phaseStartedAt: string;
  /** Since when the advance condition holds (ISO 8601), if it does. */
  heldSince: string | null;
  /** Bumped by every change of state or phase. */
  revision: number;
  /** The assignment as the catalog engine reads it. */
  assignment: {
    /** Paused (the rollout is paused, failed or cancelled). */
    paused: boolean;
    /** Why. */
    pausedReason: string | null;
    /** Fine buckets below it are included (2^32: all). */
    phaseLimit: number | null;
    /** Fine buckets at or above it are excluded (a rollback), if set. */
    excludedFrom: number | null;
  };
  /** Every phase: plan, start, members. */
  phases: RolloutPhase[];
  /** Current control sample size. */
  control: number;
  /** The last evaluation's figures and verdict (null: not evaluated yet in this phase's run). */
  evaluation: RolloutEvaluation | null;
  /** When it was last evaluated (ISO 8601). */
  evaluatedAt: string | null;
  /** The events, oldest first (the latest 500). */
  events: RolloutEvent[];
}

/** A rollout member: where it stands, and with which phase it joined. */
export interface RolloutMember extends Omit<RolloutAppliance, "state" | "sentAt"> {
  /** The phase it joined with (0-based). */
  phase: number;
  /** Its install state (rollouts.ts), or `not_sent` when the release was not sent to it. */
  state: MemberStateName;
  /** When it was first sent the release (ISO 8601), if it was. */
  sentAt: string | null;
}

interface RolloutRow {
  id: number;
  assignment_id: number;
  kind: string;
  app: string;
  name: string;
  version: string;
  target_type: TargetType;
  target_value: string | null;
  phases: Phase[];
  rollback: boolean;
  previous_version: string | null;
  state: RolloutStateName;
  phase: number;
  phase_started_at: Date;
  held_since: Date | null;
  last_evaluation: RolloutEvaluation | null;
  evaluated_at: Date | null;
  rev: number;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  ended_at: Date | null;
  paused: boolean;
  paused_reason: string | null;
  phase_limit: number | null;
  excluded_from: number | null;
}

/** `where` text matching the appliances (alias `a`, not revoked) of `t`, as the engine does. */
function targetWhere(t: RolloutTarget): Fragment {
  switch (t.type) {
    case "all":
      return frag` a.revoked_at is null `;
    case "model":
      return frag` a.revoked_at is null and a.model = ${t.value} `;
    case "channel":
      return frag` a.revoked_at is null and a.channel = ${t.value} `;
    case "site":
      return frag` a.revoked_at is null and a.site = ${t.value} `;
    case "tag":
      return frag` a.revoked_at is null and ${t.value}::text = any(a.tags) `;
    case "appliance":
      return frag` a.revoked_at is null and a.uid::text = ${t.value} `;
  }
}

const rolloutSelect = frag`
  select r.id, r.assignment_id, s.kind, s.app, s.name, s.version, s.target_type, s.target_value,
    r.phases, r.rollback, r.previous_version, r.state, r.phase, r.phase_started_at, r.held_since,
    r.last_evaluation, r.evaluated_at, r.version as rev, r.created_by, r.created_at, r.updated_at,
    r.ended_at, s.paused, s.paused_reason, s.phase_limit, s.excluded_from
  from rollouts r join assignments s on s.id = r.assignment_id `;

async function loadRow(sql: Sql, id: number, lock = false): Promise<RolloutRow> {
  const [row] = await runFragments<RolloutRow>(
    sql,
    rolloutSelect,
    lock ? frag`where r.id = ${id} for update of r` : frag`where r.id = ${id}`,
  );
  if (!row) throw new ApiError(404, "not_found", `Rollout ${id} does not exist`);
  return row;
}

const refOf = (r: RolloutRow): ComponentRef => ({
  kind: r.kind,
  app: r.app,
  name: r.name,
  version: r.version,
});
const targetOf = (r: Pick<RolloutRow, "target_type" | "target_value">): RolloutTarget => ({
  type: r.target_type,
  value: r.target_value,
});
const iso = (d: Date | null) => d?.toISOString() ?? null;
/**
 * Takes component `c`'s rollout lock for the transaction (one creation of a rollout or of an
 * assignment of the component at a time, whatever the number of instances).
 */
async function lockComponent(tx: Sql, c: Omit<ComponentRef, "version">): Promise<void> {
  await tx`select pg_advisory_xact_lock(
    hashtext(current_schema() || ':rollout:' || ${`${c.kind}/${c.app}/${c.name}`}))`;
}

/**
 * Takes the lock on rollout membership for the transaction: exclusive when a phase starts (members
 * are chosen, and at creation the target checked for overshadowing assignments), shared when
 * appliances move (site, channel, tags: {@link refuseMovesFromRollouts}). A move and a phase
 * start thus never both commit unseen by each other's check (review 20b), while moves still run
 * side by side.
 */
async function lockMembership(tx: Sql, mode: "exclusive" | "shared"): Promise<void> {
  if (mode === "exclusive") {
    await tx`select pg_advisory_xact_lock(hashtext(current_schema() || ':rollout-members'))`;
  } else {
    await tx`select pg_advisory_xact_lock_shared(hashtext(current_schema() || ':rollout-members'))`;
  }
}

/**
 * Takes the rollout lock of assignment `id`'s component (see {@link lockComponent}): a change to
 * an assignment a rollout relies on and that rollout's creation never both commit unseen.
 */
async function lockAssignmentComponent(tx: Sql, id: number): Promise<void> {
  const [a] = await tx<{ kind: string; app: string; name: string }>`
    select kind, app, name from assignments where id = ${id}`;
  if (a) await lockComponent(tx, a);
}

/** True when assignment `s` targets appliance `a` (SQL, aliases `s` and `a`). */
const matchAssignment = frag` (s.target_type = 'all'
  or (s.target_type = 'model' and s.target_value = a.model)
  or (s.target_type = 'channel' and s.target_value = a.channel)
  or (s.target_type = 'site' and s.target_value = a.site)
  or (s.target_type = 'tag' and s.target_value = any(a.tags))
  or (s.target_type = 'appliance' and s.target_value = a.uid::text)) `;

/** The SQL rank of a target type (lower: more specific; catalog_engine.ts `targetOrder`). */
const rankOf = (t: TargetType) => targetOrder.indexOf(t) + 1;

const describeTarget = (t: RolloutTarget) => t.value === null ? t.type : `${t.type} "${t.value}"`;

/**
 * Refuses (400 `invalid_body`, field `target`) a rollout of `c` to `target` when an assignment
 * of another version of the component, to a more specific target, matches some of the target's
 * appliances: the catalog engine gives those appliances that assignment's version, so they would
 * join the rollout's phases without ever getting the release and hold its advance condition
 * back. The message names the assignments (at most 5) and how many appliances each keeps. One
 * statement.
 */
async function refuseOvershadowed(tx: Sql, c: ComponentRef, target: RolloutTarget) {
  const rows = await runFragments<{
    id: number;
    version: string;
    target_type: TargetType;
    target_value: string | null;
    n: number;
  }>(
    tx,
    frag`
    select s.id, s.version, s.target_type, s.target_value, count(*)::int as n
    from assignments s join appliances a on`,
    matchAssignment,
    frag`and`,
    targetWhere(target),
    frag`
    where s.kind = ${c.kind} and s.app = ${c.app} and s.name = ${c.name}
      and s.version <> ${c.version}
      and array_position(${[...targetOrder]}::text[], s.target_type) < ${rankOf(target.type)}
    group by s.id order by s.id limit 5`,
  );
  if (rows.length === 0) return;
  const which = rows.map((r) =>
    `assignment ${r.id} (${
      describeTarget({ type: r.target_type, value: r.target_value })
    } → ${r.version}, ${r.n} appliance${r.n === 1 ? "" : "s"})`
  ).join(", ");
  const message = `more specific assignments of ${c.kind} ${c.app}/${c.name} keep appliances ` +
    `of ${describeTarget(target)} on other versions: ${which}. Delete or change them, or roll ` +
    "out to a target they do not cover";
  throw new ApiError(400, "invalid_body", `Field "target": ${message}`, {
    issues: [{ path: "target", message }],
  });
}

/**
 * Refuses (409 `managed_by_rollout`) a new assignment of component `c` (any version, the release's
 * too) to `target` that would take appliances from a running or paused rollout of the component:
 * a target as specific as the rollout's or more (the newer of two equally specific wins) matching
 * some of its appliances (the catalog engine would give them this assignment instead of the
 * rollout's phases). Takes the component's rollout lock first (as {@link createRollout} does),
 * so the two cannot pass each other's check at once. Two statements.
 */
export async function refuseAssignmentOverRollout(
  tx: Sql,
  c: Omit<ComponentRef, "version">,
  target: RolloutTarget,
): Promise<void> {
  await lockComponent(tx, c);
  const [hit] = await runFragments<{ id: number; state: string; n: number }>(
    tx,
    frag`
    select r.id, r.state, (
      select count(*)::int from appliances a
      where`,
    matchAssignment,
    frag`and`,
    targetWhere(target),
    frag`) as n
    from rollouts r join assignments s on s.id = r.assignment_id
    where r.state in ('running', 'paused') and s.kind = ${c.kind} and s.app = ${c.app}
      and s.name = ${c.name}
      and array_position(${[...targetOrder]}::text[], s.target_type) >= ${rankOf(target.type)}
    limit 1`,
  );
  if (!hit || hit.n === 0) return;
  throw new ApiError(
    409,
    "managed_by_rollout",
    `Phased rollout ${hit.id} (${hit.state}) of ${c.kind} ${c.app}/${c.name} covers ${hit.n} ` +
      `appliance${hit.n === 1 ? "" : "s"} of ${describeTarget(target)}: this more specific ` +
      "assignment would take them off the rollout. Cancel the rollout (or let it end) first",
    { rolloutId: hit.id, state: hit.state },
  );
}

const describeRelease = (r: ComponentRef) => `${r.kind} ${r.app}/${r.name} ${r.version}`;

async function addEvent(
  tx: Sql,
  rolloutId: number,
  at: Date,
  actor: string,
  kind: RolloutEventKind,
  detail: Record<string, unknown>,
): Promise<void> {
  await tx`
    insert into rollout_events (rollout_id, at, actor, kind, detail)
    values (${rolloutId}, ${at}, ${actor.slice(0, 200)}, ${kind}, ${detail})`;
}

/** What {@link startPhase} decided. */
interface Started {
  limit: number;
  targetSize: number;
  wanted: number;
  joined: number;
  control: number;
}

/**
 * Starts phase `index` of rollout `r` (in transaction `tx`): sizes it, moves the assignment's
 * limit, adds the members, re-chooses the control sample, records the phase row and the
 * `phase_started` event. The rollout row's own phase fields are the caller's to update.
 */
async function startPhase(
  tx: Sql,
  r:
    & Pick<RolloutRow, "id" | "assignment_id" | "kind" | "app" | "name" | "phases">
    & Pick<RolloutRow, "target_type" | "target_value" | "paused">,
  index: number,
  lowerLimit: number,
  now: Date,
  actor: string,
): Promise<Started> {
  const plan = r.phases[index]!;
  await lockMembership(tx, "exclusive");
  // The control sample is chosen anew: the old one goes first (a statement's parts cannot see
  // each other's writes).
  await tx`delete from rollout_control where rollout_id = ${r.id}`;
  // One pass over the target's fine buckets: its size N, k, the limit, the members who join and
  // the control sample.
  const [size] = await runFragments<
    { n: number; k: number; phase_limit: number; joined: number; control: number }
  >(
    tx,
    frag`
    with t as materialized (
      select a.uid, fine_bucket(a.uid, ${r.kind}, ${r.app}, ${r.name}) as b from appliances a
      where`,
    targetWhere(targetOf(r)),
    frag`),
    n as (select count(*)::int as n from t),
    k as (
      select least(coalesce(${plan.count ?? null}::int,
        ceil(${plan.percent ?? 0}::float8 * n.n / 100)::int), n.n) as k
      from n
    ),
    lim as (
      select case when ${plan.percent === 100}::boolean then ${fineBucketLimit}::bigint
        else greatest(${lowerLimit}::bigint, coalesce(
          (select max(b) + 1 from (select b from t order by b limit (select k from k)) s), 0))
        end as phase_limit
    ),
    added as (
      insert into rollout_members (rollout_id, uid, phase)
      select ${r.id}, t.uid, case when t.b < ${lowerLimit}::bigint then coalesce((
          select max(p.phase) from rollout_phases p
          where p.rollout_id = ${r.id} and p.lower_limit <= t.b), 0)
        else ${index} end
      from t, lim where t.b < lim.phase_limit
      on conflict do nothing
      returning 1
    ),
    chosen as (
      insert into rollout_control (rollout_id, uid)
      select ${r.id}, t.uid from t, lim where t.b >= lim.phase_limit
      order by t.b desc
      limit ${maxControl}
      returning 1
    )
    select n.n, k.k, lim.phase_limit, (select count(*)::int from added) as joined,
      (select count(*)::int from chosen) as control
    from n, k, lim`,
  );
  const targetSize = size!.n;
  const wanted = size!.k;
  const limit = size!.phase_limit;
  const [members] = await tx<{ n: number }>`
    select count(*)::int as n from rollout_members where rollout_id = ${r.id}`;
  // rollout_percent only describes the phase to readers: the engine reads phase_limit.
  const shown = limit >= fineBucketLimit
    ? 100
    : Math.min(99, Math.round((members!.n * 100) / Math.max(1, targetSize)));
  await tx`
    update assignments set phase_limit = ${limit}, rollout_percent = ${shown}, updated_at = ${now}
    where id = ${r.assignment_id}`;
  await tx`
    insert into rollout_phases (rollout_id, phase, started_at, started_by, lower_limit, upper_limit,
      target_size, wanted, joined, control)
    values (${r.id}, ${index}, ${now}, ${actor.slice(0, 200)}, ${lowerLimit}, ${limit},
      ${targetSize}, ${wanted}, ${size!.joined}, ${size!.control})`;
  await bumpCatalogEpoch(tx);
  const started = { limit, targetSize, wanted, joined: size!.joined, control: size!.control };
  await addEvent(tx, r.id, now, actor, "phase_started", { phase: index, ...started });
  return started;
}

/**
 * The version the target's appliances fall back to: the assignment of another version of the
 * component, not paused, that matches some appliance of the target, the most specific target
 * first, then the newest. One statement.
 */
async function fallbackVersion(
  tx: Sql,
  c: ComponentRef,
  target: RolloutTarget,
): Promise<string | null> {
  const [row] = await runFragments<{ version: string }>(
    tx,
    frag`
    select s.version from assignments s
    where s.kind = ${c.kind} and s.app = ${c.app} and s.name = ${c.name}
      and s.version <> ${c.version} and not s.paused and s.excluded_from is null
      and exists (
        select 1 from appliances a
        where`,
    matchAssignment,
    frag`and`,
    targetWhere(target),
    frag`)
    order by array_position(${[...targetOrder]}::text[], s.target_type), s.created_at desc,
      s.id desc
    limit 1`,
  );
  return row?.version ?? null;
}

/**
 * Creates a phased rollout and starts its first phase, in one transaction: its assignment
 * (`failure_threshold_percent` null, `phase_limit` the first phase's), the `rollouts` row, the
 * first phase's members and control sample, events `created` and `phase_started` (actor
 * `actor`), and the catalog epoch. `body` is validated here (the shape of
 * `POST /v1/admin/rollouts`, {@link createRolloutSchema}).
 *
 * `previousVersion` defaults to the version of the assignment the target's appliances fall back
 * to (another version's, not paused, matching some of them: the most specific target, then the
 * newest); with `rollback`, there must be one, and an assignment of it must exist.
 *
 * Returns the rollout as {@link getRollout} reads it.
 *
 * @throws ApiError 400 `invalid_body` — the body does not parse (issues name the fields); the
 *   target matches no appliance; `previousVersion` equals the release; `rollback` with no
 *   previous version's assignment to fall back to.
 * @throws ApiError 404 `not_found` — the release (or `previousVersion`) is not published.
 * @throws ApiError 409 `rollout_exists` — the component has a running or paused rollout.
 */
export async function createRollout(
  deps: RolloutDeps,
  body: CreateRolloutInput,
  actor: string,
): Promise<RolloutDetail> {
  const parsed = createRolloutSchema.safeParse(body);
  if (!parsed.success) invalid("body", parsed.error.issues);
  const b = parsed.data;
  const c = b.component;
  const target: RolloutTarget = {
    type: b.target.type,
    value: b.target.type === "all" ? null : b.target.value,
  };
  const bad = (path: string, message: string): never => {
    throw new ApiError(400, "invalid_body", `Field "${path}": ${message}`, {
      issues: [{ path, message }],
    });
  };
  const now = deps.clock.now();
  const id = await deps.db.begin(async (tx) => {
    // One creation at a time per component, whatever the number of instances; no appliance
    // moves while the target is checked and the members chosen.
    await lockComponent(tx, c);
    await lockMembership(tx, "exclusive");
    const published = await tx<{ version: string }>`
      select version from components where kind = ${c.kind} and app = ${c.app}
        and name = ${c.name} and version = any(${[
      c.version,
      b.previousVersion ?? c.version,
    ]}::text[])`;
    if (!published.some((p) => p.version === c.version)) {
      throw new ApiError(404, "not_found", `${describeRelease(c)} is not published`);
    }
    if (b.previousVersion !== undefined) {
      if (b.previousVersion === c.version) {
        bad("previousVersion", "must differ from the release's version");
      }
      if (!published.some((p) => p.version === b.previousVersion)) {
        throw new ApiError(
          404,
          "not_found",
          `${c.kind} ${c.app}/${c.name} ${b.previousVersion} (previousVersion) is not published`,
        );
      }
    }
    const [active] = await tx<{ id: number; state: string }>`
      select r.id, r.state from rollouts r join assignments s on s.id = r.assignment_id
      where r.state in ('running', 'paused') and s.kind = ${c.kind} and s.app = ${c.app}
        and s.name = ${c.name}
      limit 1`;
    if (active) {
      throw new ApiError(
        409,
        "rollout_exists",
        `Rollout ${active.id} of ${c.kind} ${c.app}/${c.name} is ${active.state}: ` +
          "cancel it (or let it end) before starting another",
        { rolloutId: active.id },
      );
    }
    const [size] = await runFragments<{ n: number }>(
      tx,
      frag`select count(*)::int as n from appliances a where`,
      targetWhere(target),
    );
    if (size!.n === 0) {
      bad(
        target.type === "all" ? "target" : "target.value",
        `${target.type}${target.value === null ? "" : ` "${target.value}"`} matches no ` +
          "appliance (not revoked): a phased rollout chooses from the appliances it has",
      );
    }
    // Counts and percentages mixed: with today's N, no phase may ask for fewer than the one
    // before (it would add nobody, and the plan would not say what it does).
    const n = size!.n;
    const wants = b.phases.map((p) =>
      Math.min(n, p.count ?? Math.ceil(((p.percent ?? 0) * n) / 100))
    );
    for (let i = 1; i < wants.length; i++) {
      if (wants[i]! < wants[i - 1]!) {
        bad(
          `phases.${i}`,
          `phase ${i + 1} asks for ${wants[i]} of the target's ${n} appliances, fewer than phase ` +
            `${i}'s ${wants[i - 1]}: phases never shrink`,
        );
      }
    }
    await refuseOvershadowed(tx, c, target);
    const fallback = await fallbackVersion(tx, c, target);
    if (b.previousVersion !== undefined && fallback !== null && fallback !== b.previousVersion) {
      // The control group is judged on previousVersion and a failed phase goes back to what the
      // catalog engine gives: both must be the version the target really falls back to.
      bad(
        "previousVersion",
        `the target's appliances fall back to ${fallback} (the assignment their catalogs ` +
          `follow without the rollout), not ${b.previousVersion}: give ${fallback}, or change ` +
          "the assignments first",
      );
    }
    const previous = b.previousVersion ?? fallback;
    if (b.rollback) {
      if (previous === null) {
        bad(
          "rollback",
          "no assignment of another version reaches this target, so a failed phase would have " +
            "nothing to go back to: give previousVersion (and assign it), or set rollback false",
        );
      }
      // Every appliance of the target must have somewhere to go back to: an assignment of the
      // previous version that includes it whole (not paused, not limited, not excluding).
      const [uncovered] = await runFragments<{ n: number }>(
        tx,
        frag`select count(*)::int as n from appliances a where`,
        targetWhere(target),
        frag` and not exists (
          select 1 from assignments s
          where s.kind = ${c.kind} and s.app = ${c.app} and s.name = ${c.name}
            and s.version = ${previous} and not s.paused and s.excluded_from is null
            and s.rollout_percent = 100
            and (s.phase_limit is null or s.phase_limit >= ${fineBucketLimit}::bigint)
            and`,
        matchAssignment,
        frag`)`,
      );
      if (uncovered!.n > 0) {
        bad(
          "previousVersion",
          `${uncovered!.n} appliance${uncovered!.n === 1 ? "" : "s"} of the target ha` +
            `${uncovered!.n === 1 ? "s" : "ve"} no assignment of ${previous} (to 100 %, not ` +
            "paused) to go back to after a failure: assign it to the whole target first, or " +
            "set rollback false",
        );
      }
    }
    // A rollout is an assignment like any other: it may not make more distinct components
    // assigned than a beat can report back (409 too_many_components, as POST /assignments).
    await refuseOverComponentLimit(tx, c);
    const [a] = await tx<{ id: number }>`
      insert into assignments (kind, app, name, version, target_type, target_value,
        rollout_percent, min_sample, phase_limit, created_at, updated_at)
      values (${c.kind}, ${c.app}, ${c.name}, ${c.version}, ${target.type}, ${target.value}, 0,
        ${b.phases[0]!.stop.minSample}, 0, ${now}, ${now})
      returning id`;
    const [r] = await tx<{ id: number }>`
      insert into rollouts (assignment_id, phases, rollback, previous_version, state, phase,
        phase_started_at, created_by, created_at, updated_at)
      values (${a!.id}, ${b.phases}::jsonb, ${b.rollback}, ${previous}, 'running', 0, ${now},
        ${actor.slice(0, 200)}, ${now}, ${now})
      returning id`;
    await addEvent(tx, r!.id, now, actor, "created", {
      ...(b.note === undefined ? {} : { note: b.note }),
      component: c,
      target,
      phases: b.phases.length,
      previousVersion: previous,
      rollback: b.rollback,
    });
    await startPhase(
      tx,
      {
        id: r!.id,
        assignment_id: a!.id,
        ...c,
        ...{ target_type: target.type, target_value: target.value },
        phases: b.phases,
        paused: false,
      },
      0,
      0,
      now,
      actor,
    );
    return r!.id;
  });
  return await getRollout(deps.db.sql, id);
}

/** Throws 409 `rollout_state` unless `r` is in one of `allowed`. */
function expectState(
  r: RolloutRow,
  allowed: readonly RolloutStateName[],
  action: string,
): void {
  if (allowed.includes(r.state)) return;
  const only = allowed.length === 1
    ? `only a ${allowed[0]} rollout`
    : `only a ${allowed.join(" or ")} rollout`;
  throw new ApiError(
    409,
    "rollout_state",
    `Rollout ${r.id} is ${r.state}: ${only} can be ${action}`,
    { state: r.state },
  );
}

const noteOf = (note: string | undefined) => note === undefined ? {} : { note };

/** Closes the current phase's row (it advanced or the rollout ended). */
async function endPhase(tx: Sql, r: RolloutRow, now: Date): Promise<void> {
  await tx`
    update rollout_phases set ended_at = ${now}
    where rollout_id = ${r.id} and phase = ${r.phase} and ended_at is null`;
}

/**
 * Pauses a running rollout: its assignment is paused (appliances already sent the release keep
 * it; nobody new gets it), the soak clock stops (`held_since` cleared), event `paused` with
 * `actor` and `note`.
 *
 * @throws ApiError 404 `not_found` — no rollout `id`.
 * @throws ApiError 409 `rollout_state` — it is not running (`state` names its state).
 */
export async function pauseRollout(
  deps: RolloutDeps,
  id: number,
  actor: string,
  note?: string,
  expect: IfMatch | null = null,
): Promise<RolloutDetail> {
  const now = deps.clock.now();
  await deps.db.begin(async (tx) => {
    const r = await loadRow(tx, id, true);
    // `If-Match` (noc/http/admin/revisions.ts): its revision, before its state.
    expectRevision(expect, r.rev);
    expectState(r, ["running"], "paused");
    await tx`
      update rollouts set state = 'paused', held_since = null, version = version + 1,
        updated_at = ${now}
      where id = ${id}`;
    await tx`
      update assignments set paused = true,
        paused_reason = ${`rollout ${id} paused by ${actor}`.slice(0, 300)}, updated_at = ${now}
      where id = ${r.assignment_id}`;
    await bumpCatalogEpoch(tx);
    await addEvent(tx, id, now, actor, "paused", { phase: r.phase, ...noteOf(note) });
  });
  return await getRollout(deps.db.sql, id);
}

/**
 * Resumes a paused rollout: its assignment is unpaused, the advance condition must hold anew
 * for the phase's soak time, event `resumed` with `actor` and `note`.
 *
 * @throws ApiError 404 `not_found` — no rollout `id`.
 * @throws ApiError 409 `rollout_state` — it is not paused.
 */
export async function resumeRollout(
  deps: RolloutDeps,
  id: number,
  actor: string,
  note?: string,
  expect: IfMatch | null = null,
): Promise<RolloutDetail> {
  const now = deps.clock.now();
  await deps.db.begin(async (tx) => {
    const r = await loadRow(tx, id, true);
    // `If-Match` (noc/http/admin/revisions.ts): its revision, before its state.
    expectRevision(expect, r.rev);
    expectState(r, ["paused"], "resumed");
    await tx`
      update rollouts set state = 'running', held_since = null, version = version + 1,
        updated_at = ${now}
      where id = ${id}`;
    await tx`
      update assignments set paused = false, paused_reason = null, updated_at = ${now}
      where id = ${r.assignment_id}`;
    await bumpCatalogEpoch(tx);
    await addEvent(tx, id, now, actor, "resumed", { phase: r.phase, ...noteOf(note) });
  });
  return await getRollout(deps.db.sql, id);
}

/**
 * Cancels a running or paused rollout: state `cancelled`, its assignment paused (appliances
 * already sent the release keep it), event `cancelled` with `actor` and `note`. Final.
 *
 * @throws ApiError 404 `not_found` — no rollout `id`.
 * @throws ApiError 409 `rollout_state` — it has ended (failed, cancelled or completed).
 */
export async function cancelRollout(
  deps: RolloutDeps,
  id: number,
  actor: string,
  note?: string,
  expect: IfMatch | null = null,
): Promise<RolloutDetail> {
  const now = deps.clock.now();
  await deps.db.begin(async (tx) => {
    const r = await loadRow(tx, id, true);
    // `If-Match` (noc/http/admin/revisions.ts): its revision, before its state.
    expectRevision(expect, r.rev);
    expectState(r, ["running", "paused"], "cancelled");
    await tx`
      update rollouts set state = 'cancelled', held_since = null, ended_at = ${now},
        version = version + 1, updated_at = ${now}
      where id = ${id}`;
    await tx`
      update assignments set paused = true,
        paused_reason = ${`rollout ${id} cancelled by ${actor}`.slice(0, 300)},
        updated_at = ${now}
      where id = ${r.assignment_id}`;
    await endPhase(tx, r, now);
    await bumpCatalogEpoch(tx);
    await addEvent(tx, id, now, actor, "cancelled", { phase: r.phase, ...noteOf(note) });
  });
  return await getRollout(deps.db.sql, id);
}

/**
 * Moves rollout `r` (locked, running, at revision `r.rev`) on from its current phase: starts the
 * next one, or completes the rollout after the last. Events `advanced` (with `detail`) then
 * `phase_started`, or `completed`.
 */
async function moveOn(
  tx: Sql,
  r: RolloutRow,
  now: Date,
  actor: string,
  detail: Record<string, unknown>,
): Promise<void> {
  await endPhase(tx, r, now);
  const next = r.phase + 1;
  if (next >= r.phases.length) {
    await tx`
      update rollouts set state = 'completed', held_since = null, ended_at = ${now},
        version = version + 1, updated_at = ${now}
      where id = ${r.id}`;
    await addEvent(tx, r.id, now, actor, "completed", { phase: r.phase, ...detail });
    return;
  }
  const [prev] = await tx<{ upper_limit: number }>`
    select upper_limit from rollout_phases where rollout_id = ${r.id} and phase = ${r.phase}`;
  await addEvent(tx, r.id, now, actor, "advanced", { from: r.phase, to: next, ...detail });
  await tx`
    update rollouts set phase = ${next}, phase_started_at = ${now}, held_since = null,
      last_evaluation = null, version = version + 1, updated_at = ${now}
    where id = ${r.id}`;
  await startPhase(tx, r, next, prev?.upper_limit ?? r.phase_limit ?? 0, now, actor);
}

/**
 * "Advance now": moves a running rollout to its next phase at once, whatever its figures and
 * soak time (new limit, members and control sample), or completes it after its last phase.
 * Events `advanced` (`auto: false`, `note`) and `phase_started`, or `completed`, with `actor`.
 *
 * @throws ApiError 404 `not_found` — no rollout `id`.
 * @throws ApiError 409 `rollout_state` — it is not running (a paused one is resumed first).
 */
export async function advanceRollout(
  deps: RolloutDeps,
  id: number,
  actor: string,
  note?: string,
  expect: IfMatch | null = null,
): Promise<RolloutDetail> {
  const now = deps.clock.now();
  await deps.db.begin(async (tx) => {
    const r = await loadRow(tx, id, true);
    // `If-Match` (noc/http/admin/revisions.ts): its revision, before its state.
    expectRevision(expect, r.rev);
    expectState(r, ["running"], "advanced");
    await moveOn(tx, r, now, actor, { auto: false, ...noteOf(note) });
  });
  return await getRollout(deps.db.sql, id);
}

/**
 * The rollout daemon's advance (noc/jobs/rollout_daemon.ts): as {@link advanceRollout} by
 * {@link daemonActor}, but only if rollout `id` is still running at revision `revision` and in
 * phase `phase` (another instance, or an operator, may have changed it since it was judged).
 * Returns whether it advanced.
 */
export async function advanceIfUnchanged(
  deps: RolloutDeps,
  id: number,
  revision: number,
  phase: number,
  figures: RolloutEvaluation,
): Promise<boolean> {
  const now = deps.clock.now();
  return await deps.db.begin(async (tx) => {
    const r = await loadRow(tx, id, true);
    if (r.state !== "running" || r.rev !== revision || r.phase !== phase) return false;
    await moveOn(tx, r, now, daemonActor, {
      auto: true,
      heldSince: figures.heldSince,
      figures: figures.figures,
    });
    return true;
  });
}

/** What the daemon found wrong with a phase: the gate, in words, and the figures. */
export interface RolloutFailure {
  /** `stop` (install errors), `pluginHealth`, `metric` or `beatRegularity`. */
  gate: string;
  /** The gate's figures in words. */
  reason: string;
  /** The evaluation that failed it. */
  evaluation: RolloutEvaluation;
}

/**
 * Fails rollout `id` if it is still running at revision `revision` (one transaction, so however
 * many daemon passes race, one fails it): state `failed`, its assignment paused with the reason,
 * event `failed` (gate, reason, figures), and with `rollback` the assignment's `excluded_from`
 * set to the failed phase's lower limit (its appliances fall through to the previous version)
 * and event `rolled_back`; then **one** notice (kind `rollout_failed`) through
 * `deps.notifier`. Returns whether it failed it (false: already changed).
 */
export async function failIfUnchanged(
  deps: Pick<AppDeps, "db" | "clock" | "notifier">,
  id: number,
  revision: number,
  failure: RolloutFailure,
): Promise<boolean> {
  const now = deps.clock.now();
  const done = await deps.db.begin(async (tx) => {
    const r = await loadRow(tx, id, true);
    if (r.state !== "running" || r.rev !== revision) return false;
    const reason = `phase ${r.phase + 1} of ${r.phases.length} failed on ${failure.gate}: ` +
      failure.reason;
    await tx`
      update rollouts set state = 'failed', held_since = null, ended_at = ${now},
        last_evaluation = ${failure.evaluation as unknown as Record<string, unknown>},
        evaluated_at = ${now}, version = version + 1, updated_at = ${now}
      where id = ${id}`;
    const [phase] = await tx<{ lower_limit: number }>`
      select lower_limit from rollout_phases where rollout_id = ${id} and phase = ${r.phase}`;
    const excludedFrom = r.rollback ? phase?.lower_limit ?? 0 : null;
    await tx`
      update assignments set paused = true, paused_reason = ${reason.slice(0, 1000)},
        excluded_from = coalesce(${excludedFrom}::bigint, excluded_from), updated_at = ${now}
      where id = ${r.assignment_id}`;
    await endPhase(tx, r, now);
    await bumpCatalogEpoch(tx);
    await addEvent(tx, id, now, daemonActor, "failed", {
      phase: r.phase,
      gate: failure.gate,
      reason: failure.reason,
      figures: failure.evaluation.figures,
      judgement: failure.evaluation.judgement,
    });
    if (excludedFrom !== null) {
      await addEvent(tx, id, now, daemonActor, "rolled_back", {
        phase: r.phase,
        excludedFrom,
        to: r.previous_version,
      });
    }
    const notice: NoticeInput = {
      kind: "rollout_failed",
      text: `:x: Rollout ${id} of ${describeRelease(refOf(r))} failed: ${reason}` +
        (excludedFrom !== null
          ? `; phase ${r.phase + 1}'s appliances go back to ${r.previous_version}`
          : ""),
      payload: {
        rolloutId: id,
        assignmentId: r.assignment_id,
        component: refOf(r),
        target: targetOf(r),
        phase: r.phase,
        gate: failure.gate,
        reason: failure.reason,
        rolledBack: excludedFrom !== null,
        previousVersion: r.previous_version,
        figures: failure.evaluation.figures,
      },
    };
    await (deps.notifier.enqueue(tx, notice, now));
    return true;
  });
  if (done) deps.notifier.kick();
  return done;
}

function summaryOf(r: RolloutRow): RolloutSummary {
  return {
    id: r.id,
    assignmentId: r.assignment_id,
    component: refOf(r),
    target: targetOf(r),
    state: r.state,
    phase: r.phase,
    phaseCount: r.phases.length,
    previousVersion: r.previous_version,
    rollback: r.rollback,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    endedAt: iso(r.ended_at),
  };
}

/**
 * Rollout `id` in full: the release, target, state, current phase and revision; every phase with
 * its plan, how it started (limits, target size N, wanted size k, joined, control) and its
 * members now; the control sample's size; the assignment's pause and limits; the last
 * evaluation (figures against control, verdict); and its events, oldest first (the latest 500).
 * Four statements.
 *
 * @throws ApiError 404 `not_found` — no rollout `id`.
 */
export async function getRollout(sql: Sql, id: number): Promise<RolloutDetail> {
  const r = await loadRow(sql, id);
  const [starts, counts, events] = await Promise.all([
    sql<{
      phase: number;
      started_at: Date;
      started_by: string;
      lower_limit: number;
      upper_limit: number;
      target_size: number;
      wanted: number;
      joined: number;
      control: number;
      ended_at: Date | null;
    }>`select * from rollout_phases where rollout_id = ${id} order by phase`,
    sql<{ phase: number; n: number }>`
      select m.phase, count(*)::int as n from rollout_members m
      join appliances a on a.uid = m.uid and a.revoked_at is null
      where m.rollout_id = ${id} group by m.phase
      union all
      select -1, count(*)::int from rollout_control c
      join appliances a on a.uid = c.uid and a.revoked_at is null
      where c.rollout_id = ${id}`,
    sql<{ id: number; at: Date; actor: string; kind: RolloutEventKind; detail: unknown }>`
      select * from (
        select id, at, actor, kind, detail from rollout_events where rollout_id = ${id}
        order by id desc limit 500
      ) e order by id`,
  ]);
  return {
    ...summaryOf(r),
    phaseStartedAt: r.phase_started_at.toISOString(),
    heldSince: iso(r.held_since),
    revision: r.rev,
    assignment: {
      paused: r.paused,
      pausedReason: r.paused_reason,
      phaseLimit: r.phase_limit,
      excludedFrom: r.excluded_from,
    },
    phases: r.phases.map((plan, index) => {
      const s = starts.find((p) => p.phase === index);
      return {
        index,
        plan,
        started: s
          ? {
            at: s.started_at.toISOString(),
            by: s.started_by,
            lowerLimit: s.lower_limit,
            limit: s.upper_limit,
            targetSize: s.target_size,
            wanted: s.wanted,
            joined: s.joined,
            control: s.control,
            endedAt: iso(s.ended_at),
          }
          : null,
        members: counts.find((c) => c.phase === index)?.n ?? 0,
      };
    }),
    control: counts.find((c) => c.phase === -1)?.n ?? 0,
    evaluation: r.last_evaluation,
    evaluatedAt: iso(r.evaluated_at),
    events: events.map((e) => ({
      id: e.id,
      at: e.at.toISOString(),
      actor: e.actor,
      kind: e.kind,
      detail: (e.detail ?? {}) as Record<string, unknown>,
    })),
  };
}

/**
 * Rollouts, newest first, `limit` (1–200, default 50) a page after `cursor` (the `nextCursor` of
 * the previous page), optionally only those in `states`. One statement. `nextCursor` is null on
 * the last page.
 *
 * @throws ApiError 400 `invalid_query` — a cursor that is not one this function gave.
 */
export async function listRollouts(
  sql: Sql,
  opts: { cursor?: string | undefined; limit?: number; states?: readonly RolloutStateName[] } = {},
): Promise<{ items: RolloutSummary[]; nextCursor: string | null }> {
  const limit = Math.max(1, Math.min(200, opts.limit ?? 50));
  if (opts.cursor !== undefined && !/^[0-9]{1,18}$/.test(opts.cursor)) {
    throw new ApiError(
      400,
      "invalid_query",
      'Field "cursor": must be a cursor from a previous page',
      {
        issues: [{ path: "cursor", message: "must be a cursor from a previous page" }],
      },
    );
  }
  const states = opts.states && opts.states.length > 0 ? [...opts.states] : null;
  const rows = await runFragments<RolloutRow>(
    sql,
    rolloutSelect,
    frag`
    where (${opts.cursor ?? null}::bigint is null or r.id < ${opts.cursor ?? null}::bigint)
      and (${states === null}::boolean or r.state = any(${states ?? []}::text[]))
    order by r.id desc limit ${limit + 1}`,
  );
  const page = rows.slice(0, limit);
  return {
    items: page.map(summaryOf),
    nextCursor: rows.length > limit ? String(page[page.length - 1]!.id) : null,
  };
}

/**
 * The members of rollout `id` (of phase `phase` when given), in UID order after `after`, at most
 * `limit` (1–1000), optionally only those in `states`: each with the phase it joined with, its
 * install state (noc/services/rollouts.ts `rolloutAppliances`, scoped to the members) or
 * `not_sent`, the version it runs, its latest outcome and beat. At most four statements.
 * `nextAfter` is the last UID when the page is full (null otherwise).
 *
 * @throws ApiError 404 `not_found` — no rollout `id`.
 */
export async function rolloutMembers(
  sql: Sql,
  id: number,
  opts: {
    phase?: number | undefined;
    states?: readonly MemberStateName[] | undefined;
    after?: string | undefined;
    limit: number;
  },
): Promise<{ items: RolloutMember[]; nextAfter: string | null }> {
  const r = await loadRow(sql, id);
  const limit = Math.max(1, Math.min(1000, opts.limit));
  const states = opts.states && opts.states.length > 0 ? opts.states : null;
  const installStates = states?.filter((s) => s !== "not_sent") ?? [];
  const wantSent = states === null || installStates.length > 0;
  const wantNotSent = states === null || states.includes("not_sent");
  const scope = { rolloutId: id, phase: opts.phase };
  const [sent, notSent] = await Promise.all([
    wantSent
      ? rolloutAppliances(sql, refOf(r), {
        ...(installStates.length > 0
          ? { states: installStates as Exclude<MemberStateName, "not_sent">[] }
          : {}),
        ...(opts.after === undefined ? {} : { after: opts.after }),
        limit,
        scope,
      })
      : Promise.resolve([]),
    wantNotSent
      ? sql<{
        uid: string;
        phase: number;
        hostname: string;
        site: string | null;
        last_beat_at: Date | null;
        missing_since: Date | null;
        running: string | null;
      }>`
        select m.uid, m.phase, a.hostname, a.site, a.last_beat_at, a.missing_since, run.running
        from rollout_members m
        join appliances a on a.uid = m.uid and a.revoked_at is null
        left join lateral (
          select c->>'version' as running
          from jsonb_array_elements(case when jsonb_typeof(a.last_report->'components') = 'array'
            then a.last_report->'components' else '[]'::jsonb end) c
          where c->>'kind' = ${r.kind} and c->>'app' = ${r.app} and c->>'name' = ${r.name}
          limit 1
        ) run on true
        where m.rollout_id = ${id}
          and (${opts.phase ?? null}::int is null or m.phase = ${opts.phase ?? null}::int)
          and (${opts.after ?? null}::uuid is null or m.uid > ${opts.after ?? null}::uuid)
          and not exists (
            select 1 from deliveries d join components k on k.id = d.component_id
            where d.uid = m.uid and k.kind = ${r.kind} and k.app = ${r.app}
              and k.name = ${r.name} and k.version = ${r.version})
        order by m.uid limit ${limit}`
      : Promise.resolve([]),
  ]);
  const phases = sent.length === 0 ? [] : await sql<{ uid: string; phase: number }>`
    select uid, phase from rollout_members
    where rollout_id = ${id} and uid = any(${sent.map((s) => s.uid)}::uuid[])`;
  const phaseOf = new Map(phases.map((p) => [p.uid, p.phase]));
  const items: RolloutMember[] = [
    ...sent.map((s) => ({ ...s, phase: phaseOf.get(s.uid) ?? 0 })),
    ...notSent.map((m) => ({
      uid: m.uid,
      hostname: m.hostname,
      site: m.site,
      state: "not_sent" as const,
      runningVersion: m.running,
      outcome: null,
      lastBeatAt: iso(m.last_beat_at),
      sentAt: null,
      missingSince: iso(m.missing_since),
      phase: m.phase,
    })),
  ].sort((a, b) => a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0).slice(0, limit);
  return {
    items,
    nextAfter: items.length === limit ? items[items.length - 1]!.uid : null,
  };
}

/**
 * The rollout that manages assignment `assignmentId`, if one does (for the assignment routes,
 * which leave its pause and rollout percentage to the rollout): its id and state. One statement.
 */
export async function rolloutOfAssignment(
  sql: Sql,
  assignmentId: number,
): Promise<{ id: number; state: RolloutStateName } | null> {
  const [row] = await sql<{ id: number; state: RolloutStateName }>`
    select id, state from rollouts where assignment_id = ${assignmentId}`;
  return row ?? null;
}

/**
 * Refuses (409 `managed_by_rollout`) a change of appliances `uids` (site, channel, tags, already
 * written in transaction `tx`) that puts a member of a running or paused rollout under another
 * assignment of the component the catalog engine prefers to the rollout's (a more specific
 * target, or an equally specific newer one): the member would sit in its phase without the
 * release. Names the appliance, the rollout and the assignment. One statement.
 */
export async function refuseMovesFromRollouts(tx: Sql, uids: readonly string[]): Promise<void> {
  if (uids.length === 0) return;
  // Waits for a phase being started to commit, so that its members are seen below.
  await lockMembership(tx, "shared");
  // `ra`: the rollout's assignment; `s`: another assignment of its component matching member `a`.
  const [hit] = await runFragments<{
    rollout_id: number;
    state: string;
    uid: string;
    phase: number;
    other: number;
    target_type: TargetType;
    target_value: string | null;
    version: string;
  }>(
    tx,
    frag`
    select r.id as rollout_id, r.state, m.uid, m.phase, s.id as other, s.target_type,
      s.target_value, s.version
    from rollout_members m
    join rollouts r on r.id = m.rollout_id and r.state in ('running', 'paused')
    join assignments ra on ra.id = r.assignment_id
    join appliances a on a.uid = m.uid
    join assignments s on s.kind = ra.kind and s.app = ra.app and s.name = ra.name
      and s.id <> ra.id and`,
    matchAssignment,
    frag`and (array_position(${[...targetOrder]}::text[], s.target_type)
          < array_position(${[...targetOrder]}::text[], ra.target_type)
        or (s.target_type = ra.target_type and s.created_at > ra.created_at))
    where m.uid = any(${[...uids]}::uuid[])
    order by m.uid limit 1`,
  );
  if (!hit) return;
  throw new ApiError(
    409,
    "managed_by_rollout",
    `Appliance ${hit.uid} is in phase ${hit.phase + 1} of phased rollout ${hit.rollout_id} ` +
      `(${hit.state}); this change puts it under assignment ${hit.other} (${
        describeTarget({ type: hit.target_type, value: hit.target_value })
      } → ${hit.version}), which its catalog would follow instead: cancel the rollout (or let ` +
      "it end), or change that assignment, first",
    { rolloutId: hit.rollout_id, state: hit.state, uid: hit.uid },
  );
}

/**
 * The rollout assignment `assignmentId` matters to, if any: the one it belongs to (`manages`,
 * any state), else a running or paused rollout with rollback on whose previous version it
 * assigns (a failed phase's appliances would fall back to it). One statement.
 */
export async function rolloutRelyingOn(
  sql: Sql,
  assignmentId: number,
): Promise<{ id: number; state: RolloutStateName; manages: boolean } | null> {
  // Waits for a rollout of the component being created to commit, so that it is seen below.
  await lockAssignmentComponent(sql, assignmentId);
  const [row] = await sql<{ id: number; state: RolloutStateName; manages: boolean }>`
    select r.id, r.state, r.assignment_id = f.id as manages
    from assignments f, rollouts r join assignments s on s.id = r.assignment_id
    where f.id = ${assignmentId} and (r.assignment_id = f.id or (
      r.rollback and r.state in ('running', 'paused') and r.previous_version = f.version
      and s.kind = f.kind and s.app = f.app and s.name = f.name))
    order by (r.assignment_id = f.id) desc, r.id desc limit 1`;
  return row ?? null;
}

/** A running rollout as the daemon reads it (every running one: one statement). */
export interface RunningRollout {
  /** Its id. */
  id: number;
  /** Revision: the daemon's changes apply only if it is unchanged. */
  revision: number;
  /** The release. */
  component: ComponentRef;
  /** The previous version (control). */
  previousVersion: string | null;
  /** Current phase (0-based). */
  phase: number;
  /** Its plan. */
  plan: Phase;
  /** Whether it is the last phase. */
  last: boolean;
  /** When it started. */
  phaseStartedAt: Date;
  /** Since when the advance condition holds. */
  heldSince: Date | null;
}

/** Every running rollout, oldest first. One statement. */
export async function runningRollouts(sql: Sql): Promise<RunningRollout[]> {
  const rows = await runFragments<RolloutRow>(
    sql,
    rolloutSelect,
    frag`where r.state = 'running' order by r.id`,
  );
  return rows.map((r) => ({
    id: r.id,
    revision: r.rev,
    component: refOf(r),
    previousVersion: r.previous_version,
    phase: r.phase,
    plan: r.phases[r.phase]!,
    last: r.phase === r.phases.length - 1,
    phaseStartedAt: r.phase_started_at,
    heldSince: r.held_since,
  }));
}

/**
 * Records a pass's evaluation of rollout `id` (figures, verdict, `held_since`) if it is still
 * running at revision `revision`; not a change of the rollout (the revision stays). Returns
 * whether it was recorded.
 */
export async function recordEvaluation(
  sql: Sql,
  id: number,
  revision: number,
  evaluation: RolloutEvaluation,
  now: Date,
): Promise<boolean> {
  const rows = await sql`
    update rollouts set last_evaluation = ${evaluation as unknown as Record<string, unknown>},
      evaluated_at = ${now},
      held_since = ${evaluation.heldSince === null ? null : new Date(evaluation.heldSince)}
    where id = ${id} and state = 'running' and version = ${revision}
    returning 1`;
  return rows.length > 0;
}
