/**
 * Issue 18, item 2: a clock jump on one instance must not page the fleet nor reopen replays.
 * Due times, sweeps and nonce retention do not trust one instance's wall clock: an instance
 * whose clock disagrees with the database's beyond `settings.clockToleranceS` neither sweeps nor
 * prunes, and one notice per episode says so.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, testNoc } from "./_harness.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";
import { pruneNonces } from "../noc/jobs/retention.ts";
import { checkClock } from "../noc/jobs/noc_time.ts";
import { ManualClock, shiftedClock, systemClock } from "../noc/clock.ts";

const graceS = 300;

/** Notice kinds in order, less the identity-failure notice a refused replay raises. */
async function noticeKinds(db: import("../noc/db/db.ts").Db): Promise<string[]> {
  return (await db.sql<{ kind: string }>`
    select kind from notices where kind <> 'identity_failure' order by id`).map((n) => n.kind);
}

dbTest(
  "an instance whose clock jumped +25 min pages no healthy appliance, keeps every nonce, and says so once",
  async ({ db, another }) => {
    const clock = new ManualClock();
    const a = await testNoc(db, { clock });
    const jumped = new ManualClock(clock.now());
    jumped.jump(25 * 60);
    const b = await testNoc(another(), { clock: jumped });
    const alsoJumped = new ManualClock(clock.now());
    alsoJumped.jump(25 * 60);
    const c = await testNoc(another(), { clock: alsoJumped });

    const fleet = [];
    for (let i = 0; i < 20; i++) fleet.push(await a.enrollAppliance({ hostname: `gw-${i}` }));
    for (const x of fleet) await x.beat();
    const signed = await fleet[0]!.request("POST", "/v1/beats", sampleBeat(99, clock.now()));
    assert.equal((await a.app.request(signed.clone())).status, 200);

    // The jumped instances run their cron jobs, several times over.
    for (const noc of [b, c, b]) {
      const r = await sweep({ ...noc.deps, graceS });
      assert.equal(r.skipped, "clock_skew");
      assert.deepEqual(r.alerted, []);
      assert.equal(await pruneNonces(noc.deps), 0, "no pruning on a clock 25 min ahead");
    }
    // The healthy instance sweeps too: nobody is due.
    assert.deepEqual((await sweep({ ...a.deps, graceS })).alerted, []);
    const replay = await a.app.request(signed.clone());
    assert.equal(replay.status, 401);
    assert.equal((await replay.json()).error, "replayed_signature");
    assert.equal(
      (await db.sql<{ n: number }>`select count(*)::int as n from alerts`)[0]!.n,
      0,
    );
    assert.deepEqual(await noticeKinds(db), ["clock_skew"], "one notice for the episode");
    const [notice] = await db.sql<{ text: string; payload: { skewS: number } }>`
      select text, payload from notices where kind = 'clock_skew'`;
    assert.equal(notice!.payload.skewS, 1500);
    assert.match(notice!.text, /1500 s ahead of the database's/);

    // B's clock is put right; C is still off: the episode goes on, no second notice.
    jumped.jump(-25 * 60);
    assert.equal((await sweep({ ...b.deps, graceS })).skipped, undefined);
    assert.equal((await sweep({ ...c.deps, graceS })).skipped, "clock_skew");
    assert.deepEqual(await noticeKinds(db), ["clock_skew"]);
    // Every instance agrees again; a later jump is a new episode with its own notice.
    alsoJumped.jump(-25 * 60);
    assert.equal((await sweep({ ...c.deps, graceS })).skipped, undefined);
    jumped.jump(-600);
    assert.equal((await sweep({ ...b.deps, graceS })).skipped, "clock_skew");
    assert.deepEqual(await noticeKinds(db), ["clock_skew", "clock_skew"]);
    assert.match(
      (await db.sql<{ text: string }>`select text from notices order by id desc limit 1`)[0]!.text,
      /600 s behind/,
    );
  },
);

dbTest(
  "the clock check measures an instance's clock against the database's clock_timestamp()",
  async ({ db }) => {
    const noc = await testNoc(db);
    const check = (clock: import("../noc/clock.ts").Clock, toleranceS = 30) =>
      checkClock({
        ...noc.deps,
        clock,
        settings: { ...noc.deps.settings, clockToleranceS: toleranceS },
      });
    const good = await check(systemClock);
    assert.equal(good.ok, true);
    assert.ok(Math.abs(good.skewS) < 5, `system clock and database agree (${good.skewS} s)`);
    const ahead = await check(shiftedClock(25 * 60));
    assert.equal(ahead.ok, false);
    assert.ok(Math.abs(ahead.skewS - 1500) < 5, `${ahead.skewS}`);
    const behind = await check(shiftedClock(-45));
    assert.equal(behind.ok, false, "45 s behind is beyond a 30 s tolerance");
    assert.equal((await check(shiftedClock(-45), 60)).ok, true, "and within a 60 s one");
    assert.deepEqual(await noticeKinds(db), ["clock_skew"], "one episode, one notice");
  },
);

dbTest(
  "an instance whose clock is off answers appliances 503 noc_clock_skew: no replay or enrolment through it",
  async ({ db, another }) => {
    const clock = new ManualClock();
    const a = await testNoc(db, { clock });
    const behind = new ManualClock(clock.now());
    behind.jump(-20 * 60);
    const b = await testNoc(another(), { clock: behind });
    const dev = await a.enrollAppliance({ hostname: "victim" });
    const req = await dev.request("POST", "/v1/beats", sampleBeat(1, clock.now()));
    const replay = req.clone();
    assert.equal((await a.app.request(req)).status, 200);
    // Later, the correct instance prunes the spent nonce, as it should once it has expired.
    clock.advance(16 * 60);
    behind.advance(16 * 60);
    assert.ok((await pruneNonces(a.deps)) >= 1);
    // The instance 20 min behind would take the old signature as fresh; its clock check (the
    // liveness ticker runs one every 10 s) makes it refuse every signed request instead.
    assert.equal((await checkClock(b.deps)).ok, false);
    const res = await b.app.request(replay);
    assert.equal(res.status, 503);
    assert.ok(res.headers.get("retry-after"));
    assert.equal((await res.json()).error, "noc_clock_skew");
    // A fresh, valid request too, until the clock agrees again; and an enrolment (token expiry is
    // judged on the clock too), while the admin API still answers.
    const fresh = await b.app.request(
      await dev.request("POST", "/v1/beats", sampleBeat(2, clock.now())),
    );
    assert.equal(fresh.status, 503);
    const token = await a.enrollmentToken();
    const enrol = await b.app.request("/v1/enroll", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    });
    assert.equal(enrol.status, 503);
    assert.equal((await enrol.json()).error, "noc_clock_skew");
    assert.equal((await b.admin("GET", "/v1/admin/appliances")).status, 200);
    behind.jump(20 * 60);
    assert.equal((await checkClock(b.deps)).ok, true);
    const again = await b.app.request(
      await dev.request("POST", "/v1/beats", sampleBeat(3, clock.now())),
    );
    assert.equal(again.status, 200, await again.text());
  },
);
