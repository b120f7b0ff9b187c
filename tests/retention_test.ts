import assert from "node:assert/strict";
import { count, dbTest, sampleBeat, testNoc } from "./_harness.ts";
import { pruneHistory, pruneNonces } from "../noc/jobs/retention.ts";

dbTest(
  "pruneHistory() removes beats past retention and keeps newer ones and the status table",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    for (let i = 0; i < 3; i++) {
      await a.beat();
      noc.clock.advance(10 * 86400);
    }
    await a.beat();
    const r = await pruneHistory(noc.deps, 15, 1);
    assert.equal(r.beats, 2, "the beats of day 0 and day 10 are older than 15 days");
    assert.equal(await count(db, "beats"), 2);
    const one = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(one.body.lastSeq, 4, "the latest report stays");
  },
);

dbTest("pruneNonces() forgets nonces only once their signatures have expired", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  const req = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()));
  assert.equal((await noc.app.request(req.clone())).status, 200);
  noc.clock.advance(299);
  assert.equal(await pruneNonces(noc.deps), 0);
  assert.equal(
    (await noc.app.request(req.clone())).status,
    401,
    "still a replay inside the window",
  );
  noc.clock.advance(600);
  assert.equal(
    await pruneNonces(noc.deps),
    0,
    "kept for a margin past the window (clock drift between instances)",
  );
  noc.clock.advance(2);
  assert.equal(await pruneNonces(noc.deps), 1);
  const late = await noc.app.request(req.clone());
  assert.equal(late.status, 401);
  assert.equal(
    (await late.json()).error,
    "clock_skew",
    "an old signature is refused by its age instead",
  );
});

dbTest(
  "pruneHistory() removes alerts resolved before retention and keeps open and recent ones",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const now = noc.clock.now();
    const days = (n: number) => new Date(now.getTime() - n * 86_400_000);
    await db.sql`
      insert into alerts (kind, uid, opened_at, resolved_at) values
        ('missing', ${a.uid}, ${days(40)}, ${days(39)}),
        ('missing', ${a.uid}, ${days(20)}, ${days(19)}),
        ('missing', ${a.uid}, ${days(35)}, null)`;
    const r = await pruneHistory(noc.deps, 30);
    assert.equal(r.alerts, 1);
    assert.equal(await count(db, "alerts"), 2);
  },
);
