/**
 * `noc rollouts …` (issue 20) as real processes against a served NOC: create from flags (phase
 * specs, a metric gate on the phases with a control group, plug-in health, rollback) and from a
 * `--plan` file, list, show (phases, gate figures against control once the daemon's pass has
 * judged, the timeline with actors and notes), appliances by phase, pause, resume, advance and
 * cancel; and the usage errors (a bad phase spec, a shrinking plan, a metric without its rule,
 * an unknown flag, a bad id) named and exiting 64 before anything is sent.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { fleet, ref } from "./_rollouts.ts";
import { runCli } from "./_process.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import {
  detailText,
  parseDuration,
  parsePhaseSpec,
  rolloutBodyFromFlags,
  rolloutDetail,
} from "../cli/rollouts.ts";
import { UsageError } from "../protocol/util/args.ts";

dbTest(
  "noc rollouts: create, list, show, appliances, pause, resume, advance, cancel, --plan",
  async ({ db }) => {
    const { noc } = await fleet(db, 40, [], { components: [ref("1"), ref("2")] });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      noc.app.fetch,
    );
    const env = { NOC_URL: `http://127.0.0.1:${server.addr.port}`, NOC_TOKEN: noc.adminToken };
    const work = await Deno.makeTempDir({ prefix: "noc-cli-rollouts-" });
    const cli = async (args: string[], code = 0) => {
      const r = await runCli(args, env);
      assert.equal(r.code, code, `${args.join(" ")}:\n${r.err}${r.out}`);
      return r;
    };
    try {
      const ids = ["--app", "app", "--name", "pkg", "--version", "2"];
      // Usage errors are named and exit 64 before anything is sent.
      const refused: Array<[string[], RegExp]> = [
        [["--phase", "0%"], /--phase 1 "0%": a share is over 0% and at most 100%/],
        [["--phase", "ten%"], /--phase 1 "ten%": starts with its size/],
        [["--phase", "10%:soak=forever"], /soak: "forever" is not a duration/],
        [["--phase", "10%:colour=red"], /unknown option "colour"/],
        [["--phase", "50%", "--phase", "10%"], /--phase 2: phase 2 is smaller than phase 1/],
        [["--phase", "10%", "--metric", "app.x"], /--metric needs --max-drop, --max-rise/],
        [["--phase", "100%", "--metric", "app.x", "--max-drop", "30"], /none has a control/],
        [["--phase", "10%", "--metric", "nodots", "--max-drop", "3"], /--metric: must be the app/],
        [["--phase", "10%", "--target", "room=4"], /--target must be all or/],
        [[], /--phase is required/],
        [["--phase", "10%", "--frobnicate"], /Unknown flag "--frobnicate"/],
      ];
      for (const [extra, message] of refused) {
        const r = await cli(["rollouts", "create", ...ids, ...extra], 64);
        assert.match(r.err, message, extra.join(" "));
        assert.equal(r.out, "");
      }
      assert.match((await cli(["rollouts", "show", "abc"], 64)).err, /<id> must be a rollout id/);
      assert.equal((await noc.admin("GET", "/v1/admin/rollouts")).body.items.length, 0);

      // Create from flags: a canary of 4, then half, then all; metric gate where control exists.
      const made = await cli([
        "rollouts",
        "create",
        ...ids,
        "--phase",
        "4:soak=1h",
        "--phase",
        "50%:soak=6h:min-healthy=90",
        "--phase",
        "100%",
        "--rollback",
        "--metric",
        "app.mailsScanned",
        "--max-drop",
        "30",
        "--max-unhealthy",
        "10",
        "--note",
        "canary first",
      ]);
      const m =
        /^Rollout (\d+): package app\/pkg@2 to all in 3 phases \(from 1, rollback on\); phase 1 started with 4 appliances/
          .exec(made.out);
      assert.ok(m, made.out);
      const id = m[1]!;
      const stored = (await noc.admin("GET", `/v1/admin/rollouts/${id}`)).body;
      const plans = stored.phases.map((p: { plan: unknown }) => p.plan);
      assert.equal(plans[0].count, 4);
      assert.equal(plans[0].soakS, 3600);
      assert.deepEqual(plans[0].gates.metric, {
        path: "app.mailsScanned",
        maxDropPercent: 30,
        minAppliances: 5,
        minBeats: 3,
      });
      assert.equal(plans[1].soakS, 6 * 3600);
      assert.equal(plans[1].advance.minHealthyPercent, 90);
      assert.equal(plans[2].percent, 100);
      assert.equal(plans[2].gates.metric, undefined, "a 100% phase has no control group");
      assert.deepEqual(plans[2].gates.pluginHealth, { maxUnhealthyPercent: 10 });

      const list = await cli(["rollouts"]);
      assert.match(list.out, /^id +state +phase +release +from +target/);
      assert.match(list.out, new RegExp(`\\n${id} +running +1/3 +package app/pkg@2 +1 +all `));
      assert.equal(
        (await cli(["rollouts", "list", "--state", "failed"])).out.trim(),
        "No rollouts.",
      );
      assert.match((await cli(["rollouts", "list", "--state", "nope"], 1)).err, /NOC answered 400/);

      const before = await cli(["rollouts", "show", id]);
      assert.match(
        before.out,
        /^Rollout \d+: package app\/pkg@2 \(from 1\) to all — running, phase 1 of 3/,
      );
      assert.match(before.out, /\n1 +4 +1h +auto +pluginHealth,metric +4 +current +\d{4}-/);
      assert.match(before.out, /\n2 +50% +6h +auto +pluginHealth,metric +0 +waiting/);
      assert.match(before.out, /\n3 +100% +0s +auto +pluginHealth +0 +waiting/);
      assert.match(before.out, /Gates: not evaluated yet/);
      assert.match(
        before.out,
        /created +"canary first"\n.* +phase_started +phase 1: 4 joined, control 36/,
      );

      // The daemon's pass judges the canary: its figures against control are shown.
      await rolloutPass(noc.deps);
      const judged = await cli(["rollouts", "show", id]);
      assert.match(judged.out, /Gates \(evaluated [^,]+, phase 1; waiting\):/);
      assert.match(judged.out, /healthy 0 of 4 \(0%\); sent 0, installed 0, failed 0, not sent 4/);
      assert.match(
        judged.out,
        /metric app\.mailsScanned: phase - \(0 appliances\) vs control - \(0\); ratio -/,
      );
      assert.match(judged.out, /wait metric: /);

      const members = await cli(["rollouts", "appliances", id, "--phase", "1"]);
      const rows = members.out.trim().split("\n").slice(1);
      assert.equal(rows.length, 4, members.out);
      assert.ok(rows.every((r) => / 1 +not_sent /.test(r)), members.out);
      assert.match(
        (await cli(["rollouts", "appliances", id, "--phase", "x"], 64)).err,
        /--phase must be a phase number/,
      );

      assert.match(
        (await cli(["rollouts", "pause", id, "--note", "looking"])).out,
        new RegExp(`^Rollout ${id} paused \\(phase 1 of 3; now paused\\)`),
      );
      const twice = await cli(["rollouts", "pause", id], 1);
      assert.match(twice.err, /NOC answered 409: Rollout \d+ is paused/);
      assert.match(
        (await cli(["rollouts", "resume", id])).out,
        /resumed \(phase 1 of 3; now running/,
      );
      assert.match(
        (await cli(["rollouts", "advance", id, "--note", "looks fine"])).out,
        new RegExp(`^Rollout ${id} advanced: phase 2 of 3 started with 16 appliances`),
      );
      assert.match((await cli(["rollouts", "cancel", id, "--note", "stop"])).out, /cancelled/);

      const shown = JSON.parse((await cli(["rollouts", "show", id, "--json"])).out);
      assert.equal(shown.state, "cancelled");
      const events = shown.events.map((e: { kind: string; detail: { note?: string } }) =>
        `${e.kind}${e.detail.note ? ` ${e.detail.note}` : ""}`
      );
      for (const e of ["paused looking", "resumed", "advanced looks fine", "cancelled stop"]) {
        assert.ok(events.includes(e), `${e} in ${events.join(", ")}`);
      }
      const timeline = (await cli(["rollouts", "show", id])).out;
      assert.match(timeline, /Timeline:\n/);
      assert.match(timeline, /paused +"looking"/);
      assert.match(timeline, /advanced +phase 1 → 2; "looks fine"/);
      assert.match(timeline, /cancelled +"stop"/);

      // --plan: the API body from a file; other plan flags are refused beside it.
      const plan = `${work}/plan.json`;
      await Deno.writeTextFile(
        plan,
        JSON.stringify({
          component: ref("2"),
          target: { type: "site", value: "s0" },
          phases: [{ percent: 10, soakS: 60 }, { percent: 100, soakS: 0 }],
        }),
      );
      assert.match(
        (await cli(["rollouts", "create", "--plan", plan, "--app", "app"], 64)).err,
        /--plan gives the whole rollout: drop --app/,
      );
      await Deno.writeTextFile(`${work}/bad.json`, JSON.stringify({ component: ref("2") }));
      assert.match(
        (await cli(["rollouts", "create", "--plan", `${work}/bad.json`], 64)).err,
        /--plan ".*bad\.json": "target" /,
      );
      const fromPlan = JSON.parse(
        (await cli(["rollouts", "create", "--plan", plan, "--json"])).out,
      );
      assert.equal(fromPlan.target.value, "s0");
      assert.equal(fromPlan.phases[0].members, 2, "10% of the 20 appliances of site s0");
      await cli(["rollouts", "cancel", String(fromPlan.id)]);
    } finally {
      await server.shutdown();
      await Deno.remove(work, { recursive: true });
    }
  },
);

Deno.test("rollouts create: phase specs and flags become the API's plan", () => {
  assert.equal(parseDuration("90s", "x"), 90);
  assert.equal(parseDuration("2d", "x"), 172800);
  assert.equal(parseDuration("120", "x"), 120);
  assert.throws(() => parseDuration("31d", "x"), /longer than 30 days/);
  assert.deepEqual(parsePhaseSpec("12.5%:soak=30m:max-failed=5:min-sample=10:manual", 0), {
    percent: 12.5,
    soakS: 1800,
    stop: { maxFailedPercent: 5, minSample: 10 },
    auto: false,
  });
  assert.deepEqual(parsePhaseSpec("7", 0), { count: 7, soakS: 0 });
  for (const bad of ["", "%", "101%", "0", "1.5", "5:soak", "5:manual=1", "5:soak=1h:soak=2h"]) {
    assert.throws(() => parsePhaseSpec(bad, 2), UsageError, bad);
  }
  const body = rolloutBodyFromFlags({
    kind: "package",
    app: "vscreen",
    name: "vscreen",
    version: "4.2.1",
    target: "site=hq",
    phases: ["1%:soak=1h", "10%:soak=6h:max-failed=5", "100%"],
    rollback: true,
    metric: "vscreen.mailsScanned",
    maxDrop: "30",
    minAppliances: "3",
    maxExtraMissed: "10",
    maxFailed: "20",
    minSample: "8",
  });
  assert.deepEqual(body.target, { type: "site", value: "hq" });
  const [canary, ten, all] = body.phases;
  assert.deepEqual(canary!.stop, { maxFailedPercent: 20, minSample: 8 });
  assert.deepEqual(ten!.stop, { maxFailedPercent: 5, minSample: 8 }, "a phase's own key wins");
  assert.deepEqual(canary!.gates, {
    metric: { path: "vscreen.mailsScanned", maxDropPercent: 30, minAppliances: 3 },
    beatRegularity: { maxExtraMissedPercent: 10 },
  });
  assert.equal(all!.gates, undefined, "no control group: no metric or beat gate");
  assert.equal(body.rollback, true);
});

/** A rollout as `show` reads it: one metric-gated phase of 1 appliance, last judged failing. */
function judgedRollout(state: string, failed: boolean) {
  const metric = {
    gate: "metric",
    judged: true,
    fails: failed,
    summary: "app.mails: median 40 over 1 appliances vs control 100 over 5 (60 % below control)",
  };
  const health = {
    gate: "pluginHealth",
    judged: false,
    fails: false,
    summary: "0 of 1 reporting appliances unhealthy (0 %; threshold 10 %, judged from 5)",
  };
  return rolloutDetail.parse({
    id: 7,
    component: ref("2"),
    target: { type: "all", value: null },
    state,
    phase: 0,
    phaseCount: 2,
    previousVersion: "1",
    rollback: true,
    createdBy: "ops",
    createdAt: "2026-01-01T00:00:00.000Z",
    endedAt: state === "running" ? null : "2026-01-01T01:00:00.000Z",
    phaseStartedAt: "2026-01-01T00:00:00.000Z",
    heldSince: null,
    assignment: {
      paused: state !== "running",
      pausedReason: state === "failed" ? metric.summary : null,
    },
    phases: [
      { index: 0, plan: { count: 1, soakS: 90 }, started: null, members: 1 },
      { index: 1, plan: { percent: 100, soakS: 0 }, started: null, members: 0 },
    ],
    control: 1,
    evaluation: {
      at: "2026-01-01T00:30:00.000Z",
      figures: {
        phase: 0,
        evaluated: 1,
        healthy: 1,
        healthyPercent: 100,
        reporting: 1,
        unhealthy: 0,
        notSent: 0,
        install: { sent: 1, installed: 1, failed: 0 },
        metric: {
          path: "app.mails",
          phase: { appliances: 1, statistic: 40 },
          control: { appliances: 5, statistic: 100 },
          ratio: 0.4,
        },
        beats: null,
      },
      judgement: {
        gates: [health, metric],
        failed: failed ? metric : null,
        holds: false,
        waiting: [
          ...(failed ? ["metric fails"] : []),
          `pluginHealth not judged yet: ${health.summary}`,
        ],
      },
      advanceAt: null,
    },
    evaluatedAt: "2026-01-01T00:30:00.000Z",
    events: [{
      at: "2026-01-01T01:00:00.000Z",
      actor: "daemon",
      kind: "failed",
      detail: { gate: "metric", reason: metric.summary },
    }],
  });
}

