/**
 * Issue 20: phased rollouts gated on reported health, at the service level (PGlite, and
 * PostgreSQL with TEST_DATABASE_URL), with an injected clock: phase sizes, automatic advance
 * after the soak time, the operator's actions and their events, the error threshold, the gates on
 * plug-in health, a metric against control and beat regularity, one notice however many passes
 * race, rollback through the catalog engine, and plain assignments left as they were.
 *
 * Fleets are written straight into the tables (tests/_site.ts), and reports as the beat route
 * stores them (`appliances.last_report`, `last_beat_at`), except in the metric tests, where the
 * appliances enrol and beat through the real signed HTTP routes.
 */
import assert from "node:assert/strict";
import { dbTest, type TestAppliance, testNoc } from "./_harness.ts";
import { seedScenario } from "./_site.ts";
import type { Db } from "../noc/db/db.ts";
import { ManualClock } from "../noc/clock.ts";
import {
  advanceRollout,
  cancelRollout,
  createRollout,
  daemonActor,
  getRollout,
  listRollouts,
  pauseRollout,
  resumeRollout,
  rolloutMembers,
  rolloutOfAssignment,
} from "../noc/services/phased_rollouts.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import {
  fineBucket,
  fineBucketLimit,
  resolveCatalog,
  rolloutBucket,
} from "../noc/services/catalog_engine.ts";
import {
  catalogVersion,
  deliver,
  fleet,
  membersByPhase,
  notices,
  outcome,
  pass,
  plan,
  ref,
  refused,
  report,
  started,
} from "./_rollouts.ts";

dbTest(
  "a rollout starts each phase with exactly the appliances its count or percentage asks for, and widening keeps them",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 40);
    const r = await createRollout(
      noc.deps,
      plan([{ count: 7, soakS: 0 }, { percent: 25, soakS: 0 }, { percent: 100, soakS: 0 }], {
        note: "canary first",
      }),
      "alice",
    );
    assert.equal(r.state, "running");
    assert.equal(r.phase, 0);
    assert.equal(r.previousVersion, "1", "the version the target falls back to");
    assert.deepEqual(r.phases.map((p) => p.members), [7, 0, 0]);
    assert.equal(r.phases[0]!.started!.targetSize, 40);
    assert.equal(r.phases[0]!.started!.wanted, 7);
    assert.equal(r.control, 33, "every appliance not in the rollout, up to 1,000");
    // The limit is the 7th smallest fine bucket + 1: exactly the 7 lowest are in.
    const buckets = uids.map((u) => fineBucket(u, "package", "app", "pkg")).sort((a, b) => a - b);
    assert.equal(r.assignment.phaseLimit, buckets[6]! + 1);
    assert.equal(r.assignment.paused, false);
    const inFirst = new Set((await membersByPhase(noc, r.id))[0]);
    for (const uid of uids) {
      assert.equal(await catalogVersion(noc, uid), inFirst.has(uid) ? "2" : "1", uid);
    }
    assert.deepEqual(await rolloutOfAssignment(db.sql, r.assignmentId), {
      id: r.id,
      state: "running",
    });

    const second = await advanceRollout(noc.deps, r.id, "bob");
    assert.equal(second.phase, 1);
    assert.deepEqual(second.phases.map((p) => p.members), [7, 3, 0], "ceil(25 % of 40) = 10");
    assert.equal(second.phases[1]!.started!.lowerLimit, r.assignment.phaseLimit);
    assert.equal(second.assignment.phaseLimit, buckets[9]! + 1);
    const byPhase = await membersByPhase(noc, r.id);
    for (const uid of byPhase[0]!) assert.ok(!byPhase[1]!.includes(uid), "never in two phases");

    const last = await advanceRollout(noc.deps, r.id, "bob");
    assert.deepEqual(last.phases.map((p) => p.members), [7, 3, 30]);
    assert.equal(last.assignment.phaseLimit, fineBucketLimit);
    assert.equal(last.control, 0);
    for (const uid of uids) assert.equal(await catalogVersion(noc, uid), "2");
    const done = await advanceRollout(noc.deps, r.id, "bob");
    assert.equal(done.state, "completed");
    assert.equal(done.assignment.paused, false, "a completed rollout keeps its release assigned");
    assert.deepEqual(
      done.events.map((e) => `${e.kind}:${e.actor}`),
      [
        "created:alice",
        "phase_started:alice",
        "advanced:bob",
        "phase_started:bob",
        "advanced:bob",
        "phase_started:bob",
        "completed:bob",
      ],
    );
    assert.equal(done.events[0]!.detail["note"], "canary first");

    // A percentage of a site: ceil(10 % of 20) = 2 appliances of that site, none elsewhere.
    await db.sql`insert into components (kind, app, name, version, blob_id, size, sha256,
      content_sha256, created_at) select kind, app, name, '3', blob_id, size, sha256, 'x3',
      created_at from components where app = 'app' and version = '2'`;
    const site = await createRollout(noc.deps, {
      component: ref("3"),
      target: { type: "site", value: "s1" },
      phases: [{ percent: 10, soakS: 0 }, { percent: 100, soakS: 0 }],
    }, "alice");
    assert.equal(site.phases[0]!.started!.targetSize, 20);
    assert.equal(site.phases[0]!.members, 2);
    assert.equal(site.previousVersion, "2", "the completed rollout's assignment is the fallback");
    const list = await listRollouts(db.sql, { limit: 1 });
    assert.deepEqual(list.items.map((i) => i.id), [site.id]);
    const rest = await listRollouts(db.sql, { limit: 1, cursor: list.nextCursor! });
    assert.deepEqual(rest.items.map((i) => i.id), [r.id]);
    assert.equal(rest.nextCursor, null);
  },
);

