import * as assert from "node:assert/strict";
import { count, dbTest, testNoc } from "./_harness.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";

dbTest(
  "beats sent at once are all recorded and resolve their missed-heartbeat alerts",
  async ({ db }) => {
    const noc = await testNoc(db);
    const fleet = [];
    for (let i = 0; i < 24; i++) fleet.push(await noc.enrollAppliance({ hostname: `gw-${i}` }));
    // Each report names its sender (in its application data, which only the last report keeps,
    // and in its uptime, which the history keeps too), so a batch that mixed appliances up would
    // show.
    await Promise.all(fleet.map((a, i) =>
      a.beat({
        apps: { probe: { uid: a.uid } },
        health: {
          load: [0, 0, 0],
          memory: { totalBytes: 1, availableBytes: 1 },
          disks: [],
          uptimeS: 1000 + i,
        },
      })
    ));
    const reports = await db.sql<{ uid: string; own: string; uptime: string; n: number }>`
      select a.uid, a.last_report->'apps'->'probe'->>'uid' as own,
        a.last_report->'health'->>'uptimeS' as uptime,
        (select count(*)::int from beats b
         where b.uid = a.uid
           and b.report->'health'->>'uptimeS' = a.last_report->'health'->>'uptimeS') as n
      from appliances a`;
    assert.equal(reports.length, fleet.length);
    assert.equal(new Set(reports.map((r) => r.uptime)).size, fleet.length);
    for (const r of reports) {
      assert.equal(r.own, r.uid, "the status table holds the appliance's own report");
      assert.equal(r.n, 1, "and its history the same beat's health");
    }
    noc.clock.advance(909 + 600);
    const swept = await sweep({ ...noc.deps, graceS: 300 });
    assert.equal(swept.alerted.length, fleet.length);
    const answers = await Promise.all(fleet.map((a) => a.beat()));
    assert.ok(answers.every((b) => b.uid && b.nextDueAt), "every beat answered");
    assert.equal(await count(db, "beats"), fleet.length * 2);
    assert.equal(
      (await db.sql<{ n: number }>`
      select count(*)::int as n from alerts where kind = 'missed_heartbeat' and resolved_at is null`)[
        0
      ]!
        .n,
      0,
      "every alert resolved by its appliance's beat",
    );
    assert.equal(
      (await db.sql<{ n: number }>`
      select count(*)::int as n from appliances where missing_since is not null`)[0]!.n,
      0,
    );
  },
);

dbTest("the same signed beat sent twice at once is accepted once", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  const req = await a.request("POST", "/v1/beats", {
    seq: 1,
    sentAt: noc.clock.now().toISOString(),
    health: {
      load: [0, 0, 0],
      memory: { totalBytes: 1, availableBytes: 1 },
      disks: [],
      uptimeS: 1,
    },
    components: [],
    lastCycle: { outcome: "ok" },
    apps: {},
  });
  const statuses = await Promise.all(
    [req.clone(), req.clone(), req.clone()].map((r) => noc.send(r).then((res) => res.status)),
  );
  // One accepted; the others refused: a replay (401), or a third in flight at once (429, before
  // its body is read: at most two SecureBeats of one appliance at once).
  assert.equal(statuses.filter((s) => s === 200).length, 1, JSON.stringify(statuses));
  assert.ok(statuses.every((s) => [200, 401, 429].includes(s)), JSON.stringify(statuses));
  assert.ok(statuses.includes(401), "a replay refused");
  assert.equal(await count(db, "beats"), 1);
});

dbTest(
  "a beat that waits for the status daemon's row lock resolves the alert the daemon raised",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    await a.beat();
    noc.clock.advance(909 + 600);
    const now = noc.clock.now();
    let release: () => void = () => {};
    const held = new Promise<void>((r) => release = r);
    let onLocked: () => void = () => {};
    const locked = new Promise<void>((r) => onLocked = r);
    // What the status daemon does for an overdue appliance, kept open: lock, raise, mark missing.
    const daemon = db.begin(async (tx) => {
      await tx`select uid from appliances where uid = ${a.uid} for update`;
      await tx`insert into alerts (kind, uid, opened_at) values ('missed_heartbeat', ${a.uid}, ${now})`;
      await tx`update appliances set missing_since = ${now} where uid = ${a.uid}`;
      onLocked();
      await held;
    });
    await locked;
    const beat = a.beat();
    if (db.kind === "postgres") {
      // Until the beat's statement waits for the row lock (PGlite runs one statement at a time).
      for (let i = 0; i < 1000; i++) {
        const [w] = await db.sql<{ n: number }>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'`;
        if (w!.n > 0) break;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    release();
    await daemon;
    await beat;
    const [open] = await db.sql<{ n: number }>`
    select count(*)::int as n from alerts where uid = ${a.uid} and resolved_at is null`;
    assert.equal(open!.n, 0, "the alert raised while the beat waited is resolved by it");
    const [row] = await db.sql<{ missing_since: Date | null }>`
    select missing_since from appliances where uid = ${a.uid}`;
    assert.equal(row!.missing_since, null);
  },
);
