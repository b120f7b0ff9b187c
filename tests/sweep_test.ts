import assert from "node:assert/strict";
import { count, dbTest, testNoc } from "./_harness.ts";
import { explainSweep, sweep } from "../noc/jobs/status_daemon.ts";
import { startWebhook } from "./_webhook.ts";
import { createNotifier } from "../noc/services/notifier.ts";
import { memoryLogger } from "../protocol/util/log.ts";

const grace = 300;

dbTest(
  "sweep() raises one missed-heartbeat alert once the due time plus grace has passed",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mail-gw-1" });
    await a.beat();
    const run = () => sweep({ ...noc.deps, graceS: grace });

    noc.clock.advance(909 + 1);
    assert.deepEqual((await run()).alerted, [], "late is not yet missing");
    assert.equal((await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.state, "late");

    noc.clock.advance(grace);
    const first = await run();
    assert.deepEqual(first.alerted, [a.uid]);
    assert.equal((await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.state, "missing");

    noc.clock.advance(3600);
    assert.deepEqual((await run()).alerted, [], "never alerted twice");
    const alerts = await noc.admin("GET", "/v1/admin/alerts");
    assert.equal(alerts.body.items.length, 1);
    assert.equal(alerts.body.items[0].kind, "missed_heartbeat");
    assert.equal(alerts.body.items[0].hostname, "mail-gw-1");
    const notices = await db.sql<{ kind: string; text: string }>`select kind, text from notices`;
    assert.deepEqual(notices.map((n) => n.kind), ["missed_heartbeat"]);
    assert.match(notices[0]!.text, /mail-gw-1/);
  },
);

dbTest(
  "a returning beat resolves the alert and the next sweep sends one recovered notice",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mail-gw-2" });
    await a.beat();
    noc.clock.advance(909 + grace + 60);
    await sweep({ ...noc.deps, graceS: grace });
    noc.clock.advance(600);
    await a.beat();
    const one = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(one.body.state, "ok");
    assert.equal(one.body.missingSince, null);
    const resolved = await noc.admin("GET", "/v1/admin/alerts?status=resolved");
    assert.equal(resolved.body.items.length, 1);
    assert.equal(resolved.body.items[0].resolvedAt, noc.clock.now().toISOString());
    const r = await sweep({ ...noc.deps, graceS: grace });
    assert.deepEqual(r.recovered, [a.uid]);
    assert.deepEqual(
      (await sweep({ ...noc.deps, graceS: grace })).recovered,
      [],
      "recovery notified once",
    );
    const kinds = (await db.sql<{ kind: string }>`select kind from notices order by id`).map((n) =>
      n.kind
    );
    assert.deepEqual(kinds, ["missed_heartbeat", "recovered"]);
    // It can go missing again later: a new alert.
    noc.clock.advance(909 + grace + 1);
    assert.deepEqual((await sweep({ ...noc.deps, graceS: grace })).alerted, [a.uid]);
    assert.equal(await count(db, "alerts"), 2);
  },
);

dbTest(
  "sweep() racing on two NOC instances raises exactly one alert per appliance",
  async ({ db, another }) => {
    const noc = await testNoc(db);
    const other = await testNoc(another(), { clock: noc.clock });
    const fleet = [];
    for (let i = 0; i < 30; i++) fleet.push(await noc.enrollAppliance({ hostname: `gw-${i}` }));
    for (const a of fleet) await a.beat();
    noc.clock.advance(909 + grace + 1);
    const results = await Promise.all([
      sweep({ ...noc.deps, graceS: grace, batchSize: 7 }),
      sweep({ ...other.deps, graceS: grace, batchSize: 7 }),
      sweep({ ...noc.deps, graceS: grace, batchSize: 7 }),
      sweep({ ...other.deps, graceS: grace, batchSize: 7 }),
    ]);
    const alerted = results.flatMap((r) => r.alerted);
    assert.equal(alerted.length, 30);
    assert.equal(new Set(alerted).size, 30);
    assert.equal(await count(db, "alerts"), 30);
  },
  { instances: 2 },
);

