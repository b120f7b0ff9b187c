/**
 * Issue 16, item 12: what one appliance stores is bounded, however large and
 * frequent its reports: application data only in its last report, at most one
 * small history row per history gap; and the console loads a bounded amount.
 */
import assert from "node:assert/strict";
import { countingSql, dbTest, sampleBeat } from "./_harness.ts";
import { fetchCatalog, publishAndAssign } from "./_components.ts";
import { pruneHistory } from "../noc/jobs/retention.ts";
import type { Db } from "../noc/db/db.ts";
import { type ServedNoc, serveNoc } from "./_agent.ts";
import { signIn } from "./_console.ts";
import { signedRequest } from "../protocol/client.ts";

/** Fifteen applications of 16,000 bytes of data each: a report of about 234 KiB. */
function bigApps(tag: string): Record<string, Record<string, string>> {
  return Object.fromEntries(
    Array.from({ length: 15 }, (_, i) => [`app${i}`, { blob: `${tag}${"x".repeat(15_980)}` }]),
  );
}

async function beat(
  noc: ServedNoc,
  a: Awaited<ReturnType<ServedNoc["enrollAppliance"]>>,
  seq: number,
  apps: Record<string, unknown>,
): Promise<Response> {
  return await fetch(
    await signedRequest({
      baseUrl: noc.url,
      uid: a.uid,
      key: a.keys.signing,
      method: "POST",
      path: "/v1/beats",
      body: sampleBeat(seq, noc.clock.now(), { apps }),
      now: noc.clock.now(),
    }),
  );
}

dbTest(
  "an appliance sending 234 KiB reports as fast as it may stores one small history row per gap, and its data only in its last report",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const a = await noc.enrollAppliance();
      const apps = bigApps("a");
      const size = JSON.stringify(sampleBeat(1, noc.clock.now(), { apps })).length;
      assert.ok(size > 230 * 1024 && size < 256 * 1024, `report of ${size} bytes`);
      // A minute at its rate limit's pace, twice over: 240 beats, every half second.
      let seq = 0;
      for (let i = 0; i < 240; i++) {
        const res = await beat(noc, a, ++seq, i === 239 ? bigApps("z") : apps);
        assert.equal(res.status, 200, await res.text());
        noc.clock.advance(0.5);
      }
      const rows = await db.sql<{ n: number; largest: number }>`
        select count(*)::int as n, max(octet_length(report::text))::int as largest
        from beats where uid = ${a.uid}`;
      assert.equal(rows[0]!.n, 1, "two minutes of beats: one history row (gap 300 s)");
      assert.ok(rows[0]!.largest < 3 * 1024, `a history row is ${rows[0]!.largest} bytes`);
      const [last] = await db.sql<{ apps: number; tag: string }>`
        select (select count(*) from jsonb_object_keys(last_report->'apps'))::int as apps,
          left(last_report->'apps'->'app0'->>'blob', 1) as tag
        from appliances where uid = ${a.uid}`;
      assert.deepEqual(last, { apps: 15, tag: "z" }, "the last report is whole, and the latest");
      // A day of it: one row per gap at most.
      for (let i = 0; i < 288; i++) {
        noc.clock.advance(300);
        assert.equal((await beat(noc, a, ++seq, apps)).status, 200);
      }
      const [day] = await db.sql<{ n: number; bytes: number }>`
        select count(*)::int as n, sum(octet_length(report::text))::int as bytes
        from beats where uid = ${a.uid}`;
      assert.equal(day!.n, 289);
      assert.ok(day!.bytes < 289 * 3 * 1024, `${day!.bytes} bytes of history for a day`);
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "an appliance whose interval is short keeps each of its beats in history",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const a = await noc.enrollAppliance();
      const r = await noc.admin("PATCH", `/v1/admin/appliances/${a.uid}`, { intervalS: 60 });
      assert.equal(r.status, 200);
      for (let i = 1; i <= 5; i++) {
        assert.equal((await beat(noc, a, i, {})).status, 200);
        noc.clock.advance(60);
      }
      const [h] = await db.sql<{ n: number }>`select count(*)::int as n from beats`;
      assert.equal(h!.n, 5, "the gap is at most half the appliance's interval");
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "the console's appliance page and the admin API load a bounded amount of history, even of rows stored whole",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const a = await noc.enrollAppliance();
      assert.equal((await beat(noc, a, 1, bigApps("a"))).status, 200);
      // Rows as they were stored before history was bounded: whole 234 KiB reports.
      const whole = sampleBeat(1, noc.clock.now(), { apps: bigApps("h") });
      await db.sql`
        insert into beats (uid, received_at, seq, sent_at, report)
        select ${a.uid}, ${noc.clock.now()}::timestamptz - make_interval(secs => g), g, ${noc.clock.now()},
          ${whole}::jsonb
        from generate_series(1, 1000) g`;
      const api = await fetch(`${noc.url}/v1/admin/appliances/${a.uid}?history=1000`, {
        headers: { authorization: `Bearer ${noc.adminToken}` },
      });
      const apiText = await api.text();
      assert.equal(api.status, 200);
      const detail = JSON.parse(apiText);
      assert.equal(detail.history.length, 1000);
      assert.equal(detail.history[1].report.health.load.length, 3, "the health figures are kept");
      assert.equal(detail.history[1].report.apps, undefined, "application data is not");
      // 1,000 rows of 234 KiB would be 228 MiB; the last report is the one whole report.
      assert.ok(apiText.length < 1.5 * 1024 * 1024, `admin API answered ${apiText.length} bytes`);

      // The console page, signed in.
      const page = await (await signIn(noc)).get(`/ui/appliances/${a.uid}`);
      const html = await page.text();
      assert.equal(page.status, 200);
      assert.ok(html.length < 512 * 1024, `the page is ${html.length} bytes`);
    } finally {
      await noc.close();
    }
  },
);

