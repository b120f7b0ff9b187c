/** `GET /healthz`: the database answers and every migration is applied. */
import { Hono } from "hono";
import { pendingMigrations, readMigrations } from "../../db/migrate.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The health route. */
export function healthRoutes(deps: AppDeps) {
  const migrations = readMigrations();
  return new Hono<AppEnv>().get("/", async (c) => {
    try {
      await deps.db.sql`select 1`;
    } catch (e) {
      return c.json(
        { status: "unavailable", database: deps.db.kind, error: (e as Error).message },
        503,
      );
    }
    const pending = await pendingMigrations(deps.db, await migrations);
    if (pending.length > 0) {
      return c.json({ status: "migrations_pending", database: deps.db.kind, pending }, 503);
    }
    return c.json({ status: "ok", database: deps.db.kind });
  });
}
