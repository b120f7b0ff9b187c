/**
 * Issue 20, the attacker's and newcomer's review of the gates: who a metric gate counts and what
 * it does with numbers it cannot judge. A revoked control appliance, or one silent for longer
 * than the 12-hour window, no longer speaks for control; extreme values never make a statistic
 * that is not a finite number; a group smaller than `minAppliances` is judged on all of it
 * instead of never; and a soak of one period advances at the next pass, however late the first
 * pass started within its minute. And the install states a pass reads for every rollout in one
 * statement are, rollout by rollout, those of `rolloutProgress`. PGlite, and PostgreSQL with
 * TEST_DATABASE_URL.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { createRollout, getRollout } from "../noc/services/phased_rollouts.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import {
  evaluatedPerPhase,
  type GatedRollout,
  judgePhase,
  type PhaseFigures,
  rolloutFigures,
} from "../noc/services/rollout_gates.ts";
import { phaseProgress, rolloutProgress, rolloutStates } from "../noc/services/rollouts.ts";
import { runningRollouts } from "../noc/services/phased_rollouts.ts";
import {
  assigned,
  deliver,
  fleet,
  membersByPhase,
  named,
  notices,
  plan,
  report,
  seedFleet,
} from "./_rollouts.ts";
import { phaseSchema } from "../protocol/rollout_plan.ts";

/** A metric-gated canary of `count` over a fleet of `n`; returns its members and control. */
async function metricCanary(
  db: Parameters<typeof fleet>[0],
  n: number,
  count: number,
  metric: { minAppliances?: number; minBeats?: number } = {},
) {
  const { noc, uids } = await fleet(db, n);
  const r = await createRollout(
    noc.deps,
    plan([
      {
        count,
        soakS: 7 * 86400,
        gates: { metric: { path: "app.n", maxDropPercent: 30, minBeats: 2, ...metric } },
      },
      { percent: 100, soakS: 0 },
    ]),
    "alice",
  );
  const members = (await membersByPhase(noc, r.id))[0]!;
  const control = uids.filter((u) => !members.includes(u));
  await deliver(noc, members, "2");
  return { noc, r, members, control };
}

dbTest(
  "a metric gate stops counting control appliances once they are revoked",
  async ({ db }) => {
    const { noc, r, members, control } = await metricCanary(db, 40, 9);
    // 20 control appliances lie (50, as low as the bad release) and hide its 50 % drop.
    const liars = control.slice(0, 20), honest = control.slice(20);
    for (let i = 0; i < 2; i++) {
      noc.clock.advance(900);
      await report(noc, members, "2", { app: { n: 50 } });
      await report(noc, liars, "1", { app: { n: 50 } });
      await report(noc, honest, "1", { app: { n: 100 } });
      await rolloutPass(noc.deps);
    }
    let got = await getRollout(db.sql, r.id);
    assert.equal(got.state, "running");
    assert.equal(got.evaluation!.figures.metric!.control.appliances, 31);
    assert.equal(got.evaluation!.figures.metric!.ratio, 1, "the lie hides the drop");

    await db.sql`update appliances set revoked_at = ${noc.clock.now()}
      where uid = any(${liars}::uuid[])`;
    noc.clock.advance(900);
    await report(noc, members, "2", { app: { n: 50 } });
    await report(noc, honest, "1", { app: { n: 100 } });
    await rolloutPass(noc.deps);
    got = await getRollout(db.sql, r.id);
    assert.equal(got.state, "failed", JSON.stringify(got.evaluation?.figures.metric));
    const metric = got.evaluation!.figures.metric!;
    assert.deepEqual([metric.control.appliances, metric.control.size], [11, 11]);
    assert.equal(metric.ratio, 0.5);
    assert.match((await notices(noc))[0]!.text, /over 11 vs control|control 100 over 11/);
  },
);

