/**
 * PGlite's missing autovacuum (issue 23). PGlite, the embedded default, runs PostgreSQL as one
 * standalone backend: no autovacuum launcher starts (`pg_stat_activity` lists only the
 * "standalone backend", and `n_dead_tup` stays where it is). Without upkeep an embedded NOC:
 *
 * - keeps every dead row version a beat leaves (one per beat: the appliance's row is rewritten)
 *   until a page's own pruning reclaims it, and its dead index entries;
 * - plans from statistics never gathered, or gathered once when a table was small (the beat
 *   statement hashed every appliance for each batch: tests/beat_plan_test.ts);
 * - never freezes old transaction IDs. PostgreSQL refuses writes before wraparound only under a
 *   postmaster; a standalone backend goes on, so after about two billion write statements (a year
 *   and more at 50 a second) rows never frozen would read as written in the future: lost.
 *
 * {@link dbUpkeep} does what autovacuum would, with autovacuum's own settings
 * (`autovacuum_vacuum_threshold`, `_scale_factor`, `_insert_threshold`, `_insert_scale_factor`,
 * `autovacuum_analyze_threshold`, `_scale_factor`, `autovacuum_freeze_max_age`; PostgreSQL
 * documentation, "Routine Vacuuming", 24.1.6): each table of the NOC's schema whose dead rows or
 * inserts since its last vacuum pass the threshold is vacuumed and analysed, one whose changes
 * since its last analysis pass the threshold is analysed, and once the database's oldest
 * unfrozen transaction ID is older than `autovacuum_freeze_max_age` the whole database is
 * vacuumed with `freeze`. PGlite keeps no activity statistics across a restart, so a table
 * those thresholds have not seen fill (the beat history, on a NOC restarted weekly) is also
 * vacuumed and analysed once a day: one such table a pass, the one vacuumed longest ago first,
 * from the job's own record (`db_upkeep`, migration 033; review 23h). The status daemon's instance
 * runs it each minute (main.ts). On PostgreSQL it does nothing: the server's autovacuum does this.
 *
 * PGlite runs one statement at a time, so a vacuum holds every other statement meanwhile: a
 * table's vacuum reads only the pages changed since the last one (the visibility map), and the
 * `db_upkeep` log line gives what ran and how long it took.
 *
 * `VACUUM` and `ANALYZE` take no parameters for a table name: the names come from the server's
 * own catalogue, quoted by the server (`format('%I.%I')`), and run as a trusted script.
 *
 * @module
 */
import type { Db } from "../db/db.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../../protocol/util/log.ts";

/** How long a table may go without the job's vacuum, whatever its statistics say, ms. */
export const dailyMs = 86_400_000;

/** What one {@link dbUpkeep} pass did. */
export interface UpkeepResult {
  /** Tables vacuumed and analysed (quoted, `schema.table`): past a threshold, or a day since. */
  vacuumed: string[];
  /** Tables analysed only. */
  analyzed: string[];
  /** The whole database was vacuumed with `freeze` (transaction ID age past the bound). */
  frozen: boolean;
  /** Wall time of the pass, ms. */
  ms: number;
}

/** Options for {@link dbUpkeep} (tests). */
export interface UpkeepOptions {
  /**
   * Transaction ID age past which the whole database is frozen; by default the server's
   * `autovacuum_freeze_max_age` (200 million unless configured).
   */
  freezeMaxAge?: number;
}

/**
 * One upkeep pass on `db` (see the module doc): null on PostgreSQL (its autovacuum keeps it).
 * Logs `db_upkeep` when it did anything. Errors propagate (the cron job logs and retries).
 */
export async function dbUpkeep(
  deps: { db: Db; log: Logger; clock: Clock },
  options: UpkeepOptions = {},
): Promise<UpkeepResult | null> {
  const { db } = deps;
  if (db.kind !== "pglite") return null;
  const started = performance.now();
  const result: UpkeepResult = { vacuumed: [], analyzed: [], frozen: false, ms: 0 };
  const [age] = await db.sql<{ age: number; max: number }>`
    select age(datfrozenxid)::int8 as age,
      current_setting('autovacuum_freeze_max_age')::int8 as max
    from pg_database where datname = current_database()`;
  if (age && age.age > (options.freezeMaxAge ?? age.max)) {
    await db.sql.script("vacuum (freeze, analyze)");
    result.frozen = true;
  } else {
    const now = deps.clock.now();
    const day = new Date(now.getTime() - dailyMs);
    const tables = await db.sql<
      { name: string; vacuum: boolean; analyze: boolean; daily: boolean }
    >`
      with t as (
        select format('%I.%I', s.schemaname, s.relname) as name, s.n_dead_tup, s.n_ins_since_vacuum,
          s.n_mod_since_analyze, greatest(c.reltuples, 0) as tuples
        from pg_stat_user_tables s join pg_class c on c.oid = s.relid
        where s.schemaname = current_schema()
      )
      select t.name,
        t.n_dead_tup > current_setting('autovacuum_vacuum_threshold')::float8
            + current_setting('autovacuum_vacuum_scale_factor')::float8 * t.tuples
          or t.n_ins_since_vacuum > current_setting('autovacuum_vacuum_insert_threshold')::float8
            + current_setting('autovacuum_vacuum_insert_scale_factor')::float8 * t.tuples
          as vacuum,
        t.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
            + current_setting('autovacuum_analyze_scale_factor')::float8 * t.tuples
          as analyze,
        -- The one table vacuumed longest ago (never: first), if that was a day ago or more; a
        -- time ahead of the clock (the clock was wrong then, or is now) counts as due (review
        -- 23j: stamped in 2031, no table was vacuumed daily until then).
        t.name = (select t2.name from t t2 left join db_upkeep u on u.relname = t2.name
          where u.vacuumed_at is null or u.vacuumed_at <= ${day} or u.vacuumed_at > ${now}
          order by u.vacuumed_at > ${now} desc, u.vacuumed_at nulls first, t2.name limit 1)
          as daily
      from t order by t.name`;
    for (const t of tables) {
      if (t.vacuum || t.daily) {
        await db.sql.script(`vacuum (analyze) ${t.name}`);
        result.vacuumed.push(t.name);
      } else if (t.analyze) {
        await db.sql.script(`analyze ${t.name}`);
        result.analyzed.push(t.name);
      } else continue;
      const at = deps.clock.now();
      const vacuumedAt = t.vacuum || t.daily ? at : null;
      await db.sql`
        insert into db_upkeep (relname, vacuumed_at, analyzed_at) values (${t.name}, ${vacuumedAt}, ${at})
        on conflict (relname) do update set analyzed_at = excluded.analyzed_at,
          vacuumed_at = coalesce(excluded.vacuumed_at, db_upkeep.vacuumed_at)`;
    }
  }
  result.ms = performance.now() - started;
  if (result.frozen || result.vacuumed.length > 0 || result.analyzed.length > 0) {
    deps.log.info("db_upkeep", {
      vacuumed: result.vacuumed,
      analyzed: result.analyzed,
      ...(result.frozen ? { frozen: true, xidAge: age!.age } : {}),
      ms: Math.round(result.ms),
    });
  }
  return result;
}
