/**
 * Issue 22 item 5: rollout gates count from install time, not from assignment. An appliance that
 * waits for its install window (its last report says `install_deferred` for the release) and goes
 * missing meanwhile is not a failure of the release; a phase's beat-regularity gate counts a
 * member's missed beats from its install of the release on.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, type TestNoc } from "./_harness.ts";
import { createRollout, getRollout } from "../noc/services/phased_rollouts.ts";
import { rolloutProgress } from "../noc/services/rollouts.ts";
import { deliver, fleet, membersByPhase, outcome, pass, plan, ref, report } from "./_rollouts.ts";

/**
 * `uids` report running app/pkg 1, their last cycle deferring app/pkg `version` to a window that
 * opens `opensInS` seconds from now.
 */
async function deferring(
  noc: TestNoc,
  uids: readonly string[],
  version: string,
  opensInS = 3600,
) {
  const now = noc.clock.now();
  const opensAt = new Date(now.getTime() + opensInS * 1000).toISOString();
  const beat = sampleBeat(1, now, {
    components: [ref("1")],
    lastCycle: {
      outcome: "ok",
      problems: [{
        kind: "package",
        app: "app",
        name: "pkg",
        version,
        code: "install_deferred",
        message: "outside its install window 02:00–04:00 UTC (site:lab)",
        opensAt,
      }],
    },
  });
  await noc.deps.db.sql`
    update appliances set last_report = ${beat}, last_beat_at = ${now}
    where uid = any(${[...uids]}::uuid[])`;
}

async function goMissing(noc: TestNoc, uids: readonly string[], at: Date) {
  await noc.deps.db.sql`
    update appliances set missing_since = ${at} where uid = any(${[...uids]}::uuid[])`;
  await noc.deps.db.sql`
    insert into alerts (kind, uid, opened_at)
    select 'missed_heartbeat', u, ${at} from unnest(${[...uids]}::uuid[]) u`;
}

dbTest(
  "an appliance missing before its install window opened is pending; after, it counts",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 6);
    await deliver(noc, uids, "2");
    await deferring(noc, uids.slice(0, 2), "2");
    // Two said their window opens in a minute: they went missing after it opened (review 22a:
    // an install that kills its appliance inside the window must count).
    await deferring(noc, uids.slice(2, 4), "2", 60);
    await report(noc, uids.slice(4), "1");
    noc.clock.advance(120);
    await goMissing(noc, uids, noc.clock.now());
    const p = (await rolloutProgress(db.sql, [ref("2")])).get("package/app/pkg/2")!;
    // Missing before their window opened: pending. After, or without a deferral: missing.
    assert.equal(p.states.pending, 2, JSON.stringify(p));
    assert.equal(p.states.missing, 4, JSON.stringify(p));
    assert.equal(p.failed, 4, "those four count against the release");
  },
);

dbTest(
  "a beat-regularity gate counts a member's missed beats from its install of the release",
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
    await report(noc, uids, "1");
    // Five canaries miss a beat while they wait for their window (they say so), before any install.
    await deferring(noc, canaries.slice(0, 5), "2");
    await goMissing(noc, canaries.slice(0, 5), noc.clock.now());
    // Three of the others missed a beat before they installed it.
    noc.clock.advance(60);
    await db.sql`update appliances set missing_since = null where uid = any(${canaries}::uuid[])`;
    await db.sql`
      insert into alerts (kind, uid, opened_at, resolved_at)
      select 'missed_heartbeat', u, ${noc.clock.now()}, ${noc.clock.now()}
      from unnest(${canaries.slice(5, 8)}::uuid[]) u`;
    noc.clock.advance(60);
    await outcome(noc, canaries.slice(5), "2", "installed");
    await report(noc, canaries.slice(5), "2");
    let p = await pass(noc);
    assert.deepEqual(
      p.failed,
      [],
      "misses before install, or while deferred, are not the release's",
    );
    let got = await getRollout(db.sql, r.id);
    assert.equal(got.evaluation!.figures.beats!.membersMissed, 0, JSON.stringify(got.evaluation));
    // After its install, a member's miss counts.
    noc.clock.advance(60);
    await db.sql`
      insert into alerts (kind, uid, opened_at, resolved_at)
      select 'missed_heartbeat', u, ${noc.clock.now()}, ${noc.clock.now()}
      from unnest(${canaries.slice(5, 8)}::uuid[]) u`;
    p = await pass(noc);
    got = await getRollout(db.sql, r.id);
    assert.equal(got.evaluation!.figures.beats!.membersMissed, 3);
    assert.deepEqual(p.failed, [r.id], "30 % of members against 0 % of control");
  },
);