Deno.test("rollouts show: an ended rollout names its failed gate and waits for nothing", () => {
  const failed = detailText(judgedRollout("failed", true));
  assert.match(failed, /Gates \(evaluated [^;]+; FAILED: metric\):/);
  assert.doesNotMatch(failed, /waiting/);
  assert.match(failed, /FAIL metric: app\.mails: median 40 over 1 appliance vs control/);
  assert.match(failed, /- {4}pluginHealth: 0 of 1 reporting appliance unhealthy/);
  assert.match(failed, /assignment paused: app\.mails: median 40 over 1 appliance vs/);
  assert.match(failed, /failed +gate metric; app\.mails: median 40 over 1 appliance vs/);
  assert.match(failed, /Control sample: 1 appliance\n/);
  assert.match(failed, /metric app\.mails: phase 40 \(1 appliance\) vs control 100 \(5\)/);
  assert.doesNotMatch(failed, /\b1 appliances\b/);

  const cancelled = detailText(judgedRollout("cancelled", false));
  assert.match(cancelled, /Gates \(evaluated [^;]+; cancelled, nothing waiting\):/);
  assert.doesNotMatch(cancelled, /waiting:/);

  // A running one still says what it waits for, and a failing gate only once.
  const running = detailText(judgedRollout("running", true));
  assert.match(running, /FAILED: metric/);
  assert.doesNotMatch(running, /waiting: metric fails/);
  assert.match(running, /waiting: pluginHealth not judged yet: 0 of 1 reporting appliance /);
  assert.match(running, /wait pluginHealth: /);
});
