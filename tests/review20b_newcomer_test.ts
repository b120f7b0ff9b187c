/**
 * Issue 20, from the newcomer's review (the docs followed literally, with real agents): a rollback
 * sends a failed phase back even when a cancelled rollout of the same release had reached it; a
 * phase that adds no appliances (10 % of 6 is the 1 % canary's one again) advances after its soak
 * instead of waiting for ever; and the operator actions take the docs' curl form, a JSON
 * Content-Type with no body. PGlite, and PostgreSQL with TEST_DATABASE_URL.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { cancelRollout, createRollout, getRollout } from "../noc/services/phased_rollouts.ts";
import {
  catalogVersion,
  deliver,
  fleet,
  listed,
  membersByPhase,
  outcome,
  pass,
  plan,
  report,
} from "./_rollouts.ts";

dbTest(
  "a rollback sends the failed phase back even where a cancelled rollout of the release reached it",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 20);
    // A first rollout of 2 reaches 5 appliances (sent and listed), then is cancelled: its
    // assignment stays, paused, and keeps those 5 on 2 as a paused rollout does.
    const first = await createRollout(
      noc.deps,
      plan([{ count: 5, soakS: 0 }, { percent: 100, soakS: 0 }]),
      "alice",
    );
    const reached = (await membersByPhase(noc, first.id))[0]!;
    await deliver(noc, reached, "2");
    await listed(noc, reached, "2");
    await cancelRollout(noc.deps, first.id, "alice");
    for (const uid of reached) assert.equal(await catalogVersion(noc, uid), "2", "kept");
    // A second rollout of 2 with rollback: the same fine buckets make the same canaries; they
    // fail, and go back to 1 — the cancelled rollout's assignment does not keep them on 2.
    const second = await createRollout(
      noc.deps,
      plan([{ count: 5, soakS: 0 }, { percent: 100, soakS: 0 }], { rollback: true }),
      "bob",
    );
    const canaries = (await membersByPhase(noc, second.id))[0]!;
    assert.deepEqual([...canaries].sort(), [...reached].sort());
    await report(noc, uids, "1");
    noc.clock.advance(1);
    await outcome(noc, canaries, "2", "failed");
    const p = await pass(noc);
    assert.deepEqual(p.failed, [second.id]);
    for (const uid of canaries) assert.equal(await catalogVersion(noc, uid), "1", uid);
  },
);

dbTest(
  "a phase that adds no appliances holds at once and advances after its soak time",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 6);
    // 1 % and 10 % of 6 are both one appliance: the second phase adds none.
    const r = await createRollout(
      noc.deps,
      plan([
        { percent: 1, soakS: 60, gates: { pluginHealth: { maxUnhealthyPercent: 0 } } },
        {
          percent: 10,
          soakS: 60,
          gates: {
            pluginHealth: { maxUnhealthyPercent: 0 },
            metric: { path: "app.n", maxDropPercent: 30 },
            beatRegularity: { maxExtraMissedPercent: 10 },
          },
        },
        { percent: 100, soakS: 0 },
      ]),
      "alice",
    );
    const canary = (await membersByPhase(noc, r.id))[0]!;
    await report(noc, uids, "1");
    await deliver(noc, canary, "2");
    await report(noc, canary, "2");
    await pass(noc);
    assert.deepEqual((await pass(noc)).advanced, [r.id], "the canary holds and advances");
    let got = await getRollout(db.sql, r.id);
    assert.equal(got.phase, 1);
    assert.equal(got.phases[1]!.members, 0, "the second phase adds no appliance");
    await pass(noc);
    got = await getRollout(db.sql, r.id);
    assert.deepEqual(got.evaluation!.judgement.waiting, [], "nothing to wait for");
    assert.match(got.evaluation!.judgement.gates[0]!.summary, /no appliances in this phase/);
    assert.deepEqual((await pass(noc)).advanced, [r.id], "advanced after its soak time");
    assert.equal((await getRollout(db.sql, r.id)).phase, 2);
  },
);

dbTest(
  "pause, resume, advance and cancel take a JSON Content-Type with no body, as the docs' curl does",
  async ({ db }) => {
    const { noc } = await fleet(db, 10);
    const r = await createRollout(
      noc.deps,
      plan([{ count: 2, soakS: 600 }, { percent: 100, soakS: 0 }]),
      "alice",
    );
    for (const action of ["pause", "resume", "advance", "cancel"]) {
      const res = await noc.app.request(`/v1/admin/rollouts/${r.id}/${action}`, {
        method: "POST",
        headers: { authorization: `Bearer ${noc.adminToken}`, "content-type": "application/json" },
      });
      assert.equal(res.status, 200, `${action}: ${await res.clone().text()}`);
      await res.body?.cancel();
    }
    assert.equal((await getRollout(db.sql, r.id)).state, "cancelled");
    // A body that is there must still be JSON.
    const bad = await noc.app.request(`/v1/admin/rollouts/${r.id}/pause`, {
      method: "POST",
      headers: { authorization: `Bearer ${noc.adminToken}`, "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error, "malformed_json");
  },
);
