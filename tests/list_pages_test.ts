/**
 * Issue 22, item 4: every list of the admin API pages (`?limit=&cursor=` answering
 * `{ items, nextCursor }`, noc/http/admin/paging.ts). For each list route: more rows than one
 * page, walked to the end through the real HTTP surface; every row appears exactly once, rows
 * written between two pages neither repeat nor push out the rows that existed, the last page
 * says no more exist, and a bad cursor is a 400 naming `cursor`. Rows are seeded with SQL (fast).
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { signIn } from "./_console.ts";

type Item = Record<string, unknown>;

/** Walks `path` (with `?` or not) page by page; `between` runs after the first page. */
async function walk(
  noc: TestNoc,
  path: string,
  limit: number,
  between?: () => Promise<void>,
): Promise<{ items: Item[]; pages: number }> {
  const items: Item[] = [];
  let cursor: string | null = null;
  let pages = 0;
  const sep = path.includes("?") ? "&" : "?";
  do {
    const q: string = `${sep}limit=${limit}${
      cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""
    }`;
    const r = await noc.admin("GET", `${path}${q}`);
    assert.equal(r.status, 200, `${path}${q}: ${JSON.stringify(r.body)}`);
    assert.ok(Array.isArray(r.body.items), `${path}: items`);
    assert.ok("nextCursor" in r.body, `${path}: nextCursor`);
    assert.ok(r.body.items.length <= limit, `${path}: at most ${limit} a page`);
    items.push(...r.body.items);
    cursor = r.body.nextCursor;
    if (cursor !== null) assert.equal(r.body.items.length, limit, `${path}: a full page says more`);
    pages++;
    if (pages === 1 && between) await between();
    assert.ok(pages < 10_000, "the walk ends");
  } while (cursor !== null);
  return { items, pages };
}

/** Every key of `expected` appears exactly once among `items`' keys. */
function onceEach(items: Item[], key: (i: Item) => string, expected: string[], what: string) {
  const seen = new Map<string, number>();
  for (const i of items) seen.set(key(i), (seen.get(key(i)) ?? 0) + 1);
  for (const [k, n] of seen) assert.equal(n, 1, `${what}: ${k} listed ${n} times`);
  for (const k of expected) assert.ok(seen.has(k), `${what}: ${k} missing`);
}

