/**
 * Newcomer review 22: a NOC upgraded to revisions from one sequence (migration 030) with rows
 * already at revision 4 bumped them to 2, 3, 4 again, so an If-Match read before the upgrade could
 * match a state its sender never saw. The sequence now starts above every revision there is.
 */
import assert from "node:assert/strict";
import { openPglite } from "../noc/db/db.ts";
import { bundledMigrations, migrate } from "../noc/db/migrate.ts";
import { seedFleet } from "./_rollouts.ts";

Deno.test("revisions go on rising across the upgrade to one sequence", async () => {
  const db = await openPglite();
  const all = bundledMigrations();
  const at = all.findIndex((m) => m.name === "030_revision_sequence.sql");
  assert.ok(at > 0);
  try {
    await migrate(db, all.slice(0, at));
    const [uid] = await seedFleet(db.sql, 1);
    for (let i = 0; i < 4; i++) {
      await db.sql`update appliances set channel = ${`c${i}`} where uid = ${uid!}`;
    }
    const [before] = await db.sql<{ revision: number }>`
      select revision from appliances where uid = ${uid!}`;
    assert.equal(Number(before!.revision), 5);
    await migrate(db, all);
    await db.sql`update appliances set channel = 'after' where uid = ${uid!}`;
    const [after] = await db.sql<{ revision: number }>`
      select revision from appliances where uid = ${uid!}`;
    assert.ok(Number(after!.revision) > 5, `after the upgrade: ${after!.revision}`);
  } finally {
    await db.close();
  }
});
