/**
 * Install windows in the console (issue 22 item 5): the `/ui/install-windows` page (list, a page at
 * a time; set; a refusal back to the form with its message and the form as sent; Change…;
 * Remove…, asked first and conditional on the row's revision), the appliance page's "Installs:"
 * line, a viewer's view (the windows, no form, no button), and an urgent assignment on the
 * Releases page (shown with who made it urgent; the Save form's checkbox sent only when changed).
 * Plain form posts through `app.request` (no browser, no agent): fast.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { type ConsoleSession, signIn } from "./_console.ts";
import { publishAndAssign } from "./_components.ts";

const base = "http://noc.test";

/** Posts a console form and answers its status and where it redirects (not followed). */
async function postRaw(
  noc: TestNoc,
  s: ConsoleSession,
  path: string,
  fields: Record<string, string>,
): Promise<{ status: number; location: string | null; text: string }> {
  const res = await noc.app.request(`${base}${path}`, {
    method: "POST",
    headers: { cookie: s.session, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ ...fields, _csrf: s.csrf }),
  });
  return { status: res.status, location: res.headers.get("location"), text: await res.text() };
}

const page = async (s: ConsoleSession, path: string) => await (await s.get(path)).text();
const unescape = (v: string) => v.replaceAll("&amp;", "&");

async function viewerOf(noc: TestNoc): Promise<ConsoleSession> {
  const made = await noc.admin("POST", "/v1/admin/operators", {
    name: "vera",
    role: "viewer",
    password: "a long enough password",
  });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const issued = await noc.admin("POST", "/v1/admin/operators/vera/tokens", { label: "t" });
  assert.equal(issued.status, 201, JSON.stringify(issued.body));
  return await signIn({ ...noc, adminToken: issued.body.token });
}

