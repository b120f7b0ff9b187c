import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { dbUpkeep } from "../noc/jobs/db_upkeep.ts";
import type { Db } from "../noc/db/db.ts";

/** `appliances`' dead rows, and the row count its statistics give (-1: never gathered). */
async function appliancesStats(db: Db): Promise<{ dead: number; tuples: number }> {
  const [r] = await db.sql<{ dead: number; tuples: number }>`
    select s.n_dead_tup::int8 as dead, c.reltuples::int8 as tuples
    from pg_stat_user_tables s join pg_class c on c.oid = s.relid
    where s.schemaname = current_schema() and s.relname = 'appliances'`;
  return r!;
}

dbTest("dbUpkeep() vacuums and analyses what beats churned on PGlite, and only that", async (t) => {
  const noc = await testNoc(t.db);
  const logged = (noc.deps.log as unknown as { lines: Record<string, unknown>[] }).lines;
  const a = await noc.enrollAppliance();
  const b = await noc.enrollAppliance();
  // Each beat rewrites its appliance's row: 130 changes against analyse's threshold of 50 + 10 %
  // (the dead versions themselves a page's pruning mostly reclaims as it goes).
  for (let i = 0; i < 65; i++) {
    await a.beat();
    await b.beat();
  }
  if (t.backend === "postgres") {
    // The server's autovacuum keeps PostgreSQL: nothing is run, nothing is logged.
    assert.equal(await dbUpkeep(noc.deps), null);
    assert.equal(logged.filter((l) => l.event === "db_upkeep").length, 0);
    return;
  }
  // Never analysed: the planner guesses from the table's pages.
  assert.equal((await appliancesStats(t.db)).tuples, -1);
  // The backend sends its change counts to the statistics at most once a second: on a loaded
  // machine part of the beats' would otherwise arrive after the first pass, and make the next
  // one analyse again (seen in a full run). Flushed now, the first pass sees them all.
  await t.db.sql`select pg_stat_force_next_flush()`;
  await t.db.sql`select 1`;
  const r = await dbUpkeep(noc.deps);
  assert.ok(r);
  assert.ok(
    [...r.vacuumed, ...r.analyzed].some((n) => n.endsWith(".appliances")),
    `appliances analysed: ${JSON.stringify(r)}`,
  );
  assert.equal(r.frozen, false);
  assert.equal((await appliancesStats(t.db)).tuples, 2, "the statistics count the two appliances");
  const line = logged.find((l) => l.event === "db_upkeep");
  assert.ok(line, "db_upkeep logged");
  assert.deepEqual([line.vacuumed, line.analyzed], [r.vacuumed, r.analyzed]);
  // Nothing churned since: the passes that follow vacuum each table never vacuumed, one a pass
  // (the daily rule), and then run nothing and log nothing.
  const [count] = await t.db.sql<{ n: number }>`
    select count(*)::int as n from pg_stat_user_tables where schemaname = current_schema()`;
  const tables = count!.n;
  // The job's own record churns as it goes (one row a pass), so its table may pass a threshold
  // too: the daily rule is one table a pass of the others.
  const others = (xs: string[]) => xs.filter((n) => !n.endsWith(".db_upkeep"));
  let passes = 0;
  for (;;) {
    noc.clock.advance(60);
    const next = await dbUpkeep(noc.deps);
    assert.ok(
      next && others(next.analyzed).length === 0 && others(next.vacuumed).length <= 1,
      JSON.stringify(next),
    );
    if (next.vacuumed.length === 0) break;
    // One a table, and perhaps one more for the job's own record past its threshold.
    assert.ok(++passes <= tables + 1, `at most one pass a table (${tables})`);
  }
  // A pass that runs nothing logs nothing.
  const lines = logged.filter((l) => l.event === "db_upkeep").length;
  const last = (await dbUpkeep(noc.deps))!;
  assert.deepEqual([others(last.vacuumed), others(last.analyzed)], [[], []]);
  if (last.vacuumed.length + last.analyzed.length === 0) {
    assert.equal(logged.filter((l) => l.event === "db_upkeep").length, lines);
  }
});

