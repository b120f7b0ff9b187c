/**
 * Issue 19, item 3, through the admin API: bulk actions on appliances (by UIDs and by filter,
 * bounded, refused whole), the list's total, its sorts and previous pages (consistent while rows
 * are inserted between requests), its outcome filter and facets, and refusals by UID.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { ManualClock } from "../noc/clock.ts";
import type { Sql } from "../noc/db/db.ts";
import { seedFleet, seedNow } from "../bench/appliance_list_seed.ts";

async function fleet(noc: TestNoc, site: string, n: number, extra: Record<string, unknown> = {}) {
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await noc.enrollAppliance({
        hostname: `${site}-gw-${i}`,
        token: await noc.enrollmentToken({ site, ...extra }),
      }),
    );
  }
  return out;
}

async function show(noc: TestNoc, uid: string) {
  const r = await noc.admin("GET", `/v1/admin/appliances/${uid}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

dbTest(
  "bulk move by filter moves only the filter's appliances, in site, channel and tags",
  async ({ db }) => {
    const noc = await testNoc(db);
    const ams = await fleet(noc, "ams", 3, { tags: ["dmz"] });
    const fra = await fleet(noc, "fra", 2);
    const r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      filter: { site: "ams" },
      action: {
        type: "move",
        site: "lon",
        channel: "beta",
        addTags: ["moved"],
        removeTags: ["dmz"],
      },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { action: "move", matched: 3, done: 3, skipped: 0, skippedWhy: null });
    for (const a of ams) {
      const d = await show(noc, a.uid);
      assert.equal(d.site, "lon");
      assert.equal(d.channel, "beta");
      assert.deepEqual(d.tags, ["moved"]);
    }
    for (const a of fra) assert.equal((await show(noc, a.uid)).site, "fra");
    // Moved away from ams: its local servers still learn of a revocation (departures).
    const [dep] = await db.sql<{ n: number }>`
    select count(*)::int as n from appliance_departures where site = 'ams'`;
    assert.equal(dep!.n, 3);
  },
);

dbTest(
  "bulk hold and release by UIDs count what they changed, and open maintenance windows",
  async ({ db }) => {
    const noc = await testNoc(db);
    const [a, b] = await fleet(noc, "ams", 2);
    const pre = await noc.admin("POST", "/v1/admin/holds", { uid: a!.uid, reason: "earlier" });
    assert.equal(pre.status, 201);
    let r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      uids: [a!.uid, b!.uid],
      action: { type: "hold", reason: "freeze for the audit" },
    });
    assert.deepEqual(r.body, {
      action: "hold",
      matched: 2,
      done: 1,
      skipped: 1,
      skippedWhy: "already held",
    });
    const holds = await noc.admin("GET", `/v1/admin/holds?uid=${b!.uid}`);
    assert.equal(holds.body.items[0].reason, "freeze for the audit");
    r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      uids: [a!.uid, b!.uid],
      action: { type: "release" },
    });
    assert.equal(r.body.done, 2);
    assert.equal((await noc.admin("GET", "/v1/admin/holds")).body.items.length, 0);
    const ends = new Date(noc.clock.now().getTime() + 3600_000).toISOString();
    r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      uids: [a!.uid],
      action: { type: "maintenance", endsAt: ends, reason: "disk swap" },
    });
    assert.equal(r.body.done, 1);
    const d = await show(noc, a!.uid);
    assert.equal(d.maintenance.reason, "disk swap");
    assert.equal((await show(noc, b!.uid)).maintenance, null);
  },
);

dbTest(
  "bulk wake skips revoked appliances and says so; waking one revoked is refused",
  async ({ db }) => {
    const noc = await testNoc(db);
    const [a, b, c] = await fleet(noc, "ams", 3);
    const rv = await noc.admin("POST", `/v1/admin/appliances/${c!.uid}/revoke`, {
      reason: "stolen",
    });
    assert.equal(rv.status, 200);
    const before = await db.sql<{ n: number }>`select count(*)::int as n from wake_requests`;
    const r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      filter: { site: "ams" },
      action: { type: "wake" },
    });
    assert.deepEqual(r.body, {
      action: "wake",
      matched: 3,
      done: 2,
      skipped: 1,
      skippedWhy: "revoked: a revoked appliance is never woken",
    });
    const woken = await db.sql<{ v: string }>`
    select target_value as v from wake_requests where id > ${before[0]!.n} order by id`;
    assert.deepEqual(woken.map((w) => w.v).sort(), [a!.uid, b!.uid].sort());
    const one = await noc.admin("POST", "/v1/admin/wake", { uid: c!.uid });
    assert.equal(one.status, 409);
    assert.equal(one.body.error, "appliance_revoked");
  },
);

dbTest(
  "bulk refuses unknown UIDs, a bad selector and too many tags, and writes nothing",
  async ({ db }) => {
    const noc = await testNoc(db);
    const [a] = await fleet(noc, "ams", 1);
    const unknown = crypto.randomUUID();
    let r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      uids: [a!.uid, unknown],
      action: { type: "move", site: "lon" },
    });
    assert.equal(r.status, 404);
    assert.match(r.body.message, new RegExp(unknown));
    assert.equal((await show(noc, a!.uid)).site, "ams");
    r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      uids: [a!.uid],
      filter: { site: "ams" },
      action: { type: "wake" },
    });
    assert.equal(r.status, 400);
    r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      uids: Array.from({ length: 1001 }, () => crypto.randomUUID()),
      action: { type: "wake" },
    });
    assert.equal(r.status, 400, "more than 1,000 UIDs");
    r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      uids: [a!.uid],
      action: { type: "move" },
    });
    assert.equal(r.status, 400, "a move that moves nothing");
    const many = Array.from({ length: 32 }, (_, i) => `t${i}`);
    assert.equal(
      (await noc.admin("PATCH", `/v1/admin/appliances/${a!.uid}`, { tags: many })).status,
      200,
    );
    r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      uids: [a!.uid],
      action: { type: "move", site: "lon", addTags: ["one-more"] },
    });
    assert.equal(r.status, 400);
    assert.match(r.body.message, /33 tags/);
    const d = await show(noc, a!.uid);
    assert.equal(d.site, "ams", "refused whole: the site did not move either");
    assert.equal(d.tags.length, 32);
  },
);

dbTest(
  "a filter over 5,000 appliances is refused; the list counts exactly up to 10,000",
  async ({ db }) => {
    const clock = new ManualClock(seedNow);
    const noc = await testNoc(db, { clock, settings: { graceS: 300 } });
    await seedFleet(db.sql, 10_001, seedNow, 300);
    const beta = () =>
      db.sql<{ n: number }>`
    select count(*)::int as n from appliances where channel = 'beta'`;
    const [before] = await beta();
    const r = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      filter: { channel: "stable" },
      action: { type: "move", channel: "beta" },
    });
    assert.equal(r.status, 409);
    assert.equal(r.body.error, "too_many_appliances");
    const [after] = await beta();
    assert.equal(after!.n, before!.n, "nothing moved");
    let l = await noc.admin("GET", "/v1/admin/appliances?count=true&limit=5");
    assert.equal(l.body.total, 10_000);
    assert.equal(l.body.totalCapped, true);
    l = await noc.admin("GET", "/v1/admin/appliances?count=true&limit=5&channel=canary");
    const [canary] = await db.sql<{ n: number }>`
    select count(*)::int as n from appliances where channel = 'canary' and superseded_by is null`;
    assert.equal(l.body.total, canary!.n);
    assert.equal(l.body.totalCapped, false);
    // The canary appliances (1 %) are few enough to act on at once.
    const m = await noc.admin("POST", "/v1/admin/appliances/bulk", {
      filter: { channel: "canary" },
      action: { type: "move", tags: ["canary-fleet"] },
    });
    assert.equal(m.status, 200, JSON.stringify(m.body));
    assert.equal(m.body.done, canary!.n);
  },
);

/** The list's order `sort`, read with a plain sort (no cursor). */
function expectedOrder(sql: Sql, sort: string, desc: boolean) {
  const rows = sort === "hostname"
    ? sql<{ uid: string }>`select uid from appliances
        where superseded_by is null order by hostname, uid`
    : sort === "lastBeat"
    ? sql<{ uid: string }>`select uid from appliances where superseded_by is null
        order by coalesce(last_beat_at, '-infinity'::timestamptz), uid`
    : sql<{ uid: string }>`select uid from appliances where superseded_by is null
        order by (revoked_at is not null), next_due_at, uid`;
  return rows.then((r) => desc ? [...r].reverse() : r);
}

