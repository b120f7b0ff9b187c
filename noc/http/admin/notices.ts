/** `/v1/admin/notices`: the notice outbox (alerts, recoveries, refused identities), newest first, with delivery state. */
import { Hono } from "hono";
import { limitQuery } from "../../../protocol/schemas.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { idAfter, pageOf } from "./paging.ts";

/** `/v1/admin/notices`: the notice outbox, newest first. */
export function noticeAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .get("/", validate("query", limitQuery), async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const after = idAfter(cursor);
      const rows = await deps.db.sql<{
        id: number;
        created_at: Date;
        kind: string;
        uid: string | null;
        text: string;
        deliveries: Array<Record<string, unknown>>;
      }>`
        select n.id, n.created_at, n.kind, n.uid, n.text,
          coalesce((select jsonb_agg(jsonb_build_object('target', d.target, 'attempts', d.attempts,
              'deliveredAt', d.delivered_at, 'nextAttemptAt', d.next_attempt_at, 'lastError', d.last_error)
              order by d.target)
            from notice_deliveries d where d.notice_id = n.id), '[]'::jsonb) as deliveries
        from notices n where (${after}::bigint is null or n.id < ${after}::bigint)
        order by n.id desc limit ${limit + 1}`;
      const page = pageOf(rows, limit, (r) => [Number(r.id)]);
      return c.json({
        nextCursor: page.nextCursor,
        targets: deps.notifier.targets.map((t) => ({ key: t.key, label: t.label })),
        items: page.rows.map((r) => ({
          id: r.id,
          createdAt: r.created_at.toISOString(),
          kind: r.kind,
          uid: r.uid,
          text: r.text,
          deliveries: r.deliveries,
        })),
      });
    });
}
