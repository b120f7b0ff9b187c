/**
 * Issue 22 item 1: an operator's change of schedule never pages a healthy appliance. Each setting
 * that moves the moment an appliance is paged — its interval, the grace, a maintenance window's
 * end, a site move — applies from its next beat after it could know of it
 * (noc/services/schedule_changes.ts). Through the real HTTP surface, the status daemon's sweep,
 * and, for the example, a real agent.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, type TestAppliance, type TestNoc, testNoc } from "./_harness.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";
import { ManualClock } from "../noc/clock.ts";
import { fetchCatalog } from "./_components.ts";
import { enrolledAgent } from "./_agent.ts";
import { detail, uidOf, withServedNoc } from "./_degrades.ts";

const settings = { reportIntervalS: 600, graceS: 30 };

async function beat(noc: TestNoc, a: TestAppliance, seq: number): Promise<void> {
  const res = await noc.app.request(
    await a.request("POST", "/v1/beats", sampleBeat(seq, noc.clock.now())),
  );
  assert.equal(res.status, 200, await res.clone().text());
}

const run = (noc: TestNoc, graceS = settings.graceS) => sweep({ ...noc.deps, graceS });

async function shown(noc: TestNoc, uid: string) {
  const r = await noc.admin("GET", `/v1/admin/appliances/${uid}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

const at = (noc: TestNoc, s: number) =>
  new Date(noc.clock.now().getTime() + s * 1000).toISOString();

dbTest(
  "intervalS shortened from 600 to 30 s keeps the due time until the appliance fetches a catalog",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const noc = await testNoc(db, { clock, settings });
    try {
      const a = await noc.enrollAppliance();
      await beat(noc, a, 1);
      assert.equal((await fetchCatalog(noc, a)).doc?.intervalS, 600);
      const due = (await shown(noc, a.uid)).nextDueAt;
      // The wake long poll, to see the NOC ask the appliance to fetch its new schedule.
      const polled = await noc.send(await a.request("GET", "/v1/wake?wait=0"));
      const cursor = (await polled.json()).cursor;

      const patched = await noc.admin("PATCH", `/v1/admin/appliances/${a.uid}`, { intervalS: 30 });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      assert.equal(patched.body.intervalS, 30);
      assert.equal(patched.body.knownIntervalS, 600, "the agent is still on 600 s");
      assert.equal(patched.body.nextDueAt, due, "the due time did not move");
      const woken = await noc.send(await a.request("GET", `/v1/wake?after=${cursor}&wait=0`));
      assert.equal((await woken.json()).wake, true, "the appliance is woken to fetch its catalog");

      // A minute later, and five: the appliance is on its old schedule, and nobody is paged.
      clock.advance(60);
      assert.deepEqual((await run(noc)).alerted, []);
      clock.advance(240);
      assert.deepEqual((await run(noc)).alerted, []);

      // It fetches a catalog with the new interval: from then on, 30 s is its schedule.
      assert.equal((await fetchCatalog(noc, a)).doc?.intervalS, 30);
      const after = await shown(noc, a.uid);
      assert.equal(after.knownIntervalS, 30);
      assert.equal(after.nextDueAt, at(noc, 30));
      clock.advance(30 + settings.graceS - 1);
      assert.deepEqual((await run(noc)).alerted, []);
      await beat(noc, a, 2);
      assert.equal((await shown(noc, a.uid)).nextDueAt, at(noc, 30), "a beat counts 30 s now");
      // Silent past 30 s and the grace: now it is missing, on its new schedule.
      clock.advance(30 + settings.graceS + 1);
      assert.deepEqual((await run(noc)).alerted, [a.uid]);
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest("intervalS lengthened applies once the appliance learned it, not before", async ({ db }) => {
  const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
  const noc = await testNoc(db, { clock, settings: { reportIntervalS: 60, graceS: 30 } });
  try {
    const a = await noc.enrollAppliance();
    await beat(noc, a, 1);
    await fetchCatalog(noc, a);
    const p = await noc.admin("PATCH", `/v1/admin/appliances/${a.uid}`, { intervalS: 3600 });
    assert.equal(p.status, 200);
    // Still on 60 s: it beats at 60 s; the beat's due time counts 60 s, as the agent does.
    clock.advance(60);
    await beat(noc, a, 2);
    assert.equal((await shown(noc, a.uid)).nextDueAt, at(noc, 60));
    await fetchCatalog(noc, a);
    assert.equal((await shown(noc, a.uid)).nextDueAt, at(noc, 3600));
    clock.advance(600);
    assert.deepEqual((await run(noc, 30)).alerted, [], "an hour's interval, learned: not paged");
  } finally {
    await noc.deps.wakeups.close();
  }
});

dbTest(
  "a maintenance window ended, run out or deleted holds its appliance one interval more",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const noc = await testNoc(db, { clock, settings });
    try {
      const [ends, ended, deleted] = [
        await noc.enrollAppliance({ hostname: "runs-out" }),
        await noc.enrollAppliance({ hostname: "ended" }),
        await noc.enrollAppliance({ hostname: "deleted" }),
      ];
      for (const a of [ends, ended, deleted]) await beat(noc, a, 1);
      const windows: number[] = [];
      for (const a of [ends, ended, deleted]) {
        const w = await noc.admin("POST", "/v1/admin/maintenance", {
          uid: a.uid,
          endsAt: at(noc, 3600),
          reason: "firmware work",
        });
        assert.equal(w.status, 201, JSON.stringify(w.body));
        windows.push(w.body.id);
      }
      // Silent through the hour of maintenance, as an appliance being worked on is.
      clock.advance(1800);
      assert.deepEqual((await run(noc)).alerted, []);
      const e = await noc.admin("POST", `/v1/admin/maintenance/${windows[1]}/end`);
      assert.equal(e.status, 200, JSON.stringify(e.body));
      const d = await noc.admin("DELETE", `/v1/admin/maintenance/${windows[2]}`);
      assert.equal(d.status, 204, JSON.stringify(d.body));
      // Ended early: the ended one has an interval and the grace from now. The deleted one's
      // window is gone: it is judged as if it had none (it was due long ago).
      clock.advance(60);
      assert.deepEqual((await run(noc)).alerted, [deleted.uid]);
      clock.advance(600 + settings.graceS);
      assert.deepEqual((await run(noc)).alerted, [ended.uid]);
      // The window that ran out, at 1 h: held for one interval and the grace after its end.
      clock.set(new Date(Date.UTC(2026, 11, 1, 13, 0, 0) + 60_000));
      assert.deepEqual((await run(noc)).alerted, []);
      clock.set(new Date(Date.UTC(2026, 11, 1, 13, 0, 0) + (600 + settings.graceS + 1) * 1000));
      assert.deepEqual((await run(noc)).alerted, [ends.uid]);
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest(
  "an appliance moved out of a site in maintenance, one by one or in bulk, gets an interval",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const noc = await testNoc(db, { clock, settings });
    try {
      const one = await noc.enrollAppliance({
        hostname: "moved-one",
        token: await noc.enrollmentToken({ site: "lab" }),
      });
      const many = await noc.enrollAppliance({
        hostname: "moved-bulk",
        token: await noc.enrollmentToken({ site: "lab" }),
      });
      const stays = await noc.enrollAppliance({
        hostname: "stays",
        token: await noc.enrollmentToken({ site: "lab" }),
      });
      for (const a of [one, many, stays]) await beat(noc, a, 1);
      const w = await noc.admin("POST", "/v1/admin/maintenance", {
        site: "lab",
        endsAt: at(noc, 86400),
        reason: "rack move",
      });
      assert.equal(w.status, 201, JSON.stringify(w.body));
      clock.advance(3600);
      assert.deepEqual((await run(noc)).alerted, []);
      const p = await noc.admin("PATCH", `/v1/admin/appliances/${one.uid}`, { site: "dc1" });
      assert.equal(p.status, 200, JSON.stringify(p.body));
      assert.equal(p.body.nextDueAt, at(noc, 600));
      const b = await noc.admin("POST", "/v1/admin/appliances/bulk", {
        uids: [many.uid],
        action: { type: "move", site: "dc1" },
      });
      assert.equal(b.status, 200, JSON.stringify(b.body));
      assert.equal((await shown(noc, many.uid)).nextDueAt, at(noc, 600));
      clock.advance(60);
      assert.deepEqual((await run(noc)).alerted, [], "moved out of maintenance: not paged at once");
      clock.advance(600 + settings.graceS);
      assert.deepEqual(
        (await run(noc)).alerted.toSorted(),
        [one.uid, many.uid].toSorted(),
        "silent an interval after the move: missing",
      );
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest(
  "a NOC restarted with a smaller grace pages nobody sooner than the old grace would",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const t0 = clock.now().getTime();
    const to = (s: number) => clock.set(new Date(t0 + s * 1000));
    let noc = await testNoc(db, { clock, settings: { reportIntervalS: 600, graceS: 300 } });
    const late = await noc.enrollAppliance({ hostname: "late" });
    const later = await noc.enrollAppliance({ hostname: "later" });
    to(-150);
    await beat(noc, late, 1); // due at 450, paged under the old grace at 750
    to(0);
    await beat(noc, later, 1); // due at 600, paged under the old grace at 900
    to(700);
    assert.deepEqual((await run(noc, 300)).alerted, []);
    await noc.deps.wakeups.close();
    // Restarted at 720 with a grace of 60 s: both are past their due time plus 60 s.
    to(720);
    noc = await testNoc(db, { clock, settings: { reportIntervalS: 600, graceS: 60 } });
    try {
      assert.deepEqual((await run(noc, 60)).alerted, [], "nobody paged sooner than before");
      to(749);
      assert.deepEqual((await run(noc, 60)).alerted, []);
      to(751);
      assert.deepEqual((await run(noc, 60)).alerted, [late.uid], "at its old page time");
      // A beat counts the new grace.
      await beat(noc, later, 2); // due at 1351, paged at 1411
      to(1410);
      assert.deepEqual((await run(noc, 60)).alerted, []);
      to(1412);
      assert.deepEqual((await run(noc, 60)).alerted, [later.uid]);
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

Deno.test({
  name: "a real agent on a 600 s interval shortened to 30 s is not paged, then keeps 30 s",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withServedNoc({ reportIntervalS: 600, graceS: 20 }, async (noc) => {
      const box = await enrolledAgent(noc);
      try {
        const first = await box.run(["once"]);
        assert.equal(first.code, 0, first.stderr + first.stdout);
        const uid = await uidOf(box);
        const before = await detail(noc, box);
        assert.equal(before.knownIntervalS, 600);
        const p = await noc.admin("PATCH", `/v1/admin/appliances/${uid}`, { intervalS: 30 });
        assert.equal(p.status, 200, JSON.stringify(p.body));
        assert.equal(p.body.nextDueAt, before.nextDueAt);
        // A minute later the status daemon runs: the agent, still on 600 s, is not paged.
        noc.clock.advance(60);
        assert.deepEqual((await sweep({ ...noc.deps, graceS: 20 })).alerted, []);
        // Its next cycle (the wake-up's, or its own) takes the new interval from the catalog.
        const second = await box.run(["once"]);
        assert.equal(second.code, 0, second.stderr + second.stdout);
        const after = await detail(noc, box);
        assert.equal(after.knownIntervalS, 30);
        const status = await box.run(["status"]);
        assert.match(status.stdout, /interval 30 s/, status.stdout);
        // Silent past 30 s and the grace: missing, on the schedule it now has.
        noc.clock.advance(30 + 20 + 2);
        assert.deepEqual((await sweep({ ...noc.deps, graceS: 20 })).alerted, [uid]);
      } finally {
        await box.remove();
      }
    });
  },
});