/** A bad cursor is refused with 400 naming `cursor`. */
async function badCursor(noc: TestNoc, path: string) {
  for (const cursor of ["not-a-cursor!", "eyJ4IjoxfQ", "abc"]) {
    const sep = path.includes("?") ? "&" : "?";
    const r = await noc.admin("GET", `${path}${sep}cursor=${encodeURIComponent(cursor)}`);
    assert.equal(r.status, 400, `${path} cursor=${cursor}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error, "invalid_query");
    assert.ok(
      JSON.stringify(r.body.issues ?? r.body.message).includes("cursor"),
      `${path}: names cursor: ${JSON.stringify(r.body)}`,
    );
  }
}

/** Publishes one file component through the API; answers its id. */
async function publishFile(noc: TestNoc, app: string, name: string, version: string) {
  const res = await noc.app.request(
    `http://noc.test/v1/admin/files?app=${app}&name=${name}&version=${version}`,
    {
      method: "POST",
      headers: {
        authorization: `Bearer ${noc.adminToken}`,
        "content-type": "application/octet-stream",
      },
      body: new TextEncoder().encode(`${name} ${version}\n`),
    },
  );
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body.id as number;
}

dbTest("lists: 1,005 assignments, the fleet-wide one first, all found by paging", async (t) => {
  const noc = await testNoc(t.db);
  await publishFile(noc, "demo", "motd", "1");
  const now = noc.clock.now();
  await t.db.sql`
    insert into assignments (kind, app, name, version, target_type, target_value, created_at,
      updated_at)
    values ('file', 'demo', 'motd', '1', 'all', null, ${now}, ${now})`;
  await t.db.sql`
    insert into assignments (kind, app, name, version, target_type, target_value, created_at,
      updated_at)
    select 'file', 'demo', 'motd', '1', 'site', 'site-' || g, ${now}, ${now}
    from generate_series(1, 1004) g`;
  const ids = (await t.db.sql<{ id: number }>`select id from assignments order by id`)
    .map((r) => String(r.id));
  assert.equal(ids.length, 1005);

  // The default page is bounded and says more exist.
  const first = await noc.admin("GET", "/v1/admin/assignments");
  assert.equal(first.status, 200);
  assert.equal(first.body.items.length, 100);
  assert.equal(typeof first.body.nextCursor, "string");

  // Rows written while an operator pages are not listed twice and push nothing out.
  let added = 0;
  const { items, pages } = await walk(noc, "/v1/admin/assignments", 400, async () => {
    await t.db.sql`
      insert into assignments (kind, app, name, version, target_type, target_value, created_at,
        updated_at)
      select 'file', 'demo', 'motd', '1', 'tag', 'new-' || g, ${now}, ${now}
      from generate_series(1, 3) g`;
    added = 3;
  });
  assert.equal(added, 3);
  assert.equal(pages, 3);
  onceEach(items, (i) => String(i.id), ids, "assignments");
  assert.equal(items.length, 1005, "the rows added meanwhile are newer: not in later pages");
  const fleetWide = items.find((i) => (i.target as { type: string }).type === "all");
  assert.ok(fleetWide, "the fleet-wide assignment is found");
  assert.equal(String(fleetWide.id), ids[0]);
  await badCursor(noc, "/v1/admin/assignments");
});

dbTest("lists: components, holds, notices, alerts and auth failures page by id", async (t) => {
  const noc = await testNoc(t.db);
  await publishFile(noc, "demo", "motd", "1");
  const now = noc.clock.now();
  await t.db.sql`
    insert into components (kind, app, name, version, blob_id, size, sha256, content_sha256,
      created_at)
    select kind, app, name, 'v' || g, blob_id, size, sha256, content_sha256, created_at
    from components, generate_series(2, 8) g`;
  const a = await noc.enrollAppliance();
  const b = await noc.enrollAppliance();
  await t.db.sql`
    insert into holds (uid, app, reason, created_at)
    select u, 'app' || g, 'testing', ${now}
    from unnest(${[a.uid, b.uid]}::uuid[]) u, generate_series(1, 4) g`;
  await t.db.sql`
    insert into notices (created_at, kind, uid, text, payload)
    select ${now}, 'test', null, 'notice ' || g, '{}'::jsonb from generate_series(1, 7) g`;
  await t.db.sql`
    insert into alerts (kind, uid, opened_at, detail)
    select 'test_' || g, ${a.uid}::uuid, ${now}, '{}'::jsonb from generate_series(1, 7) g`;
  await t.db.sql`
    insert into auth_failures (at, reason, method, path)
    select ${now}, 'unknown_key', 'POST', '/v1/beats/' || g from generate_series(1, 7) g`;

  const idsOf = async (table: string) => {
    const q = {
      components: t.db.sql<{ id: number }>`select id from components`,
      holds: t.db.sql<{ id: number }>`select id from holds`,
      notices: t.db.sql<{ id: number }>`select id from notices`,
      alerts: t.db.sql<{ id: number }>`select id from alerts`,
      auth_failures: t.db.sql<{ id: number }>`select id from auth_failures`,
    }[table]!;
    return (await q).map((r) => String(r.id));
  };
  const lists: Array<{ path: string; table: string; more: () => Promise<unknown> }> = [
    {
      path: "/v1/admin/components",
      table: "components",
      more: () =>
        t.db.sql`insert into components (kind, app, name, version, blob_id, size, sha256,
          content_sha256, created_at)
        select kind, app, name, 'new', blob_id, size, sha256, content_sha256, created_at
        from components where version = '1'`,
    },
    {
      path: "/v1/admin/holds",
      table: "holds",
      more: () =>
        t.db.sql`insert into holds (uid, app, reason, created_at)
          values (${a.uid}, 'new', 'later', ${now})`,
    },
    {
      path: "/v1/admin/notices",
      table: "notices",
      more: () =>
        t.db.sql`insert into notices (created_at, kind, text, payload)
          values (${now}, 'test', 'later', '{}'::jsonb)`,
    },
    {
      path: "/v1/admin/alerts?status=all",
      table: "alerts",
      more: () =>
        t.db.sql`insert into alerts (kind, uid, opened_at, detail)
          values ('later', ${a.uid}, ${now}, '{}'::jsonb)`,
    },
    {
      path: "/v1/admin/auth-failures",
      table: "auth_failures",
      more: () =>
        t.db.sql`insert into auth_failures (at, reason, method, path)
          values (${now}, 'unknown_key', 'POST', '/later')`,
    },
  ];
  for (const l of lists) {
    const ids = await idsOf(l.table);
    assert.ok(ids.length > 3, `${l.table}: more than a page`);
    const { items, pages } = await walk(noc, l.path, 3, async () => void await l.more());
    assert.ok(pages >= 2, `${l.path}: several pages`);
    onceEach(items, (i) => String(i.id), ids, l.path);
    assert.equal(items.length, ids.length, `${l.path}: the new row is newer than the cursor`);
    await badCursor(noc, l.path);
  }
});

dbTest(
  "lists: tokens, maintenance, operators, fileinfo, keys, servers and audit page",
  async (t) => {
    const noc = await testNoc(t.db);
    const now = noc.clock.now();
    for (let i = 0; i < 5; i++) await noc.enrollmentToken({ label: `t${i}` });
    const a = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "hq" }) });
    for (let i = 0; i < 5; i++) {
      const r = await noc.admin("POST", "/v1/admin/maintenance", {
        uid: a.uid,
        endsAt: new Date(now.getTime() + (i + 1) * 3600_000).toISOString(),
        reason: `w${i}`,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    for (let i = 0; i < 5; i++) {
      const r = await noc.admin("POST", "/v1/admin/operators", { name: `op${i}`, role: "viewer" });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    for (let i = 0; i < 5; i++) {
      const r = await noc.admin("PUT", `/v1/admin/apps/demo/fileinfo/f${i}`, {
        destination: `etc/f${i}`,
        mode: "0644",
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    // Release keys made at the same time: the key's id orders them.
    await t.db.sql`
    insert into release_keys (kid, public_key, label, created_at)
    select 'kid' || g, 'pk' || g, 'k' || g, ${now} from generate_series(1, 5) g`;
    await t.db.sql`
    insert into local_servers (id, site, name, url, sign_key, enrolled_at)
    select gen_random_uuid(), 'site' || (g % 2), 'ls' || g, 'https://ls' || g || '.test', 'key' || g, ${now}
    from generate_series(1, 5) g`;

    const keyed: Array<{
      path: string;
      key: (i: Item) => string;
      expected: () => Promise<string[]>;
      more: () => Promise<unknown>;
    }> = [
      {
        path: "/v1/admin/enrollment-tokens",
        key: (i) => String(i.id),
        expected: async () =>
          (await t.db.sql<{ id: number }>`select id from enrollment_tokens`).map((r) =>
            String(r.id)
          ),
        more: () => noc.enrollmentToken({ label: "later" }),
      },
      {
        path: "/v1/admin/maintenance?all=true",
        key: (i) => String(i.id),
        expected: async () =>
          (await t.db.sql<{ id: number }>`select id from maintenance_windows`)
            .map((r) => String(r.id)),
        more: () =>
          noc.admin("POST", "/v1/admin/maintenance", {
            uid: a.uid,
            endsAt: new Date(now.getTime() + 3600_000).toISOString(),
            reason: "later",
          }),
      },
      {
        path: "/v1/admin/operators",
        key: (i) => String(i.name),
        expected: async () =>
          (await t.db.sql<{ name: string }>`select name from operators`).map((r) => r.name),
        more: () => noc.admin("POST", "/v1/admin/operators", { name: "aaa", role: "viewer" }),
      },
      {
        path: "/v1/admin/apps/demo/fileinfo",
        key: (i) => String(i.name),
        expected: async () =>
          (await t.db.sql<{ name: string }>`select name from fileinfo where app = 'demo'`)
            .map((r) => r.name),
        more: () =>
          noc.admin("PUT", "/v1/admin/apps/demo/fileinfo/a0", {
            destination: "etc/a0",
            mode: "0644",
          }),
      },
      {
        path: "/v1/admin/release-keys",
        key: (i) => String(i.kid),
        expected: async () =>
          (await t.db.sql<{ kid: string }>`select kid from release_keys`).map((r) => r.kid),
        more: () =>
          t.db.sql`insert into release_keys (kid, public_key, label, created_at)
          values ('kid0', 'pk0', 'k0', ${now})`,
      },
      {
        path: "/v1/admin/local-servers",
        key: (i) => String(i.id),
        expected: async () =>
          (await t.db.sql<{ id: string }>`select id::text from local_servers`).map((r) => r.id),
        more: () =>
          t.db.sql`insert into local_servers (id, site, name, url, sign_key, enrolled_at)
          values (gen_random_uuid(), 'site0', 'later', 'https://later.test', 'key-later', ${now})`,
      },
      {
        path: "/v1/admin/audit",
        key: (i) => String(i.id),
        expected: async () =>
          (await t.db.sql<{ id: number }>`select id from audit_log`).map((r) => String(r.id)),
        more: () => noc.enrollmentToken({ label: "audited" }),
      },
    ];
    for (const l of keyed) {
      const expected = await l.expected();
      assert.ok(expected.length > 2, `${l.path}: more than a page`);
      const { items, pages } = await walk(noc, l.path, 2, async () => void await l.more());
      assert.ok(pages >= 2, `${l.path}: several pages`);
      onceEach(items, l.key, expected, l.path);
      await badCursor(noc, l.path);
    }
  },
);

dbTest("lists: the console's Releases page offers the next page of assignments", async (t) => {
  const noc = await testNoc(t.db);
  await publishFile(noc, "demo", "motd", "1");
  const now = noc.clock.now();
  await t.db.sql`
    insert into assignments (kind, app, name, version, target_type, target_value, created_at,
      updated_at)
    values ('file', 'demo', 'motd', '1', 'all', null, ${now}, ${now})`;
  await t.db.sql`
    insert into assignments (kind, app, name, version, target_type, target_value, created_at,
      updated_at)
    select 'file', 'demo', 'motd', '1', 'site', 'site-' || g, ${now}, ${now}
    from generate_series(1, 104) g`;
  const session = await signIn(noc);
  const first = await (await session.get("/ui/releases")).text();
  assert.match(first, /100 assignments shown, more exist/);
  const next =
    /href="(\/ui\/releases\?assignments=[^"#]+)#assignments-pages"[^>]*>Next page of assignments/
      .exec(first);
  assert.ok(next, "a next-page link");
  const second = await (await session.get(next[1]!.replaceAll("&amp;", "&"))).text();
  assert.match(second, /5 assignments shown\./);
  assert.doesNotMatch(second, /Next page of assignments/);
  // The fleet-wide assignment, the oldest, is on the last page.
  assert.match(second, /\ball\b/);
});
