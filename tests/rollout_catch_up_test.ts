/**
 * Issue 20, item 5: a rollout daemon pass writes at most its budget of new samples. After a pause
 * in which every appliance beat, the metric-gated rollouts beyond the budget wait for later passes
 * — neither sampled nor judged nor recorded — and, when their turn comes, sample every beat since
 * they were last evaluated: none is judged on a sample short of beats. PGlite, and PostgreSQL with
 * TEST_DATABASE_URL; an injected clock.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { seedScenario } from "./_site.ts";
import type { Db } from "../noc/db/db.ts";
import { ManualClock } from "../noc/clock.ts";
import { createRollout, getRollout } from "../noc/services/phased_rollouts.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import { type PendingSamples, spreadSamples } from "../noc/services/rollout_gates.ts";

const ref = (name: string, version: string) => ({
  kind: "package" as const,
  app: "app",
  name,
  version,
});

/** `n` appliances and `k` rollouts of version 2 of pkg0..pkg{k-1}: a metric-gated 10-canary. */
async function fleetWithRollouts(db: Db, noc: TestNoc, n: number, k: number) {
  const names = Array.from({ length: k }, (_, i) => `pkg${i}`);
  const appliances = Array.from({ length: n }, (_, i) => ({
    uid: crypto.randomUUID(),
    model: "vs-2000",
    channel: "stable",
    site: `s${i % 2}`,
    tags: [],
    revoked: false,
  }));
  await seedScenario(db.sql, {
    appliances,
    components: names.flatMap((name) => [ref(name, "1"), ref(name, "2")]),
    assignments: names.map((name) => ({
      ...ref(name, "1"),
      targetType: "all",
      targetValue: null,
      rolloutPercent: 100,
      paused: false,
      createdAt: new Date("2026-01-01T00:00:00Z"),
    })),
    deliveries: [],
    holds: [],
  });
  const ids: number[] = [];
  for (const name of names) {
    const r = await createRollout(noc.deps, {
      component: ref(name, "2"),
      target: { type: "all" },
      phases: [
        {
          count: 10,
          soakS: 3600,
          gates: {
            metric: { path: "app.mailsScanned", maxDropPercent: 30, minAppliances: 3, minBeats: 1 },
          },
        },
        { percent: 100, soakS: 0 },
      ],
    }, "alice");
    ids.push(r.id);
  }
  return { uids: appliances.map((a) => a.uid), ids, k };
}

/** Every appliance beats now, on version 1 of every package, reporting `mailsScanned`. */
async function beatAll(db: Db, clock: ManualClock, uids: string[], k: number) {
  const report = {
    components: Array.from({ length: k }, (_, i) => ref(`pkg${i}`, "1")),
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
    const { uids, ids, k } = await fleetWithRollouts(db, noc, 30, 3);
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