dbTest(
  "console install windows: set, list, refusal keeps the form, change, remove; the appliance says when it installs",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
    const s = await signIn(noc);

    // In the navigation; nothing set: the appliance installs at any time.
    const empty = await page(s, "/ui/install-windows");
    assert.match(empty, /<a href="\/ui\/install-windows" aria-current="page">Install windows/);
    assert.match(empty, /id="no-windows"/);
    assert.match(empty, /0 windows shown\./);
    assert.match(await page(s, `/ui/appliances/${a.uid}`), /Installs: at any time/);

    // Set a site's window.
    const window = {
      _form: "install-window",
      scope: "site",
      value: "lab",
      start: "02:00",
      end: "04:00",
      timeZone: "Europe/Berlin",
      reason: "mail is quiet at night",
    };
    assert.equal(
      await s.post("/ui/install-windows", window),
      "Install window of site lab set: 02:00–04:00 Europe/Berlin",
    );
    const listed = await page(s, "/ui/install-windows");
    assert.match(listed, /data-window="site:lab"/);
    assert.match(listed, /02:00–04:00 Europe\/Berlin/);
    assert.match(listed, /mail is quiet at night/);
    assert.match(listed, /1 windows shown\./);
    assert.match(
      await page(s, `/ui/appliances/${a.uid}`),
      /Installs: 02:00–04:00 Europe\/Berlin \(site:lab\)/,
    );

    // A refusal (the API's 400 naming the field) comes back to the form, filled in as sent.
    const bad = await postRaw(noc, s, "/ui/install-windows", {
      ...window,
      value: "lab",
      start: "25:00",
      reason: "kept as typed",
    });
    assert.equal(bad.status, 303);
    const back = await page(s, bad.location!);
    assert.match(back, /role="alert">[^<]*start[^<]*HH:MM/);
    assert.match(back, /name="start"[^>]*value="25:00"/);
    assert.match(back, /value="kept as typed"/);
    // An unknown site is refused unless ticked, with the console's words for the tick box.
    const unknown = await s.post("/ui/install-windows", { ...window, value: "nowhere" });
    assert.match(unknown, /no appliance \(not revoked\) has site "nowhere"/);
    assert.match(unknown, /tick "even if no appliance has it yet"/);
    assert.match(
      await s.post("/ui/install-windows", { ...window, value: "nowhere", allowUnknown: "yes" }),
      /Install window of site nowhere set/,
    );

    // Change…: the form filled with the row, conditional on its revision.
    const read = async () => (await noc.admin("GET", "/v1/admin/install-windows/site/lab")).body;
    const { id, revision: r1 } = await read();
    const edit = await page(s, `/ui/install-windows?edit=${id}`);
    assert.match(edit, new RegExp(`name="revision" value="${r1}"`));
    assert.match(edit, /name="timeZone"[^>]*value="Europe\/Berlin"/);
    assert.equal(
      await s.post("/ui/install-windows", { ...window, end: "05:00", revision: String(r1) }),
      "Install window of site lab changed: 02:00–05:00 Europe/Berlin",
    );
    // Saved against the first revision again: someone changed it since, nothing is saved.
    const stale = await s.post("/ui/install-windows", {
      ...window,
      end: "06:00",
      revision: String(r1),
    });
    const r2 = String((await read()).revision);
    assert.match(stale, /^Changed by someone else .*now: 02:00–05:00 Europe\/Berlin/);

    // Remove…: asked first, then removed with the row's revision (a stale one is refused).
    const ask = await postRaw(noc, s, "/ui/install-windows/site/lab/delete", { revision: r2 });
    assert.equal(ask.status, 200);
    assert.match(ask.text, /Remove the install window of site lab\?/);
    assert.match(ask.text, /name="confirmed" value="yes"/);
    assert.match(ask.text, new RegExp(`name="revision" value="${r2}"`));
    assert.match(
      await s.post("/ui/install-windows/site/lab/delete", {
        confirmed: "yes",
        revision: String(r1),
      }),
      /^Changed by someone else/,
    );
    assert.equal(
      await s.post("/ui/install-windows/site/lab/delete", { confirmed: "yes", revision: r2 }),
      "Install window of site lab removed",
    );
    assert.doesNotMatch(await page(s, "/ui/install-windows"), /data-window="site:lab"/);
    assert.match(await page(s, `/ui/appliances/${a.uid}`), /Installs: at any time/);

    // The appliance's own window wins over its model's.
    await s.post("/ui/install-windows", { ...window, scope: "model", value: "vs-2000" });
    assert.match(
      await page(s, `/ui/appliances/${a.uid}`),
      /Installs: 02:00–04:00 Europe\/Berlin \(model:vs-2000\)/,
    );
    await s.post("/ui/install-windows", {
      ...window,
      scope: "appliance",
      value: a.uid,
      start: "22:00",
      end: "01:00",
      timeZone: "UTC",
    });
    assert.match(
      await page(s, `/ui/appliances/${a.uid}`),
      /Installs: 22:00–01:00 UTC \(appliance\)/,
    );
  },
);

dbTest("console install windows: a page at a time, with a next link", async ({ db }) => {
  const noc = await testNoc(db);
  const now = noc.clock.now();
  await db.sql`
    insert into install_windows (scope_type, scope_value, starts, ends, time_zone, reason,
      created_by, created_at, updated_by, updated_at)
    select 'site', 'site-' || g, '02:00', '04:00', 'UTC', '', 'seed', ${now}, 'seed', ${now}
    from generate_series(1, 5) g`;
  const s = await signIn(noc);
  const first = await page(s, "/ui/install-windows?limit=2");
  assert.match(first, /2 windows shown, more exist/);
  const seen = new Set<string>();
  let at = first;
  for (let i = 0; i < 5; i++) {
    for (const m of at.matchAll(/data-window="(site:site-\d+)"/g)) seen.add(m[1]!);
    const next = /href="([^"]+)" rel="next"/.exec(at);
    if (!next) break;
    assert.match(
      unescape(next[1]!),
      /^\/ui\/install-windows\?limit=2&cursor=[^&#]+#windows-pages$/,
    );
    at = await page(s, unescape(next[1]!));
  }
  assert.equal(seen.size, 5);
  assert.match(at, /1 windows shown\./);
  assert.match(at, /rel="first">First page/);
});