dbTest(
  "a phase whose condition holds advances by itself after its soak time, and the last completes the rollout",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 20);
    const r = await createRollout(
      noc.deps,
      plan([{ count: 5, soakS: 3600 }, { percent: 100, soakS: 0 }]),
      "alice",
    );
    const canaries = (await membersByPhase(noc, r.id))[0]!;
    const others = uids.filter((u) => !canaries.includes(u));
    await report(noc, uids, "1");
    let p = await pass(noc);
    assert.deepEqual(p.advanced, []);
    let got = await getRollout(db.sql, r.id);
    assert.equal(got.heldSince, null);
    assert.equal(got.evaluation!.figures.healthy, 0);
    assert.match(got.evaluation!.judgement.waiting.join(), /0 of 5 healthy/);

    await deliver(noc, canaries, "2");
    await report(noc, canaries, "2");
    p = await pass(noc);
    got = await getRollout(db.sql, r.id);
    const heldSince = got.heldSince;
    assert.equal(heldSince, noc.clock.now().toISOString(), "the condition holds from now");
    assert.equal(got.evaluation!.figures.install.states.running, 5);
    assert.equal(
      got.evaluation!.advanceAt,
      new Date(noc.clock.now().getTime() + 3600_000).toISOString(),
    );
    noc.clock.advance(1800);
    p = await pass(noc);
    assert.deepEqual(p.advanced, [], "not before the soak time");
    assert.equal((await getRollout(db.sql, r.id)).heldSince, heldSince, "held since then");
    noc.clock.advance(1800);
    p = await pass(noc);
    assert.deepEqual(p.advanced, [r.id]);
    got = await getRollout(db.sql, r.id);
    assert.equal(got.phase, 1);
    const advanced = got.events.find((e) => e.kind === "advanced")!;
    assert.equal(advanced.actor, daemonActor);
    assert.equal(advanced.detail["auto"], true);
    assert.ok(advanced.detail["figures"], "the passed phase's figures stay in its event");
    assert.equal(got.evaluation, null, "the new phase is not evaluated yet");
    assert.deepEqual((await membersByPhase(noc, r.id))[1]!.sort(), others.sort());

    // The last phase: everyone on the release and healthy, no soak: completed at the next pass.
    p = await pass(noc);
    assert.deepEqual(p.completed, [], "the newcomers do not run it yet");
    await deliver(noc, others, "2");
    await report(noc, others, "2");
    p = await pass(noc);
    assert.deepEqual(p.completed, [r.id]);
    got = await getRollout(db.sql, r.id);
    assert.equal(got.state, "completed");
    assert.equal(got.events.at(-1)!.kind, "completed");
    assert.equal((await pass(noc)).evaluated, 0, "an ended rollout is not evaluated");
  },
);

