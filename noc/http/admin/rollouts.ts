/**
 * `/v1/admin/rollouts`: phased rollouts (issue 20; noc/services/phased_rollouts.ts). Create one
 * (it starts its first phase at once), list them (newest first, by state), read one in full
 * (phases with their sizes and members, the control sample, the last gate figures against
 * control, the timeline of events with their actors), list its appliances (by phase and state,
 * each with its install state, the version it runs and its latest outcome), and pause, resume,
 * cancel or advance it now, each with an optional note kept in its event.
 *
 * Errors: 400 `invalid_body`/`invalid_query`/`invalid_param` naming the field; 404 `not_found`
 * (no such rollout or release); 409 `rollout_exists` (the component has a running or paused
 * rollout); 409 `rollout_state` (the action does not apply in the rollout's state).
 *
 * @module
 */
import { ifMatchOf, refusingStale, setEtag } from "./revisions.ts";
import { Hono } from "hono";
import { idParam } from "../../../protocol/schemas.ts";
import {
  createRolloutSchema,
  type MemberStateName,
  rolloutActionSchema,
  rolloutListQuery,
  rolloutMembersQuery,
  type RolloutStateName,
} from "../../../protocol/rollout_plan.ts";
import { emptyBodyAsObject, validate } from "../../../protocol/http/validate.ts";
import {
  advanceRollout,
  cancelRollout,
  createRollout,
  getRollout,
  listRollouts,
  pauseRollout,
  resumeRollout,
  rolloutMembers,
} from "../../services/phased_rollouts.ts";
import { noteAffected } from "../middleware/admin_auth.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { z } from "zod";

/**
 * `GET /v1/admin/rollouts/:id/appliances`' query: {@link rolloutMembersQuery} and `cursor`, the
 * previous page's `nextCursor` (the same as `after`: the paging of every admin list).
 */
export const membersQuery = rolloutMembersQuery.safeExtend({
  cursor: z.uuid({ message: "must be a cursor from a previous page (its nextCursor)" })
    .optional(),
});

/** The phased rollout admin routes. */
export function rolloutAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("json", createRolloutSchema), async (c) => {
      const by = c.get("admin");
      const r = await createRollout(deps, c.req.valid("json"), by);
      setEtag(c, r.revision);
      await noteAffected(c, [String(r.id)]);
      deps.log.info("rollout_created", { id: r.id, by });
      return c.json(r, 201);
    })
    .get("/", validate("query", rolloutListQuery), async (c) => {
      const q = c.req.valid("query");
      return c.json(
        await listRollouts(deps.db.sql, {
          cursor: q.cursor,
          limit: q.limit,
          ...(q.state ? { states: q.state.split(",") as RolloutStateName[] } : {}),
        }),
      );
    })
    .get("/:id", validate("param", idParam), async (c) => {
      const r = await getRollout(deps.db.sql, c.req.valid("param").id);
      setEtag(c, r.revision);
      return c.json(r);
    })
    .get(
      "/:id/appliances",
      validate("param", idParam),
      validate("query", membersQuery),
      async (c) => {
        const q = c.req.valid("query");
        const page = await rolloutMembers(deps.db.sql, c.req.valid("param").id, {
          phase: q.phase,
          after: q.after ?? q.cursor,
          limit: q.limit,
          ...(q.state ? { states: q.state.split(",") as MemberStateName[] } : {}),
        });
        // `nextAfter` (and `nextCursor`, the same) is set when the page is full.
        return c.json({ ...page, nextCursor: page.nextAfter });
      },
    )
    .post(
      "/:id/pause",
      validate("param", idParam),
      emptyBodyAsObject(),
      validate("json", rolloutActionSchema),
      async (c) => {
        const { id } = c.req.valid("param");
        await noteAffected(c, [String(id)]);
        const m = ifMatchOf(c);
        const r = await refusingStale(
          `Rollout ${id}`,
          m,
          () => pauseRollout(deps, id, c.get("admin"), c.req.valid("json").note, m),
          () => getRollout(deps.db.sql, id),
        );
        setEtag(c, r.revision);
        deps.log.info("rollout_paused", { id, by: c.get("admin") });
        return c.json(r);
      },
    )
    .post(
      "/:id/resume",
      validate("param", idParam),
      emptyBodyAsObject(),
      validate("json", rolloutActionSchema),
      async (c) => {
        const { id } = c.req.valid("param");
        await noteAffected(c, [String(id)]);
        const m = ifMatchOf(c);
        const r = await refusingStale(
          `Rollout ${id}`,
          m,
          () => resumeRollout(deps, id, c.get("admin"), c.req.valid("json").note, m),
          () => getRollout(deps.db.sql, id),
        );
        setEtag(c, r.revision);
        deps.log.info("rollout_resumed", { id, by: c.get("admin") });
        return c.json(r);
      },
    )
    .post(
      "/:id/cancel",
      validate("param", idParam),
      emptyBodyAsObject(),
      validate("json", rolloutActionSchema),
      async (c) => {
        const { id } = c.req.valid("param");
        await noteAffected(c, [String(id)]);
        const m = ifMatchOf(c);
        const r = await refusingStale(
          `Rollout ${id}`,
          m,
          () => cancelRollout(deps, id, c.get("admin"), c.req.valid("json").note, m),
          () => getRollout(deps.db.sql, id),
        );
        setEtag(c, r.revision);
        deps.log.info("rollout_cancelled", { id, by: c.get("admin") });
        return c.json(r);
      },
    )
    .post(
      "/:id/advance",
      validate("param", idParam),
      emptyBodyAsObject(),
      validate("json", rolloutActionSchema),
      async (c) => {
        const { id } = c.req.valid("param");
        await noteAffected(c, [String(id)]);
        const m = ifMatchOf(c);
        const r = await refusingStale(
          `Rollout ${id}`,
          m,
          () => advanceRollout(deps, id, c.get("admin"), c.req.valid("json").note, m),
          () => getRollout(deps.db.sql, id),
        );
        setEtag(c, r.revision);
        deps.log.info("rollout_advanced", { id, phase: r.phase, by: c.get("admin") });
        return c.json(r);
      },
    );
}
