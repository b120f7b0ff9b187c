/**
 * Issue 20, item 5: a rollout daemon pass writes at most its budget of new samples. After a pause
 * in which every appliance beat, the metric-gated rollouts beyond the budget wait for later passes
 * — neither sampled nor judged nor recorded — and, when their turn comes, sample every beat since
 * they were last evaluated: none is judged on a sample short of beats. PGlite, and PostgreSQL with
 * TEST_DATABASE_URL; an injected clock.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { gatedRollouts, named } from "./_rollouts.ts";
import type { Db } from "../noc/db/db.ts";
import { ManualClock } from "../noc/clock.ts";
import { getRollout } from "../noc/services/phased_rollouts.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import { type PendingSamples, spreadSamples } from "../noc/services/rollout_gates.ts";

/** The rollouts' gate: mails scanned may drop 30 % against control, judged from one beat. */
const mailsGate = { path: "app.mailsScanned", maxDropPercent: 30, minAppliances: 3, minBeats: 1 };

/** Every appliance beats now, on version 1 of every package, reporting `mailsScanned`. */
async function beatAll(db: Db, clock: ManualClock, uids: string[], k: number) {
  const report = {
    components: Array.from({ length: k }, (_, i) => named(`pkg${i}`, "1")),
    apps: { app: { mailsScanned: 1000, healthy: true } },
  };
  await db.sql`
    update appliances set last_report = ${report}, last_beat_at = ${clock.now()}
    where uid = any(${uids}::uuid[])`;
}

dbTest(
  "after a pause, rollouts beyond a pass's sample budget wait unjudged and catch up with every beat since",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 10, 24, 12, 0, 30));
    const noc = await testNoc(db, { clock });
    const k = 3;
    const { uids, ids } = await gatedRollouts(noc, 30, k, mailsGate);
    clock.advance(60);
    await beatAll(db, clock, uids, k);
    // Each rollout has 30 judged appliances (10 members, 20 control) with a beat to sample: a
    // budget of 70 takes two rollouts, the third waits.
    const first = await rolloutPass(noc.deps, { samplesPerPass: 70 });
    assert.deepEqual(first.deferred, [ids[2]]);
    assert.equal(first.evaluated, 2);
    assert.equal(first.sampled, 60);
    const waiting = await getRollout(db.sql, ids[2]!);
    assert.equal(waiting.evaluation, null, "a rollout that waits is not judged");
    const [none] = await db.sql<{ n: number }>`
      select count(*)::int as n from rollout_samples where rollout_id = ${ids[2]!}`;
    assert.equal(none!.n, 0);
    // The next minute: the waiting rollout goes first and samples the beat it missed; the others
    // have nothing new (nobody beat since).
    clock.advance(60);
    const second = await rolloutPass(noc.deps, { samplesPerPass: 70 });
    assert.deepEqual(second.deferred, []);
    assert.equal(second.evaluated, 3);
    assert.equal(second.sampled, 30);
    const caught = await getRollout(db.sql, ids[2]!);
    assert.equal(caught.evaluation!.figures.metric!.control.appliances, 20);
    // Every appliance beats again: the longest unevaluated go first — the two judged a minute
    // before the third.
    clock.advance(60);
    await beatAll(db, clock, uids, k);
    const third = await rolloutPass(noc.deps, { samplesPerPass: 70 });
    assert.deepEqual(third.deferred, [ids[2]]);
    assert.equal(third.sampled, 60);
  },
);

Deno.test("spreadSamples() takes the longest unevaluated first, the first whatever its size", () => {
  const pending = (counts: [number, number, Date | null][]): PendingSamples => ({
    ids: [],
    uids: [],
    counts: new Map(counts.map(([id, n]) => [id, n])),
    evaluatedAt: new Map(counts.map(([id, , at]) => [id, at])),
  });
  const t = (m: number) => new Date(Date.UTC(2026, 0, 1, 0, m));
  assert.deepEqual(
    [...spreadSamples(pending([[1, 50, t(3)], [2, 40, t(1)], [3, 30, null], [4, 10, t(2)]]), 80)],
    [1],
  );
  assert.deepEqual([...spreadSamples(pending([[1, 500, null], [2, 1, t(1)]]), 100)], [2]);
  assert.deepEqual([...spreadSamples(pending([[1, 50, null], [2, 50, null]]), 100)], []);
});
