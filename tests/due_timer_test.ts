// deno-lint-ignore-file no-explicit-any
/**
 * Issue 23 item 0: the due timer (noc/jobs/due_timer.ts) sweeps at an appliance's deadline (its
 * due time plus the grace), not at the next minute's cron job; an appliance a maintenance window
 * holds does not make it spin; two instances at the same deadline raise one alert.
 */
import assert from "node:assert/strict";
import {
  count,
  dbTest,
  sampleBeat,
  type TestAppliance,
  type TestNoc,
  testNoc,
} from "./_harness.ts";
import { ManualClock } from "../noc/clock.ts";
import { dueTimerStep, maxWaitS, nextDeadline, timerWaitMs } from "../noc/jobs/due_timer.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";

const settings = { reportIntervalS: 60, graceS: 30 };

async function beat(noc: TestNoc, a: TestAppliance, seq: number) {
  const res = await noc.app.request(
    await a.request("POST", "/v1/beats", sampleBeat(seq, noc.clock.now())),
  );
  assert.equal(res.status, 200, await res.clone().text());
}

/**
 * Twelve appliances beat at t0 and all miss their deadline (interval plus grace later): the due
 * timer's step alerts them all and, a mass event, holds the notices for the minute's sweep.
 */
async function heldMassEvent(
  db: Parameters<typeof testNoc>[0],
  opts: { reportIntervalS: number; graceS: number },
) {
  const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
  const t0 = clock.now().getTime();
  const noc = await testNoc(db, { clock, settings: opts });
  const fleet: TestAppliance[] = [];
  for (let i = 0; i < 12; i++) fleet.push(await noc.enrollAppliance({ hostname: `s-${i}` }));
  for (const a of fleet) await beat(noc, a, 1);
  clock.set(new Date(t0 + (opts.reportIntervalS + opts.graceS) * 1000));
  const step = await dueTimerStep(noc.deps, new Date(t0));
  assert.equal(step.swept?.alerted.length, 12);
  assert.equal(step.swept?.notices, 0, "a mass event: held for the minute's sweep");
  return { clock, t0, noc, fleet, step };
}

dbTest("dueTimerStep() sweeps at the deadline, to the second, and not before", async ({ db }) => {
  const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
  const t0 = clock.now().getTime();
  const noc = await testNoc(db, { clock, settings });
  try {
    const a = await noc.enrollAppliance();
    await beat(noc, a, 1); // due at +60, alertable at +90
    let cutoff = new Date(t0 - 30_000);
    clock.set(new Date(t0 + 89_000));
    let step = await dueTimerStep(noc.deps, cutoff);
    assert.equal(step.deadline?.getTime(), t0 + 90_000);
    assert.equal(step.swept, null, "not before its deadline");
    clock.set(new Date(t0 + 90_000));
    step = await dueTimerStep(noc.deps, step.cutoff);
    assert.deepEqual(step.swept?.alerted, [a.uid], "at its deadline");
    cutoff = step.cutoff;
    // Nothing ahead now: no deadline, no sweep.
    step = await dueTimerStep(noc.deps, cutoff);
    assert.equal(step.deadline, null);
    assert.equal(step.swept, null);
  } finally {
    await noc.deps.wakeups.close();
  }
});

