// deno-lint-ignore-file no-explicit-any
/**
 * Review 21c (attacker): the clone check against reordered beats and a thief that knows the
 * protocol. A beat of another instance held back by the network (within the signature window)
 * is late, not a clash; a copy that leaves out its instanceId, or reuses the original's, is
 * marked. Signed beats through the real route (POST /v1/beats) of a test NOC.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, testNoc } from "./_harness.ts";

async function cloned(noc: any) {
  return (await noc.deps.db.sql`select uid from notices where kind = 'cloned_identity'`).length;
}

dbTest(
  "a `once` beat held back 60 s behind the service's next is late, not a clone",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-ok-01" });
    const service = crypto.randomUUID(), once = crypto.randomUUID();
    await a.beat({ seq: 10, instanceId: service });
    noc.clock.advance(60);
    // `noc-agent once` run by hand: its beat (seq 11, signed now) is held by the network
    // (a man in the middle on a plain-HTTP dev NOC, or a stalled proxy); its request times out.
    const heldAt = noc.clock.now();
    const held = await a.request(
      "POST",
      "/v1/beats",
      sampleBeat(11, heldAt, { instanceId: once }),
      { now: heldAt },
    );
    noc.clock.advance(30);
    // The service's next cycle reads seq 11 from the state folder and sends 12.
    await a.beat({ seq: 12, instanceId: service });
    noc.clock.advance(30);
    // The held beat arrives 60 s late: well within the 300 s signature window.
    const res = await noc.send(held);
    assert.equal(res.status, 200);
    const got = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(
      got.body.identityConflict,
      null,
      `healthy appliance marked cloned: ${JSON.stringify(got.body.identityConflict)}`,
    );
    assert.equal(await cloned(noc), 0);
  },
);

dbTest(
  "a crash-looping agent's delayed beat (two restarts in the window) is not a clone",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-ok-02" });
    const A = crypto.randomUUID(), B = crypto.randomUUID(), C = crypto.randomUUID();
    await a.beat({ seq: 10, instanceId: A });
    noc.clock.advance(900);
    const at = noc.clock.now();
    const held = await a.request("POST", "/v1/beats", sampleBeat(11, at, { instanceId: B }), {
      now: at,
    });
    noc.clock.advance(40); // B killed (supervisor), C starts and beats seq 12.
    await a.beat({ seq: 12, instanceId: C });
    noc.clock.advance(20);
    assert.equal((await noc.send(held)).status, 200);
    const got = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(got.body.identityConflict, null, JSON.stringify(got.body.identityConflict));
  },
);

dbTest(
  "a copy that leaves out instanceId, or reuses the original's, is marked",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-real-01" });
    const real = crypto.randomUUID();
    for (let s = 1; s <= 4; s++) {
      await a.beat({ seq: s, instanceId: real });
      noc.clock.advance(30);
      // The thief's copy: same state folder, no instanceId at all.
      const r = await a.beat({ seq: s, hostname: "thief" });
      assert.equal(r.uid, a.uid);
      noc.clock.advance(870);
    }
    let got = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    const omitted = got.body.identityConflict;
    assert.notEqual(omitted, null, "a copy without instanceId is marked");
    assert.equal(omitted.instances[1].instanceId, null);
    assert.equal(await cloned(noc), 1);
    // Cleared by the operator; then the copy reusing the id.
    const cleared = await noc.admin("DELETE", `/v1/admin/appliances/${a.uid}/identity-conflict`);
    assert.equal(cleared.status, 200, JSON.stringify(cleared.body));
    // A copy reusing the original's instance id (shown in the log, `agent_started`).
    for (let s = 5; s <= 8; s++) {
      await a.beat({ seq: s, instanceId: real });
      noc.clock.advance(30);
      await a.beat({ seq: s, instanceId: real, hostname: "thief" });
      noc.clock.advance(870);
    }
    got = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.notEqual(got.body.identityConflict, null, "a copy reusing the instance id is marked");
    assert.deepEqual(
      got.body.identityConflict.instances.map((i: any) => i.instanceId),
      [real, real],
    );
    assert.equal(await cloned(noc), 2);
    const notice = await noc.deps.db.sql<{ text: string }>`
      select text from notices where kind = 'cloned_identity' order by id`;
    assert.match(notice[0]!.text, /\(none: the beat carried no instanceId\)/);
    // The way out it gives keeps the original (newcomer review 21c: without --hostname, the copy
    // enrolled under the original's name and retired it).
    assert.match(notice[0]!.text, /--hostname <its own name>/);
  },
);