dbTest(
  "sweep() sends one digest notice when many appliances go missing at once",
  async ({ db }) => {
    const noc = await testNoc(db);
    for (let i = 0; i < 12; i++) await (await noc.enrollAppliance({ hostname: `gw-${i}` })).beat();
    noc.clock.advance(909 + grace + 1);
    const r = await sweep({ ...noc.deps, graceS: grace, digestAbove: 10 });
    assert.equal(r.alerted.length, 12);
    assert.equal(await count(db, "alerts"), 12, "every appliance still gets its alert");
    const notices = await db.sql<{ kind: string; text: string }>`select kind, text from notices`;
    assert.deepEqual(notices.map((n) => n.kind), ["missed_heartbeat_digest"]);
    assert.match(notices[0]!.text, /12 appliances missed their heartbeat/);
  },
);

dbTest("sweep() touches only overdue appliances (the due-time index)", async ({ db }) => {
  const noc = await testNoc(db);
  const fleet = [];
  for (let i = 0; i < 5; i++) fleet.push(await noc.enrollAppliance());
  for (const a of fleet) await a.beat();
  noc.clock.advance(909 + grace + 1);
  await fleet[0]!.beat();
  await fleet[1]!.beat();
  const r = await sweep({ ...noc.deps, graceS: grace });
  assert.equal(r.alerted.length, 3);
  assert.ok(!r.alerted.includes(fleet[0]!.uid));
  // The sweep's own statement is served by the partial due-time index and the maintenance indexes
  // (forced, since a handful of rows would favour a scan).
  const now = noc.clock.now();
  const plan = await db.begin(async (tx) => {
    await tx`set local enable_seqscan = off`;
    return await explainSweep(tx, now, new Date(now.getTime() - grace * 1000));
  });
  assert.match(plan, /appliances_due/, plan);
  assert.match(plan, /maintenance_windows_uid/, plan);
  assert.match(plan, /maintenance_windows_site/, plan);
});

dbTest("maintenance windows hold back missed-heartbeat alerts until they end", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance({ hostname: "in-window" });
  const b = await noc.enrollAppliance({ hostname: "site-wide" });
  await noc.admin("PATCH", `/v1/admin/appliances/${b.uid}`, { site: "branch-1" });
  await a.beat();
  await b.beat();
  const ends = new Date(noc.clock.now().getTime() + 4 * 3600_000).toISOString();
  const m1 = await noc.admin("POST", "/v1/admin/maintenance", {
    uid: a.uid,
    endsAt: ends,
    reason: "disk swap",
  });
  assert.equal(m1.status, 201, JSON.stringify(m1.body));
  const m2 = await noc.admin("POST", "/v1/admin/maintenance", {
    site: "branch-1",
    endsAt: ends,
    reason: "power work",
  });
  assert.equal(m2.status, 201);
  noc.clock.advance(909 + grace + 1);
  assert.deepEqual((await sweep({ ...noc.deps, graceS: grace })).alerted, []);
  const one = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
  assert.equal(one.body.state, "missing");
  assert.equal(one.body.maintenance.reason, "disk swap");
  assert.equal(await count(db, "notices"), 0);
  noc.clock.advance(4 * 3600);
  const after = await sweep({ ...noc.deps, graceS: grace });
  assert.deepEqual(after.alerted.sort(), [a.uid, b.uid].sort(), "alerts once the window is over");
  const bad = await noc.admin("POST", "/v1/admin/maintenance", {
    uid: a.uid,
    site: "x",
    endsAt: ends,
    reason: "r",
  });
  assert.equal(bad.status, 400);
  const backwards = await noc.admin("POST", "/v1/admin/maintenance", {
    site: "x",
    startsAt: new Date(noc.clock.now().getTime() + 3600_000).toISOString(),
    endsAt: noc.clock.now().toISOString(),
    reason: "r",
  });
  assert.equal(backwards.status, 400);
  assert.equal(backwards.body.issues[0].path, "endsAt");
  assert.equal(await count(db, "maintenance_windows"), 2);
});

dbTest("an acknowledged alert stays open until the appliance beats again", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  await a.beat();
  noc.clock.advance(909 + grace + 1);
  await sweep({ ...noc.deps, graceS: grace });
  const [open] = (await noc.admin("GET", "/v1/admin/alerts")).body.items;
  const ack = await noc.admin("POST", `/v1/admin/alerts/${open.id}/ack`);
  assert.equal(ack.status, 200);
  assert.equal(ack.body.acknowledgedBy, "test");
  assert.equal(ack.body.status, "open");
  assert.equal((await noc.admin("POST", "/v1/admin/alerts/999999/ack")).status, 404);
  assert.equal((await noc.admin("POST", "/v1/admin/alerts/abc/ack")).status, 400);
});

