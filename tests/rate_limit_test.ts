/** Rate limits: per appliance on signed requests, per address on enrolment and console sign-in. */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { NocError } from "../protocol/client.ts";

dbTest(
  "an appliance over its rate gets 429 with Retry-After, and is served again once it slows down",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { rateAppliancePerMin: 5 } });
    const a = await noc.enrollAppliance();
    const other = await noc.enrollAppliance();
    for (let i = 0; i < 5; i++) await a.beat();
    await assert.rejects(a.beat(), (e) => e instanceof NocError && e.status === 429);
    const res = await noc.app.request(await a.request("GET", "/v1/catalog"));
    assert.equal(res.status, 429);
    assert.equal(res.headers.get("retry-after"), "12");
    assert.equal((await res.json()).error, "rate_limited");
    // Another appliance is not held back by the first.
    await other.beat();
    noc.clock.advance(12);
    await a.beat();
  },
);

dbTest("enrolment and console sign-in are limited per client address", async ({ db }) => {
  const noc = await testNoc(db, { settings: { rateEnrollPerMin: 3, rateLoginPerMin: 2 } });
  for (let i = 0; i < 3; i++) await noc.enrollAppliance();
  await assert.rejects(noc.enrollAppliance(), (e) => e instanceof NocError && e.status === 429);
  const attempt = () =>
    noc.app.request("http://noc.test/ui/login", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "token=guess&_csrf=x",
    });
  assert.equal((await attempt()).status, 403);
  assert.equal((await attempt()).status, 403);
  const limited = await attempt();
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get("retry-after")) > 0);
});