dbTest(
  "an appliance a maintenance window holds does not make the due timer spin",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const t0 = clock.now().getTime();
    const noc = await testNoc(db, { clock, settings });
    try {
      const held = await noc.enrollAppliance({ hostname: "held" });
      const other = await noc.enrollAppliance({ hostname: "other" });
      await beat(noc, held, 1);
      clock.advance(100);
      await beat(noc, other, 1); // alertable at +190
      const w = await noc.admin("POST", "/v1/admin/maintenance", {
        uid: held.uid,
        endsAt: new Date(t0 + 3600_000).toISOString(),
        reason: "rack move",
      });
      assert.equal(w.status, 201);
      clock.set(new Date(t0 + 120_000));
      // The held one's deadline (+90) has passed: one sweep, which leaves it; then the timer waits
      // for the other's deadline, not for the held one again.
      let step = await dueTimerStep(noc.deps, new Date(t0));
      assert.deepEqual(step.swept?.alerted, []);
      step = await dueTimerStep(noc.deps, step.cutoff);
      assert.equal(step.swept, null, "no second sweep for the held appliance");
      assert.equal(step.deadline?.getTime(), t0 + 190_000);
      assert.equal((await nextDeadline(noc.deps, step.cutoff))?.getTime(), t0 + 190_000);
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest("two instances whose timers fire at the same deadline raise one alert", async ({ db }) => {
  const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
  const t0 = clock.now().getTime();
  const one = await testNoc(db, { clock, settings });
  const two = await testNoc(db, { clock, settings });
  try {
    const a = await one.enrollAppliance();
    await beat(one, a, 1);
    clock.set(new Date(t0 + 90_000));
    const cutoff = new Date(t0);
    const [x, y] = await Promise.all([
      dueTimerStep(one.deps, cutoff),
      dueTimerStep(two.deps, cutoff),
    ]);
    const alerted = [...(x.swept?.alerted ?? []), ...(y.swept?.alerted ?? [])];
    assert.deepEqual(alerted, [a.uid]);
    assert.equal(await count(db, "alerts"), 1);
    assert.equal(
      (await db.sql`select 1 from notices where kind = 'missed_heartbeat'`).length,
      1,
    );
  } finally {
    await one.deps.wakeups.close();
    await two.deps.wakeups.close();
  }
});

dbTest(
  "an appliance's recovery is queued before its next alert when the deadline comes first",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const t0 = clock.now().getTime();
    const noc = await testNoc(db, { clock, settings });
    try {
      const a = await noc.enrollAppliance({ hostname: "flapping" });
      const b = await noc.enrollAppliance({ hostname: "back-and-quiet" });
      await beat(noc, a, 1); // alertable at +90
      await beat(noc, b, 1);
      clock.set(new Date(t0 + 90_000));
      let step = await dueTimerStep(noc.deps, new Date(t0));
      assert.deepEqual(step.swept?.alerted.toSorted(), [a.uid, b.uid].toSorted());
      // Both come back; no cron sweep runs before a misses again (alertable at +185).
      clock.set(new Date(t0 + 95_000));
      await beat(noc, a, 2);
      await beat(noc, b, 2);
      clock.set(new Date(t0 + 95_000 + 60_000 + 30_000));
      await beat(noc, b, 3);
      step = await dueTimerStep(noc.deps, step.cutoff);
      assert.deepEqual(step.swept?.alerted, [a.uid]);
      const notices = await db.sql<{ kind: string; uid: string | null }>`
        select kind, uid::text as uid from notices order by id`;
      assert.deepEqual(
        notices.filter((n) => n.uid === a.uid).map((n) => n.kind),
        ["missed_heartbeat", "recovered", "missed_heartbeat"],
        "a's recovery goes out before its second alert",
      );
      const [told] = await db.sql<{ text: string }>`
        select text from notices where kind = 'recovered' and uid = ${a.uid}`;
      assert.match(told!.text, / after 5 s missing$/, 'seconds, not "0 min" (review 23m)');
      // b's recovery is not urgent: the cron job's sweep sends it.
      assert.deepEqual(
        notices.filter((n) => n.uid === b.uid).map((n) => n.kind),
        ["missed_heartbeat"],
      );
      const cron = await sweep({ ...noc.deps, graceS: settings.graceS });
      assert.deepEqual(cron.recovered, [b.uid]);
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest(
  "a mass event held at the deadlines and over before the minute's sweep: its digest, then the recovery",
  async ({ db }) => {
    const { clock, t0, noc, fleet } = await heldMassEvent(db, settings);
    try {
      clock.set(new Date(t0 + 100_000));
      for (const a of fleet) await beat(noc, a, 2); // the site is back
      clock.set(new Date(t0 + 120_000));
      await sweep({ ...noc.deps, graceS: settings.graceS });
      const notices = await db.sql<{ kind: string }>`select kind from notices order by id`;
      assert.deepEqual(
        notices.map((n) => n.kind),
        ["missed_heartbeat_digest", "recovered_digest"],
        "review 23l: the outage's last word is that they are back",
      );
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest(
  "an alert a mass event held, resolved before the minute's sweep: its notice, then its recovery",
  async ({ db }) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const t0 = clock.now().getTime();
    const noc = await testNoc(db, { clock, settings });
    try {
      const others: TestAppliance[] = [];
      for (let i = 0; i < 11; i++) others.push(await noc.enrollAppliance({ hostname: `o-${i}` }));
      const a = await noc.enrollAppliance({ hostname: "blip" });
      for (const o of others) await beat(noc, o, 1); // alertable at +90
      clock.set(new Date(t0 + 5_000));
      await beat(noc, a, 1); // alertable at +95
      clock.set(new Date(t0 + 90_000));
      let step = await dueTimerStep(noc.deps, new Date(t0));
      assert.equal(step.swept?.alerted.length, 11);
      clock.set(new Date(t0 + 95_000));
      step = await dueTimerStep(noc.deps, step.cutoff);
      assert.deepEqual(step.swept?.alerted, [a.uid]);
      clock.set(new Date(t0 + 100_000));
      await beat(noc, a, 2);
      for (const o of others) await beat(noc, o, 2);
      clock.set(new Date(t0 + 120_000));
      await sweep({ ...noc.deps, graceS: settings.graceS, digestAbove: 100 });
      const notices = await db.sql<{ kind: string; uid: string | null }>`
        select kind, uid::text as uid from notices order by id`;
      assert.deepEqual(
        notices.filter((n) => n.uid === a.uid).map((n) => n.kind),
        ["missed_heartbeat", "recovered"],
      );
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

for (const backFirst of [false, true]) {
  dbTest(
    `an alert a mass event held is not told once its appliance is revoked${
      backFirst ? ", though it beat again before" : ""
    }`,
    async ({ db }) => {
      const { clock, t0, noc, fleet } = await heldMassEvent(db, settings);
      try {
        const stolen = fleet[0]!;
        if (backFirst) {
          // Back briefly (review 23n): its alert resolved, still not told.
          clock.set(new Date(t0 + 95_000));
          await beat(noc, stolen, 2);
        }
        const res = await noc.admin("POST", `/v1/admin/appliances/${stolen.uid}/revoke`, {
          reason: "stolen",
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        clock.set(new Date(t0 + 120_000));
        await sweep({ ...noc.deps, graceS: settings.graceS });
        const [digest] = await db.sql<{ payload: { uids: string[] } }>`
          select payload from notices where kind = 'missed_heartbeat_digest'`;
        assert.equal(digest?.payload.uids.length, 11);
        assert.ok(!digest.payload.uids.includes(stolen.uid), "the revoked appliance is not in it");
        assert.equal(
          (await db.sql`select 1 from notices where uid = ${stolen.uid}`).length,
          0,
          "nor told on its own",
        );
      } finally {
        await noc.deps.wakeups.close();
      }
    },
  );
}

for (const digestAbove of [10, 100]) {
  dbTest(
    `an appliance flapping within a held mass event: its notices tell its story in order (digest above ${digestAbove})`,
    async ({ db }) => {
      const held = await heldMassEvent(db, { reportIntervalS: 10, graceS: 10 }); // at +20 s
      const { clock, t0, noc } = held;
      try {
        const x = held.fleet[0]!;
        let step = held.step;
        clock.set(new Date(t0 + 25_000));
        await beat(noc, x, 2); // its first alert resolved; alertable again at +45
        clock.set(new Date(t0 + 45_000));
        step = await dueTimerStep(noc.deps, step.cutoff);
        assert.deepEqual(step.swept?.alerted, [x.uid]);
        clock.set(new Date(t0 + 60_000));
        await sweep({ ...noc.deps, graceS: 10, digestAbove });
        const notices = await db.sql<{ kind: string; uid: string | null; payload: any }>`
          select kind, uid::text as uid, payload from notices order by id`;
        const story = notices
          .filter((n) => n.uid === x.uid || n.payload.uids?.includes(x.uid))
          .map((n) => n.kind.replace(/_digest$/, ""));
        // Review 23n: it ended on "recovered" while the appliance was down again.
        assert.deepEqual(story, ["missed_heartbeat", "recovered", "missed_heartbeat"]);
      } finally {
        await noc.deps.wakeups.close();
      }
    },
  );
}

Deno.test("timerWaitMs(): a sweep skipped for a skewed clock waits the longest, never spins", () => {
  const now = new Date(Date.UTC(2026, 11, 1, 12, 0, 0));
  const past = new Date(now.getTime() - 10_000);
  const soon = new Date(now.getTime() + 1_200);
  const swept = (skipped?: "busy" | "clock_skew") =>
    ({ alerted: [], recovered: [], notices: 0, durationMs: 1, creditedS: 0, skipped }) as never;
  const step = (s: unknown, deadline: Date | null, heldUntil: Date | null = null) =>
    ({ deadline, swept: s, cutoff: past, heldUntil }) as never;
  // Review 23c: the deadline behind, the sweep skipped (clock_skew): it used to wait 0 ms.
  assert.equal(timerWaitMs(step(swept("clock_skew"), past), 0, now), maxWaitS * 1000);
  assert.equal(timerWaitMs(step(swept(), past), 0, now), 0, "a sweep ran: look again now");
  assert.deepEqual(
    [0, 1, 2, 3, 5].map((b) => timerWaitMs(step(swept("busy"), past), b, now)),
    [250, 500, 1000, 2000, maxWaitS * 1000],
    "busy: 250 ms doubling to the longest",
  );
  assert.equal(timerWaitMs(step(null, soon), 0, now), 1_200, "until the deadline");
  assert.equal(timerWaitMs(step(null, null, soon), 0, now), 1_200, "until the hold ends");
  assert.equal(timerWaitMs(step(null, null), 0, now), maxWaitS * 1000);
});
