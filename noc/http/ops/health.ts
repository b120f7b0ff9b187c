/**
 * `GET /healthz`: the database answers and every migration is applied. It answers within the
 * database's bound (`NOC_DB_TIMEOUT_S`, see noc/db/db.ts): a database that is down, or stalled
 * and silent, gets 503 with `Retry-After` and `"database": "unreachable"`.
 */
import { Hono } from "hono";
import { pendingMigrations, readMigrations } from "../../db/migrate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** Seconds a client is told to wait before asking again while the database is unreachable. */
const retryAfterS = "30";

/** The health route. */
export function healthRoutes(deps: AppDeps) {
  const migrations = readMigrations();
  return new Hono<AppEnv>().get("/", async (c) => {
    let pending: string[];
    try {
      await deps.db.sql`select 1`;
      pending = await pendingMigrations(deps.db, await migrations);
    } catch (e) {
      return c.json(
        { status: "unavailable", database: "unreachable", error: (e as Error).message },
        503,
        { "retry-after": retryAfterS },
      );
    }
    if (pending.length > 0) {
      return c.json({ status: "migrations_pending", database: deps.db.kind, pending }, 503);
    }
    return c.json({ status: "ok", database: deps.db.kind });
  });
}
