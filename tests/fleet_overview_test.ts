/** The fleet page's cached beat rate counts exactly what a fresh count does. */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { beatRate, fleetOverviewCache } from "../noc/services/fleet_overview.ts";

dbTest(
  "fleetOverviewCache().beatRate() equals a fresh count as the day-long window slides",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const cache = fleetOverviewCache();
    // 30 hours in uneven steps, beats at every step: old buckets leave the window while the cache is warm.
    for (let step = 0; step < 60; step++) {
      for (let i = 0; i < (step % 4) + 1; i++) await a.beat();
      const cached = await cache.beatRate(db, noc.clock.now());
      assert.deepEqual(cached, await beatRate(db, noc.clock.now()), `step ${step}`);
      assert.ok(cached.length <= 144);
      noc.clock.advance(29 * 60 + 17);
    }
  },
);

dbTest(
  "the admin API gives what the console shows: beat rate, versions, catalog and outcomes",
  async ({ db }) => {
    const noc = await testNoc(db);
    const { publishAndAssign } = await import("./_components.ts");
    await publishAndAssign(noc, { app: "demo", name: "demo", version: "2.0.0" });
    const a = await noc.enrollAppliance();
    await a.beat();
    // One beat in the running bucket's first 5 minutes: 0.2 a minute (its age, not 10 minutes).
    noc.clock.advance(300);
    const fleet = await noc.admin("GET", "/v1/admin/fleet");
    assert.equal(fleet.body.states.ok, 1);
    assert.equal(fleet.body.beatsPerMinute.length, 1);
    assert.equal(fleet.body.beatsPerMinute[0].perMinute, 0.2);
    assert.deepEqual(
      fleet.body.versions.map((v: { app: string; n: number }) => [v.app, v.n]),
      [["vscreen", 1]],
    );
    const one = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.deepEqual(
      one.body.catalog.map((k: { name: string; version: string }) => `${k.name}@${k.version}`),
      ["demo@2.0.0"],
    );
    assert.deepEqual(one.body.installOutcomes, []);
  },
);
