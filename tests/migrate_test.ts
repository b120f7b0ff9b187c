import assert from "node:assert/strict";
import postgres from "postgres";
import { dbTest } from "./_harness.ts";
import { openPostgres } from "../noc/db/db.ts";
import {
  bundledMigrations,
  migrate,
  numberMigrations,
  pendingMigrations,
  readMigrations,
} from "../noc/db/migrate.ts";
import { migrationFiles } from "../noc/db/migrations/mod.ts";

const migrationsDir = new URL("../noc/db/migrations/", import.meta.url);

Deno.test("every .sql file in noc/db/migrations/ is listed in mod.ts, with its own text", async () => {
  const onDisk = new Map<string, string>();
  for await (const e of Deno.readDir(migrationsDir)) {
    if (e.isFile && e.name.endsWith(".sql")) {
      onDisk.set(e.name, await Deno.readTextFile(new URL(e.name, migrationsDir)));
    }
  }
  assert.ok(onDisk.size >= 5, "the folder was read");
  const listed = migrationFiles.map((f) => f.name);
  assert.deepEqual(
    [...onDisk.keys()].filter((n) => !listed.includes(n)),
    [],
    "files missing from noc/db/migrations/mod.ts",
  );
  assert.deepEqual(listed.filter((n) => !onDisk.has(n)), [], "listed names with no file");
  for (const f of migrationFiles) {
    assert.equal(f.sql, onDisk.get(f.name), `${f.name} is listed with another file's text`);
  }
});

Deno.test("the bundled migrations are numbered NNN_name.sql, in order, no number twice", () => {
  const list = bundledMigrations();
  assert.deepEqual(list.map((m) => m.name), migrationFiles.map((f) => f.name));
  assert.deepEqual(
    list.map((m) => m.version),
    [...list.map((m) => m.version)].sort((a, b) => a - b),
  );
  assert.equal(list[0]!.version, 1);
});

Deno.test("numberMigrations() refuses a bad name, a number used twice and a list out of order", () => {
  const f = (name: string) => ({ name, sql: "select 1;" });
  assert.throws(() => numberMigrations([f("001_a.sql"), f("two.sql")]), /"two.sql" is not named/);
  assert.throws(() => numberMigrations([f("1_a.SQL")]), /is not named NNN_name.sql/);
  assert.throws(
    () => numberMigrations([f("001_a.sql"), f("002_b.sql"), f("002_c.sql")]),
    /Two migrations share number 2: "002_b.sql", "002_c.sql"/,
  );
  assert.throws(
    () => numberMigrations([f("002_b.sql"), f("001_a.sql")]),
    /"001_a.sql" is listed after "002_b.sql"/,
  );
  assert.deepEqual(numberMigrations([f("001_a.sql"), f("010_b.sql")]).map((m) => m.version), [
    1,
    10,
  ]);
});

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

const pgUrl = Deno.env.get("TEST_DATABASE_URL");

Deno.test({
  name:
    "migrate() on a bounded handle waits past the bound for another instance's migration lock [postgres]",
  ignore: !pgUrl,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const schema = `t_${crypto.randomUUID().replace(/-/g, "")}`;
    const admin = postgres(pgUrl!, { max: 2, onnotice: () => {} });
    await admin.unsafe(`create schema "${schema}"`);
    const db = openPostgres(pgUrl!, { schema, max: 2, timeoutS: 1 });
    const other = await admin.reserve();
    try {
      // Another instance is migrating: it holds the lock (in the same schema's name).
      await other.unsafe(`begin; set local search_path to "${schema}"`);
      await other.unsafe(
        `select pg_advisory_xact_lock(hashtext(current_schema() || ':noc-migrations'))`,
      );
      const started = performance.now();
      const migrating = migrate(db);
      // Held until migrate() has waited for it longer than the handle's 1 s bound.
      for (;;) {
        const [w] = await admin`
          select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`;
        if (w!.n > 0 && performance.now() - started > 1500) break;
      }
      await other.unsafe("commit");
      const applied = await migrating;
      assert.equal(applied.length, bundledMigrations().length);
    } finally {
      other.release();
      await db.close();
      await admin.unsafe(`drop schema "${schema}" cascade`);
      await admin.end();
    }
  },
});
