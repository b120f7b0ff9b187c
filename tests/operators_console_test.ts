/**
 * The console's operator and audit pages over real HTTP: an admin creates an operator, changes
 * their role, issues a personal token (shown to its session alone, never in a URL or a cookie) and
 * disables them after a confirmation; the audit page shows each change with who, what and from where, filters and
 * pages, and exports CSV; a viewer is shown what their role allows and refused the rest.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { serveNoc } from "./_agent.ts";
import { signIn } from "./_console.ts";
import { parseCsv } from "./_audit_csv.ts";

dbTest(
  "an admin manages operators on /ui/operators, and /ui/audit shows and exports each change",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const admin = await signIn(noc);
      assert.equal(
        await admin.post("/ui/operators", {
          name: "olga",
          role: "viewer",
          password: "long enough password",
        }),
        "Operator olga (viewer) created",
      );
      // A refusal keeps the form (but never the password) and says why.
      const dup = await fetch(`${noc.url}/ui/operators`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: admin.session, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          _csrf: admin.csrf,
          name: "olga",
          role: "admin",
          password: "another long password",
        }),
      });
      await dup.body?.cancel();
      const to = new URL(dup.headers.get("location")!, noc.url);
      assert.match(to.searchParams.get("error")!, /exists already/);
      assert.equal(to.search.includes("another"), false);

      assert.match(
        await admin.post("/ui/operators/olga/role", { role: "operator" }),
        /olga is now operator/,
      );
      const issued = await fetch(`${noc.url}/ui/operators/olga/tokens`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: admin.session, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: admin.csrf, label: "laptop" }),
      });
      await issued.body?.cancel();
      assert.equal(issued.status, 303);
      assert.equal(/noc_op_/.test(issued.headers.get("location")!), false, "not in the URL");
      assert.deepEqual(issued.headers.getSetCookie(), [], "nor in a cookie");
      const newPage = issued.headers.get("location")!;
      assert.match(newPage, /^\/ui\/operators\/olga\/tokens\/\d+\/new$/);
      const shown = await (await admin.get(newPage)).text();
      const token = shown.match(/id="operator-token"[^>]*value="(noc_op_[^"]+)"/)![1]!;
      const again = await (await admin.get("/ui/operators")).text();
      assert.equal(again.includes(token), false, "only on its own page");
      const other = await signIn(noc);
      const elsewhere = await (await other.get(newPage)).text();
      assert.equal(elsewhere.includes(token), false, "to the session that issued it alone");
      assert.match(elsewhere, /is no longer shown/);
      const me = await fetch(`${noc.url}/v1/admin/me`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.deepEqual(await me.json(), { name: "olga", role: "operator", via: "api" });

      // Revoking a token asks first (nothing is done by the first click).
      const tokenId = again.match(/action="\/ui\/operators\/olga\/tokens\/(\d+)\/revoke"/)![1]!;
      const askRevoke = await fetch(`${noc.url}/ui/operators/olga/tokens/${tokenId}/revoke`, {
        method: "POST",
        headers: { cookie: admin.session, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: admin.csrf }),
      });
      assert.equal(askRevoke.status, 200);
      assert.match(await askRevoke.text(), /Revoke token \d+ of olga\? Whatever uses it/);

      // Disabling asks first; then it is done.
      const ask = await fetch(`${noc.url}/ui/operators/olga/disable`, {
        method: "POST",
        headers: { cookie: admin.session, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: admin.csrf }),
      });
      assert.equal(ask.status, 200);
      assert.match(await ask.text(), /Disable olga\? Their console sessions end/);
      assert.equal(
        (await fetch(`${noc.url}/v1/admin/me`, { headers: { authorization: `Bearer ${token}` } }))
          .status,
        200,
        "not yet disabled",
      );
      assert.equal(
        await admin.post("/ui/operators/olga/disable", { confirmed: "yes" }),
        "olga disabled",
      );
      const off = await fetch(`${noc.url}/v1/admin/me`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await off.body?.cancel();
      assert.equal(off.status, 401);

      // The audit page: the changes, newest first, by the admin token's label, from the browser.
      const audit = await (await admin.get("/ui/audit?path=/v1/admin/operators")).text();
      const rows = [...audit.matchAll(/<code>(POST|PATCH) ([^<]+)<\/code>/g)].map((m) =>
        `${m[1]} ${m[2]}`
      );
      assert.deepEqual(rows, [
        "PATCH /v1/admin/operators/olga",
        "POST /v1/admin/operators/olga/tokens",
        "PATCH /v1/admin/operators/olga",
        "POST /v1/admin/operators",
        "POST /v1/admin/operators",
      ]);
      assert.match(audit, /test <span class="muted">\(admin, console\)<\/span>/);
      assert.match(audit, /409 operator_exists/);
      assert.match(audit, /127\.0\.0\.1/);
      assert.equal(audit.includes(token), false);
      assert.equal(audit.includes("long enough password"), false);
      // Pages: 50 a page, then older ones.
      for (let i = 0; i < 50; i++) await admin.post("/ui/sweep");
      const first = await (await admin.get("/ui/audit")).text();
      const older = first.match(/href="(\/ui\/audit\?before=\d+)" rel="next"/)![1]!;
      const second = await (await admin.get(older)).text();
      assert.match(second, /POST \/v1\/admin\/operators<\/code>/);
      assert.doesNotMatch(second, /rel="next"/);

      const csv = await admin.get("/ui/audit.csv?path=/v1/admin/operators");
      assert.equal(csv.status, 200);
      assert.match(csv.headers.get("content-type")!, /^text\/csv/);
      const records = parseCsv(await csv.text());
      assert.equal(records.length, 6, "a header and five records");
      assert.equal(
        records[5]![records[0]!.indexOf("summary")],
        '{"body":{"name":"olga","role":"viewer","password":"[redacted]"}}',
      );
    } finally {
      await noc.close();
    }
  },
);

dbTest("a viewer's console shows what they may read and refuses the rest", async ({ db }) => {
  const noc = await serveNoc(db);
  try {
    const admin = await signIn(noc);
    await admin.post("/ui/operators", { name: "vic", role: "viewer", password: "viewer password" });
    const page = await fetch(`${noc.url}/ui/login`);
    const cookie = page.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = (await page.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
    const signed = await fetch(`${noc.url}/ui/login`, {
      method: "POST",
      redirect: "manual",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: csrf, name: "VIC", password: "viewer password" }),
    });
    await signed.body?.cancel();
    const session = signed.headers.getSetCookie().find((h) => h.startsWith("noc_session="))!
      .split(";")[0]!;
    const fleet = await fetch(`${noc.url}/ui`, { headers: { cookie: session } });
    assert.equal(fleet.status, 200);
    assert.match(await fleet.text(), /Sign out \(vic\)/);
    const ops = await (await fetch(`${noc.url}/ui/operators`, { headers: { cookie: session } }))
      .text();
    assert.match(ops, /managed by admins; you are signed in as vic \(viewer\)/);
    const audit = await fetch(`${noc.url}/ui/audit`, { headers: { cookie: session } });
    assert.equal(audit.status, 403);
    assert.match(await audit.text(), /Your role \(viewer\) cannot read the audit log/);
  } finally {
    await noc.close();
  }
});