dbTest(
  "pause, resume, cancel and advance are recorded with who did them; a wrong state answers 409 rollout_state",
  async ({ db }) => {
    const { noc } = await fleet(db, 12);
    const r = await createRollout(
      noc.deps,
      plan([{ count: 2, soakS: 60 }, { count: 6, soakS: 60 }, { percent: 100, soakS: 0 }]),
      "alice",
    );
    await refused(
      createRollout(noc.deps, plan([{ percent: 100, soakS: 0 }]), "bob"),
      409,
      "rollout_exists",
    );
    const paused = await pauseRollout(noc.deps, r.id, "bob", "looks odd");
    assert.equal(paused.state, "paused");
    assert.equal(paused.assignment.paused, true);
    assert.match(paused.assignment.pausedReason!, /paused by bob/);
    const e1 = await refused(pauseRollout(noc.deps, r.id, "bob"), 409, "rollout_state");
    assert.deepEqual(e1.details, { state: "paused" });
    await refused(advanceRollout(noc.deps, r.id, "bob"), 409, "rollout_state");
    assert.equal((await pass(noc)).evaluated, 0, "a paused rollout is not evaluated");
    const resumed = await resumeRollout(noc.deps, r.id, "carol");
    assert.equal(resumed.assignment.paused, false);
    await refused(resumeRollout(noc.deps, r.id, "carol"), 409, "rollout_state");
    const advanced = await advanceRollout(noc.deps, r.id, "dave", "enough soak");
    assert.equal(advanced.phase, 1);
    assert.equal(advanced.revision, r.revision + 3);
    const cancelled = await cancelRollout(noc.deps, r.id, "erin");
    assert.equal(cancelled.state, "cancelled");
    assert.equal(cancelled.assignment.paused, true);
    assert.ok(cancelled.endedAt);
    for (const action of [pauseRollout, resumeRollout, cancelRollout, advanceRollout]) {
      await refused(action(noc.deps, r.id, "frank"), 409, "rollout_state");
    }
    await refused(pauseRollout(noc.deps, 999_999, "frank"), 404, "not_found");
    await refused(getRollout(db.sql, 999_999), 404, "not_found");
    assert.deepEqual(
      cancelled.events.map((e) => [e.kind, e.actor, e.detail["note"] ?? null]),
      [
        ["created", "alice", null],
        ["phase_started", "alice", null],
        ["paused", "bob", "looks odd"],
        ["resumed", "carol", null],
        ["advanced", "dave", "enough soak"],
        ["phase_started", "dave", null],
        ["cancelled", "erin", null],
      ],
    );
    // Once it has ended, another rollout of the component may start.
    const next = await createRollout(noc.deps, plan([{ percent: 100, soakS: 0 }]), "bob");
    assert.equal(next.state, "running");
    // Plans and targets that cannot run are refused, naming the field.
    const bad = await refused(
      createRollout(noc.deps, {
        ...plan([{ percent: 50, soakS: 0 }, { percent: 10, soakS: 0 }]),
        component: ref("9"),
      }, "x"),
      400,
      "invalid_body",
    );
    assert.match(JSON.stringify(bad.details), /phases\.1\.percent/);
    await refused(
      createRollout(noc.deps, { ...plan([{ count: 1, soakS: 0 }]), component: ref("9") }, "x"),
      404,
      "not_found",
    );
    await refused(
      createRollout(noc.deps, {
        ...plan([{ count: 1, soakS: 0 }]),
        component: { kind: "package", app: "other", name: "o", version: "1" },
        target: { type: "site", value: "nowhere" },
      }, "x"),
      400,
      "invalid_body",
    );
    await refused(
      createRollout(noc.deps, {
        ...plan([{ count: 1, soakS: 0 }]),
        component: { kind: "package", app: "other", name: "o", version: "1" },
        rollback: true,
      }, "x"),
      400,
      "invalid_body",
    );
  },
);

