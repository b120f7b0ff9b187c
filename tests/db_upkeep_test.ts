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
  // Nothing churned since: the next pass runs nothing and logs nothing.
  const again = await dbUpkeep(noc.deps);
  assert.deepEqual(again && [again.vacuumed, again.analyzed, again.frozen], [[], [], false]);
  assert.equal(logged.filter((l) => l.event === "db_upkeep").length, 1);
});

dbTest(
  "dbUpkeep() freezes the whole PGlite database past the transaction ID age bound",
  async (t) => {
    if (t.backend === "postgres") return; // autovacuum's anti-wraparound vacuum
    const noc = await testNoc(t.db);
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
