/**
 * Issue 18, item 1: the NOC's own downtime must not page the fleet. An appliance is judged only
 * on time during which the NOC could receive its beats.
 */
import assert from "node:assert/strict";
import {
  count,
  dbTest,
  sampleBeat,
  type TestAppliance,
  type TestNoc,
  testNoc,
} from "./_harness.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";
import { ManualClock } from "../noc/clock.ts";

const settings = { reportIntervalS: 60, graceS: 30 };

async function beatVia(noc: TestNoc, a: TestAppliance, seq: number): Promise<void> {
  const res = await noc.app.request(
    await a.request("POST", "/v1/beats", sampleBeat(seq, noc.clock.now())),
  );
  assert.equal(res.status, 200, await res.clone().text());
}

dbTest(
  "a NOC stopped for 150 s and restarted at hh:mm:46 pages none of five healthy appliances",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 10, 24, 12, 0, 0));
    const start = clock.now().getTime();
    let noc: TestNoc = await testNoc(db, { clock, settings });
    const run = () => sweep({ ...noc.deps, graceS: settings.graceS });
    // Five agents every 60 s, at seconds 0, 12, 24, 36, 48 of each minute; one more box beats
    // once at 0:50 and then dies for real (its deadline, 2:20, falls inside the outage).
    const phases = [0, 12, 24, 36, 48];
    const fleet: TestAppliance[] = [];
    for (let i = 0; i < phases.length; i++) {
      fleet.push(await noc.enrollAppliance({ hostname: `healthy-${i}` }));
    }
    const dead = await noc.enrollAppliance({ hostname: "really-dead" });
    const stopAt = 136; // hh:02:16
    const restartAt = stopAt + 150; // hh:04:46
    const seq = new Map<string, number>();
    let firstAfterRestart: Awaited<ReturnType<typeof run>> | undefined;
    const alertedAt = new Map<string, number>();
    for (let t = 0; t <= 480; t++) {
      clock.set(new Date(start + t * 1000));
      if (t === restartAt) {
        // A new process on the same database (its own instance state): its first sweep.
        noc = await testNoc(db, { clock, settings });
        firstAfterRestart = await run();
      }
      const up = t < stopAt || t >= restartAt;
      if (!up) continue;
      for (let i = 0; i < fleet.length; i++) {
        if (t >= phases[i]! && (t - phases[i]!) % 60 === 0) {
          const a = fleet[i]!;
          const n = (seq.get(a.uid) ?? 0) + 1;
          seq.set(a.uid, n);
          await beatVia(noc, a, n);
        }
      }
      if (t === 50) await beatVia(noc, dead, 1);
      if (t % 60 === 0 && t !== restartAt) {
        for (const uid of (await run()).alerted) alertedAt.set(uid, t);
      }
    }
    assert.ok(firstAfterRestart);
    assert.deepEqual(
      firstAfterRestart.alerted,
      [],
      "the first sweep after the restart pages nobody",
    );
    assert.ok(
      firstAfterRestart.creditedS >= 150,
      `the outage is given back (${firstAfterRestart.creditedS} s)`,
    );
    for (const a of fleet) assert.ok(!alertedAt.has(a.uid), `${a.uid} was never alerted`);
    // Crediting is not an amnesty: the box that really died is still alerted, once its credited
    // deadline (2:20 + the outage) has passed.
    assert.deepEqual([...alertedAt.keys()], [dead.uid]);
    assert.ok(alertedAt.get(dead.uid)! > restartAt);
    assert.equal(await count(db, "alerts"), 1);
    const kinds = (await db.sql<{ kind: string }>`select kind from notices`).map((n) => n.kind);
    assert.deepEqual(kinds, ["missed_heartbeat"], "no page, no recovered notice for the fleet");
  },
);

dbTest(
  "without the downtime credit the same outage would have paged the fleet (control)",
  async ({ db }) => {
    // The same outage, but the NOC recorded its liveness through it: nothing is credited, and
    // appliances whose beats could not arrive are alerted, which is what the credit prevents.
    const clock = new ManualClock();
    const noc = await testNoc(db, { clock, settings });
    const a = await noc.enrollAppliance();
    await a.beat();
    const run = () => sweep({ ...noc.deps, graceS: settings.graceS });
    assert.deepEqual((await run()).alerted, []);
    clock.advance(150);
    const r = await run();
    assert.equal(r.creditedS, 0, "one instance alive throughout: no gap");
    assert.deepEqual(r.alerted, [a.uid]);
  },
);

dbTest(
  "instances restarting together after downtime credit the gap once",
  async ({ db, another }) => {
    const clock = new ManualClock();
    const first = await testNoc(db, { clock, settings });
    const a = await first.enrollAppliance();
    await a.beat();
    await sweep({ ...first.deps, graceS: settings.graceS });
    const due0 = (await db.sql<{ d: Date }>`select next_due_at as d from appliances`)[0]!.d;
    clock.advance(300);
    const b = await testNoc(another(), { clock, settings });
    const c = await testNoc(another(), { clock, settings });
    const results = await Promise.all([
      sweep({ ...b.deps, graceS: settings.graceS }),
      sweep({ ...c.deps, graceS: settings.graceS }),
    ]);
    assert.deepEqual(results.map((r) => r.creditedS).sort((x, y) => x - y), [0, 300]);
    assert.deepEqual(results.flatMap((r) => r.alerted), []);
    const due1 = (await db.sql<{ d: Date }>`select next_due_at as d from appliances`)[0]!.d;
    assert.equal(due1.getTime() - due0.getTime(), 300_000);
  },
  { instances: 2 },
);

dbTest(
  "instances with clocks off in opposite directions, one restarting often, credit no downtime the NOC did not have",
  async ({ db, another }) => {
    // Both within the 30 s tolerance: A 20 s behind, B 20 s ahead. A stays up and sweeps; B
    // starts afresh every 30 s (a crash loop, a rolling deploy). Liveness is on the database's
    // timeline, so B never mistakes A's records for old ones and credits nothing.
    const start = Date.UTC(2026, 10, 24, 12, 0, 0);
    const clockA = new ManualClock(start);
    clockA.jump(-20);
    const clockB = new ManualClock(start);
    clockB.jump(20);
    const a = await testNoc(db, { clock: clockA, settings: { ...settings, clockToleranceS: 30 } });
    const dead = await a.enrollAppliance({ hostname: "dead-box" });
    await dead.beat();
    const dbB = another();
    let alertedAt: number | null = null;
    let credited = 0;
    for (let t = 10; t <= 300; t += 10) {
      clockA.advance(10);
      clockB.advance(10);
      if (t % 30 === 0) {
        const b = await testNoc(dbB, {
          clock: clockB,
          settings: { ...settings, clockToleranceS: 30 },
        });
        const rb = await sweep({ ...b.deps, graceS: settings.graceS });
        credited += rb.creditedS;
        if (rb.alerted.includes(dead.uid)) alertedAt ??= t;
      }
      const r = await sweep({ ...a.deps, graceS: settings.graceS });
      if (r.alerted.includes(dead.uid)) alertedAt ??= t;
    }
    assert.equal(credited, 0, "no downtime credited while A was up");
    assert.ok(alertedAt !== null && alertedAt <= 100, `the dead box is paged (at ${alertedAt} s)`);
  },
);