/** Posts install outcomes as `a`, over HTTP. */
async function installs(
  noc: ServedNoc,
  a: Awaited<ReturnType<ServedNoc["enrollAppliance"]>>,
  results: unknown[],
): Promise<Response> {
  return await fetch(
    await signedRequest({
      baseUrl: noc.url,
      uid: a.uid,
      key: a.keys.signing,
      method: "POST",
      path: "/v1/installs",
      body: { results },
      now: noc.clock.now(),
    }),
  );
}

/** `n` failed outcomes of `size`-character messages, for versions nobody was sent. */
function flood(tag: string, n: number, size = 2000) {
  return Array.from({ length: n }, (_, i) => ({
    kind: "package",
    app: "zz",
    name: `${tag}${i}`,
    version: "1",
    outcome: "failed",
    message: "x".repeat(size),
  }));
}

async function outcomes(db: Db): Promise<number> {
  const [r] = await db.sql<{ n: number }>`select count(*)::int as n from install_outcomes`;
  return r!.n;
}

/** Counts the statements run on install_outcomes, in transactions too. */
function countingInstalls(db: Db): { db: Db; inserts(): number } {
  let n = 0;
  const match = (t: string) => /insert into install_outcomes/.test(t);
  return {
    db: {
      ...db,
      begin: (fn) =>
        db.begin((tx) => {
          const c = countingSql(tx, match);
          return fn(c.sql).finally(() => n += c.statements());
        }),
    },
    inserts: () => n,
  };
}

