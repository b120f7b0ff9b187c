/**
 * A revocation committed while an appliance's request waits for its row (review 23h): the beat and
 * catalog statements lock the row and judge it by its latest version, so the request records
 * nothing, gets no catalog, and is refused as revoked (recorded as a proven refusal).
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, testNoc } from "./_harness.ts";
import type { Db, Sql } from "../noc/db/db.ts";

/** Resolves once a statement whose text holds `marker` waits for a lock (PostgreSQL). */
async function waitingForLock(db: Db, marker: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const [r] = await db.sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity
      where wait_event_type = 'Lock' and datname = current_database()
        and position(${marker} in query) > 0`;
    if (r!.n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`no statement holding "${marker}" waited for a lock`);
}

/**
 * Holds appliance `uid`'s row from another connection, runs `send` (which then waits for it),
 * revokes the appliance in that transaction and commits; `send`'s answer.
 */
async function revokedWhileWaiting(
  other: Db,
  watch: Db,
  uid: string,
  marker: string,
  send: () => Promise<Response>,
): Promise<Response> {
  let answer: Promise<Response> | undefined;
  await other.begin(async (tx: Sql) => {
    await tx`select 1 from appliances where uid = ${uid} for update`;
    answer = send();
    await waitingForLock(watch, marker);
    await tx`update appliances set revoked_at = now(), revoked_reason = 'stolen' where uid = ${uid}`;
  });
  return await answer!;
}

for (const path of ["/v1/beats", "/v1/checkin"]) {
  dbTest(
    `a beat waiting while its appliance is revoked records nothing: 401 revoked_key (${path})`,
    async (t) => {
      const noc = await testNoc(t.db);
      const a = await noc.enrollAppliance();
      const first = await noc.send(
        await a.request("POST", path, sampleBeat(1, noc.clock.now())),
      );
      assert.equal(first.status, 200);
      await first.body?.cancel();
      const res = await revokedWhileWaiting(
        t.another(),
        t.db,
        a.uid,
        "with raw as (",
        async () => await noc.send(await a.request("POST", path, sampleBeat(2, noc.clock.now()))),
      );
      const body = await res.json();
      assert.equal(res.status, 401);
      assert.equal(body.error, "revoked_key");
      const [row] = await t.db.sql<{ last_seq: number }>`
        select last_seq from appliances where uid = ${a.uid}`;
      assert.equal(row!.last_seq, 1, "nothing recorded");
      const failures = await t.db.sql<{ reason: string; proven: boolean }>`
        select reason, proven from auth_failures order by id`;
      assert.deepEqual(failures.map((f) => [f.reason, f.proven]), [["revoked_key", true]]);
    },
    { instances: 2 },
  );
}

dbTest(
  "a catalog request waiting while its appliance is revoked gets no catalog: 401 revoked_key",
  async (t) => {
    const noc = await testNoc(t.db);
    const a = await noc.enrollAppliance();
    const first = await noc.send(await a.request("GET", "/v1/catalog"));
    assert.equal(first.status, 200);
    await first.body?.cancel();
    const [before] = await t.db.sql<{ at: Date }>`
      select last_catalog_at as at from appliances where uid = ${a.uid}`;
    noc.clock.advance(1);
    const res = await revokedWhileWaiting(
      t.another(),
      t.db,
      a.uid,
      "locked as (",
      async () => await noc.send(await a.request("GET", "/v1/catalog")),
    );
    const body = await res.json();
    assert.equal(res.status, 401);
    assert.equal(body.error, "revoked_key");
    assert.equal(res.headers.get("catalog-binding"), null, "nothing signed for it");
    const [after] = await t.db.sql<{ at: Date }>`
      select last_catalog_at as at from appliances where uid = ${a.uid}`;
    assert.equal(after!.at.getTime(), before!.at.getTime(), "the request was not archived");
    const failures = await t.db.sql<{ reason: string }>`select reason from auth_failures`;
    assert.deepEqual(failures.map((f) => f.reason), ["revoked_key"]);
  },
  { instances: 2 },
);
