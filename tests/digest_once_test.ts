/**
 * Issue 18, item 3: one event, one page. 2,000 appliances going missing at once give exactly one
 * digest notice, with every appliance in exactly one notice, however the instances' sweeps and
 * batches interleave; the same for their recoveries.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";
import type { Db } from "../noc/db/db.ts";

const graceS = 300;
const fleetSize = 2000;

/** 2,000 appliances beating until `now`, due at `now` (inserted: enrolling 2,000 is not the point). */
async function fleetDueAt(db: Db, now: Date): Promise<string[]> {
  const rows = await db.sql<{ uid: string }>`
    insert into appliances (uid, model, hostname, site, sign_key, enc_key, interval_s, enrolled_at,
      last_beat_at, next_due_at)
    select gen_random_uuid(), 'vs-2000', 'gw-' || i, 'site-' || (i % 7), 'sign-' || i, 'enc-' || i,
      909, ${now}, ${now}, ${now}
    from generate_series(1, ${fleetSize}) as i
    returning uid`;
  return rows.map((r) => r.uid);
}

/** Every appliance beats again (what recordBeat does to the status table and the open alert). */
async function allBeatAgain(db: Db, now: Date): Promise<void> {
  await db.sql`
    update appliances set last_beat_at = ${now}, next_due_at = ${new Date(
    now.getTime() + 909_000,
  )}, missing_since = null`;
  await db.sql`update alerts set resolved_at = ${now} where resolved_at is null`;
}

async function notices(db: Db, kinds: string[]) {
  return await db.sql<{ kind: string; payload: { count?: number; uids?: string[]; uid?: string } }>`
    select kind, payload from notices where kind = any(${kinds}::text[]) order by id`;
}

/** Asserts one digest notice of `kind` naming every UID of `uids` exactly once. */
async function assertOneDigest(db: Db, kind: string, single: string, uids: string[]) {
  const got = await notices(db, [kind, single]);
  assert.deepEqual(got.map((n) => n.kind), [kind], `one ${kind} notice, no ${single}`);
  const named = got[0]!.payload.uids!;
  assert.equal(got[0]!.payload.count, uids.length);
  assert.equal(named.length, uids.length);
  assert.deepEqual([...new Set(named)].sort(), [...uids].sort(), "every appliance, once");
}

async function race(nocs: TestNoc[], batchSize: number) {
  return await Promise.all(
    [...nocs, ...nocs].map((n) => sweep({ ...n.deps, graceS, batchSize, digestAbove: 10 })),
  );
}

dbTest(
  "2,000 appliances missing at once, swept in batches of 150, make one digest notice",
  async ({ db }) => {
    const noc = await testNoc(db);
    const uids = await fleetDueAt(db, noc.clock.now());
    noc.clock.advance(graceS + 1);
    const r = await sweep({ ...noc.deps, graceS, batchSize: 150, digestAbove: 10 });
    assert.equal(r.alerted.length, fleetSize);
    assert.equal(r.notices, 1);
    await assertOneDigest(db, "missed_heartbeat_digest", "missed_heartbeat", uids);
    noc.clock.advance(60);
    await allBeatAgain(db, noc.clock.now());
    const back = await sweep({ ...noc.deps, graceS, batchSize: 150, digestAbove: 10 });
    assert.equal(back.recovered.length, fleetSize);
    await assertOneDigest(db, "recovered_digest", "recovered", uids);
    assert.equal((await sweep({ ...noc.deps, graceS })).notices, 0, "nothing twice");
  },
);

dbTest(
  "three instances sweeping 2,000 missing appliances at once send one digest, and one for recoveries",
  async ({ db, another }) => {
    const a = await testNoc(db);
    const b = await testNoc(another(), { clock: a.clock });
    const c = await testNoc(another(), { clock: a.clock });
    const uids = await fleetDueAt(db, a.clock.now());
    a.clock.advance(graceS + 1);
    const results = await race([a, b, c], 150);
    const alerted = results.flatMap((r) => r.alerted);
    assert.equal(alerted.length, fleetSize);
    assert.equal(new Set(alerted).size, fleetSize, "one alert per appliance");
    assert.equal(results.reduce((n, r) => n + r.notices, 0), 1);
    await assertOneDigest(db, "missed_heartbeat_digest", "missed_heartbeat", uids);
    a.clock.advance(60);
    await allBeatAgain(db, a.clock.now());
    const back = await race([a, b, c], 150);
    assert.equal(back.flatMap((r) => r.recovered).length, fleetSize);
    await assertOneDigest(db, "recovered_digest", "recovered", uids);
  },
  { instances: 2 },
);

dbTest(
  "alerts a crashed sweep raised but never notified go out in the next sweep's one notice",
  async ({ db }) => {
    const noc = await testNoc(db);
    const uids = await fleetDueAt(db, noc.clock.now());
    noc.clock.advance(graceS + 1);
    // A sweep that died after raising its alerts: rows marked, lease left behind, no notice.
    await db.sql`
      insert into alerts (kind, uid, opened_at) select 'missed_heartbeat', uid, ${noc.clock.now()}
      from appliances`;
    await db.sql`update appliances set missing_since = ${noc.clock.now()}`;
    await db.sql`
      insert into sweep_lease (id, holder, until) values (1, 'dead', clock_timestamp() - interval '1 second')`;
    const r = await sweep({ ...noc.deps, graceS, digestAbove: 10 });
    assert.equal(r.skipped, undefined, "an expired lease does not hold sweeps back");
    assert.deepEqual(r.alerted, []);
    await assertOneDigest(db, "missed_heartbeat_digest", "missed_heartbeat", uids);
  },
);
