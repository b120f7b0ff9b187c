/**
 * docs/operations.md's "Phased rollouts" section is the NOC's: its worked example's request body,
 * as written, creates a rollout through the real admin API on a 2,000-appliance fleet, with the
 * phase sizes its table states (and the defaults it says are filled in); its failing canary's
 * figures — the statistic of each group, the ratio, the verdict and the notice's text — come out
 * of the real rollout daemon fed the medians the text describes; and its claim that a minority of
 * appliances lying in their reported metric cannot move a group's statistic holds
 * (docs/security.md). PGlite, and PostgreSQL with TEST_DATABASE_URL.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, type TestNoc } from "./_harness.ts";
import { assigned, fleet as seeded } from "./_rollouts.ts";
import type { Db } from "../noc/db/db.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import { resolveCatalog } from "../noc/services/catalog_engine.ts";
import { createRollout, getRollout } from "../noc/services/phased_rollouts.ts";

const operations = await Deno.readTextFile(new URL("../docs/operations.md", import.meta.url));

/** The text of docs/operations.md's `## Phased rollouts` (its `###` parts included). */
function section(): string {
  const title = "## Phased rollouts";
  const at = operations.indexOf(`\n${title}\n`);
  assert.ok(at >= 0, `docs/operations.md has no heading ${title}`);
  const rest = operations.slice(at + title.length + 2);
  const next = /\n## /.exec(rest);
  return next ? rest.slice(0, next.index) : rest;
}

const text = section();
const flat = text.replace(/\s+/g, " ");

/** The worked example's request body, as written in its curl line. */
function exampleBody(): Record<string, unknown> {
  const m = /-d '(\{\n[\s\S]*?\n\})' \$NOC_URL\/v1\/admin\/rollouts\n/.exec(text);
  assert.ok(m, "the worked example's curl body");
  return JSON.parse(m[1]!);
}

const vscreen = (version: string) => ({
  kind: "package" as const,
  app: "vscreen",
  name: "vscreen",
  version,
});

/** `n` appliances (17 sites) running vscreen 4.2.1 through an assignment to all; 4.3.0 published. */
const fleet = (db: Db, n: number) =>
  seeded(db, n, [], {
    site: (i) => `s${i % 17}`,
    components: [vscreen("4.2.1"), vscreen("4.3.0")],
    assignments: [assigned(vscreen("4.2.1"))],
  });

/** `uids` beat now, running vscreen `version`, healthy, having scanned `mails`. */
async function beat(noc: TestNoc, uids: readonly string[], version: string, mails: number) {
  if (uids.length === 0) return;
  const now = noc.clock.now();
  const report = sampleBeat(1, now, {
    components: [vscreen(version)],
    apps: { vscreen: { mailsScanned: mails, healthy: true } },
  });
  await noc.deps.db.sql`
    update appliances set last_report = ${report}, last_beat_at = ${now}
    where uid = any(${[...uids]}::uuid[])`;
}

/** A number as the docs write it (`1,000`). */
const int = (s: string) => Number(s.replace(/,/g, ""));

