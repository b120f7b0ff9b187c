/** The fleet page's cached beat rate counts exactly what a fresh count does. */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { beatRate, fleetOverviewCache } from "../lib/fleet_overview.ts";

dbTest(
  "fleetOverviewCache().beatRate() equals a fresh count as time passes and beats arrive",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const cache = fleetOverviewCache();
    for (let step = 0; step < 8; step++) {
      for (let i = 0; i < step + 1; i++) await a.beat();
      assert.deepEqual(
        await cache.beatRate(db, noc.clock.now()),
        await beatRate(db, noc.clock.now()),
        `step ${step}`,
      );
      noc.clock.advance(7 * 60 + 13);
    }
    // A day later, the old buckets have left the window in both.
    noc.clock.advance(86_400);
    await a.beat();
    const cached = await cache.beatRate(db, noc.clock.now());
    assert.deepEqual(cached, await beatRate(db, noc.clock.now()));
    assert.equal(cached.length, 1);
  },
);
