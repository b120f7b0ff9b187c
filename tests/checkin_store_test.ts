import * as assert from "node:assert/strict";
import { count, dbTest, testNoc } from "./_harness.ts";
import { sweep } from "../lib/sweep.ts";

dbTest(
  "beats sent at once are all recorded and resolve their missed-heartbeat alerts",
  async ({ db }) => {
    const noc = await testNoc(db);
    const fleet = [];
    for (let i = 0; i < 24; i++) fleet.push(await noc.enrollAppliance({ hostname: `gw-${i}` }));
    await Promise.all(fleet.map((a) => a.beat()));
    noc.clock.advance(909 + 600);
    const swept = await sweep({ ...noc.deps, graceS: 300 });
    assert.equal(swept.alerted.length, fleet.length);
    const answers = await Promise.all(fleet.map((a) => a.beat()));
    assert.ok(answers.every((b) => b.uid && b.nextDueAt), "every beat answered");
    assert.equal(await count(db, "beats"), fleet.length * 2);
    assert.equal(
      (await db.sql<{ n: number }>`
      select count(*)::int as n from alerts where kind = 'missed_heartbeat' and resolved_at is null`)[
        0
      ]!
        .n,
      0,
      "every alert resolved by its appliance's beat",
    );
    assert.equal(
      (await db.sql<{ n: number }>`
      select count(*)::int as n from appliances where missing_since is not null`)[0]!.n,
      0,
    );
  },
);

dbTest("the same signed beat sent twice at once is accepted once", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  const req = await a.request("POST", "/v1/beats", {
    seq: 1,
    sentAt: noc.clock.now().toISOString(),
    health: {
      load: [0, 0, 0],
      memory: { totalBytes: 1, availableBytes: 1 },
      disks: [],
      uptimeS: 1,
    },
    components: [],
    lastCycle: { outcome: "ok" },
    apps: {},
  });
  const statuses = await Promise.all(
    [req.clone(), req.clone(), req.clone()].map((r) => noc.send(r).then((res) => res.status)),
  );
  assert.deepEqual(statuses.sort(), [200, 401, 401]);
  assert.equal(await count(db, "beats"), 1);
});
