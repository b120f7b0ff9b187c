// deno-lint-ignore-file no-explicit-any
/**
 * Review 21 leftovers on the clone mark (docs/protocol.md, "Cloned identities"): the mark and
 * its `cloned_identity` notice name a `state_unwritable` problem reported beside it (separate
 * runs on a read-only state folder repeat seq, which looks like a copy) and the source address
 * of each instance's beats. Signed beats through the real route (`POST /v1/beats`).
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, type TestAppliance, type TestNoc, testNoc } from "./_harness.ts";
import { signIn } from "./_console.ts";

/** A beat from `address` (behind the trusted proxy, as `X-Forwarded-For` says). */
async function beatFrom(
  noc: TestNoc,
  a: TestAppliance,
  address: string,
  seq: number,
  overrides: Record<string, unknown>,
): Promise<number> {
  const req = await a.request("POST", "/v1/beats", sampleBeat(seq, noc.clock.now(), overrides));
  req.headers.set("x-forwarded-for", address);
  const res = await noc.send(req);
  await res.body?.cancel();
  return res.status;
}

const unwritable = (path: string) => ({
  outcome: "failed",
  message: "State folder unwritable",
  problems: [{
    code: "state_unwritable",
    message: `Cannot write ${path}: Read-only file system (os error 30)`,
  }],
});

async function notices(noc: TestNoc) {
  return await noc.deps.db.sql<{ text: string; payload: any }>`
    select text, payload from notices where kind = 'cloned_identity' order by id`;
}

