// deno-lint-ignore-file no-explicit-any
/**
 * Review 21d (attacker, second pass): the clone check (noc/services/checkins.ts, beat statement)
 * against one honest device (false positives it found: a restored backup marked again after
 * clearing, a read-only episode's in-memory seq repeated, one process's own delayed beat) and a
 * protocol-aware copy (false negatives: "late" beats with unseen seqs, a faked state_unwritable
 * resetting the count). Each now holds; signed beats through the real route.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, testNoc } from "./_harness.ts";

async function mark(noc: any, uid: string) {
  return (await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body;
}
async function notices(noc: any) {
  return (await noc.deps.db.sql`select uid from notices where kind = 'cloned_identity'`).length;
}
const unwritable = {
  outcome: "failed",
  problems: [{ code: "state_unwritable", message: "Cannot write /var/lib/noc-agent/state.json" }],
};

// FP 1: a VM snapshot (or state-folder backup) restored one hour back: the doc says the notice is
// raised once, "clear the mark". It marked again after clearing (a seq still among the last 32
// recorded, from the timeline the restore undid): a newest beat now forgets the seqs above its own.
dbTest(
  "a restored backup (4 beats back) is marked once; after clearing, its next beats are not",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "fp-backup" });
    const A = crypto.randomUUID();
    for (let s = 1; s <= 20; s++) {
      await a.beat({ seq: s, instanceId: A });
      noc.clock.advance(900);
    }
    // Snapshot taken at seq 16 restored; the agent restarts (new instance) and counts on from 16.
    const B = crypto.randomUUID();
    await a.beat({ seq: 17, instanceId: B });
    assert.ok((await mark(noc, a.uid)).identityConflict, "first mark (documented)");
    assert.equal(await notices(noc), 1);
    const del = await noc.admin("DELETE", `/v1/admin/appliances/${a.uid}/identity-conflict`);
    assert.ok(del.status < 300, JSON.stringify(del));
    noc.clock.advance(900);
    await a.beat({ seq: 18, instanceId: B });
    const after = await mark(noc, a.uid);
    assert.equal(
      after.identityConflict,
      null,
      `one honest device marked again after the clear: ${
        JSON.stringify(after.identityConflict)
      }; ` +
        `notices: ${await notices(noc)}`,
    );
  },
);

// FP 2: a state folder read-only for a while (service A counts on in memory: unsaved map), fixed;
// two `noc-agent once` runs (the operator checking) take seq 6 and 7 from disk; the service's next
// cycle takes 7 from its in-memory state (cycle.ts: unsaved.get before loadState) and repeats it.
dbTest(
  "read-only folder fixed, two once runs, then the service's next beat: not marked",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "fp-ro" });
    const A = crypto.randomUUID();
    for (let s = 1; s <= 5; s++) {
      await a.beat({ seq: s, instanceId: A });
      noc.clock.advance(900);
    }
    // Folder goes read-only: A's seq 6 is in memory only (disk says 5).
    await a.beat({ seq: 6, instanceId: A, lastCycle: unwritable });
    noc.clock.advance(300);
    // Folder fixed; the operator runs `noc-agent once` twice: disk 5 -> 6, then 7 (both saved).
    await a.beat({ seq: 6, instanceId: crypto.randomUUID() });
    noc.clock.advance(60);
    await a.beat({ seq: 7, instanceId: crypto.randomUUID() });
    assert.equal((await mark(noc, a.uid)).identityConflict, null, "once runs are fine");
    noc.clock.advance(500);
    // The service's next cycle goes on from the higher of its in-memory seq (6) and the state
    // file's (7): 8 (agent/cycle.ts, review 21d).
    await a.beat({ seq: 8, instanceId: A });
    const got = await mark(noc, a.uid);
    assert.equal(
      got.identityConflict,
      null,
      `honest device marked: ${JSON.stringify(got.identityConflict)}`,
    );
  },
);

// FP 3 (same instance, reordered): one agent process's beat n held in the network behind its beat
// n+1 (short interval, a NOC stalled past the agent's 30 s timeout): same instance, so it is judged
// although its seq was never seen and its sentAt is older.
dbTest("one process's beat held behind its next is late, not a clone", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance({ hostname: "fp-same" });
  const A = crypto.randomUUID();
  await a.beat({ seq: 1, instanceId: A });
  noc.clock.advance(60);
  const at = noc.clock.now();
  const held = await a.request("POST", "/v1/beats", sampleBeat(2, at, { instanceId: A }), {
    now: at,
  });
  noc.clock.advance(70); // 30 s timeout + retry after min(interval, 60) s
  await a.beat({ seq: 3, instanceId: A });
  noc.clock.advance(20);
  assert.equal((await noc.send(held)).status, 200);
  const got = await mark(noc, a.uid);
  assert.equal(
    got.identityConflict,
    null,
    `honest device marked: ${JSON.stringify(got.identityConflict)}`,
  );
});

// FN 1: a copy that never becomes "newest": another instanceId, sentAt just before the original's
// latest sentAt (within the 300 s window), and any seq not among the last 32 (seq 0 every time
// works too once it is evicted; here fresh old numbers). Never judged; it keeps the appliance "alive".
dbTest("a copy beating 'late' with unseen seqs is marked", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance({ hostname: "fn-late" });
  const O = crypto.randomUUID();
  let addrChanged = 0;
  for (let s = 100; s < 140; s++) {
    const sentO = noc.clock.now();
    await a.beat({ seq: s, instanceId: O });
    noc.clock.advance(120);
    const at = noc.clock.now();
    const thief = sampleBeat(s - 60, new Date(sentO.getTime() - 1000), {
      instanceId: crypto.randomUUID(),
      agentVersion: "9.9.9-thief",
    });
    const r = await noc.send(await a.request("POST", "/v1/beats", thief, { now: at }));
    assert.equal(r.status, 200);
    addrChanged++;
    noc.clock.advance(780);
  }
  const got = await mark(noc, a.uid);
  assert.notEqual(
    got.identityConflict,
    null,
    `40 rounds of a copy's beats, no mark; agentVersion now ${got.agentVersion}`,
  );
});

// FN 2: a copy claiming state_unwritable: X1 (seq above the last, fresh id, unwritable) is newest
// and not a clash; X2 (another fresh id) is exempt by X1's unwritable report whatever its seq, and
// sets last_seq to 0; the original's next beat then passes. The thief's report is the newest one
// between the original's beats; repeated every round, nothing is ever marked.
dbTest(
  "a copy faking state_unwritable from two fresh instances cannot reset the count: marked",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "fn-unw" });
    const O = crypto.randomUUID();
    let thiefSeq = 1_000_000;
    for (let s = 1; s <= 30; s++) {
      await a.beat({ seq: s, instanceId: O, hostname: "fn-unw" });
      noc.clock.advance(300);
      const r1 = await a.beat({
        seq: ++thiefSeq,
        instanceId: crypto.randomUUID(),
        hostname: "thief",
        lastCycle: unwritable,
      });
      noc.clock.advance(5);
      const r2 = await a.beat({
        seq: 0,
        instanceId: crypto.randomUUID(),
        hostname: "thief",
        lastCycle: unwritable,
      });
      assert.ok(r1.uid && r2.uid, JSON.stringify([r1, r2]));
      noc.clock.advance(595);
    }
    const got = await mark(noc, a.uid);
    assert.notEqual(
      got.identityConflict,
      null,
      `30 rounds, 60 thief beats, no mark (hostname history: ${got.hostnameHistory?.length})`,
    );
  },
);
