/**
 * Issue 20, item 5: the rollout daemon's pass across NOC instances. Two instances on one
 * PostgreSQL database racing each period evaluate every rollout once per period; an instance
 * whose clock disagrees with the database's beyond `settings.clockToleranceS` neither judges nor
 * changes a rollout (as the status daemon does not sweep), and the period stays for an instance
 * whose clock agrees. Clocks are injected (ManualClock `advance`: time passes; `jump`: one
 * instance's wall clock goes wrong).
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { gatedRollouts, named } from "./_rollouts.ts";
import type { Db } from "../noc/db/db.ts";
import { ManualClock } from "../noc/clock.ts";
import { getRollout } from "../noc/services/phased_rollouts.ts";
import { rolloutDaemonJob, rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import type { memoryLogger } from "../protocol/util/log.ts";

/** The rollouts' gate: mails scanned may drop 30 % against control. */
const mailsGate = { path: "app.mailsScanned", maxDropPercent: 30, minAppliances: 3 };

/** Every appliance beats now (on `clock`), all on version 1, reporting `mailsScanned`. */
async function beatAll(db: Db, clock: ManualClock, uids: string[], mails: number) {
  const report = {
    components: Array.from({ length: 10 }, (_, i) => named(`pkg${i}`, "1")),
    apps: { app: { mailsScanned: mails, healthy: true } },
  };
  await db.sql`
    update appliances set last_report = ${report}, last_beat_at = ${clock.now()}
    where uid = any(${uids}::uuid[])`;
}

dbTest(
  "rolloutPass() evaluates once when two instances race",
  async ({ db, another }) => {
    const clock = new ManualClock(Date.UTC(2026, 10, 24, 12, 0, 30));
    const a = await testNoc(db, { clock });
    // The second instance: its own connections, its own clock 5 s behind (within the tolerance:
    // the database's clock is not consulted for a ManualClock that did not jump), in the same
    // minute: both try to evaluate the same period.
    const clockB = new ManualClock(clock.now().getTime() - 5_000);
    const b = await testNoc(another(), { clock: clockB });
    const { uids, ids } = await gatedRollouts(a, 40, 3, mailsGate);
    const periods = 6;
    const evaluatedAt = new Map<number, Set<string>>(ids.map((id) => [id, new Set()]));
    let ran = 0;
    for (let i = 0; i < periods; i++) {
      clock.advance(60);
      clockB.advance(60);
      await beatAll(db, clock, uids, 1000 + i);
      const both = await Promise.all([rolloutPass(a.deps), rolloutPass(b.deps)]);
      for (const p of both) assert.deepEqual(p.errors, []);
      const took = both.filter((p) => !p.skipped);
      // The same period from both: one evaluates it, the other is told it is done.
      assert.equal(both[0]!.periodStart, both[1]!.periodStart);
      assert.equal(took.length, 1, JSON.stringify(both));
      assert.equal(both.find((p) => p.skipped)?.skipped, "done");
      assert.equal(took[0]!.evaluated, ids.length);
      ran += took.length;
      for (const id of ids) {
        const got = await getRollout(db.sql, id);
        assert.ok(got.evaluation, `rollout ${id} evaluated in period ${i}`);
        evaluatedAt.get(id)!.add(got.evaluation.at);
      }
    }
    // One evaluation per period taken, each period taken once, and each rollout evaluated by it.
    const [leases] = await db.sql<{ n: number; distinct: number }>`
      select count(*)::int as n, count(distinct period_start)::int as distinct
      from rollout_evaluations`;
    assert.equal(leases!.n, leases!.distinct);
    assert.equal(leases!.n, ran);
    assert.equal(ran, periods);
    // Samples: one per appliance and beat, however many instances sampled.
    const [dup] = await db.sql<{ n: number }>`
      select count(*)::int as n from (
        select rollout_id, uid, at from rollout_samples group by 1, 2, 3 having count(*) > 1) x`;
    assert.equal(dup!.n, 0);
    const [samples] = await db.sql<{ per: number }>`
      select max(c)::int as per from (
        select count(*) as c from rollout_samples group by rollout_id, uid) x`;
    assert.equal(samples!.per, periods, "each appliance's beat of each period sampled once");
    for (const [id, seen] of evaluatedAt) {
      assert.equal(seen.size, periods, `rollout ${id}: one evaluation per period`);
    }
  },
  { instances: 2 },
);

dbTest(
  "an instance whose clock is off does not advance or fail a rollout, and leaves the period to one whose clock agrees",
  async ({ db, another }) => {
    const clock = new ManualClock();
    const a = await testNoc(db, { clock });
    const skewed = new ManualClock(clock.now());
    const b = await testNoc(another(), { clock: skewed });
    const { uids, ids } = await gatedRollouts(a, 30, 1, mailsGate);
    const id = ids[0]!;
    const members = (await db.sql<{ uid: string }>`
      select uid from rollout_members where rollout_id = ${id} and phase = 0`).map((m) => m.uid);
    const control = uids.filter((u) => !members.includes(u));
    // Three beats a minute apart: members on the release at 40 % of control (the gate fails).
    for (let round = 0; round < 3; round++) {
      clock.advance(60);
      skewed.advance(60);
      const at = clock.now();
      await db.sql`
        update appliances set last_beat_at = ${at}, last_report = ${{
        components: [named("pkg0", "2")],
        apps: { app: { mailsScanned: 400 } },
      }}
        where uid = any(${members}::uuid[])`;
      await db.sql`
        update appliances set last_beat_at = ${at}, last_report = ${{
        components: [named("pkg0", "1")],
        apps: { app: { mailsScanned: 1000 } },
      }}
        where uid = any(${control}::uuid[])`;
      if (round < 2) assert.deepEqual((await rolloutPass(a.deps)).failed, []);
    }
    // B's wall clock jumps 10 minutes ahead (beyond the 30 s tolerance): it runs its cron job
    // and its pass, and does nothing.
    skewed.jump(600);
    const before = await getRollout(db.sql, id);
    const p = await rolloutPass(b.deps);
    assert.equal(p.skipped, "clock_skew");
    assert.equal(p.skewS, 600);
    assert.deepEqual([p.evaluated, p.failed, p.advanced], [0, [], []]);
    await rolloutDaemonJob(b.deps);
    const { lines } = b.deps.log as ReturnType<typeof memoryLogger>;
    const skipped = lines.find((l) => l.event === "rollouts_skipped");
    assert.deepEqual(
      skipped && [skipped.level, skipped["reason"], skipped["skewS"]],
      ["warn", "clock_skew", 600],
      "the job logs why it did nothing",
    );
    const after = await getRollout(db.sql, id);
    assert.equal(after.state, "running");
    assert.deepEqual(after.evaluation, before.evaluation, "not even an evaluation recorded");
    assert.equal(
      (await db.sql<{ n: number }>`
        select count(*)::int as n from notices where kind = 'rollout_failed'`)[0]!.n,
      0,
    );
    // A's clock agrees: it takes the same minute (B did not take it) and fails the rollout once.
    const q = await rolloutPass(a.deps);
    assert.equal(q.skipped, undefined);
    assert.deepEqual(q.failed, [id]);
    assert.equal((await getRollout(db.sql, id)).state, "failed");
    // B, its clock put right, finds the period done.
    skewed.jump(-600);
    assert.equal((await rolloutPass(b.deps)).skipped, "done");
  },
);
