/**
 * `/v1/admin/assignments`: which component version goes to which target, with its rollout
 * percentage, pause and health gate, its target size (the appliances its target matches now,
 * `noc/services/targets.ts`) and its progress: what the appliances it was sent to run, by their
 * latest beats (`noc/services/rollouts.ts`). `GET /:id/appliances` lists them, each with its
 * state, the version it runs and its latest outcome; `GET /targets` lists the known sites,
 * models, channels and tags with their appliance counts.
 *
 * A target naming a site, model, channel, tag or appliance the NOC does not know (see
 * `targetKnown`) is refused (400 `invalid_body`, naming it) unless `allowUnknownTarget` is true.
 * An assignment that would make more distinct components assigned fleet-wide than a SecureBeat
 * can report back is refused (409 `too_many_components`; noc/services/component_limit.ts).
 *
 * Deleting an assignment removes that row alone, in one transaction with the catalog epoch: no
 * other table refers to it. Delivery records, install outcomes, wrapped keys and holds stay (they
 * are the appliances' history and configuration). Each appliance's next catalog is built from the
 * assignments that remain (another assignment of the component may then give it another version;
 * none: the component leaves its catalog, and the agent keeps what it installed and drops a
 * partial download).
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../../../protocol/http/errors.ts";
import {
  assignmentListQuery,
  assignmentSchema,
  idParam,
  patchAssignmentSchema,
} from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { bumpCatalogEpoch } from "../../services/catalogs.ts";
import {
  targetChoices,
  targetKey,
  targetKnown,
  type TargetRef,
  targetSizes,
} from "../../services/targets.ts";
import {
  rolloutAppliances,
  type RolloutProgress,
  rolloutProgress,
  rolloutStates,
} from "../../services/rollouts.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import type { Sql } from "../../db/db.ts";
import { refuseAssignmentOverRollout, rolloutRelyingOn } from "../../services/phased_rollouts.ts";
import { refuseOverComponentLimit } from "../../services/component_limit.ts";
import { idAfter, pageOf } from "./paging.ts";
import { expectRevision, ifMatchOf, refusingStale, setEtag } from "./revisions.ts";

interface AssignmentRow {
  id: number;
  kind: string;
  app: string;
  name: string;
  version: string;
  target_type: string;
  target_value: string | null;
  rollout_percent: number;
  paused: boolean;
  paused_reason: string | null;
  failure_threshold_percent: number | null;
  min_sample: number;
  urgent: boolean;
  urgent_by: string | null;
  urgent_at: Date | null;
  created_at: Date;
  updated_at: Date;
  revision: number;
}
/** `GET /v1/admin/assignments/:id/appliances`. */
export const rolloutAppliancesQuery = z.strictObject({
  state: z.string().max(200).refine(
    (v) => v.split(",").every((s) => (rolloutStates as readonly string[]).includes(s)),
    { message: `must be one or more of ${rolloutStates.join(", ")}, separated by commas` },
  ).optional().describe("Only appliances in these states (one, or several separated by commas)"),
  after: z.uuid({ message: "must be a UUID (the last uid of the previous page)" }).optional(),
  /** The previous page's `nextCursor` (the same as `after`). */
  cursor: z.uuid({ message: "must be a cursor from a previous page (its nextCursor)" })
    .optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/** `GET /v1/admin/assignments/targets`. */
export const targetChoicesQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(200)
    .describe("At most this many values of each kind (most appliances first)"),
});

const targetOf = (r: AssignmentRow): TargetRef => ({ type: r.target_type, value: r.target_value });

/**
 * The assignments `rows` as the API answers them, with their progress and target sizes read in
 * one statement each.
 */
async function assignmentsJson(
  deps: AppDeps,
  rows: AssignmentRow[],
): Promise<Record<string, unknown>[]> {
  const [figures, sizes] = await Promise.all([
    rolloutProgress(deps.db.sql, rows),
    targetSizes(deps.db.sql, rows.map(targetOf)),
  ]);
  return rows.map((r) =>
    assignmentJson(
      r,
      figures.get(`${r.kind}/${r.app}/${r.name}/${r.version}`)!,
      sizes.get(targetKey(targetOf(r)))!,
    )
  );
}
function assignmentJson(
  r: AssignmentRow,
  progress: RolloutProgress,
  targetSize: number,
): Record<string, unknown> {
  return {
    id: r.id,
    kind: r.kind,
    app: r.app,
    name: r.name,
    version: r.version,
    target: r.target_type === "all"
      ? { type: "all" }
      : { type: r.target_type, value: r.target_value },
    rolloutPercent: r.rollout_percent,
    paused: r.paused,
    pausedReason: r.paused_reason,
    failureThresholdPercent: r.failure_threshold_percent,
    minSample: r.min_sample,
    // Installed even outside install windows (docs/operations.md, "Install windows").
    urgent: r.urgent,
    urgentBy: r.urgent_by,
    urgentAt: r.urgent_at?.toISOString() ?? null,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    // Its version (the ETag of GET /assignments/:id): If-Match on a change (noc/http/admin/revisions.ts).
    revision: Number(r.revision),
    targetSize,
    progress,
  };
}
async function oneJson(deps: AppDeps, r: AssignmentRow): Promise<Record<string, unknown>> {
  return (await assignmentsJson(deps, [r]))[0]!;
}
async function loadAssignment(sql: Sql, id: number, lock = false): Promise<AssignmentRow> {
  const [row] = lock
    ? await sql<AssignmentRow>`select * from assignments where id = ${id} for update`
    : await sql<AssignmentRow>`select * from assignments where id = ${id}`;
  if (!row) throw new ApiError(404, "not_found", `Assignment ${id} does not exist`);
  return row;
}
/**
 * Refuses (409 `managed_by_rollout`, naming the rollout) what would break a phased rollout:
 * - changing an assignment a running or paused rollout manages (its pause and limits are the
 *   rollout's: pause, resume or cancel the rollout instead), or deleting one any rollout has
 *   (ended ones too: the assignment carries the rollout's history, which would go with it);
 * - deleting, pausing or limiting (`rolloutPercent` below 100) the assignment a running or paused
 *   rollout with rollback falls back to (a failed phase would have nothing to go back to).
 */
