/**
 * Review of issue 20 (phased rollouts), attacker with the source: a new assignment and a new
 * rollout of the same component, racing, must not both pass the checks that each makes against
 * the other (refuseAssignmentOverRollout against running rollouts; refuseOvershadowed against
 * more specific assignments). PostgreSQL only (two connections).
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { fleet, ref, started as at } from "./_rollouts.ts";
import { createRollout, refuseAssignmentOverRollout } from "../noc/services/phased_rollouts.ts";

dbTest(
  "review20: an assignment and a rollout created at once cannot leave rollout members under a more specific assignment",
  async ({ db, another }) => {
    const { noc } = await fleet(db, 10, [], {
      site: () => "s0",
      components: [ref("1"), ref("2")],
    });
    // POST /v1/admin/assignments' transaction, step by step: its check, then its insert...
    const other = another();
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    let checked!: () => void;
    const isChecked = new Promise<void>((r) => checked = r);
    const assignment = other.begin(async (tx) => {
      await refuseAssignmentOverRollout(tx, ref("1"), { type: "site", value: "s0" });
      await tx`
        insert into assignments (kind, app, name, version, target_type, target_value,
          rollout_percent, min_sample, created_at, updated_at)
        values ('package', 'app', 'pkg', '1', 'site', 's0', 100, 5, ${at}, ${at})`;
      checked();
      await held; // ...and its commit, after the rollout's.
    });
    await isChecked;
    // The rollout's transaction starts while the assignment's holds the component's lock.
    const creating = createRollout(
      noc.deps,
      {
        component: ref("2"),
        target: { type: "all" },
        phases: [{ count: 3, soakS: 0 }, { percent: 100, soakS: 0 }],
      },
      "alice",
    ).catch((e: unknown) => e);
    // Wait (bounded) until it is blocked on the lock, then let the assignment commit.
    for (let i = 0; i < 200; i++) {
      const [w] = await db.sql<{ n: number }>`
        select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`;
      if (w!.n > 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    release();
    let assigned: unknown = "committed";
    try {
      await assignment;
    } catch (e) {
      assigned = e;
    }
    const rollout = await creating;
    const [n] = await db.sql<{ n: number }>`
      select count(*)::int as n from assignments where target_type = 'site'`;
    const [r] = await db.sql<{ n: number }>`select count(*)::int as n from rollouts`;
    assert.ok(
      !(n!.n === 1 && r!.n === 1),
      `both committed: a site assignment of 1 now keeps every member of the rollout of 2 off ` +
        `the release (rollout: ${rollout instanceof Error ? rollout.message : "created"}; ` +
        `assignment: ${assigned instanceof Error ? assigned.message : assigned})`,
    );
  },
  { instances: 2 },
);
