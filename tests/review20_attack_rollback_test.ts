/**
 * Review of issue 20 (phased rollouts), attacker with the source: a rollback must leave every
 * appliance of the failed phase on a version the NOC lists (the agent keeps what its catalog no
 * longer lists, so "no version" means "stays on the bad release"), and a rolled-back appliance's
 * fall-back must not be removable from under a running rollout. PGlite, and PostgreSQL with
 * TEST_DATABASE_URL.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc } from "./_harness.ts";
import { seedScenario } from "./_site.ts";
import {
  assigned,
  catalogVersion,
  deliver,
  fleet as seeded,
  listed,
  outcome,
  ref,
} from "./_rollouts.ts";
import type { Db } from "../noc/db/db.ts";
import { advanceRollout, createRollout, getRollout } from "../noc/services/phased_rollouts.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import { fineBucket } from "../noc/services/catalog_engine.ts";
import { ApiError } from "../protocol/http/errors.ts";

/** `n` appliances (sites s0/s1 alternately), app/pkg 1 and 2 published, version 1 as `v1`. */
const fleet = (db: Db, n: number, v1: "all" | "s0") =>
  seeded(db, n, [], {
    components: [ref("1"), ref("2")],
    assignments: [v1 === "all" ? assigned(ref("1")) : assigned(ref("1"), "site", "s0")],
  });

/** Those of `uids` whose catalog lists no app/pkg 1 to go back to (`uid: version`). */
async function stranded(noc: TestNoc, uids: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const uid of uids) {
    const v = await catalogVersion(noc, uid);
    if (v !== "1") out.push(`${uid}: ${v}`);
  }
  return out;
}

/** `members` were sent app/pkg 2 and list it; a second later, those of `failing` report failures. */
async function failAfterListing(noc: TestNoc, members: string[], failing: string[]) {
  await deliver(noc, members, "2");
  await listed(noc, members, "2");
  noc.clock.advance(1);
  await outcome(noc, failing, "2", "failed");
}

/** Fails phase 0 of rollout `id`: its members were sent 2, listed it, and report failures. */
async function failCanaries(noc: TestNoc, id: number): Promise<string[]> {
  const sql = noc.deps.db.sql;
  const members = (await sql<{ uid: string }>`
    select uid from rollout_members where rollout_id = ${id} and phase = 0`).map((m) => m.uid);
  await failAfterListing(noc, members, members);
  noc.clock.advance(60);
  const p = await rolloutPass(noc.deps);
  assert.deepEqual(p.failed, [id], JSON.stringify(p));
  return members;
}

dbTest(
  "review20: a rollback rollout whose previous version reaches only part of its target is refused, or rolls every failed appliance back",
  async ({ db }) => {
    // Version 1 is assigned to site s0 only; the rollout takes 2 to every appliance.
    const { noc } = await fleet(db, 20, "s0");
    let id: number;
    try {
      const r = await createRollout(
        noc.deps,
        {
          component: ref("2"),
          target: { type: "all" },
          phases: [{ count: 10, soakS: 0 }, { percent: 100, soakS: 0 }],
          rollback: true,
        },
        "alice",
      );
      id = r.id;
    } catch (e) {
      assert.ok(e instanceof ApiError && e.status === 400, String(e));
      return; // refused: fine
    }
    const members = await failCanaries(noc, id);
    const got = await getRollout(db.sql, id);
    assert.equal(got.state, "failed");
    assert.deepEqual(
      await stranded(noc, members),
      [],
      "failed-phase appliances whose catalog lists no previous version (the agent keeps 2)",
    );
  },
);

dbTest(
  "review20: the previous version's assignment a rollback depends on cannot be deleted or paused while the rollout runs",
  async ({ db }) => {
    const { noc } = await fleet(db, 20, "all");
    const [prev] = await db.sql<{ id: number }>`
      select id from assignments where version = '1'`;
    const created = await noc.admin("POST", "/v1/admin/rollouts", {
      component: ref("2"),
      target: { type: "all" },
      phases: [{ count: 10, soakS: 0 }, { percent: 100, soakS: 0 }],
      rollback: true,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const paused = await noc.admin("PATCH", `/v1/admin/assignments/${prev!.id}`, { paused: true });
    const deleted = await noc.admin("DELETE", `/v1/admin/assignments/${prev!.id}`);
    if (deleted.status === 204 || paused.status === 200) {
      const members = await failCanaries(noc, created.body.id);
      assert.deepEqual(
        await stranded(noc, members),
        [],
        `pause → ${paused.status}, delete → ${deleted.status}: the rollback had nothing to go ` +
          "back to",
      );
    }
  },
);

dbTest(
  "review20: an appliance enrolled during a phase joins the phase its bucket falls in, and a rollback follows membership",
  async ({ db }) => {
    const { noc } = await fleet(db, 20, "all");
    const r = await createRollout(
      noc.deps,
      {
        component: ref("2"),
        target: { type: "all" },
        phases: [{ count: 4, soakS: 0 }, { count: 12, soakS: 0 }, { percent: 100, soakS: 0 }],
        rollback: true,
      },
      "alice",
    );
    // An appliance enrols while phase 1 runs, with a fine bucket inside phase 1's limit.
    let late = crypto.randomUUID();
    while (fineBucket(late, "package", "app", "pkg") >= r.assignment.phaseLimit!) {
      late = crypto.randomUUID();
    }
    await seedScenario(db.sql, {
      appliances: [{
        uid: late,
        model: "vs-2000",
        channel: "stable",
        site: "s0",
        tags: [],
        revoked: false,
      }],
      components: [],
      assignments: [],
      deliveries: [],
      holds: [],
    });
    await advanceRollout(noc.deps, r.id, "bob");
    const [row] = await db.sql<{ phase: number }>`
      select phase from rollout_members where rollout_id = ${r.id} and uid = ${late}`;
    assert.equal(row?.phase, 0, "it joined phase 1 (index 0), whose bucket range holds it");
    // Phase 2's members fail.
    const sql = db.sql;
    const members = (await sql<{ uid: string }>`
      select uid from rollout_members where rollout_id = ${r.id}`).map((m) => m.uid);
    const phase2 = (await sql<{ uid: string }>`
      select uid from rollout_members where rollout_id = ${r.id} and phase = 1`).map((m) => m.uid);
    await failAfterListing(noc, members, phase2);
    noc.clock.advance(60);
    const p = await rolloutPass(noc.deps);
    assert.deepEqual(p.failed, [r.id]);
    // Membership and the rollback agree: phase 2's members go back, phase 1's (the late one
    // too) keep the release.
    assert.equal(await catalogVersion(noc, late), "2");
    const failedPhase = (await sql<{ uid: string }>`
      select uid from rollout_members where rollout_id = ${r.id} and phase = 1`).map((m) => m.uid);
    assert.ok(failedPhase.length > 0);
    for (const uid of failedPhase) assert.equal(await catalogVersion(noc, uid), "1");
  },
);