async function refuseManaged(
  sql: Sql,
  id: number,
  change: { rolloutPercent?: number | undefined; paused?: boolean | undefined } | "delete",
): Promise<void> {
  const r = await rolloutRelyingOn(sql, id);
  if (!r) return;
  const active = r.state === "running" || r.state === "paused";
  const what = change === "delete" ? "deleted" : "changed";
  if (r.manages && (change === "delete" || active)) {
    throw new ApiError(
      409,
      "managed_by_rollout",
      `Assignment ${id} belongs to phased rollout ${r.id} (${r.state}) and cannot be ${what}: ` +
        (active
          ? "pause, resume or cancel the rollout instead"
          : "it keeps the rollout's history (pause it instead)"),
      { rolloutId: r.id, state: r.state },
    );
  }
  if (
    !r.manages &&
    (change === "delete" || change.paused === true ||
      (change.rolloutPercent !== undefined && change.rolloutPercent < 100))
  ) {
    throw new ApiError(
      409,
      "managed_by_rollout",
      `Phased rollout ${r.id} (${r.state}) rolls a failed phase back to assignment ${id}'s ` +
        `version: it cannot be ${change === "delete" ? "deleted" : "paused or limited"} until ` +
        "the rollout ends",
      { rolloutId: r.id, state: r.state },
    );
  }
}

