/** Rate limits: per appliance on signed requests, per address on enrolment and console sign-in. */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { NocError } from "../protocol/client.ts";
import { addressKey, createRefusalGate } from "../noc/services/rate_limit.ts";
import { ManualClock } from "../noc/clock.ts";

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

Deno.test("addressKey() counts an IPv6 address by its /64 and an IPv4-mapped one as its IPv4 address", () => {
  assert.equal(addressKey("192.0.2.1"), "192.0.2.1");
  assert.equal(addressKey("2001:db8:1:2::1"), "2001:db8:1:2::/64");
  assert.equal(addressKey("2001:DB8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
  assert.equal(addressKey("2001:0db8:0001:0002:0::9"), "2001:db8:1:2::/64");
  assert.equal(addressKey("[2001:db8::1]"), "2001:db8:0:0::/64");
  assert.equal(addressKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.equal(addressKey("::ffff:192.0.2.9"), "192.0.2.9");
  assert.equal(addressKey("::ffff:c000:209"), "192.0.2.9");
  assert.equal(addressKey("unknown"), "unknown");
});

dbTest("enrolment is limited per IPv6 /64, not per address", async ({ db }) => {
  const noc = await testNoc(db, { settings: { trustProxy: true, rateEnrollPerMin: 3 } });
  const enrol = async (address: string) => {
    const res = await noc.app.request("http://noc.test/v1/enroll", {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-for": address },
      body: "{}",
    });
    return res.status;
  };
  for (let i = 1; i <= 3; i++) assert.notEqual(await enrol(`2001:db8:5:6::${i}`), 429);
  assert.equal(await enrol("2001:db8:5:6:1:2:3:4"), 429, "another address of the same /64");
  assert.notEqual(await enrol("2001:db8:5:7::1"), 429, "another /64");
});

Deno.test("createRefusalGate() without a per-address limit still counts what it holds back", () => {
  const clock = new ManualClock(new Date("2026-11-30T00:00:00Z"));
  const gate = createRefusalGate(clock, 0, 2);
  assert.deepEqual(gate.note("192.0.2.1"), { record: true, heldBack: 0 });
  assert.deepEqual(gate.note("192.0.2.2"), { record: true, heldBack: 0 });
  assert.deepEqual(gate.note("192.0.2.3"), { record: false, heldBack: 1 });
  assert.deepEqual(gate.note("192.0.2.4"), { record: false, heldBack: 2 });
  clock.advance(60);
  // The next record carries the two held back, so the notice's count is whole.
  assert.deepEqual(gate.note("192.0.2.5"), { record: true, heldBack: 2 });
  assert.deepEqual(gate.note("192.0.2.6"), { record: true, heldBack: 0 });
});