dbTest(
  "a canary phase where 3 of 10 fail to install stops at its error threshold, with one notice",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 40);
    const r = await createRollout(
      noc.deps,
      plan([{ count: 10, soakS: 600 }, { percent: 100, soakS: 0 }]),
      "alice",
    );
    await report(noc, uids, "1");
    const canaries = (await membersByPhase(noc, r.id))[0]!;
    assert.equal(canaries.length, 10);
    await deliver(noc, canaries, "2");
    noc.clock.advance(30);
    // Two fail first: 2 of 2 counted is under the minimum sample of 5, so nothing is judged.
    await outcome(noc, canaries.slice(0, 2), "2", "failed");
    assert.deepEqual((await pass(noc)).failed, []);
    await report(noc, canaries.slice(3), "2");
    await outcome(noc, canaries.slice(3), "2", "installed");
    noc.clock.advance(1);
    await outcome(noc, canaries.slice(2, 3), "2", "failed");
    const p = await pass(noc);
    assert.deepEqual(p.failed, [r.id]);
    const got = await getRollout(db.sql, r.id);
    assert.equal(got.state, "failed");
    assert.equal(got.assignment.paused, true);
    assert.equal(got.assignment.excludedFrom, null, "no rollback asked for");
    const failed = got.events.find((e) => e.kind === "failed")!;
    assert.equal(failed.detail["gate"], "stop");
    assert.equal(failed.actor, daemonActor);
    const sent = await notices(noc);
    assert.equal(sent.length, 1);
    assert.match(sent[0]!.text, /failed on stop: 3 of 10 failed \(30 %; threshold 20 %/);
    assert.deepEqual((await pass(noc)).failed, [], "a failed rollout is not judged again");
    assert.equal((await notices(noc)).length, 1);
    // The members list shows who failed.
    const list = await rolloutMembers(db.sql, r.id, { phase: 0, states: ["failed"], limit: 100 });
    assert.deepEqual(list.items.map((m) => m.uid).sort(), canaries.slice(0, 3).sort());
    const all = await rolloutMembers(db.sql, r.id, { limit: 4 });
    assert.equal(all.items.length, 4);
    const page2 = await rolloutMembers(db.sql, r.id, { limit: 100, after: all.nextAfter! });
    assert.equal(all.items.length + page2.items.length, 10);
  },
);

dbTest(
  "a plug-in health gate fails the phase when more of its appliances report unhealthy than it allows",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 30);
    const r = await createRollout(
      noc.deps,
      plan([
        { count: 10, soakS: 0, gates: { pluginHealth: { maxUnhealthyPercent: 30 } } },
        { percent: 100, soakS: 0 },
      ]),
      "alice",
    );
    const canaries = (await membersByPhase(noc, r.id))[0]!;
    await report(noc, uids, "1");
    noc.clock.advance(10);
    await report(noc, canaries.slice(0, 7), "2", { app: { healthy: true } });
    await report(noc, canaries.slice(7), "2", { app: { healthy: false } });
    let p = await pass(noc);
    assert.deepEqual(p.failed, [], "3 of 10 is within 30 %");
    const got = await getRollout(db.sql, r.id);
    assert.equal(got.evaluation!.figures.unhealthy, 3);
    assert.equal(got.evaluation!.figures.healthy, 7);
    await report(noc, canaries.slice(6, 7), "2", { app: { healthy: false } });
    p = await pass(noc);
    assert.deepEqual(p.failed, [r.id]);
    const [n] = await notices(noc);
    assert.match(n!.text, /pluginHealth: 4 of 10 reporting appliances unhealthy \(40 %/);
  },
);