dbTest(
  "dbUpkeep() still vacuums each PGlite table daily when a restart lost the statistics",
  async (t) => {
    const noc = await testNoc(t.db);
    // The server keeps its statistics and its autovacuum runs: the job does nothing there.
    if (t.backend === "postgres") return assert.equal(await dbUpkeep(noc.deps), null);
    const a = await noc.enrollAppliance();
    for (let i = 0; i < 3; i++) await a.beat();
    const names = async () =>
      (await t.db.sql<{ name: string }>`
        select format('%I.%I', schemaname, relname) as name from pg_stat_user_tables
        where schemaname = current_schema() order by 1`).map((r) => r.name);
    const all = await names();
    const vacuumed = new Set<string>();
    // Every table once (never vacuumed by the job: one a pass).
    for (let i = 0; i < all.length + 1; i++) {
      noc.clock.advance(60);
      for (const n of (await dbUpkeep(noc.deps))!.vacuumed) vacuumed.add(n);
    }
    assert.deepEqual([...vacuumed].sort(), all);
    // The job's own record churns as it goes, so its table may also pass a threshold and be
    // vacuumed for that, besides its daily turn: the daily rule is one table a pass of the others.
    const daily = (r: { vacuumed: string[] }) =>
      r.vacuumed.filter((n) => !n.endsWith(".db_upkeep"));
    // A day later, after a restart (PGlite starts its activity statistics from zero: no
    // threshold can fire for the tables nothing writes), each table is vacuumed again, the one
    // vacuumed longest ago first.
    noc.clock.advance(86_400);
    // Counts still pending in the backend (it sends them at most once a second) would arrive
    // after the reset and pass a threshold: sent first, then reset.
    await t.db.sql`select pg_stat_force_next_flush()`;
    await t.db.sql`select 1`;
    await t.db.sql`select pg_stat_reset()`;
    const again = new Set<string>();
    for (let i = 0; i < all.length + 1; i++) {
      noc.clock.advance(60);
      const r = (await dbUpkeep(noc.deps))!;
      assert.ok(daily(r).length <= 1, JSON.stringify(r));
      for (const n of r.vacuumed) again.add(n);
    }
    assert.deepEqual([...again].sort(), all, "each table once more, one a pass");
    assert.ok(again.has(all.find((n) => n.endsWith(".beats"))!), "the beat history among them");
    // Stamped by a clock five years ahead (review 23j): due again at once, not in five years.
    await t.db.sql`update db_upkeep set vacuumed_at = ${new Date(Date.UTC(2031, 0, 1))}`;
    const ahead = new Set<string>();
    for (let i = 0; i < all.length + 1; i++) {
      noc.clock.advance(60);
      const r = (await dbUpkeep(noc.deps))!;
      assert.ok(daily(r).length <= 1, JSON.stringify(r));
      for (const n of r.vacuumed) ahead.add(n);
    }
    assert.deepEqual([...ahead].sort(), all, "each table stamped ahead, once more");
  },
);

dbTest(
  "dbUpkeep() freezes the whole PGlite database past the transaction ID age bound",
  async (t) => {
    const noc = await testNoc(t.db);
    // Autovacuum's anti-wraparound vacuum keeps PostgreSQL: the job does nothing there.
    if (t.backend === "postgres") {
      return assert.equal(await dbUpkeep(noc.deps, { freezeMaxAge: 10 }), null);
    }
    const a = await noc.enrollAppliance();
    for (let i = 0; i < 5; i++) await a.beat();
    const age = async () =>
      (await t.db.sql<{ age: number }>`
      select age(datfrozenxid)::int8 as age from pg_database
      where datname = current_database()`)[0]!.age;
    const before = await age();
    assert.ok(before > 10, `transaction IDs were spent: ${before}`);
    // The server's bound (200 million) would take a year of beats; the test lowers it.
    const r = await dbUpkeep(noc.deps, { freezeMaxAge: 10 });
    assert.equal(r?.frozen, true);
    assert.ok(await age() < before, "the database's oldest unfrozen transaction ID moved on");
    const logged = (noc.deps.log as unknown as { lines: Record<string, unknown>[] }).lines;
    assert.equal(logged.find((l) => l.event === "db_upkeep")?.frozen, true);
  },
);