dbTest(
  "a metric gate stops counting an appliance silent for longer than its 12-hour window",
  async ({ db }) => {
    const { noc, r, members, control } = await metricCanary(db, 40, 9);
    const liars = control.slice(0, 20), honest = control.slice(20);
    // Everyone beats every 15 minutes; the liars fall silent after the second beat.
    let failedAt = -1;
    for (let i = 0; i < 54 && failedAt < 0; i++) {
      noc.clock.advance(900);
      await report(noc, members, "2", { app: { n: 50 } });
      await report(noc, honest, "1", { app: { n: 100 } });
      if (i < 2) await report(noc, liars, "1", { app: { n: 50 } });
      const p = await rolloutPass(noc.deps);
      if (p.failed.includes(r.id)) failedAt = i;
    }
    // Their last sample (beat 2) is 12 hours old at beat 50, and out of the window at beat 51.
    assert.equal(failedAt, 50, "once the liars' samples are 12 hours old, and not before");
    const metric = (await getRollout(db.sql, r.id)).evaluation!.figures.metric!;
    assert.equal(metric.control.appliances, 11);
    assert.equal(metric.control.size, 31, "silent, not revoked: still in the control group");
  },
);

dbTest(
  "extreme metric values never give a statistic or ratio that is not a finite number",
  async ({ db }) => {
    const { noc, r, members, control } = await metricCanary(db, 30, 8);
    for (let i = 0; i < 2; i++) {
      noc.clock.advance(900);
      // Alternating ±MAX_VALUE: the midpoint of two such samples overflows unless clamped.
      const v = i % 2 === 0 ? Number.MAX_VALUE : -Number.MAX_VALUE;
      await report(noc, control, "1", { app: { n: v } });
      await report(noc, members, "2", { app: { n: -v } });
      const p = await rolloutPass(noc.deps);
      assert.deepEqual(p.errors, []);
    }
    const got = await getRollout(db.sql, r.id);
    const m = got.evaluation!.figures.metric!;
    for (const x of [m.phase.statistic, m.control.statistic]) {
      assert.ok(x !== null && Number.isFinite(x), String(x));
    }
    assert.ok(m.ratio === null || Number.isFinite(m.ratio), String(m.ratio));
    const stored = await db.sql<{ median: number }>`
      select median from rollout_sample_medians where rollout_id = ${r.id}`;
    for (const s of stored) assert.ok(Number.isFinite(s.median), String(s.median));
  },
);

Deno.test("judgePhase() does not judge a metric whose statistic or ratio is not finite", () => {
  const phase = phaseSchema.parse({
    count: 1,
    soakS: 0,
    advance: { minHealthyPercent: 0 },
    stop: { minSample: 1 },
    gates: { metric: { path: "app.n", maxDropPercent: 30, minAppliances: 1, minBeats: 1 } },
  });
  const figures = (p: number | null, c: number | null, ratio: number | null): PhaseFigures => ({
    phase: 0,
    phaseStartedAt: new Date(0).toISOString(),
    members: 1,
    evaluated: 1,
    install: {
      installed: 1,
      failed: 0,
      states: { running: 1 },
    } as unknown as PhaseFigures["install"],
    notSent: 0,
    healthy: 1,
    healthyPercent: 100,
    reporting: 1,
    unhealthy: 0,
    metric: {
      path: "app.n",
      phase: { appliances: 5, statistic: p, size: 5 },
      control: { appliances: 5, statistic: c, size: 5 },
      ratio,
    },
    beats: null,
  });
  for (const [p, c, ratio] of [[null, 1, null], [1, null, null]] as const) {
    const j = judgePhase(phase, figures(p, c, ratio));
    const g = j.gates.find((x) => x.gate === "metric")!;
    assert.equal(g.judged, false, `${p} ${c}`);
    assert.equal(j.holds, false, "an unjudged gate never lets the phase advance");
  }
  // A ratio the figures could not compute (a control within a hair of 0) fails a drop below it.
  const j = judgePhase(phase, figures(-1, 1e-320, null));
  assert.equal(j.failed?.gate, "metric");
  assert.match(j.failed!.summary, /below a control near 0/);
});

