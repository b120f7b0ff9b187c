/**
 * Creating an enrolment token in the console, in a real browser against a NOC served over HTTP:
 * the click budget, Post/Redirect/Get (a reload mints nothing, the secret is never in a URL), the
 * copy button, the command line a real agent enrols with, the secret shown to its own session
 * for a few minutes only, and the revoke confirmation — on a desktop and on a phone. axe runs on
 * the new token page and the revoke confirmation, which only this flow reaches; the tokens page
 * itself is checked at both sizes in tests/console_conventions_browser_test.ts.
 */
import assert from "node:assert/strict";
import { agentBox, serveNoc } from "./_agent.ts";
import {
  assertAccessible,
  assertReachable,
  browserTests,
  desktop,
  openPage,
  phone,
  signInBrowser,
} from "./_browser.ts";
import type { Db } from "../noc/db/db.ts";

async function tokenCount(db: Db): Promise<number> {
  const [row] = await db.sql<{ n: number }>`select count(*)::int as n from enrollment_tokens`;
  return Number(row!.n);
}

browserTests("tokens_console_browser", {
  "an enrolment token takes 2 clicks from /ui, a reload mints none, and its command enrols an agent":
    async ({ db, browser }) => {
      const noc = await serveNoc(db);
      try {
        const box = await agentBox();
        try {
          const p = await openPage(browser, desktop);
          await p.page.context().grantPermissions(["clipboard-read", "clipboard-write"], {
            origin: noc.url,
          });
          await signInBrowser(p.page, noc.url, noc.adminToken);
          const before = await tokenCount(db);

          await p.page.goto(`${noc.url}/ui`);
          p.resetClicks();
          await p.click("nav >> text=Enrolment");
          await p.page.fill("#create-token input[name=label]", "rack 7");
          await p.page.fill("#create-token input[name=site]", "lab");
          await p.click("#create-token button[type=submit]");
          await p.page.waitForURL(/\/ui\/tokens\/\d+\/new$/);
          assert.ok(p.clicks <= 3, `${p.clicks} clicks`);
          assert.equal(await tokenCount(db), before + 1);
          const token = await p.page.inputValue("#new-token");
          assert.match(token, /^noc_enr_/);
          assert.ok(!p.page.url().includes(token), "the secret is not in the URL");
          assert.equal(
            await p.page.getAttribute("nav a[aria-current=page]", "href"),
            "/ui/tokens",
          );
          await assertAccessible(p.page, "the new token page (desktop)");

          // A reload (a GET) shows the same token again and mints none.
          await p.page.reload();
          assert.equal(await p.page.inputValue("#new-token"), token);
          assert.equal(await tokenCount(db), before + 1);

          // The copy button puts the token on the clipboard and says so.
          await p.click("button[data-copy='#new-token']");
          await p.page.waitForFunction(
            `document.getElementById("live-status")?.textContent === "Copied to the clipboard"`,
            undefined,
            { timeout: 5000 },
          );
          assert.equal(await p.page.evaluate("navigator.clipboard.readText()"), token);

          // The command is the one a real agent enrols with.
          const command = await p.page.inputValue("#enroll-command");
          assert.equal(command, `noc-agent enroll --noc ${noc.url} --token ${token}`);
          const argv = command.split(" ");
          const r = await box.run(argv.slice(1));
          assert.equal(r.code, 0, r.stderr + r.stdout);
          const enrolled = await db.sql<{ site: string | null }>`
        select site from appliances where enrollment_token_id = (
          select id from enrollment_tokens where label = 'rack 7')`;
          assert.deepEqual(enrolled.map((a) => a.site), ["lab"]);

          // Another session never sees it; this one no longer after ten minutes.
          const other = await openPage(browser, desktop);
          await signInBrowser(other.page, noc.url, noc.adminToken);
          await other.page.goto(p.page.url());
          assert.equal(await other.page.locator("#new-token").count(), 0);
          assert.match((await other.page.textContent("#token-gone"))!, /no longer shown/);
          noc.clock.advance(601);
          await p.page.reload();
          assert.equal(await p.page.locator("#new-token").count(), 0);
          assert.equal(await tokenCount(db), before + 1);
        } finally {
          await box.remove();
        }
      } finally {
        await noc.close();
      }
    },
  "on a phone a new token, its copy buttons and the revoke confirmation are all within reach":
    async ({ db, browser }) => {
      const noc = await serveNoc(db);
      try {
        const p = await openPage(browser, phone);
        await signInBrowser(p.page, noc.url, noc.adminToken);
        await p.page.goto(`${noc.url}/ui/tokens`);
        p.resetClicks();
        await p.page.selectOption("#create-token select[name=purpose]", "local-server");
        await p.page.fill("#create-token input[name=site]", "sin-pop");
        await p.click("#create-token button[type=submit]");
        await p.page.waitForURL(/\/ui\/tokens\/\d+\/new$/);
        const token = await p.page.inputValue("#new-token");
        assert.equal(
          await p.page.inputValue("#enroll-command"),
          `deno task local -- --upstream ${noc.url} --site sin-pop --token ${token}`,
        );
        for (const what of ["#new-token", "#enroll-command", "button[data-copy]", "main a[href]"]) {
          await assertReachable(p.page.locator(what), what);
        }
        await assertAccessible(p.page, "the new token page (phone)");
        // "Done" forgets it at once.
        await p.click("text=Done: stop showing it");
        assert.match((await p.page.textContent(".flash"))!, /no longer shown/);
        await p.page.goBack();
        await p.page.reload();
        assert.equal(await p.page.locator("#new-token").count(), 0);

        // Revoking asks first; Cancel changes nothing, the second click revokes.
        await p.page.goto(`${noc.url}/ui/tokens`);
        await assertReachable(p.page.locator("#tokens button.danger"), "Revoke");
        await p.click("#tokens button.danger");
        await assertReachable(p.page.locator("form.confirm button.danger"), "confirm");
        await assertAccessible(p.page, "the revoke confirmation (phone)");
        await p.click("form.confirm >> text=Cancel");
        assert.match((await p.page.textContent("#tokens"))!, /unused/);
        await p.click("#tokens button.danger");
        await p.click("form.confirm button.danger");
        assert.equal(await p.page.textContent(".flash.ok"), "Token revoked");
        assert.match((await p.page.textContent("#tokens"))!, /revoked/);
        const [row] = await db.sql<{ revoked: boolean }>`
        select revoked_at is not null as revoked from enrollment_tokens`;
        assert.equal(row!.revoked, true);
      } finally {
        await noc.close();
      }
    },
});