/** Reads every page of `query` forwards, then back from the end with `before`. */
async function walk(noc: TestNoc, query: string) {
  const forward: string[] = [];
  const pages: Array<
    { items: { uid: string }[]; nextCursor: string | null; prevCursor: string | null }
  > = [];
  let cursor: string | null = null;
  do {
    const r = await noc.admin(
      "GET",
      `/v1/admin/appliances?${query}&limit=40${cursor ? `&cursor=${cursor}` : ""}`,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    pages.push(r.body);
    forward.push(...r.body.items.map((i: { uid: string }) => i.uid));
    cursor = r.body.nextCursor;
  } while (cursor);
  return { forward, pages };
}

dbTest(
  "sorts page both ways in index order and stay consistent while rows are inserted",
  async ({ db }) => {
    const clock = new ManualClock(seedNow);
    const noc = await testNoc(db, { clock, settings: { graceS: 300 } });
    await seedFleet(db.sql, 300, seedNow, 300);
    for (const sort of ["hostname", "lastBeat", "state"]) {
      for (const order of ["asc", "desc"]) {
        const expected = (await expectedOrder(db.sql, sort, order === "desc")).map((r) => r.uid);
        const { forward, pages } = await walk(noc, `sort=${sort}&order=${order}`);
        assert.deepEqual(forward, expected, `${sort} ${order}: forward`);
        // Back from the last page with `before`: the same pages, in reverse.
        const back: string[] = [];
        let before = pages[pages.length - 1]!.prevCursor;
        assert.ok(before, `${sort} ${order}: the last page has a previous page`);
        while (before) {
          const r = await noc.admin(
            "GET",
            `/v1/admin/appliances?sort=${sort}&order=${order}&limit=40&before=${before}`,
          );
          assert.equal(r.status, 200, JSON.stringify(r.body));
          back.unshift(...r.body.items.map((i: { uid: string }) => i.uid));
          assert.ok(r.body.nextCursor, "a previous page links forward again");
          before = r.body.prevCursor;
        }
        assert.deepEqual(
          back,
          expected.slice(0, expected.length - pages[pages.length - 1]!.items.length),
          `${sort} ${order}: backward`,
        );
      }
    }
    // Rows inserted between two requests: the next and previous pages neither skip nor repeat
    // the rows that were there.
    for (const sort of ["hostname", "lastBeat", "state"]) {
      const first = await noc.admin("GET", `/v1/admin/appliances?sort=${sort}&limit=50`);
      const second = await noc.admin(
        "GET",
        `/v1/admin/appliances?sort=${sort}&limit=50&cursor=${first.body.nextCursor}`,
      );
      await noc.enrollAppliance({ hostname: "aaa-new" });
      await noc.enrollAppliance({ hostname: "zzz-new" });
      const back = await noc.admin(
        "GET",
        `/v1/admin/appliances?sort=${sort}&limit=50&before=${second.body.prevCursor}`,
      );
      const ids = (p: { body: { items: { uid: string }[] } }) => p.body.items.map((i) => i.uid);
      const old = new Set([...ids(first), ...ids(second)]);
      assert.deepEqual(
        ids(back).filter((u) => old.has(u)),
        ids(first),
        `${sort}: the previous page holds the first page's rows`,
      );
      const again = await noc.admin(
        "GET",
        `/v1/admin/appliances?sort=${sort}&limit=50&cursor=${back.body.nextCursor}`,
      );
      assert.deepEqual(ids(again).filter((u) => old.has(u)), ids(second), `${sort}: next again`);
      await db.sql`delete from appliances where hostname in ('aaa-new', 'zzz-new')`;
    }
    const bad = await noc.admin("GET", `/v1/admin/appliances?sort=state&cursor=bm9wZQ`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, "invalid_query");
  },
);

dbTest(
  "the outcome filter lists appliances by their last install outcome; facets list choices",
  async ({ db }) => {
    const noc = await testNoc(db);
    const [a, b, c] = await fleet(noc, "ams", 3, { channel: "beta", tags: ["dmz", "pci"] });
    const report = async (x: typeof a, outcome: string) => {
      const res = await noc.send(
        await x!.request("POST", "/v1/installs", {
          results: [{
            kind: "package",
            app: "vscreen",
            name: "vscreen",
            version: "1.0.1",
            outcome,
          }],
        }),
      );
      assert.ok(res.status < 300, await res.text());
    };
    await report(a, "installed");
    await report(b, "installed");
    noc.clock.advance(5);
    await report(b, "failed");
    await report(c, "rolled_back");
    const list = async (q: string) =>
      (await noc.admin("GET", `/v1/admin/appliances?${q}`)).body.items.map((i: { uid: string }) =>
        i.uid
      );
    assert.deepEqual(await list("outcome=failed"), [b!.uid]);
    assert.deepEqual(await list("outcome=rolled_back&sort=state"), [c!.uid]);
    assert.deepEqual(await list("outcome=installed"), [a!.uid]);
    await a!.beat({
      lastCycle: {
        outcome: "partial",
        problems: [{ code: "install_interrupted", message: "stopped mid-install" }],
      },
    });
    assert.deepEqual(await list("outcome=interrupted"), [a!.uid]);
    await fleet(noc, "fra", 1);
    const f = await noc.admin("GET", "/v1/admin/appliances/facets");
    assert.equal(f.status, 200);
    assert.deepEqual(f.body.sites, ["ams", "fra"]);
    assert.deepEqual(f.body.models, ["vs-2000"]);
    assert.deepEqual(f.body.channels, ["beta", "stable"]);
    assert.deepEqual(f.body.tags, ["dmz", "pci"]);
  },
);

dbTest("refusals made under an appliance's identity are listed by its UID", async ({ db }) => {
  const noc = await testNoc(db);
  const [a, b] = await fleet(noc, "ams", 2);
  await noc.admin("POST", `/v1/admin/appliances/${a!.uid}/revoke`, { reason: "stolen" });
  const res = await noc.send(await a!.request("POST", "/v1/beats", {}));
  assert.equal(res.status, 401);
  await res.body?.cancel();
  const mine = await noc.admin("GET", `/v1/admin/auth-failures?uid=${a!.uid}`);
  assert.equal(mine.status, 200);
  assert.equal(mine.body.items.length, 1);
  assert.equal(mine.body.items[0].reason, "revoked_key");
  const theirs = await noc.admin("GET", `/v1/admin/auth-failures?uid=${b!.uid}`);
  assert.deepEqual(theirs.body.items, []);
});
