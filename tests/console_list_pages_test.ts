/**
 * Issue 22 item 4 ("Lists are complete") in the console: the enrolment tokens, maintenance
 * windows, local servers, an appliance's holds, operators and an application's fileinfo each show
 * a page, say how many rows it shows and that more exist, and link the next page (the API's
 * `nextCursor`) until the last. Each test seeds more rows than a page with SQL, asks for a small
 * page through the page's query (`?limit=2`; the appliance page's holds: `?holdsLimit=2`), and
 * follows the links: every row once, the last page without a next link.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { type ConsoleSession, signIn } from "./_console.ts";

/**
 * Reads `path` and follows its "Next page" links (`rel="next"`), collecting what `key` matches on
 * each page. Asserts the first page says "<n> <what> shown, more exist", the last says it shows
 * what it shows without a next link, and each key is on one page only; returns the keys.
 */
async function walk(
  s: ConsoleSession,
  path: string,
  what: string,
  key: RegExp,
): Promise<string[]> {
  const keys: string[] = [];
  let at: string | null = path;
  let pages = 0;
  let html = "";
  while (at !== null && pages < 20) {
    const res = await s.get(at);
    html = await res.text();
    assert.equal(res.status, 200, `${at}: ${html.slice(0, 300)}`);
    const here = new Set([...html.matchAll(key)].map((m) => m[0]));
    if (pages === 0) assert.match(html, new RegExp(`${here.size} ${what} shown, more exist\\.`));
    for (const k of here) {
      assert.ok(!keys.includes(k), `${k} is on two pages`);
      keys.push(k);
    }
    pages++;
    const next = /href="([^"]+)" rel="next"/.exec(html);
    at = next ? next[1]!.replaceAll("&amp;", "&") : null;
    if (at) assert.match(at, /[?&](limit|holdsLimit)=2(&|$|#)/, "the next link keeps the limit");
  }
  assert.ok(pages >= 3, `${path}: ${pages} pages`);
  assert.match(html, new RegExp(`\\d+ ${what} shown\\.`));
  assert.doesNotMatch(html, /more exist/);
  assert.match(html, /rel="first">First page/);
  return keys.sort();
}

const numbered = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`).sort();

async function session(noc: TestNoc) {
  return await signIn(noc);
}

dbTest("console lists: enrolment tokens page with a next link", async ({ db }) => {
  const noc = await testNoc(db);
  const now = noc.clock.now();
  const later = new Date(now.getTime() + 86400_000);
  await db.sql`
    insert into enrollment_tokens (token_hash, label, created_at, expires_at)
    select 'hash-' || g, 'tok-' || g, ${now}, ${later} from generate_series(1, 5) g`;
  const s = await session(noc);
  assert.deepEqual(await walk(s, "/ui/tokens?limit=2", "tokens", /tok-\d+/g), numbered("tok-", 5));
});

dbTest("console lists: maintenance windows page with a next link", async ({ db }) => {
  const noc = await testNoc(db);
  await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
  const now = noc.clock.now();
  await db.sql`
    insert into maintenance_windows (site, starts_at, ends_at, reason, created_at)
    select 'lab', ${new Date(now.getTime() - 3600_000)}, ${new Date(now.getTime() + 3600_000)},
      'mw-' || g, ${now}
    from generate_series(1, 5) g`;
  const s = await session(noc);
  assert.deepEqual(
    await walk(s, "/ui/maintenance?limit=2", "windows", /mw-\d+/g),
    numbered("mw-", 5),
  );
});

dbTest("console lists: local servers page with a next link", async ({ db }) => {
  const noc = await testNoc(db);
  const now = noc.clock.now();
  await db.sql`
    insert into local_servers (id, site, name, url, sign_key, enrolled_at)
    select gen_random_uuid(), 'site' || (g % 2), 'ls-' || g, 'https://ls' || g || '.test',
      'key' || g, ${now}
    from generate_series(1, 5) g`;
  const s = await session(noc);
  assert.deepEqual(
    await walk(s, "/ui/local-servers?limit=2", "local servers", /ls-\d+/g),
    numbered("ls-", 5),
  );
  // Revoke… asks about a server whichever page it is on.
  const [last] = await db.sql<{ id: string }>`
    select id from local_servers order by site desc, id desc limit 1`;
  const res = await noc.app.request(`http://noc.test/ui/local-servers/${last!.id}/revoke`, {
    method: "POST",
    headers: { cookie: s.session, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ _csrf: s.csrf }),
  });
  assert.equal(res.status, 200);
  assert.match(await res.text(), /Revoke local server ls-\d+ of site site\d\?/);
});

dbTest("console lists: an appliance's holds page with a next link", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  const now = noc.clock.now();
  await db.sql`
    insert into holds (uid, app, reason, created_at)
    select ${a.uid}::uuid, 'app' || g, 'hold-' || g, ${now} from generate_series(1, 5) g`;
  const s = await session(noc);
  assert.deepEqual(
    await walk(s, `/ui/appliances/${a.uid}?holdsLimit=2`, "holds", /hold-\d+/g),
    numbered("hold-", 5),
  );
});

dbTest("console lists: operators page with a next link", async ({ db }) => {
  const noc = await testNoc(db);
  const now = noc.clock.now();
  await db.sql`
    insert into operators (name, role, created_at, created_by)
    select 'op-' || g, 'viewer', ${now}, 'seed' from generate_series(1, 5) g`;
  const s = await session(noc);
  assert.deepEqual(
    await walk(s, "/ui/operators?limit=2", "operators", /op-\d+/g),
    numbered("op-", 5),
  );
});

dbTest("console lists: an application's fileinfo pages with a next link", async ({ db }) => {
  const noc = await testNoc(db);
  const now = noc.clock.now();
  await db.sql`
    insert into fileinfo (app, name, destination, mode, updated_at)
    select 'demo', 'f-' || g || '.conf', 'etc/f-' || g || '.conf', '0644', ${now}
    from generate_series(1, 5) g`;
  const s = await session(noc);
  assert.deepEqual(
    await walk(s, "/ui/apps/demo/fileinfo?limit=2", "files", /f-\d+\.conf(?=<)/g),
    numbered("f-", 5).map((f) => `${f}.conf`),
  );
});