/** `/v1/admin/assignments`: which component version goes to which target, with rollout and health gate. */
export function assignmentAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("json", assignmentSchema), async (c) => {
      const a = c.req.valid("json");
      const now = deps.clock.now();
      const row = await deps.db.begin(async (tx) => {
        const found = await tx`
          select 1 from components where kind = ${a.kind} and app = ${a.app} and name = ${a.name}
            and version = ${a.version}`;
        if (found.length === 0) {
          throw new ApiError(
            404,
            "not_found",
            `${a.kind} ${a.app}/${a.name} version "${a.version}" is not published`,
          );
        }
        const value = a.target.type === "all" ? null : a.target.value;
        if (!a.allowUnknownTarget && !await targetKnown(tx, { type: a.target.type, value }, now)) {
          const by = { model: "", site: ", live enrolment token or local server" }[
            a.target.type as string
          ] ?? (a.target.type === "appliance" ? "" : " or live enrolment token");
          const message = `unknown ${a.target.type} "${value}": no appliance (not revoked)${by} ` +
            "has it";
          throw new ApiError(
            400,
            "invalid_body",
            `Target ${a.target.type} "${value}" matches 0 appliances: check the name, or set ` +
              "allowUnknownTarget to assign it before its appliances enrol",
            { issues: [{ path: "target.value", message }] },
          );
        }
        await refuseAssignmentOverRollout(tx, a, { type: a.target.type, value });
        await refuseOverComponentLimit(tx, a);
        const [r] = await tx<AssignmentRow>`
          insert into assignments (kind, app, name, version, target_type, target_value, rollout_percent,
            failure_threshold_percent, min_sample, created_at, updated_at, urgent, urgent_by,
            urgent_at)
          values (${a.kind}, ${a.app}, ${a.name}, ${a.version}, ${a.target.type}, ${value}, ${a.rolloutPercent},
            ${a.failureThresholdPercent ?? null}, ${a.minSample}, ${now}, ${now}, ${a.urgent},
            ${a.urgent ? c.get("admin") : null}, ${a.urgent ? now : null})
          returning *`;
        await bumpCatalogEpoch(tx);
        return r!;
      });
      deps.log.info("assignment_created", {
        id: row.id,
        by: c.get("admin"),
        ...(row.urgent ? { urgent: true } : {}),
      });
      setEtag(c, row.revision);
      return c.json(await oneJson(deps, row), 201);
    })
    .get("/targets", validate("query", targetChoicesQuery), async (c) => {
      return c.json(
        await targetChoices(deps.db.sql, deps.clock.now(), c.req.valid("query").limit),
      );
    })
    .get("/", validate("query", assignmentListQuery), async (c) => {
      const f = c.req.valid("query");
      const after = idAfter(f.cursor);
      // Newest first, keyset on the id (noc/http/admin/paging.ts).
      const rows = await deps.db.sql<AssignmentRow>`
        select * from assignments
        where (${f.app ?? null}::text is null or app = ${f.app ?? null})
          and (${f.name ?? null}::text is null or name = ${f.name ?? null})
          and (${after}::bigint is null or id < ${after}::bigint)
        order by id desc limit ${f.limit + 1}`;
      const page = pageOf(rows, f.limit, (r) => [Number(r.id)]);
      return c.json({
        items: await assignmentsJson(deps, page.rows),
        nextCursor: page.nextCursor,
      });
    })
    .get("/:id", validate("param", idParam), async (c) => {
      const row = await loadAssignment(deps.db.sql, c.req.valid("param").id);
      setEtag(c, row.revision);
      return c.json(await oneJson(deps, row));
    })
    .get(
      "/:id/appliances",
      validate("param", idParam),
      validate("query", rolloutAppliancesQuery),
      async (c) => {
        const a = await loadAssignment(deps.db.sql, c.req.valid("param").id);
        const q = c.req.valid("query");
        const after = q.after ?? q.cursor;
        // By UID, keyset on it; one row more than the page says whether more exist.
        const rows = await rolloutAppliances(deps.db.sql, a, {
          ...(q.state ? { states: q.state.split(",") as (typeof rolloutStates)[number][] } : {}),
          ...(after ? { after } : {}),
          limit: q.limit + 1,
        });
        const items = rows.slice(0, q.limit);
        const next = rows.length > q.limit ? items[items.length - 1]!.uid : null;
        return c.json({ items, nextAfter: next, nextCursor: next });
      },
    )
    .patch(
      "/:id",
      validate("param", idParam),
      validate("json", patchAssignmentSchema),
      async (c) => {
        const { id } = c.req.valid("param");
        const p = c.req.valid("json");
        const now = deps.clock.now();
        const m = ifMatchOf(c);
        const row = await refusingStale(`Assignment ${id}`, m, () =>
          deps.db.begin(async (tx) => {
            expectRevision(m, (await loadAssignment(tx, id, true)).revision);
            await refuseManaged(tx, id, p);
            await tx`
          update assignments set
            rollout_percent = coalesce(${p.rolloutPercent ?? null}::int, rollout_percent),
            paused = coalesce(${p.paused ?? null}::boolean, paused),
            paused_reason = case when ${p.paused ?? null}::boolean is null then paused_reason
              when ${p.paused ?? false} then ${`paused by ${c.get("admin")}`} else null end,
            failure_threshold_percent = case when ${p.failureThresholdPercent !== undefined}
              then ${p.failureThresholdPercent ?? null}::int else failure_threshold_percent end,
            min_sample = coalesce(${p.minSample ?? null}::int, min_sample),
            -- Made urgent (or not): recorded with who and when.
            urgent_by = case when ${p.urgent ?? null}::boolean is null then urgent_by
              when ${p.urgent ?? false} and not urgent then ${c.get("admin")}
              when ${p.urgent ?? false} then urgent_by else null end,
            urgent_at = case when ${p.urgent ?? null}::boolean is null then urgent_at
              when ${p.urgent ?? false} and not urgent then ${now}::timestamptz
              when ${p.urgent ?? false} then urgent_at else null end,
            urgent = coalesce(${p.urgent ?? null}::boolean, urgent),
            updated_at = ${now}
          where id = ${id}`;
            await bumpCatalogEpoch(tx);
            return await loadAssignment(tx, id);
          }), async () => await oneJson(deps, await loadAssignment(deps.db.sql, id)));
        deps.log.info("assignment_updated", { id, changes: p, by: c.get("admin") });
        setEtag(c, row.revision);
        return c.json(await oneJson(deps, row));
      },
    )
    .delete("/:id", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const m = ifMatchOf(c);
      const rows = await refusingStale(`Assignment ${id}`, m, () =>
        deps.db.begin(async (tx) => {
          const [cur] = await tx<{ revision: number }>`
          select revision from assignments where id = ${id} for update`;
          if (cur) expectRevision(m, cur.revision);
          await refuseManaged(tx, id, "delete");
          const r = await tx`delete from assignments where id = ${id} returning id`;
          if (r.length > 0) await bumpCatalogEpoch(tx);
          return r;
        }), async () => await oneJson(deps, await loadAssignment(deps.db.sql, id)));
      if (rows.length === 0) {
        throw new ApiError(404, "not_found", `Assignment ${id} does not exist`);
      }
      deps.log.info("assignment_deleted", { id, by: c.get("admin") });
      return c.body(null, 204);
    });
}