dbTest(
  "a webhook that is down for a while then receives every notice, in order, once",
  async ({ db }) => {
    const hook = startWebhook();
    try {
      const noc = await testNoc(db, { webhooks: [hook.url] });
      const fleet = [];
      for (let i = 0; i < 3; i++) fleet.push(await noc.enrollAppliance({ hostname: `gw-${i}` }));
      for (const a of fleet) await a.beat();
      hook.down = true;
      // Three separate sweeps, one appliance each, so the notices have a definite order.
      for (const a of fleet) {
        noc.clock.advance(100);
        await db.sql`update appliances set next_due_at = ${new Date(
          noc.clock.now().getTime() - (grace + 1) * 1000,
        )}
        where uid = ${a.uid}`;
        await sweep({ ...noc.deps, graceS: grace });
      }
      const first = await noc.deps.notifier.deliver();
      assert.equal(first.failed, 1, "the head of the queue fails and holds the rest back");
      assert.equal(hook.refused, 1);
      noc.clock.advance(5);
      assert.equal(
        (await noc.deps.notifier.deliver()).failed,
        0,
        "no retry before the backoff expires",
      );
      for (let i = 0; i < 4; i++) {
        noc.clock.advance(600);
        await noc.deps.notifier.deliver();
      }
      assert.equal(hook.received.length, 0);
      hook.down = false;
      noc.clock.advance(600);
      const back = await noc.deps.notifier.deliver();
      assert.equal(back.delivered, 3);
      assert.deepEqual(hook.received.map((b) => (b as { text: string }).text.match(/gw-\d/)?.[0]), [
        "gw-0",
        "gw-1",
        "gw-2",
      ]);
      assert.ok(
        hook.received.every((b) => typeof b.text === "string" && b.kind === "missed_heartbeat"),
      );
      noc.clock.advance(600);
      await noc.deps.notifier.deliver();
      assert.equal(hook.received.length, 3, "nothing is delivered twice");
      const notices = await noc.admin("GET", "/v1/admin/notices");
      const webhookDelivery = notices.body.items[0].deliveries.find((d: { target: string }) =>
        d.target.startsWith("webhook:")
      );
      assert.ok(webhookDelivery.deliveredAt);
    } finally {
      await hook.close();
    }
  },
);

dbTest(
  "two instances delivering at once send each notice to a webhook once",
  async ({ db, another }) => {
    const hook = startWebhook();
    try {
      const noc = await testNoc(db, { webhooks: [hook.url] });
      const db2 = another();
      const n2 = await createNotifier({
        db: db2,
        clock: noc.clock,
        log: memoryLogger(),
        webhooks: [hook.url],
        autoDeliver: false,
      });
      for (let i = 0; i < 5; i++) await (await noc.enrollAppliance({ hostname: `gw-${i}` })).beat();
      noc.clock.advance(909 + grace + 1);
      await sweep({ ...noc.deps, graceS: grace, digestAbove: 100 });
      await Promise.all([
        noc.deps.notifier.deliver(),
        n2.deliver(),
        noc.deps.notifier.deliver(),
        n2.deliver(),
      ]);
      // A leased target may be skipped by the losing instance; a last pass picks up anything left.
      await n2.deliver();
      const ids = hook.received.map((b) => b.noticeId);
      assert.equal(ids.length, 5);
      assert.equal(new Set(ids).size, 5);
    } finally {
      await hook.close();
    }
  },
  { instances: 2 },
);

dbTest(
  "a rollout gate that fails costs the sweep nothing: its alert and notice stand, and it says why",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mail-gw-9" });
    await a.beat();
    noc.clock.advance(909 + grace + 1);
    const r = await sweep({
      ...noc.deps,
      graceS: grace,
      gate: () => Promise.reject(new Error("statement past its bound")),
    });
    assert.deepEqual(r.alerted, [a.uid]);
    assert.equal(r.notices, 1);
    assert.equal(r.gateFailed, "statement past its bound");
  },
);
