/**
 * Review of issue 20 (phased rollouts), attacker with the source: once a rollout runs, changing a
 * member's tags must not hand it to a more specific assignment of another version (the rollout
 * refuses such targets at creation, and new such assignments, because those members would join
 * its phases without ever getting the release and hold its advance condition back). PGlite, and
 * PostgreSQL with TEST_DATABASE_URL.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { assigned, catalogVersion, fleet, ref } from "./_rollouts.ts";

/** Every appliance at site s0. */
const s0 = { site: () => "s0", components: [ref("1"), ref("2")] };

dbTest(
  "review20: tagging a rollout member into a more specific assignment of another version is refused",
  async ({ db }) => {
    // Version 1 is assigned to the tag before any appliance has it (allowUnknownTarget).
    const { noc } = await fleet(db, 20, [assigned(ref("1"), "tag", "pinned")], s0);
    const created = await noc.admin("POST", "/v1/admin/rollouts", {
      component: ref("2"),
      target: { type: "all" },
      phases: [{ count: 4, soakS: 0 }, { percent: 100, soakS: 0 }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const [m] = await db.sql<{ uid: string }>`
      select uid from rollout_members where rollout_id = ${created.body.id} limit 1`;
    const patched = await noc.admin("PATCH", `/v1/admin/appliances/${m!.uid}`, {
      tags: ["pinned"],
    });
    const v = await catalogVersion(noc, m!.uid);
    assert.ok(
      patched.status === 409 || v === "2",
      `PATCH → ${patched.status}; the canary's catalog now lists ${v}: it stays in phase 1 ` +
        "without the release",
    );
  },
);

dbTest(
  "review20: a plain assignment of the release itself may not take a running rollout's target past its phases",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 20, [], s0);
    const created = await noc.admin("POST", "/v1/admin/rollouts", {
      component: ref("2"),
      target: { type: "all" },
      phases: [{ count: 2, soakS: 0 }, { percent: 100, soakS: 0 }],
      rollback: true,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const plain = await noc.admin("POST", "/v1/admin/assignments", {
      ...ref("2"),
      target: { type: "site", value: "s0" },
      rolloutPercent: 100,
    });
    let on2 = 0;
    for (const uid of uids) if (await catalogVersion(noc, uid) === "2") on2++;
    assert.ok(
      plain.status === 409 || on2 === 2,
      `POST /assignments of the release → ${plain.status}; ${on2} of 20 appliances now get it ` +
        "while the rollout's canary phase has 2 (and a rollback cannot take them back)",
    );
  },
);

dbTest(
  "review20: deleting an ended rollout's assignment keeps the rollout's record and timeline",
  async ({ db }) => {
    const { noc } = await fleet(db, 10, [], { ...s0, assignments: [] });
    const created = await noc.admin("POST", "/v1/admin/rollouts", {
      component: ref("2"),
      target: { type: "all" },
      phases: [{ count: 2, soakS: 0 }, { percent: 100, soakS: 0 }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const cancelled = await noc.admin("POST", `/v1/admin/rollouts/${id}/cancel`, {
      note: "bad build",
    });
    assert.equal(cancelled.status, 200);
    const del = await noc.admin("DELETE", `/v1/admin/assignments/${created.body.assignmentId}`);
    const after = await noc.admin("GET", `/v1/admin/rollouts/${id}`);
    assert.ok(
      del.status === 409 || after.status === 200,
      `DELETE assignment → ${del.status}; GET rollout → ${after.status}: its timeline is gone`,
    );
  },
);