dbTest(
  "docs/operations.md's phased rollout example creates through the admin API with the phase sizes it states",
  async ({ db }) => {
    const { noc } = await fleet(db, 2000);
    const rows = [
      ...text.matchAll(
        /^\| (\d+) +\| (\d+) % +\| ([\d,]+) +\| ([\d,]+) +\| ([\d,]+) +\|$/gm,
      ),
    ].map((m) => ({
      percent: Number(m[2]),
      wanted: int(m[3]!),
      joined: int(m[4]!),
      control: int(m[5]!),
    }));
    assert.equal(rows.length, 4, "the phase table's four rows");
    assert.ok(flat.includes("With N = 2,000 at every phase start"));
    assert.ok(flat.includes("k = ceil(percent × N / 100)"));

    const body = exampleBody();
    const created = await noc.admin("POST", "/v1/admin/rollouts", body);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    assert.equal(created.body.previousVersion, "4.2.1");
    assert.equal(created.body.rollback, true);
    assert.deepEqual(
      created.body.phases.map((p: { plan: { percent: number } }) => p.plan.percent),
      rows.map((r) => r.percent),
      "the table's sizes are the body's",
    );
    // The defaults the text says are filled in and stored.
    assert.ok(flat.includes(
      "each phase has `advance.minHealthyPercent` 95, `stop.maxFailedPercent` 20 with " +
        "`stop.minSample` 5, `auto` true, and each metric gate `minAppliances` 5 and `minBeats` 3",
    ));
    for (const { plan } of created.body.phases) {
      assert.deepEqual(plan.advance, { minHealthyPercent: 95 });
      assert.deepEqual(plan.stop, { maxFailedPercent: 20, minSample: 5 });
      assert.equal(plan.auto, true);
      if (plan.gates.metric) {
        assert.deepEqual(
          [plan.gates.metric.minAppliances, plan.gates.metric.minBeats],
          [5, 3],
        );
      }
    }

    // Each phase, started by "advance now", has the N, k, joiners and control the table states.
    let detail = created.body;
    const seen = new Set<string>();
    for (const [i, row] of rows.entries()) {
      if (i > 0) {
        const r = await noc.admin("POST", `/v1/admin/rollouts/${id}/advance`, {
          note: `phase ${i + 1}`,
        });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        detail = r.body;
      }
      const started = detail.phases[i].started;
      assert.deepEqual(
        {
          targetSize: started.targetSize,
          wanted: started.wanted,
          joined: started.joined,
          control: started.control,
        },
        { targetSize: 2000, wanted: row.wanted, joined: row.joined, control: row.control },
        `phase ${i + 1}`,
      );
      assert.equal(detail.phases[i].members, row.joined);
      assert.equal(row.wanted, Math.ceil((row.percent * 2000) / 100), "k = ceil(p × N / 100)");
      // Each phase's appliances are new: never in two phases.
      const members = await noc.admin(
        "GET",
        `/v1/admin/rollouts/${id}/appliances?phase=${i}&limit=1000`,
      );
      let uids: string[] = members.body.items.map((m: { uid: string }) => m.uid);
      let after = members.body.nextAfter;
      while (after) {
        const more = await noc.admin(
          "GET",
          `/v1/admin/rollouts/${id}/appliances?phase=${i}&limit=1000&after=${after}`,
        );
        uids = [...uids, ...more.body.items.map((m: { uid: string }) => m.uid)];
        after = more.body.nextAfter;
      }
      assert.equal(uids.length, row.joined);
      for (const u of uids) {
        assert.ok(!seen.has(u), "an appliance is in one phase only");
        seen.add(u);
      }
    }
    assert.equal(seen.size, 2000);
    const done = await noc.admin("POST", `/v1/admin/rollouts/${id}/advance`, {});
    assert.equal(done.body.state, "completed");
  },
);

