-- PGlite's upkeep (noc/jobs/db_upkeep.ts, issue 23; review 23h): when it last vacuumed and analysed
-- each table. PGlite keeps no activity statistics across a restart (pg_stat_user_tables starts
-- from zero), so autovacuum's thresholds alone could never fire for a large table (the beat
-- history) on a NOC restarted more often than they fill: the job also vacuums each table at least
-- once a day, read from here. Unused on PostgreSQL (its autovacuum keeps its own).
create table db_upkeep (
  relname text primary key,
  vacuumed_at timestamptz,
  analyzed_at timestamptz
);