dbTest(
  "the plug-in health gate counts only members running the release: one still on the old version reporting unhealthy fails nothing",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 30);
    const r = await createRollout(
      noc.deps,
      plan([
        { count: 10, soakS: 0, gates: { pluginHealth: { maxUnhealthyPercent: 10 } } },
        { percent: 100, soakS: 0 },
      ]),
      "alice",
    );
    const canaries = (await membersByPhase(noc, r.id))[0]!;
    await report(noc, uids, "1");
    noc.clock.advance(10);
    // Eight run the release and are healthy; two have not installed it yet and report the
    // application (on the old version) unhealthy.
    await report(noc, canaries.slice(0, 8), "2", { app: { healthy: true } });
    await report(noc, canaries.slice(8), "1", { app: { healthy: false } });
    let p = await pass(noc);
    assert.deepEqual(p.failed, [], "the old version's health says nothing about the release");
    const got = await getRollout(db.sql, r.id);
    assert.equal(got.evaluation!.figures.reporting, 8);
    assert.equal(got.evaluation!.figures.unhealthy, 0);
    // One on the release reporting unhealthy: 1 of 9 is over 10 %.
    noc.clock.advance(10);
    await report(noc, canaries.slice(8, 9), "2", { app: { healthy: false } });
    p = await pass(noc);
    assert.deepEqual(p.failed, [r.id]);
    const [n] = await notices(noc);
    assert.match(n!.text, /pluginHealth: 1 of 9 reporting appliances unhealthy \(11\.1 %/);
  },
);

dbTest(
  "a beat-regularity gate fails the phase when its appliances miss beats more often than control",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 30);
    const r = await createRollout(
      noc.deps,
      plan([
        { count: 10, soakS: 3600, gates: { beatRegularity: { maxExtraMissedPercent: 20 } } },
        { percent: 100, soakS: 0 },
      ]),
      "alice",
    );
    const canaries = (await membersByPhase(noc, r.id))[0]!;
    const control = uids.filter((u) => !canaries.includes(u));
    await report(noc, uids, "1");
    await report(noc, canaries, "2");
    // An alert from before the phase counts for nobody; one control appliance missed a beat.
    const missed = async (who: string[], at: Date) => {
      await db.sql`insert into alerts (kind, uid, opened_at, resolved_at, notified_at)
        select 'missed_heartbeat', u, ${at}, ${at}, ${at} from unnest(${who}::uuid[]) u`;
    };
    await missed(canaries, new Date(noc.clock.now().getTime() - 86400_000));
    await missed(control.slice(0, 2), noc.clock.now());
    await missed(canaries.slice(0, 3), noc.clock.now());
    let p = await pass(noc);
    assert.deepEqual(p.failed, [], "30 % vs 10 % is 20 points: not more than allowed");
    let got = await getRollout(db.sql, r.id);
    assert.deepEqual(got.evaluation!.figures.beats, {
      members: 10,
      membersMissed: 3,
      control: 20,
      controlMissed: 2,
    });
    await missed(canaries.slice(3, 4), noc.clock.now());
    p = await pass(noc);
    assert.deepEqual(p.failed, [r.id]);
    got = await getRollout(db.sql, r.id);
    assert.equal(got.events.find((e) => e.kind === "failed")!.detail["gate"], "beatRegularity");
  },
);

/**
 * 30 appliances enrolled and beating through the real routes; app/pkg 1 assigned to all; a
 * rollout of 2 whose canary phase (10 appliances) gates on `app.mailsScanned` at most 30 % below
 * control. Three rounds of beats a minute apart (members on 2 report `canary`, control on 1
 * reports 1000), a pass after each.
 */
async function metricRollout(db: Db, canary: (i: number) => number) {
  const noc = await testNoc(db, { clock: new ManualClock() });
  await seedScenario(db.sql, {
    appliances: [],
    components: [ref("1"), ref("2")],
    assignments: [{
      ...ref("1"),
      targetType: "all",
      targetValue: null,
      rolloutPercent: 100,
      paused: false,
      createdAt: started,
    }],
    deliveries: [],
    holds: [],
  });
  const all: TestAppliance[] = [];
  for (let i = 0; i < 30; i++) all.push(await noc.enrollAppliance({ hostname: `gw-${i}` }));
  const r = await createRollout(
    noc.deps,
    plan([
      {
        count: 10,
        soakS: 600,
        gates: { metric: { path: "app.mailsScanned", maxDropPercent: 30 } },
      },
      { percent: 100, soakS: 0 },
    ], { rollback: true }),
    "alice",
  );
  const canaries = new Set((await membersByPhase(noc, r.id))[0]);
  const results = [];
  for (let round = 0; round < 3; round++) {
    noc.clock.advance(60);
    for (const [i, a] of all.entries()) {
      const member = canaries.has(a.uid);
      const res = await a.beat({
        components: [ref(member ? "2" : "1")],
        apps: { app: { mailsScanned: member ? canary(i + round) : 1000 + (i % 7) * 10 } },
      });
      assert.ok(res.uid, JSON.stringify(res));
    }
    results.push(await rolloutPass(noc.deps));
  }
  return { noc, r, all, canaries, results };
}

