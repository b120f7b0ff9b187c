/** The console without a browser: refusals that must be clean 4xx pages, never 500s. */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";

dbTest(
  "the console answers malformed forms and odd route parameters with 4xx pages",
  async ({ db }) => {
    const noc = await testNoc(db);
    const base = "http://noc.test";
    const bad = await noc.app.request(`${base}/ui/login`, {
      method: "POST",
      headers: { "content-type": "multipart/form-data" },
      body: "not multipart at all",
    });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /The form could not be read/);

    // Signed in, a parameter that is not a UID, id or name is refused before anything else.
    let r = await noc.app.request(`${base}/ui/login`);
    const cookie = r.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = (await r.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
    r = await noc.app.request(`${base}/ui/login`, {
      method: "POST",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: csrf, token: noc.adminToken, next: "/ui" }),
    });
    assert.equal(r.status, 303);
    const session = r.headers.getSetCookie().find((h) => h.startsWith("noc_session="))!
      .split(";")[0]!;
    for (const path of ["/ui/appliances/not-a-uid", "/ui/apps/..%2F..%2Fsweep/fileinfo"]) {
      const res = await noc.app.request(`${base}${path}`, { headers: { cookie: session } });
      assert.equal(res.status, 404, `${path}: ${res.status} ${await res.clone().text()}`);
      assert.match(res.headers.get("content-type")!, /text\/html/);
    }
    const listed = await noc.app.request(`${base}/ui/appliances?state=sideways`, {
      headers: { cookie: session },
    });
    assert.equal(listed.status, 400);
    // A made-up method does not mint a metrics series of its own.
    await noc.app.request(`${base}/healthz`, { method: "FOO1" });
    const metrics = await (await noc.app.request(`${base}/metrics`, {
      headers: { authorization: `Bearer ${noc.adminToken}` },
    })).text();
    assert.ok(!metrics.includes("FOO1"));
    assert.match(metrics, /method="other"/);
  },
);
