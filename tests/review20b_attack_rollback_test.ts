/**
 * Review 20b of issue 20 (phased rollouts), attacker with the source: a rollback goes to the
 * version the rollout says it goes to (`previousVersion`, its notice, its control group), not to
 * whichever assignment the catalog engine falls through to. PGlite, and PostgreSQL with
 * TEST_DATABASE_URL.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import {
  assigned,
  catalogVersion,
  deliver,
  fleet,
  listed,
  notices,
  outcome,
  plan,
  ref,
} from "./_rollouts.ts";
import { getRollout } from "../noc/services/phased_rollouts.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";

// Found by review 20b, now fixed: the rollout, its event and its notice say the failed phase goes back
// to previousVersion 3; the catalogs give 1 (the engine falls through to the newest assignment).
// Its control group is judged on 3 too, which no control appliance runs.
dbTest(
  "review20b: a rollback with an explicit previousVersion sends the failed phase to that version",
  async ({ db }) => {
    // Versions 3 (older assignment) and 1 (newer) are both assigned to every appliance: the
    // engine gives 1. The operator names 3 as the version to go back to.
    const older = { ...assigned(ref("3")), createdAt: new Date("2025-12-01T00:00:00Z") };
    const { noc } = await fleet(db, 20, [], {
      components: [ref("1"), ref("2"), ref("3")],
      assignments: [older, assigned(ref("1"))],
    });
    const created = await noc.admin(
      "POST",
      "/v1/admin/rollouts",
      plan([{ count: 5, soakS: 0 }, { percent: 100, soakS: 0 }], {
        rollback: true,
        previousVersion: "3",
      }),
    );
    if (created.status !== 201) {
      assert.ok(created.status >= 400 && created.status < 500, JSON.stringify(created.body));
      return; // refused: fine
    }
    const id = created.body.id as number;
    const members = (await db.sql<{ uid: string }>`
      select uid from rollout_members where rollout_id = ${id} and phase = 0`).map((m) => m.uid);
    await deliver(noc, members, "2");
    await listed(noc, members, "2");
    noc.clock.advance(1);
    await outcome(noc, members, "2", "failed");
    noc.clock.advance(60);
    const p = await rolloutPass(noc.deps);
    assert.deepEqual(p.failed, [id], JSON.stringify(p));
    const got = await getRollout(db.sql, id);
    const [notice] = await notices(noc);
    const versions = await Promise.all(members.map((u) => catalogVersion(noc, u)));
    assert.deepEqual(
      versions,
      members.map(() => got.previousVersion),
      `rollout ${id}: previousVersion ${got.previousVersion}, notice "${notice?.text}"; the ` +
        `rolled-back canaries' catalogs list ${JSON.stringify(versions)}`,
    );
  },
);
