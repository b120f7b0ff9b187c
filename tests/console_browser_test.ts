/**
 * The operator console in a real browser (Debian's chromium driven by
 * playwright-core) against a NOC served over real HTTP: sign in, the fleet,
 * an appliance, an appliance turning missing after a sweep and its alert
 * acknowledged, a release published and assigned with its rollout count, and
 * a form posted without its CSRF token refused. Screenshots go to
 * tests/artifacts/. Skipped, saying so, where chromium is not installed.
 */
import assert from "node:assert/strict";
import { serveNoc } from "./_agent.ts";
import { fetchCatalog, payload } from "./_components.ts";
import { signedCall } from "../protocol/client.ts";
import { browserTests } from "./_browser.ts";

const artifacts = new URL("./artifacts/", import.meta.url);

browserTests("console_browser", {
  "console: sign in, fleet, appliance, missing after a sweep, acknowledge, publish and assign, CSRF":
    async ({ db, browser }) => {
      await Deno.mkdir(artifacts, { recursive: true });
      const shot = (name: string) => new URL(`console-${name}.png`, artifacts).pathname;
      const noc = await serveNoc(db);
      try {
        const fleet = [];
        for (let i = 1; i <= 5; i++) {
          const a = await noc.enrollAppliance({ hostname: `gw-${i}` });
          await a.beat();
          fleet.push(a);
        }
        const page = await browser.newPage();
        await page.goto(`${noc.url}/ui`);
        assert.match(page.url(), /\/ui\/login/);
        await page.fill("input[name=token]", noc.adminToken);
        await page.click("button[type=submit]");
        await page.waitForURL(`${noc.url}/ui`);
        assert.equal(await page.textContent(".card[data-state=ok] b"), "5");
        await page.screenshot({ path: shot("fleet"), fullPage: true });
        await page.setViewportSize({ width: 390, height: 844 });
        await page.screenshot({ path: shot("fleet-phone"), fullPage: true });
        await page.setViewportSize({ width: 1280, height: 800 });

        await page.click("nav >> text=Appliances");
        await page.click("#appliances >> text=gw-3");
        assert.equal(await page.textContent("h1"), "gw-3");
        await page.screenshot({ path: shot("appliance"), fullPage: true });

        // Time passes; all but gw-1 report again; the sweep finds gw-1 missing.
        noc.clock.advance(909 + 300 + 60);
        for (const a of fleet.slice(1)) await a.beat();
        await page.goto(`${noc.url}/ui/alerts`);
        await page.click("text=Run the status daemon now");
        assert.match((await page.textContent(".flash"))!, /1 newly missing/);
        const row = page.locator("#alerts tr", { hasText: "gw-1" });
        assert.equal(await row.count(), 1);
        await row.locator("button", { hasText: "Acknowledge" }).click();
        assert.match((await page.textContent(".flash"))!, /Acknowledged/);
        assert.match(
          (await page.locator("#alerts tr", { hasText: "gw-1" }).textContent())!,
          /by console:/,
        );
        await page.screenshot({ path: shot("alerts"), fullPage: true });
        await page.goto(`${noc.url}/ui/appliances/${fleet[0]!.uid}`);
        assert.equal(await page.textContent("main .state"), "missing");
        await page.goto(`${noc.url}/ui`);
        assert.equal(await page.textContent(".card[data-state=missing] b"), "1");

        // Publish a package through the console, assign it, and watch the rollout count.
        const file = await Deno.makeTempFile({ suffix: ".tar.gz" });
        await Deno.writeFile(file, await payload({ install: "#!/bin/sh\nexit 0\n" }));
        await page.goto(`${noc.url}/ui/releases`);
        const publish = page.locator("form[action='/ui/releases/publish']");
        await publish.locator("input[name=app]").fill("demo");
        await publish.locator("input[name=name]").fill("demo");
        await publish.locator("input[name=version]").fill("1.0.0");
        await publish.locator("input[name=file]").setInputFiles(file);
        await publish.locator("button").click();
        assert.match((await page.textContent(".flash"))!, /Published package demo\/demo@1\.0\.0/);
        const assign = page.locator("form[action='/ui/releases/assign']");
        await assign.locator("select[name=component]").selectOption("package/demo/demo/1.0.0");
        await assign.locator("input[name=rolloutPercent]").fill("100");
        await assign.locator("button[type=submit]").click();
        assert.match((await page.textContent(".flash"))!, /Assigned/);
        assert.equal(await page.textContent("#assignments td[data-installed]"), "0");
        for (const a of fleet.slice(1, 3)) {
          // Outcomes count only from appliances the release was delivered to: each downloads it.
          const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
          const got = await noc.app.request(entry.urls[0]!.replace("http://", "https://"));
          assert.equal(got.status, 200);
          await got.body?.cancel();
          await signedCall(noc.send, {
            baseUrl: "http://noc.test",
            uid: a.uid,
            key: a.keys.signing,
            method: "POST",
            path: "/v1/installs",
            body: {
              results: [{
                kind: "package",
                app: "demo",
                name: "demo",
                version: "1.0.0",
                outcome: "installed",
              }],
            },
            now: noc.clock.now(),
          });
        }
        await page.reload();
        assert.equal(await page.textContent("#assignments td[data-installed]"), "2");
        await page.screenshot({ path: shot("releases"), fullPage: true });
        await Deno.remove(file);

        // A form posted without the session's CSRF token is refused, and changes nothing.
        const forged = await page.request.post(`${noc.url}/ui/appliances/${fleet[1]!.uid}/revoke`, {
          form: { reason: "forged" },
        });
        assert.equal(forged.status(), 403);
        const wrong = await page.request.post(`${noc.url}/ui/appliances/${fleet[1]!.uid}/revoke`, {
          form: { reason: "forged", _csrf: "not-the-token" },
        });
        assert.equal(wrong.status(), 403);
        const still = await noc.admin("GET", `/v1/admin/appliances/${fleet[1]!.uid}`);
        assert.equal(still.body.revokedAt, null);
        // Route parameters are checked before they reach the admin API, even with a good token.
        const csrf = await page.getAttribute("input[name=_csrf]", "value");
        const sneaky = await page.request.post(`${noc.url}/ui/appliances/..%2Fsweep%3F/revoke`, {
          form: { reason: "x", _csrf: csrf! },
        });
        assert.equal(sneaky.status(), 404);
        // Signed out, the console sends the browser back to sign in, and then where it was going.
        await page.click("text=Sign out");
        await page.goto(`${noc.url}/ui/appliances?state=missing`);
        assert.match(page.url(), /\/ui\/login\?next=%2Fui%2Fappliances%3Fstate%3Dmissing/);
        await page.fill("input[name=token]", noc.adminToken);
        await page.click("button[type=submit]");
        await page.waitForURL(`${noc.url}/ui/appliances?state=missing`);
        assert.equal(await page.locator("#appliances td a").textContent(), "gw-1");
        // Revoking the admin token ends the sessions opened with it.
        await db.sql`update admin_tokens set revoked_at = ${noc.clock.now()}`;
        await page.goto(`${noc.url}/ui/alerts`);
        assert.match(page.url(), /\/ui\/login/);
      } finally {
        await noc.close();
      }
    },
});
