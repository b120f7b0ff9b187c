import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { migrate, pendingMigrations, readMigrations } from "../noc/db/migrate.ts";

dbTest("migrate() applies nothing twice and records every file", async ({ db }) => {
  assert.deepEqual(await migrate(db), []);
  assert.deepEqual(await pendingMigrations(db), []);
  const files = await readMigrations();
  const rows = await db.sql<
    { version: number }
  >`select version from schema_migrations order by version`;
  assert.deepEqual(rows.map((r) => r.version), files.map((f) => f.version));
});

dbTest(
  "migrate() run by two instances at once applies a new migration exactly once",
  async ({ db, another }) => {
    const extra = [
      ...(await readMigrations()),
      {
        version: 9999,
        name: "9999_test.sql",
        sql: "create table race_probe (id int primary key); insert into race_probe values (1);",
      },
    ];
    const second = another();
    const results = await Promise.all([migrate(db, extra), migrate(second, extra)]);
    assert.deepEqual(results.flat(), ["9999_test.sql"]);
    const [row] = await db.sql<{ n: number }>`select count(*)::int as n from race_probe`;
    assert.equal(row!.n, 1);
  },
  { instances: 2 },
);

dbTest("migrate() rolls back a failing migration entirely", async ({ db }) => {
  const bad = [
    ...(await readMigrations()),
    {
      version: 9998,
      name: "9998_bad.sql",
      sql: "create table half_done (id int); select * from no_such_table;",
    },
  ];
  await assert.rejects(migrate(db, bad));
  const rows = await db
    .sql`select 1 from information_schema.tables where table_name = 'half_done' and table_schema = current_schema()`;
  assert.equal(rows.length, 0);
  assert.deepEqual(await pendingMigrations(db, bad), ["9998_bad.sql"]);
});
