/**
 * The fleet list's filters and search (issue 18, item 11) answer exactly what a plain reading of
 * the appliances table answers: every filter alone and combined, search by host name (any case,
 * `%` and `_` taken literally), UID and address, every state, read page by page through the
 * keyset cursor — on a seeded fleet, and after beats, re-tagging and new enrolments change what
 * the side tables of migration 014 hold.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { ManualClock } from "../noc/clock.ts";
import type { Sql } from "../noc/db/db.ts";
import { seedFleet, seedNow } from "../bench/appliance_list_seed.ts";
import { listAppliances } from "../noc/services/appliance_list.ts";
import { listAppliancesQuery } from "../protocol/schemas.ts";

const graceS = 300;

/**
 * The UIDs a filter must list, in list order, read without the list's indexes or side tables:
 * components from each last report, the state rules of noc/services/appliances.ts, `ilike`.
 */
async function expected(sql: Sql, q: Record<string, string>, now: Date): Promise<string[]> {
  const cutoff = new Date(now.getTime() - graceS * 1000);
  const like = q.q ? `%${q.q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%` : null;
  const rows = await sql<{ uid: string }>`
    select a.uid from appliances a
    where a.superseded_by is null
      and (${q.model ?? null}::text is null or a.model = ${q.model ?? null})
      and (${q.site ?? null}::text is null or a.site = ${q.site ?? null})
      and (${q.channel ?? null}::text is null or a.channel = ${q.channel ?? null})
      and (${q.tag ?? null}::text is null or ${q.tag ?? null} = any(a.tags))
      and ((${q.app ?? null}::text is null and ${q.version ?? null}::text is null) or exists (
        select 1 from jsonb_array_elements(coalesce(a.last_report->'components', '[]')) x
        where (${q.app ?? null}::text is null or x->>'app' = ${q.app ?? null})
          and (${q.version ?? null}::text is null or x->>'version' = ${q.version ?? null})))
      and (${like}::text is null or a.hostname ilike ${like} or a.uid::text = lower(${
    q.q ?? null
  }) or a.last_address = ${q.q ?? null})
      and (${q.state ?? null}::text is null or ${q.state ?? null} = case
            when a.revoked_at is not null then 'revoked'
            when a.missing_since is not null or a.next_due_at <= ${cutoff} then 'missing'
            when a.next_due_at <= ${now} then 'late'
            else 'ok' end)
    order by a.hostname, a.uid`;
  return rows.map((r) => r.uid);
}