dbTest(
  "a canary whose metric is 60 % below control fails at its gate, pages once and, with rollback, returns to the previous version",
  async ({ db }) => {
    const { noc, r, all, canaries, results } = await metricRollout(db, (i) => 400 + (i % 5));
    assert.deepEqual(results.map((p) => p.failed), [[], [], [r.id]], "judged at the 3rd beat");
    assert.ok(results[0]!.sampled >= 30, "members and control sampled");
    const got = await getRollout(db.sql, r.id);
    assert.equal(got.state, "failed");
    const metric = got.evaluation!.figures.metric!;
    assert.equal(metric.phase.appliances, 10);
    assert.equal(metric.control.appliances, 20);
    assert.ok(metric.ratio! > 0.35 && metric.ratio! < 0.45, String(metric.ratio));
    assert.deepEqual(got.events.slice(-2).map((e) => e.kind), ["failed", "rolled_back"]);
    assert.equal(got.assignment.excludedFrom, 0, "the canary phase's lower limit");
    const sent = await notices(noc);
    assert.equal(sent.length, 1);
    assert.match(sent[0]!.text, /failed on metric: app\.mailsScanned: median 40\d/);
    assert.match(sent[0]!.text, /% below control; at most 30 % below\)/);
    assert.match(sent[0]!.text, /go back to 1$/);
    // Every canary's catalog lists the previous version again; control never left it.
    for (const a of all) assert.equal(await catalogVersion(noc, a.uid), "1", a.uid);
    assert.equal(canaries.size, 10);
  },
);

dbTest(
  "a canary whose metric is on a par with control passes its gate and advances after the soak time",
  async ({ db }) => {
    const { noc, r, results } = await metricRollout(db, (i) => 960 + (i % 5) * 10);
    assert.deepEqual(results.map((p) => p.failed), [[], [], []]);
    let got = await getRollout(db.sql, r.id);
    const metric = got.evaluation!.judgement.gates.find((g) => g.gate === "metric");
    assert.ok(metric?.judged, JSON.stringify(got.evaluation));
    assert.ok(got.heldSince, "held once the metric was judged");
    noc.clock.advance(600);
    const p = await rolloutPass(noc.deps);
    assert.deepEqual(p.advanced, [r.id]);
    got = await getRollout(db.sql, r.id);
    assert.equal(got.phase, 1);
    assert.equal((await notices(noc)).length, 0);
  },
);

dbTest(
  "two daemon passes that race fail a rollout once and page once",
  async ({ db, another }) => {
    const { noc, uids } = await fleet(db, 20);
    const r = await createRollout(
      noc.deps,
      plan([{ count: 10, soakS: 0 }, { percent: 100, soakS: 0 }]),
      "alice",
    );
    const canaries = (await membersByPhase(noc, r.id))[0]!;
    await report(noc, uids, "1");
    await deliver(noc, canaries, "2");
    noc.clock.advance(1);
    await outcome(noc, canaries.slice(0, 5), "2", "failed");
    noc.clock.advance(60);
    const second = { ...noc.deps, db: another() };
    // The same period, from two instances: one evaluates it.
    const same = await Promise.all([rolloutPass(noc.deps), rolloutPass(second)]);
    assert.deepEqual(same.map((p) => p.skipped ?? "ran").sort(), ["done", "ran"]);
    assert.deepEqual(same.flatMap((p) => p.failed), [r.id]);
    assert.equal((await notices(noc)).length, 1);
    // Passes of two periods at once (instances whose clocks straddle a minute) still fail once.
    const r2 = await createRollout(
      noc.deps,
      {
        ...plan([{ count: 10, soakS: 0 }, { percent: 100, soakS: 0 }]),
        component: ref("1"),
        previousVersion: "2",
      },
      "alice",
    );
    assert.equal(r2.phases[0]!.members, 10);
    const second2 = (await membersByPhase(noc, r2.id))[0]!;
    await deliver(noc, second2, "1");
    await report(noc, second2, null);
    noc.clock.advance(1);
    await outcome(noc, second2, "1", "failed");
    noc.clock.advance(60);
    const later = new ManualClock(noc.clock.now().getTime() + 60_000);
    const racing = await Promise.all([
      rolloutPass(noc.deps),
      rolloutPass({ ...second, clock: later }),
    ]);
    assert.deepEqual(racing.flatMap((p) => p.failed), [r2.id]);
    assert.deepEqual(racing.map((p) => p.skipped ?? "ran"), ["ran", "ran"]);
    assert.equal((await notices(noc)).length, 2, "one notice per failed rollout");
  },
);