dbTest(
  "docs/operations.md's failing canary: its figures and its notice come out of the statistic as written",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 2000);
    const created = await noc.admin("POST", "/v1/admin/rollouts", exampleBody());
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id: number = created.body.id;
    const canaries = (await noc.admin("GET", `/v1/admin/rollouts/${id}/appliances?phase=0`))
      .body.items.map((m: { uid: string }) => m.uid) as string[];
    assert.equal(canaries.length, 20);
    const control = (await db.sql<{ uid: string }>`
      select uid from rollout_control where rollout_id = ${id} order by uid`).map((r) => r.uid);
    assert.equal(control.length, 1000);
    const inControl = new Set(control);
    const rest = uids.filter((u) => !canaries.includes(u) && !inControl.has(u));

    // The medians the text describes.
    assert.ok(flat.includes(
      "the canaries' own medians are 35 (5 of them), 40 (10), 45 (4) and one that reports 5,000; " +
        "the control sample's are 90 (300 of them), 100 (400) and 110 (300)",
    ));
    const canaryGroups: [number, string[]][] = [
      [35, canaries.slice(0, 5)],
      [40, canaries.slice(5, 15)],
      [45, canaries.slice(15, 19)],
      [5000, canaries.slice(19)],
    ];
    const controlGroups: [number, string[]][] = [
      [90, control.slice(0, 300)],
      [100, control.slice(300, 700)],
      [110, control.slice(700)],
    ];
    const mean = canaryGroups.reduce((s, [v, g]) => s + v * g.length, 0) / canaries.length;
    assert.ok(flat.includes(`The canaries' mean, ${mean},`), `the mean is ${mean}`);

    // Beats every 15 minutes; the daemon's pass after each. Judged at the third beat.
    const failedAt: number[][] = [];
    for (let round = 0; round < 3; round++) {
      noc.clock.advance(900);
      for (const [v, g] of canaryGroups) await beat(noc, g, "4.3.0", v);
      for (const [v, g] of controlGroups) await beat(noc, g, "4.2.1", v);
      await beat(noc, rest, "4.2.1", 100);
      failedAt.push((await rolloutPass(noc.deps)).failed);
    }
    assert.deepEqual(failedAt, [[], [], [id]], "3 beats each (minBeats), then judged");

    const got = (await noc.admin("GET", `/v1/admin/rollouts/${id}`)).body;
    assert.equal(got.state, "failed");
    const figures = JSON.parse(/```json\n(\{\n {2}"path"[\s\S]*?\n\})\n```/.exec(text)![1]!);
    assert.deepEqual(got.evaluation.figures.metric, figures, "the figures as written");
    assert.ok(flat.includes("1 + (40 − 100) / 100 = 0.4"));
    assert.equal(got.evaluation.judgement.failed.gate, "metric");
    assert.deepEqual(got.events.slice(-2).map((e: { kind: string }) => e.kind), [
      "failed",
      "rolled_back",
    ]);
    assert.equal(got.assignment.paused, true);
    assert.equal(got.assignment.excludedFrom, 0);
    assert.ok(flat.includes("its assignment paused with `excludedFrom` 0"));

    // One notice, its text as written (the rollout's id aside).
    const notice = /```text\n(:x: Rollout 1 [^\n]*)\n```/.exec(text)![1]!;
    const sent = await db.sql<{ text: string; payload: Record<string, unknown> }>`
      select text, payload from notices where kind = 'rollout_failed'`;
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.text, notice.replace("Rollout 1 ", `Rollout ${id} `));
    assert.equal(sent[0]!.payload["gate"], "metric");
    assert.equal(sent[0]!.payload["rolledBack"], true);
    assert.deepEqual((await rolloutPass({ ...noc.deps })).failed, [], "judged once");
    noc.clock.advance(60);
    await rolloutPass(noc.deps);
    assert.equal(
      (await db.sql`select 1 from notices where kind = 'rollout_failed'`).length,
      1,
      "it pages once",
    );

    // Every canary's catalog lists 4.2.1 again; a control appliance never left it.
    for (const uid of [...canaries, control[0]!]) {
      const [a] = await db.sql<
        { uid: string; model: string; site: string | null; channel: string; tags: string[] }
      >`select uid, model, site, channel, tags from appliances where uid = ${uid}`;
      const listed = (await resolveCatalog(db.sql, a!)).find((c) => c.app === "vscreen");
      assert.equal(listed?.version, "4.2.1", uid);
    }
  },
);

dbTest(
  "appliances lying in their reported metric cannot take its statistic past the honest ones while fewer than half of a group lie",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 60);
    const r = await createRollout(noc.deps, {
      component: vscreen("4.3.0"),
      target: { type: "all" },
      phases: [
        {
          count: 20,
          soakS: 86400,
          gates: { metric: { path: "vscreen.mailsScanned", maxDropPercent: 30 } },
        },
        { percent: 100, soakS: 0 },
      ],
    }, "alice");
    const canaries = (await db.sql<{ uid: string }>`
      select uid from rollout_members where rollout_id = ${r.id} order by uid`).map((x) => x.uid);
    const others = uids.filter((u) => !canaries.includes(u));
    /** `beats` beats each: `liars` canaries report 0 mails, the other canaries and control 100. */
    const round = async (liars: number, beats: number) => {
      const results = [];
      for (let i = 0; i < beats; i++) {
        noc.clock.advance(900);
        await beat(noc, canaries.slice(0, liars), "4.3.0", 0);
        await beat(noc, canaries.slice(liars), "4.3.0", 100);
        await beat(noc, others, "4.2.1", 100);
        results.push(await rolloutPass(noc.deps));
      }
      return results;
    };
    // 9 of 20 canaries lie: the median of the 20 medians is still an honest 100.
    const honest = await round(9, 3);
    assert.deepEqual(honest.flatMap((p) => p.failed), []);
    const { evaluation } = await getRollout(db.sql, r.id);
    assert.deepEqual(evaluation!.figures.metric!.phase, {
      appliances: 20,
      statistic: 100,
      size: 20,
    });
    assert.equal(evaluation!.figures.metric!.ratio, 1);
    // Half of them lying is what it takes: once the 10th liar's own median is 0 (4 of its 7
    // samples), the group's is halfway between 0 and 100, and the gate fails.
    const half = await round(10, 4);
    assert.deepEqual(half.map((p) => p.failed), [[], [], [], [r.id]]);
  },
);