/** Every page of the list for `q`, 7 at a time through the cursor; the UIDs in order. */
async function listed(noc: TestNoc, q: Record<string, string>): Promise<string[]> {
  const uids: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 500; pages++) {
    const params = new URLSearchParams({ ...q, limit: "7", ...(cursor ? { cursor } : {}) });
    const r = await noc.admin("GET", `/v1/admin/appliances?${params}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    uids.push(...r.body.items.map((i: { uid: string }) => i.uid));
    cursor = r.body.nextCursor;
    if (!cursor) return uids;
  }
  throw new Error("more than 500 pages");
}

async function assertSame(noc: TestNoc, queries: Array<Record<string, string>>) {
  for (const q of queries) {
    const want = await expected(noc.deps.db.sql, q, noc.clock.now());
    assert.deepEqual(await listed(noc, q), want, `filter ${JSON.stringify(q)}`);
  }
}

dbTest(
  "every list filter and search lists exactly the matching appliances, page by page",
  async ({ db }) => {
    const noc = await testNoc(db, { clock: new ManualClock(seedNow) });
    const fleet = await seedFleet(db.sql, 300, seedNow, graceS);
    const lone = fleet.loneVersionAt;
    const [row] = await db.sql<{ uid: string }>`
    select uid from appliances where hostname = ${fleet.hostname(lone)}`;
    const loneUid = row!.uid;
    const queries: Array<Record<string, string>> = [
      {},
      { app: "vscreen", version: "4.2.0" },
      { app: "vscreen", version: "4.1.9" },
      { app: "vscreen", version: "4.3.0-rc1" },
      { version: "4.3.0-rc1" },
      { app: "beta-tools" },
      { app: "base", version: "3.0.13" },
      { app: "vscreen", version: "3.0.13" }, // a version of another app: none
      { version: "1" },
      { app: "nobody" },
      { model: "vs-9000" },
      { model: "vs-100" },
      { site: "site-17" },
      { channel: "canary" },
      { channel: "beta" },
      { tag: "lab" },
      { tag: "pci" },
      { tag: "rack-17" },
      { state: "ok" },
      { state: "late" },
      { state: "missing" },
      { state: "revoked" },
      { q: "lhr" },
      { q: "MAIL-GW" },
      { q: fleet.hostname(lone) },
      { q: loneUid },
      { q: loneUid.toUpperCase() },
      { q: fleet.address(lone) },
      { q: "10.0.1" }, // part of an address: addresses match whole only, host names in part
      { q: "_" },
      { q: "%" },
      { q: "zq" },
      { model: "vs-100", channel: "beta", tag: "dmz" },
      { app: "vscreen", version: "4.1.9", state: "ok" },
      { q: "gw", state: "missing" },
      { q: "fra", app: "base", version: "3.0.13", channel: "beta" },
      { site: "site-3", state: "revoked" },
    ];
    await assertSame(noc, queries);
  },
);

dbTest("the list follows beats, re-tagging and new enrolments", async ({ db }) => {
  const noc = await testNoc(db, { clock: new ManualClock(seedNow) });
  await seedFleet(db.sql, 40, seedNow, graceS);
  const a = await noc.enrollAppliance({ hostname: "Edge-Proxy-1" });
  const b = await noc.enrollAppliance({ hostname: "edge-proxy-2" });
  const component = (version: string) => ({
    kind: "package",
    app: "edgeproxy",
    name: "edgeproxy",
    version,
  });
  const byApp = { app: "edgeproxy", version: "5.0" };
  // Enrolled, no report yet: found by name, not by component.
  await assertSame(noc, [{ q: "edge-proxy" }, byApp, { app: "edgeproxy" }]);
  assert.deepEqual(await listed(noc, { q: "edge-proxy" }), [a.uid, b.uid]);

  await a.beat({ components: [component("5.0")] });
  await b.beat({ components: [component("4.9")] });
  assert.deepEqual(await listed(noc, byApp), [a.uid]);
  await assertSame(noc, [byApp, { app: "edgeproxy" }, { version: "4.9" }]);

  // b upgrades; a reports the same again (no side-table write needed), then drops the component.
  await b.beat({ components: [component("5.0")] });
  await a.beat({ components: [component("5.0")] });
  assert.deepEqual(await listed(noc, byApp), [a.uid, b.uid]);
  await a.beat({ components: [] });
  assert.deepEqual(await listed(noc, byApp), [b.uid]);
  await assertSame(noc, [byApp, { version: "4.9" }, { app: "edgeproxy" }]);

  const r = await noc.admin("PATCH", `/v1/admin/appliances/${a.uid}`, { tags: ["dmz", "edge"] });
  assert.equal(r.status, 200);
  assert.deepEqual(await listed(noc, { tag: "edge" }), [a.uid]);
  await noc.admin("PATCH", `/v1/admin/appliances/${a.uid}`, { tags: ["dmz"] });
  assert.deepEqual(await listed(noc, { tag: "edge" }), []);
  await assertSame(noc, [{ tag: "dmz" }, { tag: "edge" }, { q: "edge", tag: "dmz" }]);

  // Search by the address the beat came from.
  const [seen] = await db.sql<{ last_address: string | null }>`
    select last_address from appliances where uid = ${b.uid}`;
  const address = seen?.last_address;
  if (address) assert.ok((await listed(noc, { q: address })).includes(b.uid));
  await assertSame(noc, [{ q: address ?? "none" }]);
});

dbTest(
  "facet filters list exactly the matching appliances when the holders sort last by host name",
  async ({ db }) => {
    const noc = await testNoc(db, { clock: new ManualClock(seedNow) });
    await seedFleet(db.sql, 200, seedNow, graceS);
    // A correlated fleet: "tail-app" only on the 30 host names that sort last (its 1.1 version
    // on every third of them), tag "edge" only on the first 30 and on every 5th of the last 30.
    await db.sql`
      update appliances a set last_report = jsonb_set(a.last_report, '{components}',
        a.last_report->'components' || jsonb_build_array(jsonb_build_object('kind', 'package',
          'app', 'tail-app', 'name', 'tail', 'version', case when t.r % 3 = 0 then '1.1' else '1.0' end)))
      from (select uid, row_number() over (order by hostname desc, uid desc) as r from appliances) t
      where t.uid = a.uid and t.r <= 30`;
    await db.sql`
      update appliances a set tags = a.tags || array['edge']
      from (select uid, row_number() over (order by hostname, uid) as r,
        row_number() over (order by hostname desc, uid desc) as d from appliances) t
      where t.uid = a.uid and (t.r <= 30 or (t.d <= 30 and t.d % 5 = 0))`;
    const tail = await listed(noc, { app: "tail-app" });
    assert.equal(tail.length, 30);
    assert.deepEqual(tail, (await expected(db.sql, {}, seedNow)).slice(-30));
    await assertSame(noc, [
      { app: "tail-app" },
      { app: "tail-app", version: "1.1" },
      { version: "1.1" },
      { app: "tail-app", tag: "edge" },
      { app: "tail-app", version: "1.0", tag: "edge" },
      { tag: "edge" },
      { tag: "edge", app: "base" },
      { app: "tail-app", state: "ok" },
      { app: "tail-app", q: "mail" },
      { app: "tail-app", tag: "edge", model: "vs-100" },
      { app: "tail-app", tag: "lab" },
    ]);
  },
);

dbTest(
  "filters whose conditions rarely meet list exactly the matches when the walk switches to gathering",
  async ({ db }) => {
    const noc = await testNoc(db, { clock: new ManualClock(seedNow) });
    await seedFleet(db.sql, 200, seedNow, graceS);
    // Anticorrelated: "tail-app" on the 40 host names that sort last, none of them late,
    // missing or revoked but 2 (one missing, one revoked); the 25 that sort first late; tag
    // "edge" only among the first 25, but on one of the last too.
    const late = new Date(seedNow.getTime() - 60_000);
    const ahead = new Date(seedNow.getTime() + 60_000);
    await db.sql`
      update appliances a set last_report = jsonb_set(a.last_report, '{components}',
          a.last_report->'components' || jsonb_build_array(jsonb_build_object('kind', 'package',
            'app', 'tail-app', 'name', 'tail', 'version', '1.0'))),
        next_due_at = ${ahead}, missing_since = null, revoked_at = null,
        tags = case when t.d = 40 then a.tags || array['edge'] else a.tags end
      from (select uid, row_number() over (order by hostname desc, uid desc) as d from appliances) t
      where t.uid = a.uid and t.d <= 40`;
    await db.sql`
      update appliances a set next_due_at = ${late}, missing_since = null, revoked_at = null,
        tags = a.tags || array['edge']
      from (select uid, row_number() over (order by hostname, uid) as r from appliances) t
      where t.uid = a.uid and t.r <= 25`;
    await db.sql`
      update appliances a set missing_since = ${seedNow}
      from (select uid, row_number() over (order by hostname desc, uid desc) as d from appliances) t
      where t.uid = a.uid and t.d = 7`;
    await db.sql`
      update appliances a set revoked_at = ${seedNow}, revoked_reason = 'test'
      from (select uid, row_number() over (order by hostname desc, uid desc) as d from appliances) t
      where t.uid = a.uid and t.d = 13`;
    const [edgeSite] = await db.sql<{ site: string }>`
      select site from appliances order by hostname, uid limit 1`;
    const queries: Array<Record<string, string>> = [
      { app: "tail-app", state: "late" }, // none has both
      { app: "tail-app", state: "missing" },
      { app: "tail-app", state: "revoked" },
      { app: "tail-app", state: "ok" },
      { app: "tail-app", tag: "edge" },
      { app: "tail-app", site: edgeSite!.site },
      { app: "tail-app", model: "vs-9000" },
      { tag: "edge", state: "late" },
      { tag: "edge", state: "missing" },
      { q: "lhr", state: "missing" },
      { q: "lhr", state: "late" },
      { q: "gw", state: "revoked" },
      { q: "a", app: "tail-app" },
      { q: "mail", app: "tail-app", state: "late" },
      { q: "fra", channel: "beta" },
    ];
    // Every cap: 1 (the walk never fills a page), 5 and 9 (it fills some pages of 7, not
    // others), and the default (through the route).
    for (const walkCap of [1, 5, 9]) {
      for (const q of queries) {
        const want = await expected(db.sql, q, seedNow);
        const got: string[] = [];
        let cursor: string | null = null;
        for (let pages = 0; pages < 100; pages++) {
          const f = listAppliancesQuery.parse({ ...q, limit: "7", ...(cursor ? { cursor } : {}) });
          const page = await listAppliances(db, f, seedNow, graceS, { walkCap });
          got.push(...page.rows.map((r) => r.uid));
          cursor = page.nextCursor;
          if (!cursor) break;
        }
        assert.deepEqual(got, want, `cap ${walkCap}, filter ${JSON.stringify(q)}`);
      }
    }
    await assertSame(noc, queries);
    assert.deepEqual(await expected(db.sql, queries[0]!, seedNow), []);
    assert.equal((await expected(db.sql, { tag: "edge", state: "late" }, seedNow)).length, 25);
  },
);

dbTest(
  "an appliance renamed or deleted in the database leaves no stale facet rows",
  async ({ db }) => {
    const noc = await testNoc(db, { clock: new ManualClock(seedNow) });
    await seedFleet(db.sql, 30, seedNow, graceS);
    const [first] = await db.sql<{ uid: string }>`
    select uid from appliances order by hostname, uid limit 1`;
    await db.sql`update appliances set hostname = 'zzz-renamed' where uid = ${first!.uid}`;
    const all = await expected(db.sql, {}, seedNow);
    assert.equal(all[all.length - 1], first!.uid);
    await assertSame(noc, [{ app: "vscreen" }, { tag: "pci" }, { q: "zzz" }, { app: "base" }]);
    await db.sql`delete from appliances where uid = ${first!.uid}`;
    const [left] = await db.sql<{ n: number }>`
    select count(*)::int as n from appliance_facet_hosts where uid = ${first!.uid}`;
    assert.equal(left!.n, 0);
    await assertSame(noc, [{ app: "vscreen" }, { tag: "pci" }]);
  },
);

dbTest("a bad list cursor is a 400 naming the field", async ({ db }) => {
  const noc = await testNoc(db, { clock: new ManualClock(seedNow) });
  for (const q of ["cursor=nonsense", "q=x&cursor=WyJhIiwiYiJd"]) {
    const r = await noc.admin("GET", `/v1/admin/appliances?${q}`);
    assert.equal(r.status, 400);
    assert.match(JSON.stringify(r.body), /cursor/);
  }
});
