/**
 * The SecureBeat in one statement (issue 23 item 3, noc/services/checkins.ts): the nonce spent
 * with the beat, the appliance's row kept in the instance's memory and checked again by the
 * statement, a cloned-identity notice queued just after it (or by the status daemon, for an
 * instance that stopped in between). Through the real routes, on PGlite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, testNoc } from "./_harness.ts";
import { createApp } from "../noc/app.ts";
import { createDeps } from "../noc/deps.ts";
import { createCheckinStore } from "../noc/services/checkins.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";

for (const path of ["/v1/beats", "/v1/checkin"]) {
  dbTest(
    `an instance that keeps the appliance's row refuses its beat once another revoked it (${path})`,
    async ({ db }) => {
      const noc = await testNoc(db);
      const a = await noc.enrollAppliance();
      // A second instance on the same database: its own memory.
      const other = createApp({ ...createDeps(noc.deps), authorities: noc.deps.authorities });
      const send = async (
        app: { request: (r: Request) => Response | Promise<Response> },
        seq: number,
      ) => await app.request(await a.request("POST", path, sampleBeat(seq, noc.clock.now())));
      const first = await send(other, 1);
      assert.equal(first.status, 200, await first.text());
      const rv = await noc.admin("POST", `/v1/admin/appliances/${a.uid}/revoke`, { reason: "x" });
      assert.ok(rv.status < 300, JSON.stringify(rv.body));
      for (const seq of [2, 3]) {
        const res = await send(other, seq);
        assert.equal(res.status, 401, `seq ${seq}`);
        assert.equal((await res.json()).error, "revoked_key");
        assert.equal(res.headers.get("catalog-binding"), null);
      }
      const [row] = await db.sql<{ last_seq: number }>`
        select last_seq from appliances where uid = ${a.uid}`;
      assert.equal(row!.last_seq, 1, "nothing recorded after the revocation");
      const failures = await db.sql<{ reason: string; proven: boolean }>`
        select reason, proven from auth_failures order by id`;
      assert.deepEqual(failures.map((f) => `${f.reason} ${f.proven}`), [
        "revoked_key true",
        "revoked_key true",
      ]);
    },
  );

  dbTest(
    `a beat whose appliance row is gone is refused unknown_key and writes nothing (${path})`,
    async ({ db }) => {
      const noc = await testNoc(db);
      const a = await noc.enrollAppliance();
      const ok = await noc.app.request(
        await a.request("POST", path, sampleBeat(1, noc.clock.now())),
      );
      assert.equal(ok.status, 200);
      await db.sql`delete from appliances where uid = ${a.uid}`;
      const res = await noc.app.request(
        await a.request("POST", path, sampleBeat(2, noc.clock.now())),
      );
      assert.equal(res.status, 401);
      assert.equal((await res.json()).error, "unknown_key");
      const beats = await db.sql`select 1 from beats where uid = ${a.uid} and seq = 2`;
      assert.equal(beats.length, 0);
    },
  );
}

dbTest(
  "a cloned-identity mark left without its notice by a stopped instance gets one from the next sweep",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "left-pending" });
    // An instance whose check-in store queues no notice: as one stopped just after the statement.
    const stopped = createApp({ ...noc.deps, checkins: createCheckinStore(db) });
    const beat = async (seq: number, instanceId: string) => {
      const res = await stopped.request(
        await a.request("POST", "/v1/beats", sampleBeat(seq, noc.clock.now(), { instanceId })),
      );
      assert.equal(res.status, 200, await res.clone().text());
      noc.clock.advance(60);
    };
    const A = crypto.randomUUID();
    await beat(1, A);
    await beat(2, A);
    await beat(2, crypto.randomUUID());
    const count = async () =>
      (await db.sql`select 1 from notices where kind = 'cloned_identity'`).length;
    const [marked] = await db.sql<{ pending: boolean; conflict: unknown }>`
      select identity_notice_pending as pending, identity_conflict as conflict
      from appliances where uid = ${a.uid}`;
    assert.ok(marked!.conflict, "marked by the beat's statement");
    assert.equal(marked!.pending, true);
    assert.equal(await count(), 0);
    await sweep({ ...noc.deps, graceS: 60 });
    assert.equal(await count(), 1, "the sweep queued it");
    const [text] = await db.sql<{ text: string }>`
      select text from notices where kind = 'cloned_identity'`;
    assert.match(text!.text, /left-pending/);
    await sweep({ ...noc.deps, graceS: 60 });
    assert.equal(await count(), 1, "once");
    // A live instance queues its own right after the statement, and the sweep adds none.
    const b = await noc.enrollAppliance({ hostname: "live" });
    const B = crypto.randomUUID();
    for (const [seq, id] of [[1, B], [2, B], [2, crypto.randomUUID()]] as const) {
      await b.beat({ seq, instanceId: id });
    }
    assert.equal(await count(), 2);
    await sweep({ ...noc.deps, graceS: 60 });
    assert.equal(await count(), 2);
  },
);

dbTest(
  "a beat's due time and history gap follow the interval in the row, not one kept in memory",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const first = await a.beat({ seq: 1 });
    const interval = first.intervalS as number;
    // The interval its agent is on changes (as a catalog with a new one does), behind the
    // instance's back: the next beat counts from the row's.
    await db.sql`update appliances set known_interval_s = ${interval * 2} where uid = ${a.uid}`;
    noc.clock.advance(10);
    const next = await a.beat({ seq: 2 });
    assert.equal(next.intervalS, interval * 2);
    assert.equal(
      new Date(next.nextDueAt).getTime() - new Date(next.receivedAt).getTime(),
      interval * 2 * 1000,
    );
    const [row] = await db.sql<{ next_due_at: Date }>`
      select next_due_at from appliances where uid = ${a.uid}`;
    assert.equal(row!.next_due_at.toISOString(), next.nextDueAt);
  },
);
