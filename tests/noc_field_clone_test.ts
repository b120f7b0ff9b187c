// deno-lint-ignore-file no-explicit-any
/**
 * Issue 21 item 7, the NOC's side: one identity, two devices. Signed beats through the real
 * route (`POST /v1/beats`) with the agent's `instanceId`: two interleaved instances raise one
 * `cloned_identity` notice and mark the appliance (`identityConflict`), with no duplicate while
 * it goes on; a plain restart raises nothing; a restored backup raises one; an operator clears
 * the mark, and the re-enrolled copy beats as its own appliance.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { signIn } from "./_console.ts";

async function notices(noc: TestNoc, kind: string) {
  return await noc.deps.db.sql<{ uid: string; text: string; payload: any }>`
    select uid, text, payload from notices where kind = ${kind} order by id`;
}

dbTest(
  "two devices under one identity (seq 2,2,3,3,4,4) raise one notice and mark the appliance",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-gold-01" });
    const one = crypto.randomUUID(), two = crypto.randomUUID();
    await a.beat({ seq: 1, instanceId: one });
    noc.clock.advance(30);
    // The copy starts from the same state folder: both go on from seq 1.
    for (const seq of [2, 3, 4]) {
      assert.equal((await a.beat({ seq, instanceId: one })).uid, a.uid);
      noc.clock.advance(7);
      assert.equal((await a.beat({ seq, instanceId: two })).uid, a.uid, "still accepted");
      noc.clock.advance(900);
    }
    const sent = await notices(noc, "cloned_identity");
    assert.equal(sent.length, 1, "one notice, however long it goes on");
    assert.equal(sent[0]!.uid, a.uid);
    assert.match(sent[0]!.text, /mx-gold-01/);
    assert.match(sent[0]!.text, /noc-agent enroll --force/);
    assert.ok(sent[0]!.text.includes(one) && sent[0]!.text.includes(two), sent[0]!.text);

    const got = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(got.status, 200);
    const c = got.body.identityConflict;
    assert.equal(c.reason, "seq_not_increasing");
    assert.deepEqual(c.instances.map((i: any) => i.instanceId), [one, two]);
    for (const i of c.instances) {
      assert.match(i.lastSeenAt, /^\d{4}-\d\d-\d\dT.*Z$/, "each instance with its times");
    }
    assert.equal(c.seq, 2);
    assert.equal(c.lastSeq, 2);
    // The copy's beats repeat a seq (2, 3, 4): each is counted; the original's go on rising.
    assert.equal(c.beats, 3, "every conflicting beat is counted");
    // In the list too.
    const list = await noc.admin("GET", `/v1/admin/appliances?q=mx-gold-01`);
    assert.equal(list.body.items[0].identityConflict.reason, "seq_not_increasing");

    // The console's appliance page shows it, with both instances and the way out.
    const ui = await signIn(noc);
    const page = await (await ui.get(`/ui/appliances/${a.uid}`)).text();
    assert.match(page, /id="identity-conflict"/);
    assert.ok(page.includes(one) && page.includes(two));
    assert.match(page, /noc-agent enroll --force/);
    const listed = await (await ui.get("/ui/appliances?q=mx-gold-01")).text();
    assert.match(listed, /data-identity-conflict/, "marked in the fleet list too");

    // The operator clears the mark; as long as both go on, the next conflict marks it again with
    // one more notice.
    const cleared = await noc.admin("DELETE", `/v1/admin/appliances/${a.uid}/identity-conflict`);
    assert.equal(cleared.status, 200, JSON.stringify(cleared.body));
    assert.equal(cleared.body.identityConflict, null);
    await a.beat({ seq: 5, instanceId: one });
    noc.clock.advance(5);
    await a.beat({ seq: 5, instanceId: two });
    assert.equal((await notices(noc, "cloned_identity")).length, 2);
    // Cleared from the console this time.
    assert.match(
      await ui.post(`/ui/appliances/${a.uid}/identity-conflict/clear`),
      /Identity-conflict mark cleared/,
    );
    const after = await (await ui.get(`/ui/appliances/${a.uid}`)).text();
    assert.doesNotMatch(after, /id="identity-conflict"/);
    noc.clock.advance(900);
    await a.beat({ seq: 6, instanceId: one });
    noc.clock.advance(5);
    await a.beat({ seq: 6, instanceId: two });
    assert.equal((await notices(noc, "cloned_identity")).length, 3);
    const missing = await noc.admin(
      "DELETE",
      `/v1/admin/appliances/${crypto.randomUUID()}/identity-conflict`,
    );
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error, "not_found");
  },
);

dbTest(
  "instances taking turns with increasing seqs are caught; a plain restart is not",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const first = crypto.randomUUID(), second = crypto.randomUUID();
    // A restart: a new instance whose seq goes on. Nothing.
    await a.beat({ seq: 10, instanceId: first });
    noc.clock.advance(909);
    await a.beat({ seq: 11, instanceId: first });
    noc.clock.advance(909);
    await a.beat({ seq: 12, instanceId: second });
    noc.clock.advance(909);
    await a.beat({ seq: 13, instanceId: second });
    assert.equal((await notices(noc, "cloned_identity")).length, 0, "a restart is no clone");
    assert.equal(
      (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.identityConflict,
      null,
    );
    // The old instance's last beat, delayed past its successor's first, is no clone either.
    const third = crypto.randomUUID();
    noc.clock.advance(909);
    await a.beat({ seq: 15, instanceId: third });
    await a.beat({
      seq: 14,
      instanceId: second,
      sentAt: new Date(noc.clock.now().getTime() - 30_000).toISOString(),
    });
    assert.equal((await notices(noc, "cloned_identity")).length, 0, "a delayed beat is no clone");
    // Beats without an instance id (an older agent) change nothing.
    noc.clock.advance(300);
    await a.beat({ seq: 16, instanceId: third });
    assert.equal((await notices(noc, "cloned_identity")).length, 0, "nor is its successor's next");
    noc.clock.advance(909);
    await a.beat({ seq: 17 });
    assert.equal((await notices(noc, "cloned_identity")).length, 0);

    // Two processes taking turns on one state folder while seq rises (`noc-agent once` run by hand
    // beside the service, review 21) are one device: no notice. Two copies of one folder count on
    // from the same number, and the first repeated seq marks them.
    const b = await noc.enrollAppliance();
    const x = crypto.randomUUID(), y = crypto.randomUUID();
    await b.beat({ seq: 20, instanceId: x });
    noc.clock.advance(300);
    await b.beat({ seq: 21, instanceId: y });
    noc.clock.advance(300);
    await b.beat({ seq: 22, instanceId: x });
    assert.equal((await notices(noc, "cloned_identity")).length, 0, "seq rose: one device");
    noc.clock.advance(300);
    await b.beat({ seq: 22, instanceId: y });
    const sent = await notices(noc, "cloned_identity");
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.uid, b.uid);
    const c = (await noc.admin("GET", `/v1/admin/appliances/${b.uid}`)).body.identityConflict;
    assert.equal(c.reason, "seq_not_increasing");
    assert.deepEqual(c.instances.map((i: any) => i.instanceId).sort(), [x, y].sort());
  },
);

dbTest(
  "a state folder restored from backup raises one notice, then nothing; re-enrolling the copy separates them",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-restored" });
    const before = crypto.randomUUID(), after = crypto.randomUUID();
    await a.beat({ seq: 40, instanceId: before });
    noc.clock.advance(909);
    // Restored from a backup taken at seq 30, and the agent restarted: one regression.
    await a.beat({ seq: 31, instanceId: after });
    for (const seq of [32, 33, 34]) {
      noc.clock.advance(909);
      await a.beat({ seq, instanceId: after });
    }
    const sent = await notices(noc, "cloned_identity");
    assert.equal(sent.length, 1, "documented: a restored backup may raise one notice");
    const c = (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.identityConflict;
    assert.equal(c.beats, 1, "one conflicting beat: a single instance since");

    // The documented path for a real copy: enrol it again with a new token (as
    // `noc-agent enroll --force` does): a new identity, the original keeps its own.
    const copy = await noc.enrollAppliance({ hostname: "mx-restored-2" });
    assert.notEqual(copy.uid, a.uid);
    await copy.beat({ seq: 1, instanceId: crypto.randomUUID() });
    assert.equal((await notices(noc, "cloned_identity")).length, 1);
    const cleared = await noc.admin("DELETE", `/v1/admin/appliances/${a.uid}/identity-conflict`);
    assert.equal(cleared.body.identityConflict, null);
    noc.clock.advance(909);
    await a.beat({ seq: 35, instanceId: after });
    assert.equal(
      (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.identityConflict,
      null,
    );
  },
);
