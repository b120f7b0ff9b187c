/**
 * Incidents through the admin API (issue 19, item 1): alerts filtered by site and
 * acknowledgement, bulk acknowledgement by ids and by filter (with a note, bounded), open alerts
 * counted apart from acknowledged ones, each site's health, the beat chart's running bucket, and
 * maintenance windows ended early.
 */
import assert from "node:assert/strict";
import { dbTest, type TestAppliance, type TestNoc, testNoc } from "./_harness.ts";
import { statusDaemon } from "../noc/jobs/status_daemon.ts";
import { beatRate } from "../noc/services/fleet_overview.ts";

/** `n` appliances enrolled at `site`, each having beaten once. */
async function siteOf(noc: TestNoc, site: string, n: number): Promise<TestAppliance[]> {
  const out: TestAppliance[] = [];
  for (let i = 0; i < n; i++) {
    const token = await noc.enrollmentToken({ site });
    const a = await noc.enrollAppliance({ hostname: `${site}-${i}`, token });
    await a.beat();
    out.push(a);
  }
  return out;
}

/** Two sites of 3 and one of 2; site "sin-pop" stops beating and is alerted missing. */
async function outage(noc: TestNoc) {
  const sin = await siteOf(noc, "sin-pop", 3);
  const fra = await siteOf(noc, "fra-pop", 3);
  const lab = await siteOf(noc, "lab", 2);
  // Everyone but sin-pop beats again as time passes; sin-pop is silent past its due time + grace.
  for (let step = 0; step < 4; step++) {
    noc.clock.advance(600);
    for (const a of [...fra, ...lab]) await a.beat();
  }
  const r = await statusDaemon(noc.deps);
  assert.deepEqual(r.alerted.sort(), sin.map((a) => a.uid).sort(), "sin-pop alerted missing");
  return { sin, fra, lab };
}

dbTest(
  "alerts are listed by site and acknowledgement, with state, last beat and duration",
  async ({ db }) => {
    const noc = await testNoc(db);
    const { sin } = await outage(noc);
    noc.clock.advance(120);
    const all = await noc.admin("GET", "/v1/admin/alerts?site=sin-pop&unacknowledged=true");
    assert.equal(all.status, 200, JSON.stringify(all.body));
    assert.equal(all.body.items.length, 3);
    const one = all.body.items[0];
    assert.equal(one.site, "sin-pop");
    assert.equal(one.applianceState, "missing");
    assert.ok(one.lastBeatAt);
    assert.equal(one.durationS, 120);
    assert.equal((await noc.admin("GET", "/v1/admin/alerts?site=fra-pop")).body.items.length, 0);
    // Keyset pages keep the filter.
    const p1 = await noc.admin("GET", "/v1/admin/alerts?site=sin-pop&limit=2");
    assert.equal(p1.body.items.length, 2);
    const p2 = await noc.admin(
      "GET",
      `/v1/admin/alerts?site=sin-pop&limit=2&before=${p1.body.nextBefore}`,
    );
    assert.equal(p2.body.items.length, 1);
    assert.equal(p2.body.nextBefore, null);
    // One acknowledged: the unacknowledged filter drops it; the fleet counts it apart.
    const acked = await noc.admin("POST", `/v1/admin/alerts/${one.id}/ack`);
    assert.equal(acked.status, 200);
    const left = await noc.admin("GET", "/v1/admin/alerts?site=sin-pop&unacknowledged=true");
    assert.equal(left.body.items.length, 2);
    assert.deepEqual(left.body.open, { unacknowledged: 2, acknowledged: 1 });
    const elsewhere = await noc.admin("GET", "/v1/admin/alerts?site=fra-pop");
    assert.deepEqual(elsewhere.body.open, { unacknowledged: 0, acknowledged: 0 });
    const fleet = await noc.admin("GET", "/v1/admin/fleet");
    assert.equal(fleet.body.openAlerts, 3);
    assert.equal(fleet.body.unacknowledgedAlerts, 2);
    assert.equal(fleet.body.acknowledgedAlerts, 1);
    assert.equal(sin.length, 3);
  },
);