dbTest(
  "with rollback, a failed later phase sends its appliances back, even those already sent the release, while earlier phases keep it",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 20);
    const r = await createRollout(
      noc.deps,
      plan([{ count: 4, soakS: 0 }, { count: 12, soakS: 0 }, { percent: 100, soakS: 0 }], {
        rollback: true,
      }),
      "alice",
    );
    await advanceRollout(noc.deps, r.id, "bob");
    const [first, second] = await membersByPhase(noc, r.id);
    assert.deepEqual([first!.length, second!.length], [4, 8]);
    // Both phases were sent the release and their catalogs list it (what keeps a paused release).
    const members = [...first!, ...second!];
    await deliver(noc, members, "2");
    await db.sql`
      insert into catalog_listings (uid, component_id, first_listed_at, current)
      select u, c.id, ${noc.clock.now()}, true from unnest(${members}::uuid[]) u
      join components c on c.app = 'app' and c.name = 'pkg' and c.version = '2'`;
    await report(noc, uids, "1");
    await report(noc, first!, "2");
    noc.clock.advance(1);
    await outcome(noc, second!, "2", "failed");
    const p = await pass(noc);
    assert.deepEqual(p.failed, [r.id]);
    const got = await getRollout(db.sql, r.id);
    assert.equal(got.assignment.excludedFrom, got.phases[1]!.started!.lowerLimit);
    for (const uid of first!) assert.equal(await catalogVersion(noc, uid), "2", "kept");
    for (const uid of second!) assert.equal(await catalogVersion(noc, uid), "1", "rolled back");
    for (const uid of uids.filter((u) => !members.includes(u))) {
      assert.equal(await catalogVersion(noc, uid), "1");
    }
  },
);

dbTest(
  "plain assignments choose by their percentage bucket as before, beside a phased rollout",
  async ({ db }) => {
    const at = new Date("2026-03-01T00:00:00Z");
    const { noc, uids } = await fleet(db, 40, [{
      kind: "package",
      app: "other",
      name: "o",
      version: "1",
      targetType: "all",
      targetValue: null,
      rolloutPercent: 50,
      paused: false,
      createdAt: at,
    }]);
    await createRollout(noc.deps, plan([{ count: 5, soakS: 0 }]), "alice");
    for (const uid of uids) {
      const [a] = await db.sql<
        { uid: string; model: string; site: string | null; channel: string; tags: string[] }
      >`select uid, model, site, channel, tags from appliances where uid = ${uid}`;
      const other = (await resolveCatalog(db.sql, a!)).find((c) => c.app === "other");
      assert.equal(other !== undefined, rolloutBucket(uid, "package", "other", "o") < 50, uid);
    }
    const [row] = await db.sql<{ phase_limit: number | null; excluded_from: number | null }>`
      select phase_limit, excluded_from from assignments where app = 'other'`;
    assert.deepEqual(row, { phase_limit: null, excluded_from: null });
  },
);

