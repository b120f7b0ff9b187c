/**
 * The console without a browser: refusals that must be clean 4xx pages, never
 * 500s; its secure headers; its per-route body limits; the session every page
 * and action needs; and every page and action going through the admin API.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { consoleOperations, consoleRoutes } from "../noc/http/console/mod.tsx";
import { adminRoutes } from "../noc/http/admin/mod.ts";
import { payload } from "./_components.ts";
import { signIn } from "./_console.ts";

const base = "http://noc.test";

dbTest(
  "the console answers malformed forms and odd route parameters with 4xx pages",
  async ({ db }) => {
    const noc = await testNoc(db);
    const bad = await noc.app.request(`${base}/ui/login`, {
      method: "POST",
      headers: { "content-type": "multipart/form-data" },
      body: "not multipart at all",
    });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /The form could not be read/);

    // Signed in, a parameter that is not a UID, id or name is refused before anything else.
    const { session } = await signIn(noc);
    for (const path of ["/ui/appliances/not-a-uid", "/ui/apps/..%2F..%2Fsweep/fileinfo"]) {
      const res = await noc.app.request(`${base}${path}`, { headers: { cookie: session } });
      assert.equal(res.status, 404, `${path}: ${res.status} ${await res.clone().text()}`);
      assert.match(res.headers.get("content-type")!, /text\/html/);
    }
    const listed = await noc.app.request(`${base}/ui/appliances?state=sideways`, {
      headers: { cookie: session },
    });
    assert.equal(listed.status, 400);
    assert.match(await listed.text(), /Field &quot;state&quot;: Invalid option: expected one of/);
    // A made-up method does not mint a metrics series of its own.
    await noc.app.request(`${base}/healthz`, { method: "FOO1" });
    const metrics = await (await noc.app.request(`${base}/metrics`, {
      headers: { authorization: `Bearer ${noc.adminToken}` },
    })).text();
    assert.ok(!metrics.includes("FOO1"));
    assert.match(metrics, /method="other"/);
  },
);

dbTest("console pages carry the console's CSP, nosniff and no-store", async ({ db }) => {
  const noc = await testNoc(db);
  const csp =
    "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
  const { get } = await signIn(noc);
  for (const path of ["/ui/login", "/ui", "/ui/alerts", "/ui/appliances/not-a-uid"]) {
    const res = path === "/ui/login" ? await noc.app.request(`${base}${path}`) : await get(path);
    await res.body?.cancel();
    assert.equal(res.headers.get("content-security-policy"), csp, path);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
    assert.equal(res.headers.get("cache-control"), "no-store", path);
    assert.equal(res.headers.get("x-frame-options"), "SAMEORIGIN", path);
  }
  const style = await noc.app.request(`${base}/ui/static/app.css`);
  await style.body?.cancel();
  assert.equal(style.headers.get("cache-control"), "max-age=3600");

  // The console sub-app on its own asks for same-origin referrers (the NOC's app-wide
  // secure headers, applied last, may tighten that to no-referrer).
  const key = "k".repeat(43);
  const ui = consoleRoutes(noc.deps, adminRoutes(noc.deps, key), key);
  const alone = await ui.request(`${base}/login`);
  await alone.body?.cancel();
  assert.equal(alone.headers.get("referrer-policy"), "same-origin");
  assert.equal(alone.headers.get("content-security-policy"), csp);
  assert.equal(alone.headers.get("cache-control"), "no-store");
  const whole = await noc.app.request(`${base}/ui/login`);
  await whole.body?.cancel();
  assert.match(whole.headers.get("referrer-policy")!, /^(same-origin|no-referrer)$/);
});

dbTest(
  "the publish form takes an upload over the small body limit; any other form is refused 413",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { maxBodyBytes: 64 * 1024 } });
    const { session, csrf, get, post } = await signIn(noc);
    const big = new Uint8Array(200 * 1024).fill(7);
    const published = await post("/ui/releases/publish", {
      kind: "file",
      app: "demo",
      name: "big.bin",
      version: "1",
      file: new File([big], "big.bin"),
    });
    assert.equal(published, "Published file demo/big.bin@1");
    assert.match(await (await get("/ui/releases")).text(), /demo\/big\.bin/);

    const refused = await noc.app.request(`${base}/ui/tokens`, {
      method: "POST",
      headers: { cookie: session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: csrf, label: "x".repeat(100 * 1024) }),
    });
    assert.equal(refused.status, 413);
    assert.match(refused.headers.get("content-type")!, /text\/html/);
    const tokens = await noc.admin("GET", "/v1/admin/enrollment-tokens");
    assert.equal(tokens.body.items.length, 0);
  },
);

dbTest("every console page and action but sign-in needs a session", async ({ db }) => {
  const noc = await testNoc(db);
  const uid = "00000000-0000-4000-8000-000000000000";
  const sessionRoutes = consoleOperations.filter((o) => o.auth === "session");
  assert.ok(sessionRoutes.length >= 20);
  for (const op of sessionRoutes) {
    const path = op.path.replace(":uid", uid).replace(":id", "1").replace(":app", "demo")
      .replace(":name", "rules.conf");
    const res = await noc.app.request(`${base}${path}`, {
      method: op.method.toUpperCase(),
      ...(op.method === "post"
        ? {
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: "_csrf=guess",
        }
        : {}),
    });
    await res.body?.cancel();
    if (op.method === "get") {
      assert.equal(res.status, 303, path);
      assert.equal(res.headers.get("location"), `/ui/login?next=${encodeURIComponent(path)}`);
    } else {
      assert.equal(res.status, 401, `${op.method} ${path}`);
    }
  }
  // A path the console does not have: signed out, sign in first; signed in, a 404.
  const unknown = await noc.app.request(`${base}/ui/nowhere`);
  assert.equal(unknown.status, 303);
  const { get } = await signIn(noc);
  const missing = await get("/ui/nowhere");
  await missing.body?.cancel();
  assert.equal(missing.status, 404);
});

dbTest(
  "every console page renders and every action goes through the admin API",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "gw-console" });
    await a.beat();
    const ui = await signIn(noc);
    const text = async (path: string) => {
      const res = await ui.get(path);
      assert.equal(res.status, 200, `${path}: ${res.status}`);
      return await res.text();
    };

    assert.match(await text("/ui"), /data-state="ok"[^>]*>.*?<b>1<\/b>/s);
    assert.match(await text("/ui/appliances?q=gw-console"), /gw-console/);
    assert.match(await text(`/ui/appliances/${a.uid}`), /<h1>gw-console<\/h1>/);
    assert.equal(await ui.post(`/ui/appliances/${a.uid}/wake`), "Woken: it cycles now");

    // Releases: publish a payload, assign it, change the rollout, hold and release.
    const assign = { kind: "package", app: "demo", name: "demo", version: "1.0.0" };
    assert.equal(
      await ui.post("/ui/releases/publish", {
        ...assign,
        file: new File([await payload({ install: "#!/bin/sh\nexit 0\n" })], "p.tar.gz"),
      }),
      "Published package demo/demo@1.0.0",
    );
    const component = "package/demo/demo/1.0.0";
    assert.match(
      await ui.post("/ui/releases/assign", {
        component,
        target: "all",
        rolloutPercent: "50",
        failureThresholdPercent: "20",
        minSample: "10",
      }),
      /^Assigned package demo\/demo@1\.0\.0 to 50 % of 1 appliance ≈ 1 appliances/,
    );
    const [assignment] = (await noc.admin("GET", "/v1/admin/assignments")).body.items;
    assert.equal(assignment.failureThresholdPercent, 20);
    assert.equal(assignment.minSample, 10);
    assert.match(
      await ui.post("/ui/releases/assign", {
        component,
        target: "all",
        failureThresholdPercent: "0",
      }),
      /failureThresholdPercent/,
    );
    assert.match(
      await ui.post(`/ui/releases/assignments/${assignment.id}`, {
        rolloutPercent: "75",
        failureThresholdPercent: "20",
        minSample: "10",
      }),
      /widened: 50 % → 75 %/,
    );
    assert.match(
      await ui.post(`/ui/releases/assignments/${assignment.id}/pause`),
      /paused/,
    );
    const patched = await noc.admin("GET", `/v1/admin/assignments/${assignment.id}`);
    assert.equal(patched.body.rolloutPercent, 75);
    assert.equal(patched.body.paused, true);
    assert.equal(
      await ui.post("/ui/releases/holds", { uid: a.uid, reason: "change freeze" }),
      "Held",
    );
    const releases = await text("/ui/releases");
    assert.match(releases, /change freeze/);
    assert.match(releases, /75 %.*paused by console:.*gate: pause at &gt; 20 % failed of ≥ 10/s);
    const [hold] = (await noc.admin("GET", "/v1/admin/holds")).body.items;
    assert.equal(await ui.post(`/ui/releases/holds/${hold.id}/delete`), "Hold released");
    assert.equal((await noc.admin("GET", "/v1/admin/holds")).body.items.length, 0);
    // A refusal from the API comes back as the flash, naming the field.
    assert.match(
      await ui.post("/ui/releases/holds", { uid: "not-a-uid", reason: "x" }),
      /uid/,
    );

    // fileinfo: save, list, delete.
    assert.equal(
      await ui.post("/ui/apps/demo/fileinfo", {
        name: "rules.conf",
        destination: "etc/demo/rules.conf",
        mode: "0640",
        action: '["systemctl","reload","demo"]',
      }),
      "Saved",
    );
    assert.match(await text("/ui/apps/demo/fileinfo"), /etc\/demo\/rules\.conf/);
    // A refusal redirects with an error (not a flash) and the form kept to refill.
    const notJson = await noc.app.request(`${base}/ui/apps/demo/fileinfo`, {
      method: "POST",
      headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: ui.csrf, name: "x", destination: "y", action: "{" }),
    });
    assert.equal(notJson.status, 303);
    const notJsonAt = new URL(notJson.headers.get("location")!, base);
    assert.match(notJsonAt.searchParams.get("error")!, /is not JSON/);
    assert.match(
      await text(notJsonAt.pathname + notJsonAt.search),
      /name="destination"[^>]*value="y"/,
    );
    // Deleting asks first: without confirmed=yes nothing is deleted.
    const asked = await noc.app.request(`${base}/ui/apps/demo/fileinfo/rules.conf/delete`, {
      method: "POST",
      headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: ui.csrf }),
    });
    assert.equal(asked.status, 200);
    assert.match(await asked.text(), /name="confirmed" value="yes"/);
    assert.equal((await noc.admin("GET", "/v1/admin/apps/demo/fileinfo")).body.items.length, 1);
    assert.equal(
      await ui.post("/ui/apps/demo/fileinfo/rules.conf/delete", { confirmed: "yes" }),
      "Deleted",
    );
    assert.equal((await noc.admin("GET", "/v1/admin/apps/demo/fileinfo")).body.items.length, 0);

    // Enrolment tokens: created (shown once), listed, revoked.
    const created = await noc.app.request(`${base}/ui/tokens`, {
      method: "POST",
      headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        _csrf: ui.csrf,
        purpose: "local-server",
        site: "lab",
        label: "lab server",
        tags: "a, b",
        hours: "2",
      }),
    });
    // Post/Redirect/Get: the new token is shown on the page it redirects to, never in a URL.
    assert.equal(created.status, 303);
    const shownAt = created.headers.get("location")!;
    assert.match(shownAt, /^\/ui\/tokens\/\d+\/new$/);
    assert.match(await text(shownAt), /id="new-token" readonly="" value="noc_enr_/);
    const tokens = (await noc.admin("GET", "/v1/admin/enrollment-tokens")).body.items;
    const token = tokens.find((t: { label: string }) => t.label === "lab server");
    assert.equal(token.site, "lab");
    assert.match(await text("/ui/tokens"), /lab server/);
    assert.equal(
      await ui.post(`/ui/tokens/${token.id}/revoke`, { confirmed: "yes" }),
      "Token revoked",
    );

    // Re-imaged: a console token that supersedes; the old record is retired, listed on request,
    // and the two records link each other; a revoked record offers no wake-up.
    const old = await noc.enrollAppliance({ hostname: "gw-re" });
    const superseding = await noc.app.request(`${base}/ui/tokens`, {
      method: "POST",
      headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: ui.csrf, purpose: "appliance", reenrolment: "supersede" }),
    });
    assert.equal(superseding.status, 303);
    const page = await text(superseding.headers.get("location")!);
    assert.match(await text("/ui/tokens"), /<td>supersede<\/td>/);
    const fresh = await noc.enrollAppliance({
      hostname: "gw-re",
      token: page.match(/id="new-token" readonly="" value="(noc_enr_[^"]+)"/)![1]!,
    });
    assert.ok(!(await text("/ui/appliances?q=gw-re")).includes(old.uid));
    assert.match(
      await text("/ui/appliances?q=gw-re&retired=only"),
      new RegExp(`href="/ui/appliances/${old.uid}".*href="/ui/appliances/${fresh.uid}"`, "s"),
    );
    assert.match(await text("/ui/appliances?retired=include"), /option value="include" selected/);
    const sideways = await ui.get("/ui/appliances?retired=sideways");
    assert.equal(sideways.status, 400);
    assert.match(await sideways.text(), /Field &quot;retired&quot;/);
    const oldPage = await text(`/ui/appliances/${old.uid}`);
    assert.match(oldPage, new RegExp(`id="superseded-by">.*href="/ui/appliances/${fresh.uid}"`));
    assert.ok(!oldPage.includes("Wake now"));
    const freshPage = await text(`/ui/appliances/${fresh.uid}`);
    assert.match(freshPage, new RegExp(`id="supersedes">.*href="/ui/appliances/${old.uid}"`, "s"));
    assert.match(freshPage, /Wake now/);

    assert.match(await text("/ui/local-servers"), /None yet/);
    assert.match(await ui.post("/ui/sweep"), /^Swept: 0 newly missing, 0 recovered$/);
    assert.match(await text("/ui/alerts?status=resolved"), /No resolved alerts/);
    assert.equal(
      await ui.post(`/ui/appliances/${a.uid}/revoke`, { reason: "stolen", confirmed: "yes" }),
      "Revoked",
    );
    const revoked = await text(`/ui/appliances/${a.uid}`);
    assert.match(revoked, /revoked: stolen/);
    assert.ok(!revoked.includes("Wake now"));
  },
);

dbTest(
  "a console upload without a session is refused before its body is read",
  async ({ db }) => {
    const noc = await testNoc(db);
    for (const path of ["/ui/releases/publish", "/ui/tokens"]) {
      let pulled = 0;
      const chunk = new Uint8Array(64 * 1024);
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled += chunk.length;
          if (pulled > 64 * 1024 * 1024) controller.close();
          else controller.enqueue(chunk);
        },
      }, { highWaterMark: 0 });
      const res = await noc.app.request(`http://noc.test${path}`, {
        method: "POST",
        headers: { "content-type": "multipart/form-data; boundary=x" },
        body,
      });
      await res.body?.cancel();
      assert.equal(res.status, 401, path);
      assert.ok(pulled <= 64 * 1024, `${path}: ${pulled} bytes were read before the refusal`);
    }
  },
);