dbTest(
  "bulk acknowledge by ids stores one note and counts only those not yet acknowledged",
  async ({ db }) => {
    const noc = await testNoc(db);
    await outage(noc);
    const ids = (await noc.admin("GET", "/v1/admin/alerts")).body.items.map((a: { id: number }) =>
      a.id
    );
    assert.equal(ids.length, 3);
    await noc.admin("POST", `/v1/admin/alerts/${ids[0]}/ack`);
    const r = await noc.admin("POST", "/v1/admin/alerts/ack", {
      ids: [...ids, 99999],
      note: "power cut, DC ticket 4411",
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { acknowledged: 2 });
    const rows = await db.sql<
      { id: number; acknowledged_note: string | null; acknowledged_by: string }
    >`
    select id::int, acknowledged_note, acknowledged_by from alerts order by id desc`;
    assert.deepEqual(rows.map((x) => x.acknowledged_note), [
      null,
      "power cut, DC ticket 4411",
      "power cut, DC ticket 4411",
    ]);
    assert.ok(rows.every((x) => x.acknowledged_by === "test"));
    const listed = await noc.admin("GET", "/v1/admin/alerts");
    assert.ok(
      listed.body.items.some((a: { acknowledgedNote: string | null }) =>
        a.acknowledgedNote === "power cut, DC ticket 4411"
      ),
    );
  },
);

dbTest(
  "bulk acknowledge by filter takes the site's alerts in one statement and no others",
  async ({ db }) => {
    const noc = await testNoc(db);
    const { fra } = await outage(noc);
    // fra-pop goes missing later: its alerts must survive a sin-pop acknowledgement.
    noc.clock.advance(4000);
    const r0 = await statusDaemon(noc.deps);
    assert.ok(fra.every((a) => r0.alerted.includes(a.uid)));
    const r = await noc.admin("POST", "/v1/admin/alerts/ack", {
      filter: { site: "sin-pop", kind: "missed_heartbeat", unacknowledged: "true" },
      note: "site outage",
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.acknowledged, 3);
    const [left] = await db.sql<{ sin: number; other: number }>`
    select count(*) filter (where ap.site = 'sin-pop' and al.acknowledged_at is null)::int as sin,
      count(*) filter (where ap.site <> 'sin-pop' and al.acknowledged_at is null)::int as other
    from alerts al join appliances ap on ap.uid = al.uid`;
    assert.equal(left!.sin, 0);
    assert.equal(left!.other, 5, "fra-pop and lab alerts stay unacknowledged");
    const again = await noc.admin("POST", "/v1/admin/alerts/ack", { filter: { site: "sin-pop" } });
    assert.equal(again.body.acknowledged, 0, "nothing acknowledged twice");
  },
);

dbTest(
  "bulk acknowledge refuses no target, two targets, over 1,000 ids and long notes",
  async ({ db }) => {
    const noc = await testNoc(db);
    await outage(noc);
    const bad: Array<[unknown, string]> = [
      [{ note: "x" }, "exactly one"],
      [{ ids: [1], filter: {} }, "exactly one"],
      [{ ids: [] }, "ids"],
      [{ ids: Array.from({ length: 1001 }, (_, i) => i + 1) }, "ids"],
      [{ ids: [0] }, "ids"],
      [{ ids: [1], note: "n".repeat(501) }, "note"],
      [{ filter: { site: "no such/site" } }, "site"],
      [{ filter: { bogus: 1 } }, "bogus"],
    ];
    for (const [body, word] of bad) {
      const r = await noc.admin("POST", "/v1/admin/alerts/ack", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(JSON.stringify(r.body), new RegExp(word), JSON.stringify(r.body));
    }
    const [n] = await db.sql<{ n: number }>`
    select count(*)::int as n from alerts where acknowledged_at is not null`;
    assert.equal(n!.n, 0, "no refused request acknowledged anything");
    const ok = await noc.admin("POST", "/v1/admin/alerts/ack", {
      ids: Array.from({ length: 1000 }, (_, i) => i + 1),
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.acknowledged, 3);
  },
);

dbTest(
  "site health lists sites in trouble first with missing counts, since and maintenance",
  async ({ db }) => {
    const noc = await testNoc(db);
    const { sin } = await outage(noc);
    // One sin-pop appliance in two windows of its own: counted once.
    for (const reason of ["disk swap", "and the fan"]) {
      const own = await noc.admin("POST", "/v1/admin/maintenance", {
        uid: sin[0]!.uid,
        endsAt: new Date(noc.clock.now().getTime() + 3600_000).toISOString(),
        reason,
      });
      assert.equal(own.status, 201);
    }
    const w = await noc.admin("POST", "/v1/admin/maintenance", {
      site: "lab",
      endsAt: new Date(noc.clock.now().getTime() + 3600_000).toISOString(),
      reason: "rack move",
    });
    assert.equal(w.status, 201, JSON.stringify(w.body));
    const r = await noc.admin("GET", "/v1/admin/fleet/sites");
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.total, 3);
    const [first, ...rest] = r.body.items;
    assert.equal(first.site, "sin-pop");
    assert.equal(first.total, 3);
    assert.equal(first.missing, 3);
    assert.equal(first.openAlerts, 3);
    assert.ok(first.missingSince);
    assert.equal(first.appliancesInMaintenance, 1);
    assert.equal(first.maintenance, null);
    assert.deepEqual(rest.map((s: { site: string }) => s.site), ["fra-pop", "lab"]);
    assert.equal(rest[1].maintenance.reason, "rack move");
    assert.equal(rest[0].maintenance, null);
    assert.equal(rest[0].appliancesInMaintenance, 0);
    const one = await noc.admin("GET", "/v1/admin/fleet/sites?limit=1");
    assert.equal(one.body.items.length, 1);
    assert.equal(one.body.total, 3);
    assert.equal((await noc.admin("GET", "/v1/admin/fleet/sites?limit=0")).status, 400);
  },
);

dbTest(
  "the beat chart's running bucket is its count per minute so far, not a tenth of it",
  async ({ db }) => {
    // Every beat kept in the history the chart counts.
    const noc = await testNoc(db, { settings: { historyMinGapS: 0 } });
    const a = await noc.enrollAppliance();
    // 12:00:00 is a bucket's start: 30 beats in its first 3 minutes, 10 a minute.
    for (let i = 0; i < 30; i++) {
      await a.beat();
      noc.clock.advance(6);
    }
    const points = await beatRate(db, noc.clock.now());
    assert.equal(points.length, 1);
    assert.equal(points[0]!.v, 10, "3 minutes in, 30 beats: 10 per minute");
    const cached = await noc.admin("GET", "/v1/admin/fleet");
    assert.equal(cached.body.beatsPerMinute.at(-1).perMinute, 10);
    // A bucket younger than a minute is left out; a finished one is divided by its 10 minutes.
    noc.clock.advance(10 * 60 - 180 + 30);
    const later = await beatRate(db, noc.clock.now());
    assert.deepEqual(later.map((p) => p.v), [3]);
  },
);

dbTest(
  "a maintenance window is ended now by whoever ends it; an upcoming one is left empty",
  async ({ db }) => {
    const noc = await testNoc(db);
    await siteOf(noc, "sin-pop", 1);
    const now = noc.clock.now().getTime();
    const active = await noc.admin("POST", "/v1/admin/maintenance", {
      site: "sin-pop",
      endsAt: new Date(now + 3600_000).toISOString(),
      reason: "power",
    });
    assert.equal(active.status, 201);
    assert.equal(active.body.state, "active");
    assert.equal(active.body.createdBy, "test");
    const later = await noc.admin("POST", "/v1/admin/maintenance", {
      site: "sin-pop",
      startsAt: new Date(now + 7200_000).toISOString(),
      endsAt: new Date(now + 9000_000).toISOString(),
      reason: "later",
    });
    assert.equal(later.body.state, "upcoming");
    noc.clock.advance(60);
    const ended = await noc.admin("POST", `/v1/admin/maintenance/${active.body.id}/end`);
    assert.equal(ended.status, 200, JSON.stringify(ended.body));
    assert.equal(ended.body.state, "ended");
    assert.equal(ended.body.endsAt, noc.clock.now().toISOString());
    assert.equal(ended.body.endedBy, "test");
    const cancelled = await noc.admin("POST", `/v1/admin/maintenance/${later.body.id}/end`);
    assert.equal(cancelled.body.endsAt, cancelled.body.startsAt);
    assert.equal(cancelled.body.state, "ended");
    assert.equal(cancelled.body.reason, "later");
    const sites = await noc.admin("GET", "/v1/admin/fleet/sites");
    assert.equal(sites.body.items[0].maintenance, null);
    const listed = await noc.admin(
      "GET",
      `/v1/admin/maintenance?endedSince=${new Date(now - 1000).toISOString()}`,
    );
    assert.equal(listed.body.items.length, 2);
    assert.equal((await noc.admin("GET", "/v1/admin/maintenance")).body.items.length, 0);
    assert.equal((await noc.admin("POST", "/v1/admin/maintenance/999/end")).status, 404);
    const unknown = await noc.admin("POST", "/v1/admin/maintenance", {
      site: "nowhere",
      endsAt: new Date(now + 3600_000).toISOString(),
      reason: "typo",
    });
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.message ?? JSON.stringify(unknown.body), /nowhere/);
  },
);