dbTest(
  "the clone mark shows each instance's address and names a state_unwritable problem beside it",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { trustProxy: true } });
    const a = await noc.enrollAppliance({ hostname: "mx-ro-01" });
    const one = crypto.randomUUID(), two = crypto.randomUUID();
    assert.equal(await beatFrom(noc, a, "192.0.2.10", 7, { instanceId: one }), 200);
    noc.clock.advance(60);
    // Another instance repeats seq 7, and says its state folder cannot be written.
    const status = await beatFrom(noc, a, "192.0.2.20", 7, {
      instanceId: two,
      lastCycle: unwritable("/var/lib/noc-agent/cycle.lock"),
    });
    assert.equal(status, 200);

    const sent = await notices(noc);
    assert.equal(sent.length, 1);
    const text = sent[0]!.text;
    assert.match(text, /state_unwritable \(Cannot write \/var\/lib\/noc-agent\/cycle\.lock: /);
    assert.match(text, /state folder that cannot be written/);
    assert.ok(text.includes(`${one} (from 192.0.2.10)`), text);
    assert.ok(text.includes(`${two} (from 192.0.2.20)`), text);
    assert.match(sent[0]!.payload.identityConflict.stateUnwritable, /Read-only file system/);

    const c = (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.identityConflict;
    assert.match(c.stateUnwritable, /^Cannot write \/var\/lib\/noc-agent\/cycle\.lock: /);
    assert.deepEqual(
      c.instances.map((i: any) => [i.instanceId, i.address]),
      [[one, "192.0.2.10"], [two, "192.0.2.20"]],
    );

    // A later conflicting beat moves its instance's address on.
    noc.clock.advance(60);
    assert.equal(await beatFrom(noc, a, "192.0.2.10", 8, { instanceId: one }), 200);
    noc.clock.advance(60);
    assert.equal(await beatFrom(noc, a, "192.0.2.21", 8, { instanceId: two }), 200);
    const later = (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body;
    assert.equal(later.identityConflict.instances[1].address, "192.0.2.21");
    assert.equal(later.lastAddress, "192.0.2.21");

    // The console's clone panel shows both addresses and the read-only reason.
    const ui = await signIn(noc);
    const page = await (await ui.get(`/ui/appliances/${a.uid}`)).text();
    const panel = page.slice(page.indexOf('id="identity-conflict"'));
    assert.match(panel, /192\.0\.2\.10/);
    assert.match(panel, /192\.0\.2\.21/);
    assert.match(panel, /id="identity-conflict-unwritable"/);
    assert.match(panel, /Read-only file system \(os error 30\)/);
  },
);

dbTest(
  "a clone mark without a state_unwritable problem says nothing of one",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    await a.beat({ seq: 3, instanceId: crypto.randomUUID() });
    noc.clock.advance(60);
    await a.beat({ seq: 3, instanceId: crypto.randomUUID() });
    const sent = await notices(noc);
    assert.equal(sent.length, 1);
    assert.doesNotMatch(sent[0]!.text, /state_unwritable/);
    const c = (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.identityConflict;
    assert.equal(c.stateUnwritable, null);
    // In-process requests have no socket address: none recorded, none invented.
    assert.deepEqual(c.instances.map((i: any) => i.address), [null, null]);
    const ui = await signIn(noc);
    const page = await (await ui.get(`/ui/appliances/${a.uid}`)).text();
    assert.doesNotMatch(page, /id="identity-conflict-unwritable"/);
  },
);

dbTest(
  "the clone mark's beats count: 1 after a restored backup, one per conflicting beat of copies",
  async ({ db }) => {
    const noc = await testNoc(db);
    const mark = async (a: TestAppliance) =>
      (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.identityConflict;
    // A restored backup: seq goes back once, one instance beats on (docs/operations.md).
    const restored = await noc.enrollAppliance();
    await restored.beat({ seq: 40, instanceId: crypto.randomUUID() });
    const after = crypto.randomUUID();
    for (const seq of [31, 32, 33]) {
      noc.clock.advance(909);
      await restored.beat({ seq, instanceId: after });
    }
    assert.equal((await mark(restored)).beats, 1);

    // Two copies taking turns: every beat of one that does not pass the other's seq counts.
    const copied = await noc.enrollAppliance();
    const x = crypto.randomUUID(), y = crypto.randomUUID();
    for (const seq of [5, 6, 7, 8]) {
      await copied.beat({ seq, instanceId: x });
      noc.clock.advance(7);
      await copied.beat({ seq, instanceId: y });
      noc.clock.advance(900);
    }
    const c = await mark(copied);
    assert.equal(c.beats, 4, JSON.stringify(c));
    assert.deepEqual(c.instances.map((i: any) => i.instanceId), [x, y]);
  },
);

dbTest(
  "a read-only state folder's repeated seq is no clone: once runs, a restarted service, the first writable run",
  async ({ db }) => {
    const noc = await testNoc(db);
    const ro = await noc.enrollAppliance();
    // Saved at seq 5; then the folder goes read-only.
    await ro.beat({ seq: 5, instanceId: crypto.randomUUID() });
    // Separate `noc-agent once` runs: each beats seq 6 (nothing saved), saying why.
    for (let n = 0; n < 3; n++) {
      noc.clock.advance(909);
      await ro.beat({
        seq: 6,
        instanceId: crypto.randomUUID(),
        lastCycle: unwritable("/state/cycle.lock"),
      });
    }
    // The service (`run`) keeps its seq in memory and goes on rising; restarted, it starts over
    // from the saved seq; `once` by hand beside it repeats the saved seq too.
    const service = crypto.randomUUID();
    for (const seq of [6, 7, 8]) {
      noc.clock.advance(909);
      await ro.beat({ seq, instanceId: service, lastCycle: unwritable("/state/cycle.lock") });
    }
    noc.clock.advance(100);
    await ro.beat({
      seq: 6,
      instanceId: crypto.randomUUID(),
      lastCycle: unwritable("/state/cycle.lock"),
    });
    noc.clock.advance(809);
    await ro.beat({ seq: 9, instanceId: service, lastCycle: unwritable("/state/cycle.lock") });
    noc.clock.advance(909);
    await ro.beat({
      seq: 6,
      instanceId: crypto.randomUUID(),
      lastCycle: unwritable("/state/cycle.lock"),
    });
    // Writable again: the first run repeats the saved seq once more (its beat no longer carries
    // the problem: the report before it did), and the next goes on.
    noc.clock.advance(909);
    await ro.beat({ seq: 6, instanceId: crypto.randomUUID() });
    noc.clock.advance(909);
    await ro.beat({ seq: 7, instanceId: crypto.randomUUID() });
    assert.equal(
      (await noc.admin("GET", `/v1/admin/appliances/${ro.uid}`)).body.identityConflict,
      null,
    );
    assert.equal((await notices(noc)).length, 0);
  },
);

dbTest(
  "copies of a read-only image taking turns are still marked, and the mark names the read-only folder",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    await a.beat({ seq: 5, instanceId: crypto.randomUUID() });
    // Two devices booted from one read-only image: both `run` from seq 5 in memory.
    const x = crypto.randomUUID(), y = crypto.randomUUID();
    const ro = unwritable("/state/cycle.lock");
    await a.beat({ seq: 6, instanceId: x, lastCycle: ro });
    noc.clock.advance(5);
    await a.beat({ seq: 6, instanceId: y, lastCycle: ro }); // excused: a new instance
    assert.equal((await notices(noc)).length, 0);
    noc.clock.advance(900);
    await a.beat({ seq: 7, instanceId: x, lastCycle: ro });
    noc.clock.advance(5);
    await a.beat({ seq: 7, instanceId: y, lastCycle: ro }); // y again, seq repeated: two devices
    const sent = await notices(noc);
    assert.equal(sent.length, 1);
    assert.match(sent[0]!.text, /state_unwritable/);
    const c = (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.identityConflict;
    assert.deepEqual(c.instances.map((i: any) => i.instanceId), [x, y]);
    assert.match(c.stateUnwritable, /Read-only file system/);
  },
);