dbTest(
  "a phase of more than 1,000 appliances is judged on a fixed sample of 1,000 of them",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 1500);
    const r = await createRollout(
      noc.deps,
      plan([{ count: 1200, soakS: 0 }, { percent: 100, soakS: 0 }]),
      "alice",
    );
    assert.equal(r.phases[0]!.members, 1200);
    assert.equal(r.control, 300);
    await report(noc, uids, "1");
    const p = await pass(noc);
    assert.equal(p.evaluated, 1);
    const f = (await getRollout(db.sql, r.id)).evaluation!.figures;
    assert.deepEqual([f.members, f.evaluated, f.healthy], [1200, 1000, 0]);
    // The sample is the members' first 1,000 by UID.
    const first = (await membersByPhase(noc, r.id))[0]!.slice(0, 1000);
    await report(noc, first, "2");
    await pass(noc);
    const g = await getRollout(db.sql, r.id);
    assert.equal(g.phase, 1, "all 1,000 judged healthy: it advanced");
  },
);

dbTest(
  "a metric's per-appliance median reads its last 12 hours of samples, and older samples are deleted",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 12);
    const r = await createRollout(
      noc.deps,
      plan([
        {
          count: 6,
          soakS: 30 * 86400,
          gates: { metric: { path: "app.n", maxDropPercent: 90, minAppliances: 6 } },
        },
        { percent: 100, soakS: 0 },
      ]),
      "alice",
    );
    const members = (await membersByPhase(noc, r.id))[0]!;
    const control = uids.filter((u) => !members.includes(u));
    for (let i = 0; i < 60; i++) {
      // A beat every 15 minutes for 15 hours; the first 4 report 1000 on the release, later
      // ones 100: only the last 12 hours count.
      noc.clock.advance(900);
      await report(noc, members, "2", { app: { n: i < 4 ? 1000 : 100 } });
      await report(noc, control, "1", { app: { n: 100 } });
      await rolloutPass(noc.deps);
    }
    const [kept] = await db.sql<{ max: number; n: number }>`
      select max(c)::int as max, count(*)::int as n from (
        select count(*) as c from rollout_samples where rollout_id = ${r.id} group by uid) x`;
    assert.deepEqual(kept, { max: 49, n: 12 }, "12 hours of beats, both ends included");
    const medians = await db.sql<{ beats: number; median: number }>`
      select beats, median from rollout_sample_medians where rollout_id = ${r.id}`;
    assert.deepEqual(new Set(medians.map((m) => `${m.beats} ${m.median}`)), new Set(["49 100"]));
    const m = (await getRollout(db.sql, r.id)).evaluation!.figures.metric!;
    assert.deepEqual([m.phase.appliances, m.control.appliances, m.ratio], [6, 6, 1]);
  },
);

dbTest(
  "a phase smaller than its minimum sample is judged on all its appliances: a failed 1 % canary stops the rollout and pages",
  async ({ db }) => {
    // 1 % of 100 is one appliance, under the default minimum sample of 5.
    const { noc, uids } = await fleet(db, 100);
    const r = await createRollout(
      noc.deps,
      plan([
        { percent: 1, soakS: 600, gates: { pluginHealth: { maxUnhealthyPercent: 0 } } },
        { percent: 10, soakS: 600 },
        { percent: 100, soakS: 0 },
      ]),
      "alice",
    );
    const [canary] = (await membersByPhase(noc, r.id))[0]!;
    assert.ok(canary);
    await report(noc, uids, "1");
    await deliver(noc, [canary], "2");
    noc.clock.advance(30);
    await outcome(noc, [canary], "2", "failed");
    const p = await pass(noc);
    assert.deepEqual(p.failed, [r.id], "1 of 1 failed");
    const sent = await notices(noc);
    assert.equal(sent.length, 1);
    assert.match(sent[0]!.text, /failed on stop: 1 of 1 failed \(100 %; threshold 20 %/);

    // The plug-in health gate too: the canary reports its application unhealthy.
    const other = await createRollout(
      noc.deps,
      {
        ...plan([{ count: 2, soakS: 600, gates: { pluginHealth: { maxUnhealthyPercent: 0 } } }, {
          percent: 100,
          soakS: 0,
        }]),
        component: ref("1"),
        previousVersion: "2",
      },
      "alice",
    );
    const pair = (await membersByPhase(noc, other.id))[0]!;
    noc.clock.advance(1);
    await report(noc, pair, "1", { app: { healthy: false } });
    assert.deepEqual((await pass(noc)).failed, [other.id]);
    assert.match((await notices(noc))[1]!.text, /pluginHealth: 2 of 2 reporting appliances/);
  },
);