dbTest(
  "console install windows: a viewer sees the windows, no form and no button",
  async ({ db }) => {
    const noc = await testNoc(db);
    const set = await noc.admin("PUT", "/v1/admin/install-windows/site/site-1", {
      start: "02:00",
      end: "04:00",
      timeZone: "UTC",
      allowUnknown: true,
    });
    assert.equal(set.status, 201, JSON.stringify(set.body));
    const viewer = await viewerOf(noc);
    const seenByViewer = await page(viewer, "/ui/install-windows");
    assert.doesNotMatch(
      seenByViewer,
      /needs the admin role/,
      "GET /v1/admin/install-windows has no row in the admin API's role table " +
        "(noc/services/operators.ts roleTable): only admins can read it",
    );
    assert.match(seenByViewer, /data-window="site:site-1"/);
    assert.doesNotMatch(seenByViewer, /id="set-window"/);
    assert.doesNotMatch(seenByViewer, /Remove…/);
    assert.doesNotMatch(seenByViewer, /Change…/);
  },
);

dbTest(
  "console releases: an urgent assignment says so and who made it; the checkbox is sent only when changed",
  async ({ db }) => {
    const noc = await testNoc(db);
    await noc.enrollAppliance();
    const { assignmentId: id } = await publishAndAssign(
      noc,
      { app: "demo", name: "demo", version: "1.0.0" },
    );
    const s = await signIn(noc);
    const row = (html: string) =>
      new RegExp(`<tr data-assignment="${id}"[\\s\\S]*?</tr>`).exec(html)![0];
    let r = row(await page(s, "/ui/releases"));
    assert.doesNotMatch(r, /data-urgent/);
    assert.match(r, /name="was\.urgent" value=""/);
    assert.match(r, /urgent: installs outside install windows/);

    const saved = {
      revision: String((await noc.admin("GET", `/v1/admin/assignments/${id}`)).body.revision),
      "was.rolloutPercent": "100",
      rolloutPercent: "100",
      "was.urgent": "",
    };
    const flash = await s.post(`/ui/releases/assignments/${id}`, { ...saved, urgent: "yes" });
    assert.match(flash, /now urgent: installs outside install windows/);
    const a = (await noc.admin("GET", `/v1/admin/assignments/${id}`)).body;
    assert.equal(a.urgent, true);
    r = row(await page(s, "/ui/releases"));
    assert.match(
      r,
      /<b class="urgent" data-urgent="true">urgent<\/b>: installs outside install windows/,
    );
    assert.match(r, new RegExp(`made urgent by ${a.urgentBy} at <time`));
    assert.match(r, /name="urgent" value="yes" checked/);

    // Someone else makes it not urgent; a save of the percentage alone leaves that alone.
    const off = await noc.admin("PATCH", `/v1/admin/assignments/${id}`, { urgent: false });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    const left = await s.post(`/ui/releases/assignments/${id}`, {
      "was.rolloutPercent": "100",
      rolloutPercent: "50",
      "was.urgent": "yes",
      urgent: "yes",
    });
    assert.match(left, /widened|narrowed/);
    const after = (await noc.admin("GET", `/v1/admin/assignments/${id}`)).body;
    assert.equal(after.urgent, false);
    assert.equal(after.rolloutPercent, 50);

    // The assign form makes a new assignment urgent when ticked.
    const made = await s.post("/ui/releases/assign", {
      _form: "assign",
      component: "package/demo/demo/1.0.0",
      target: "all",
      otherType: "model",
      otherValue: "vs-2000",
      rolloutPercent: "100",
      minSample: "5",
      urgent: "yes",
    });
    assert.match(made, /urgent: installs outside install windows/);
  },
);
