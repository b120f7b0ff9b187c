/**
 * Review 23b (newcomer): an appliance that obeyed the NOC's own `Retry-After` was paged as
 * missing, and a fleet falling silent over a few seconds made hundreds of notices, one per due
 * sweep. Now a shed check-in holds overdue appliances for one interval plus the grace after it
 * (at most three intervals past their deadline), and a mass event at the due timer waits for the
 * cron job's sweep, one digest. Real 503s from the real app; the due timer's steps by hand.
 */
import assert from "node:assert/strict";
import {
  dbTest,
  holdCheckinSlot,
  sampleBeat,
  type TestAppliance,
  type TestNoc,
  testNoc,
} from "./_harness.ts";
import { ManualClock } from "../noc/clock.ts";
import { dueTimerStep } from "../noc/jobs/due_timer.ts";
import { statusDaemon } from "../noc/jobs/status_daemon.ts";

const settings = { reportIntervalS: 60, graceS: 15, maxInFlight: 1, maxQueue: 0 };

async function beat(noc: TestNoc, a: TestAppliance, seq: number): Promise<number> {
  const res = await noc.app.request(
    await a.request("POST", "/v1/beats", sampleBeat(seq, noc.clock.now())),
  );
  await res.body?.cancel();
  return res.status;
}

/** Sheds `a`'s beat for real: another beat holds the only check-in slot meanwhile. */
async function shed(noc: TestNoc, holder: TestAppliance, a: TestAppliance, seq: number) {
  const held = await holdCheckinSlot(noc, holder, "/v1/beats", 1000 + seq);
  assert.equal(await beat(noc, a, seq), 503, "shed");
  held.release();
  assert.equal((await held.answer).status, 200);
}

const alertedUids = async (noc: TestNoc) =>
  (await noc.deps.db.sql<{ uid: string }>`select uid from alerts order by uid`).map((r) => r.uid);