dbTest(
  "an appliance posting install outcomes as fast as it may stores at most its bound, each report in one statement",
  async ({ db }) => {
    const counted = countingInstalls(db);
    const noc = await serveNoc(counted.db, { installOutcomesPerAppliance: 200 });
    try {
      const a = await noc.enrollAppliance();
      const other = await noc.enrollAppliance();
      assert.equal((await installs(noc, other, flood("o", 3))).status, 200);
      for (let i = 0; i < 20; i++) {
        const res = await installs(noc, a, flood(`r${i}-`, 110));
        const text = await res.text();
        assert.equal(res.status, 200, text);
        assert.equal(JSON.parse(text).recorded, 110);
        noc.clock.advance(0.5);
      }
      const [kept] = await db.sql<{ n: number; bytes: number; newest: string }>`
        select count(*)::int as n, sum(octet_length(message))::int as bytes,
          max(name) filter (where name like 'r19-%') as newest
        from install_outcomes where uid = ${a.uid}`;
      assert.equal(kept!.n, 200, "2,200 outcomes posted, the newest 200 kept");
      assert.ok(kept!.bytes <= 200 * 2000, `${kept!.bytes} bytes of messages`);
      assert.equal(kept!.newest, "r19-99", "the newest are the ones kept");
      assert.equal(await outcomes(db) - kept!.n, 3, "others' are untouched");

      // 500 outcomes in one report: one insert statement, not 500.
      const before = counted.inserts();
      const res = await installs(noc, a, flood("big", 500, 10));
      assert.equal(res.status, 200, await res.text());
      assert.equal(counted.inserts() - before, 1);
      const rows = await db.sql<{ name: string }>`
        select name from install_outcomes where uid = ${a.uid} order by id desc limit 2`;
      assert.deepEqual(rows.map((r) => r.name), ["big499", "big498"], "kept in report order");
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "an appliance's latest outcome of a delivered version outlives the history bound and retention while it counts",
  async ({ db }) => {
    const noc = await serveNoc(db, { installOutcomesPerAppliance: 50 });
    try {
      const a = await noc.enrollAppliance();
      const { assignmentId } = await publishAndAssign(
        noc,
        { app: "app", name: "pkg", version: "2" },
        undefined,
        { type: "all" },
        { failureThresholdPercent: 90, minSample: 5 },
      );
      const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
      const dl = await noc.app.request(entry.urls[0]!.replace("http://", "https://"));
      assert.equal(dl.status, 200);
      await dl.body?.cancel();
      const pkg = { kind: "package", app: "app", name: "pkg", version: "2" };
      assert.equal((await installs(noc, a, [{ ...pkg, outcome: "installed" }])).status, 200);
      noc.clock.advance(1);
      assert.equal((await installs(noc, a, [{ ...pkg, outcome: "failed" }])).status, 200);
      const progress = async () =>
        (await noc.admin("GET", `/v1/admin/assignments/${assignmentId}`)).body.progress;
      assert.deepEqual(
        [(await progress()).installed, (await progress()).failed],
        [0, 1],
      );
      // Then a flood of outcomes for versions it was never sent.
      for (let i = 0; i < 5; i++) {
        noc.clock.advance(1);
        assert.equal((await installs(noc, a, flood(`f${i}-`, 100))).status, 200);
      }
      const mine = await db.sql<{ name: string; outcome: string }>`
        select name, outcome from install_outcomes where uid = ${a.uid} and app = 'app'`;
      assert.deepEqual(
        mine.map((r) => ({ ...r })),
        [{ name: "pkg", outcome: "failed" }],
        "the latest is kept",
      );
      assert.equal(await outcomes(db), 51);
      assert.deepEqual([(await progress()).installed, (await progress()).failed], [0, 1]);

      // Past retention: only the latest outcome of the assigned version is left.
      noc.clock.advance(31 * 86_400);
      const pruned = await pruneHistory(noc.deps, 30);
      assert.equal(pruned.installOutcomes, 50);
      assert.equal(await outcomes(db), 1);
      assert.deepEqual([(await progress()).installed, (await progress()).failed], [0, 1]);
      // Once the version is no longer assigned, it goes too.
      assert.equal(
        (await noc.admin("DELETE", `/v1/admin/assignments/${assignmentId}`)).status,
        204,
      );
      assert.equal((await pruneHistory(noc.deps, 30)).installOutcomes, 1);
    } finally {
      await noc.close();
    }
  },
);