dbTest(
  "a metric gate on a phase smaller than minAppliances is judged on all its appliances",
  async ({ db }) => {
    // 3 canaries and 9 control appliances, under a minimum of 20: judged on all of them.
    const { noc, r, members, control } = await metricCanary(db, 12, 3, { minAppliances: 20 });
    const failed = [];
    for (let i = 0; i < 3; i++) {
      noc.clock.advance(900);
      await report(noc, members, "2", { app: { n: 40 } });
      await report(noc, control, "1", { app: { n: 100 } });
      failed.push((await rolloutPass(noc.deps)).failed);
    }
    assert.deepEqual(failed, [[], [r.id], []], "judged at the second beat (minBeats 2)");
    const got = await getRollout(db.sql, r.id);
    assert.equal(got.state, "failed");
    const m = got.evaluation!.figures.metric!;
    assert.deepEqual([m.phase.appliances, m.control.appliances, m.ratio], [3, 9, 0.4]);
    assert.match(
      (await notices(noc))[0]!.text,
      /median 40 over 3 appliances vs control 100 over 9 \(60 % below control/,
    );
  },
);

dbTest(
  "a soak of one period advances at the next pass even when the first pass started late in its minute",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 10);
    const r = await createRollout(
      noc.deps,
      plan([{ count: 2, soakS: 60 }, { percent: 100, soakS: 0 }]),
      "alice",
    );
    const canaries = (await membersByPhase(noc, r.id))[0]!;
    await report(noc, uids, "1");
    await deliver(noc, canaries, "2");
    await report(noc, canaries, "2");
    const minute = Math.ceil(noc.clock.now().getTime() / 60_000) * 60_000;
    noc.clock.set(new Date(minute + 4));
    let p = await rolloutPass(noc.deps);
    assert.deepEqual(p.advanced, []);
    assert.equal((await getRollout(db.sql, r.id)).heldSince, new Date(minute).toISOString());
    noc.clock.set(new Date(minute + 60_000 + 2));
    p = await rolloutPass(noc.deps);
    assert.deepEqual(p.advanced, [r.id], "one period later, not two");
  },
);