dbTest(
  "alerts_held_after_shed: a line when the number held changes, at most one each 10 s",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const t0 = clock.now().getTime();
    const noc = await testNoc(db, { clock, settings });
    try {
      const holder = await noc.enrollAppliance({ hostname: "holder" });
      const fleet: TestAppliance[] = [];
      for (let i = 0; i < 3; i++) {
        fleet.push(await noc.enrollAppliance({ hostname: `held-${i}` }));
        clock.set(new Date(t0 + i * 1000));
        assert.equal(await beat(noc, fleet[i]!, 1), 200); // due +60 s, +61 s, +62 s
      }
      clock.set(new Date(t0 + 62_000));
      for (const a of fleet) await shed(noc, holder, a, 2);
      const told = { appliances: -1, atMs: -Infinity };
      const lines = () =>
        (noc.deps.log as unknown as { lines: { event: string; appliances?: number }[] }).lines
          .filter((l) => l.event === "alerts_held_after_shed").map((l) => l.appliances);
      // Their deadlines (+75, +76, +77 s) pass one a second: one line, not three.
      let cutoff = new Date(t0);
      for (let s = 75; s <= 77; s++) {
        clock.set(new Date(t0 + s * 1000));
        cutoff = (await dueTimerStep(noc.deps, cutoff, null, told)).cutoff;
      }
      assert.deepEqual(lines(), [1]);
      // Ten seconds on, the number it says is the one held now.
      clock.set(new Date(t0 + 85_000));
      await dueTimerStep(noc.deps, new Date(t0), null, told);
      assert.deepEqual(lines(), [1, 3]);
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest(
  "an appliance told to come back later is not paged before its interval plus the grace after",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const t0 = clock.now().getTime();
    const noc = await testNoc(db, { clock, settings });
    try {
      const holder = await noc.enrollAppliance({ hostname: "holder" });
      const obeys = await noc.enrollAppliance({ hostname: "obeys" });
      const gone = await noc.enrollAppliance({ hostname: "gone" });
      for (const a of [obeys, gone]) assert.equal(await beat(noc, a, 1), 200); // due +60
      // At its due time each tries; both are answered 503 (told to come back within 60 s).
      clock.set(new Date(t0 + 60_000));
      await shed(noc, holder, obeys, 2);
      await shed(noc, holder, gone, 2);
      // Their deadlines (+75) pass: held, not paged; the timer knows when the hold ends.
      clock.set(new Date(t0 + 75_000));
      let step = await dueTimerStep(noc.deps, new Date(t0));
      assert.deepEqual(step.swept?.alerted, [], "nobody paged for the pause it was asked");
      assert.equal(step.heldUntil?.getTime(), t0 + 60_000 + 60_000 + 15_000);
      // One comes back as told; the other never does.
      clock.set(new Date(t0 + 118_000));
      assert.equal(await beat(noc, obeys, 3), 200);
      assert.equal(await beat(noc, holder, 3), 200);
      clock.set(new Date(t0 + 134_000));
      step = await dueTimerStep(noc.deps, step.cutoff, step.heldUntil);
      assert.equal(step.swept, null, "not before the hold ends");
      clock.set(new Date(t0 + 135_000));
      step = await dueTimerStep(noc.deps, step.cutoff, step.heldUntil);
      assert.deepEqual(step.swept?.alerted, [gone.uid], "the one that never came back");
      assert.deepEqual(await alertedUids(noc), [gone.uid]);
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest(
  "a NOC that keeps shedding still pages an appliance three intervals past its deadline",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const t0 = clock.now().getTime();
    const noc = await testNoc(db, { clock, settings });
    try {
      const holder = await noc.enrollAppliance({ hostname: "holder" });
      const a = await noc.enrollAppliance({ hostname: "dead" });
      assert.equal(await beat(noc, a, 1), 200); // due +60, deadline +75
      // Some check-in is shed every 30 s, for ever.
      let step = null;
      for (let t = 60; t <= 260; t += 30) {
        clock.set(new Date(t0 + t * 1000));
        await shed(noc, holder, holder, 2000 + t);
        step = await dueTimerStep(noc.deps, new Date(t0), step?.heldUntil ?? null);
        const alerted = await alertedUids(noc);
        if (t < 255) assert.deepEqual(alerted, [], `held at +${t} s`);
        else assert.deepEqual(alerted, [a.uid], `paged at +${t} s (deadline +75, plus 3 × 60)`);
      }
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

// Review 23i: 18 made 9 notices at once and 9 more a sweep later (a remainder of ten or fewer went
// one notice each). Any fleet above ten: ten at once, then one digest of the rest.
for (const size of [11, 18, 30]) {
  dbTest(
    `a fleet falling silent over seconds: ten notices at once, the rest one digest a sweep later (${size})`,
    async ({ db }) => {
      const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
      const t0 = clock.now().getTime();
      const noc = await testNoc(db, { clock, settings: { reportIntervalS: 60, graceS: 15 } });
      try {
        const fleet: TestAppliance[] = [];
        for (let i = 0; i < size; i++) {
          const a = await noc.enrollAppliance({ hostname: `site-a-${i}` });
          fleet.push(a);
          clock.set(new Date(t0 + i * 200)); // beats 0.2 s apart: deadlines 0.2 s apart
          assert.equal(await beat(noc, a, 1), 200);
        }
        // Then all fall silent: the due timer sweeps at each deadline.
        let step = null;
        for (let i = 0; i < size; i++) {
          clock.set(new Date(t0 + 75_000 + i * 200));
          step = await dueTimerStep(noc.deps, step?.cutoff ?? new Date(t0));
        }
        assert.equal((await alertedUids(noc)).length, size, "every alert raised at its deadline");
        const notices = async () => (await db.sql<
          { kind: string; text: string; payload: { count?: number } }
        >`
          select kind, text, payload from notices where kind like 'missed_heartbeat%' order by id`);
        const atOnce = await notices();
        assert.equal(atOnce.length, 10, "the first ten, each at once");
        assert.ok(atOnce.every((n) => n.kind === "missed_heartbeat"));
        // The cron job's sweep sends the rest as one notice: a digest naming them (one left: its
        // own notice).
        clock.advance(30);
        await statusDaemon(noc.deps);
        const all = await notices();
        assert.equal(all.length, 11);
        if (size === 11) {
          assert.equal(all[10]!.kind, "missed_heartbeat");
          assert.match(all[10]!.text, /Missed heartbeat: site-a-10 /);
        } else {
          assert.equal(all[10]!.kind, "missed_heartbeat_digest");
          assert.equal(all[10]!.payload.count, size - 10);
          assert.match(all[10]!.text, /: site-a-10; site-a-11/);
        }
      } finally {
        await noc.deps.wakeups.close();
      }
    },
  );
}

dbTest(
  "a real outage after decoys fall silent still names the appliance and why (review 23j)",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const t0 = clock.now().getTime();
    const noc = await testNoc(db, { clock, settings: { reportIntervalS: 60, graceS: 15 } });
    try {
      const decoys: TestAppliance[] = [];
      for (let i = 0; i < 11; i++) {
        decoys.push(await noc.enrollAppliance({ hostname: `decoy-${i}` }));
      }
      const victims = [
        await noc.enrollAppliance({ hostname: "core-router" }),
        await noc.enrollAppliance({ hostname: "edge-router" }),
      ];
      for (const d of decoys) assert.equal(await beat(noc, d, 1), 200);
      clock.set(new Date(t0 + 30_000));
      for (const v of victims) {
        const res = await noc.send(
          await v.request(
            "POST",
            "/v1/beats",
            sampleBeat(1, clock.now(), {
              lastCycle: {
                outcome: "failed",
                problems: [{ code: "disk_full", message: "root fs full" }],
              },
            }),
          ),
        );
        assert.equal(res.status, 200);
        await res.body?.cancel();
      }
      clock.set(new Date(t0 + 80_000));
      await statusDaemon(noc.deps); // the decoys: eleven alerts, one digest
      clock.set(new Date(t0 + 106_000));
      await statusDaemon(noc.deps, { atDeadline: true }); // a mass event: held for the minute
      clock.set(new Date(t0 + 120_000));
      await statusDaemon(noc.deps);
      const [last] = await db.sql<{ kind: string; text: string }>`
        select kind, text from notices where kind like 'missed_heartbeat%' order by id desc limit 1`;
      assert.equal(last!.kind, "missed_heartbeat_digest");
      assert.match(last!.text, /core-router \(last reported problem: disk_full \(root fs full\)\)/);
      assert.match(last!.text, /edge-router \(last reported problem: disk_full/);
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);