dbTest(
  "the install states of 3 rollouts read in one statement are each rollout's rolloutProgress",
  async ({ db }) => {
    const noc = await testNoc(db);
    const sql = db.sql;
    // Three packages, each with a version 3 published after the release (for `superseded`).
    const names = ["pkg0", "pkg1", "pkg2"];
    await seedFleet(sql, 60, {
      components: names.flatMap((n) => ["1", "2", "3"].map((v) => named(n, v))),
      assignments: names.map((n) => assigned(named(n, "1"))),
    });
    const ids: number[] = [];
    for (const name of names) {
      const r = await createRollout(noc.deps, {
        component: named(name, "2"),
        target: { type: "all" },
        phases: [{ count: 10, soakS: 3600 }, { percent: 100, soakS: 0 }],
      }, "alice");
      ids.push(r.id);
    }
    const beatAt = new Date(noc.clock.now().getTime() - 60_000);
    const at = (s: number) => new Date(beatAt.getTime() + s * 1000);
    // Each rollout's members, in UID order, take the roles below (overlapping members take one
    // per package); the last two were not sent the release (one runs it anyway).
    const roles = [
      "running",
      "unconfirmed",
      "pending",
      "failed",
      "failedEarly",
      "reverted",
      "other",
      "missing",
      "superseded",
      "unsent",
    ] as const;
    const versions = new Map<string, Map<string, string | null>>();
    const rolesOf = new Map<string, string[]>();
    for (const [i, id] of ids.entries()) {
      const pkg = `pkg${i}`;
      const members = (await membersByPhase(noc, id))[0]!;
      assert.equal(members.length, 10);
      for (const [j, uid] of members.entries()) {
        const role = roles[j]!;
        (rolesOf.get(uid) ?? rolesOf.set(uid, []).get(uid)!).push(role);
        const v = ({
          running: "2",
          unconfirmed: "1",
          pending: "1",
          failed: "1",
          failedEarly: null,
          reverted: "1",
          other: "9",
          missing: "2",
          superseded: "3",
          unsent: "2",
        } as const)[role];
        (versions.get(uid) ?? versions.set(uid, new Map()).get(uid)!).set(pkg, v);
        if (role !== "unsent") {
          await sql`insert into deliveries (uid, component_id, first_sent_at, last_sent_at)
            select ${uid}, id, ${at(-600)}, ${at(-600)} from components
            where name = ${pkg} and version = '2'`;
        }
        if (role === "superseded") {
          await sql`insert into deliveries (uid, component_id, first_sent_at, last_sent_at)
            select ${uid}, id, ${at(-300)}, ${at(-300)} from components
            where name = ${pkg} and version = '3'`;
        }
        const outcome = {
          unconfirmed: ["installed", 30],
          failed: ["failed", 30],
          failedEarly: ["failed", -30],
          reverted: ["installed", -30],
        }[role as string] as [string, number] | undefined;
        if (outcome) {
          await sql`insert into install_outcomes (uid, kind, app, name, version, outcome,
              reported_at)
            values (${uid}, 'package', 'app', ${pkg}, '2', ${outcome[0]}, ${at(outcome[1])})`;
        }
        if (role === "missing") {
          await sql`update appliances set missing_since = ${at(0)} where uid = ${uid}`;
        }
      }
    }
    // Their latest beats, each listing every package at the version of its role (1 if none).
    for (const [uid, byPkg] of versions) {
      const components = [0, 1, 2].flatMap((i) => {
        const v = byPkg.has(`pkg${i}`) ? byPkg.get(`pkg${i}`)! : "1";
        return v === null ? [] : [named(`pkg${i}`, v)];
      });
      await sql`update appliances set last_beat_at = ${beatAt},
        last_report = ${{ components, apps: { app: { healthy: true, n: 1 } } }}
        where uid = ${uid}`;
    }
    // One member of the first rollout is revoked: it counts nowhere, in any rollout. Its
    // superseded one if it can be: every state must stay seen below, in at least one of the three
    // rollouts (an appliance revoked, or missing in another rollout's roles, is in no other state
    // anywhere), and each rollout must keep its unsent member. The UIDs are random and rollouts
    // overlap, so the member is chosen by its roles in all three, never by position alone.
    const first = (await membersByPhase(noc, ids[0]!))[0]!;
    // Each of its roles must stay held by another appliance not missing: a missing appliance
    // counts `missing` in every rollout, hiding its other roles (a flake: the only other
    // `superseded` member, missing in another rollout, left that state unseen).
    const revocable = (uid: string) => {
      const mine = rolesOf.get(uid)!;
      return !mine.includes("unsent") && !mine.includes("missing") &&
        mine.every((r) =>
          [...rolesOf].some(([u, rs]) => u !== uid && rs.includes(r) && !rs.includes("missing"))
        );
    };
    const revoked = [first[8]!, ...first.slice(0, 8)].find(revocable);
    assert.ok(revoked, `no member of the first rollout can be revoked: ${JSON.stringify(first)}`);
    await sql`update appliances set revoked_at = ${at(0)} where uid = ${revoked}`;

    const gated: GatedRollout[] = (await runningRollouts(sql)).map((r) => ({
      id: r.id,
      ...r.component,
      previousVersion: r.previousVersion,
      phase: r.phase,
      phaseStartedAt: r.phaseStartedAt,
      plan: r.plan,
    }));
    assert.equal(gated.length, 3);
    const figures = await rolloutFigures(sql, gated, { now: noc.clock.now() });
    for (const sample of [evaluatedPerPhase, 4]) {
      const scopes = gated.map((x) => ({
        rolloutId: x.id,
        phase: x.phase,
        sample,
        ref: { kind: x.kind, app: x.app, name: x.name, version: x.version },
      }));
      const together = await phaseProgress(sql, scopes);
      for (const s of scopes) {
        const alone = (await rolloutProgress(sql, [s.ref], s)).get(
          `${s.ref.kind}/${s.ref.app}/${s.ref.name}/${s.ref.version}`,
        )!;
        assert.deepEqual(together.get(s.rolloutId), alone, `rollout ${s.rolloutId}, ${sample}`);
        if (sample === evaluatedPerPhase) {
          const f = figures.get(s.rolloutId)!;
          assert.deepEqual(f.install, alone, `rollout ${s.rolloutId}: the pass's figures`);
          assert.equal(f.evaluated - f.notSent, alone.sent);
        }
      }
    }
    // The fleet has every state (so the comparison above covers each of them).
    const seen = new Set<string>();
    for (const f of figures.values()) {
      for (const st of rolloutStates) if (f.install.states[st] > 0) seen.add(st);
      assert.ok(f.install.sent >= 7 && f.notSent >= 1, JSON.stringify(f));
    }
    assert.deepEqual([...seen].sort(), [...rolloutStates].sort());
    assert.equal(figures.get(ids[0]!)!.evaluated, 9, "the revoked member counts nowhere");
  },
);
