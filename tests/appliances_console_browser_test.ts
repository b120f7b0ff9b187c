/**
 * Issue 19, item 3, in a real browser (Debian's chromium) against a NOC served over HTTP, on
 * a desktop and on a phone (390×844): revoke an appliance from the list with a confirmation in at
 * most 4 counted clicks (no Wake afterwards); a bulk move of a filtered set to another site; the
 * report interval edited from the appliance page (and a refused value kept in its field); a
 * failed install shown as failed with the agent's message; every control of the list and the
 * appliance page reachable on a phone. axe checks these pages (list, appliance page, revoke
 * confirmation) at both sizes in tests/console_conventions_browser_test.ts, not again here.
 */
import assert from "node:assert/strict";
import { type ServedNoc, serveNoc } from "./_agent.ts";
import { publishAndAssign } from "./_components.ts";
import {
  assertReachable,
  type BrowserCase,
  browserTests,
  desktop,
  openPage,
  phone,
  signInBrowser,
} from "./_browser.ts";

/** Appliances over the admin API: `n` at each site, with a beat each. */
async function fleet(noc: ServedNoc, sites: string[], n: number) {
  const out: Array<{ uid: string; hostname: string; site: string }> = [];
  for (const site of sites) {
    const token = await noc.enrollmentToken({ site, channel: "stable", tags: ["dmz"] });
    for (let i = 0; i < n; i++) {
      const hostname = `${site}-gw-${i}`;
      const a = await noc.enrollAppliance({
        hostname,
        token: i === 0 ? token : await noc.enrollmentToken({ site, tags: ["dmz"] }),
      });
      await a.beat();
      out.push({ uid: a.uid, hostname, site });
    }
  }
  return out;
}

/** Revoke from the list at `viewport`: a confirmation, at most 4 clicks, then no Wake. */
function revokeFromTheList(viewport: { width: number; height: number }) {
  return async ({ db, browser }: BrowserCase) => {
    const noc = await serveNoc(db);
    try {
      const [target] = await fleet(noc, ["ams"], 2);
      const p = await openPage(browser, viewport);
      await signInBrowser(p.page, noc.url, noc.adminToken);
      await p.page.goto(`${noc.url}/ui/appliances`);
      p.resetClicks();
      await p.clickOn(p.page.locator("#appliances a", { hasText: target!.hostname }));
      await p.click("#revoke");
      // The confirmation: what it does, a reason, and nothing done yet.
      assert.match((await p.page.textContent("form.confirm p"))!, /cannot be undone/);
      assert.equal(
        (await noc.admin("GET", `/v1/admin/appliances/${target!.uid}`)).body.revokedAt,
        null,
      );
      await p.page.fill("form.confirm input[name=reason]", "stolen from the rack");
      await p.click("form.confirm button.danger");
      assert.ok(p.clicks <= 4, `revoke took ${p.clicks} clicks`);
      assert.match((await p.page.textContent(".flash[role=status]"))!, /Revoked/);
      assert.match((await p.page.textContent("#revoked"))!, /stolen from the rack/);
      assert.equal(await p.page.locator("button", { hasText: "Wake now" }).count(), 0);
      assert.equal(await p.page.locator("#revoke").count(), 0);
      const api = await noc.admin("GET", `/v1/admin/appliances/${target!.uid}`);
      assert.equal(api.body.state, "revoked");
      // Bulk wake by the site's filter skips it, and says so.
      await p.page.goto(`${noc.url}/ui/appliances?site=ams`);
      await p.page.selectOption("#bulk select[name=action]", "wake");
      await p.click("#bulk button[value=filter]");
      assert.match(
        (await p.page.textContent(".flash[role=status]"))!,
        /Wake now: 1 of 2 appliances; 1 skipped \(revoked/,
      );
    } finally {
      await noc.close();
    }
  };
}

browserTests("appliances_console_browser", {
  "appliances (desktop): revoke with a confirmation in at most 4 clicks from the list, then no Wake":
    revokeFromTheList(desktop),
  "appliances (phone): revoke with a confirmation in at most 4 clicks from the list, then no Wake":
    revokeFromTheList(phone),
  "appliances: a bulk move takes a filtered set to another site, and keeps the filter": async (
    { db, browser },
  ) => {
    const noc = await serveNoc(db);
    try {
      const all = await fleet(noc, ["ams", "fra"], 3);
      const p = await openPage(browser, desktop);
      await signInBrowser(p.page, noc.url, noc.adminToken);
      await p.page.goto(`${noc.url}/ui/appliances`);
      // The filters are choices from the known sites.
      assert.deepEqual(
        await p.page.locator("form[role=search] select[name=site] option").allTextContents(),
        ["any", "ams", "fra"],
      );
      await p.page.selectOption("form[role=search] select[name=site]", "ams");
      await p.click("form[role=search] button[type=submit]");
      assert.match((await p.page.textContent("#total"))!, /^3 appliances match$/);
      await p.page.selectOption("#bulk select[name=action]", "move");
      await p.page.fill("#bulk input[name=site]", "lon");
      await p.page.fill("#bulk input[name=addTags]", "moved");
      await p.click("#bulk button[value=filter]");
      assert.match(
        (await p.page.textContent(".flash[role=status]"))!,
        /Move \(site, channel, tags\): 3 of 3 appliances/,
      );
      assert.match(p.page.url(), /site=ams/, "back on the same filter");
      for (const a of all) {
        const d = (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body;
        assert.equal(d.site, a.site === "ams" ? "lon" : "fra", a.hostname);
        if (a.site === "ams") assert.deepEqual(d.tags, ["dmz", "moved"]);
      }
      // A selection: two checked appliances of fra put in maintenance.
      await p.page.goto(`${noc.url}/ui/appliances?site=fra`);
      const boxes = p.page.locator("#appliances input[type=checkbox]");
      await boxes.nth(0).check();
      await boxes.nth(1).check();
      await p.page.selectOption("#bulk select[name=action]", "maintenance");
      await p.page.fill("#bulk input[name=reason]", "fibre works");
      await p.click("#bulk button[value=selected]");
      assert.match(
        (await p.page.textContent(".flash[role=status]"))!,
        /Maintenance window: 2 of 2/,
      );
      assert.equal(
        await p.page.locator("#appliances td[data-maintenance]", { hasText: "fibre works" })
          .count(),
        2,
      );
      // A refusal keeps the action's fields: a hold without a reason.
      await boxes.nth(2).check();
      await p.page.selectOption("#bulk select[name=action]", "hold");
      await p.page.fill("#bulk input[name=reason]", "");
      await p.page.fill("#bulk input[name=site]", "kept-value");
      await p.click("#bulk button[value=selected]");
      assert.ok(await p.page.locator(".flash.error[role=alert]").isVisible());
      assert.equal(await p.page.inputValue("#bulk input[name=site]"), "kept-value");
      assert.equal(await p.page.inputValue("#bulk select[name=action]"), "hold");
    } finally {
      await noc.close();
    }
  },
  "appliance page: edit the interval, keep a refused value, and show a failed install as failed":
    async ({ db, browser }) => {
      const noc = await serveNoc(db);
      try {
        const [a] = await fleet(noc, ["ams"], 1);
        const p = await openPage(browser, desktop);
        await signInBrowser(p.page, noc.url, noc.adminToken);
        await p.page.goto(`${noc.url}/ui/appliances/${a!.uid}`);
        p.resetClicks();
        await p.page.fill("#edit input[name=intervalS]", "600");
        await p.click("#edit button");
        assert.match((await p.page.textContent(".flash[role=status]"))!, /Saved/);
        assert.equal(
          (await noc.admin("GET", `/v1/admin/appliances/${a!.uid}`)).body.intervalS,
          600,
        );
        assert.equal(p.clicks, 1);
        // A value the API refuses (a channel name with a space): the error style, the form kept.
        await p.page.fill("#edit input[name=intervalS]", "700");
        await p.page.fill("#edit input[name=channel]", "no good");
        await p.click("#edit button");
        assert.match((await p.page.textContent(".flash.error[role=alert]"))!, /channel/);
        assert.equal(await p.page.inputValue("#edit input[name=intervalS]"), "700");
        assert.equal(await p.page.inputValue("#edit input[name=channel]"), "no good");
        const still = (await noc.admin("GET", `/v1/admin/appliances/${a!.uid}`)).body;
        assert.equal(still.channel, "stable");
        assert.equal(still.intervalS, 600, "nothing of a refused edit is written");
        // Hold from the page, then release it.
        await p.page.fill("#hold input[name=reason]", "change freeze");
        await p.click("#hold button");
        assert.match((await p.page.textContent("#holds"))!, /change freeze/);
        await p.click("#holds button");
        assert.match((await p.page.textContent(".flash[role=status]"))!, /Hold released/);
        // A failed install of the catalog's version: red, with the agent's message, not "pending".
        const ref = { app: "vscreen", name: "vscreen", version: "2.0.0" };
        await publishAndAssign(noc, ref);
        const app = await noc.enrollAppliance({ hostname: "ams-gw-fail" });
        await app.beat();
        const res = await noc.send(
          await app.request("POST", "/v1/installs", {
            results: [{ kind: "package", ...ref, outcome: "failed", message: "postinst exited 3" }],
          }),
        );
        assert.ok(res.status < 300, await res.text());
        await p.page.goto(`${noc.url}/ui/appliances/${app.uid}`);
        const banner = p.page.locator("#install-state");
        assert.equal(await banner.getAttribute("data-install-state"), "failed");
        assert.match((await banner.textContent())!, /postinst exited 3/);
        assert.equal(
          await p.page.locator("#components tr[data-install=failed]", { hasText: "2.0.0" }).count(),
          1,
        );
        assert.ok(!(await p.page.locator("#components").textContent())!.includes("pending"));
        // The last report as facts; the raw JSON folded away.
        assert.match((await p.page.textContent("#report-facts"))!, /2\.0 GiB free of 4\.0 GiB/);
        assert.equal(await p.page.locator("details pre").isVisible(), false);
      } finally {
        await noc.close();
      }
    },
  "appliances on a phone: every control of the list, the page and the revoke confirmation is reachable":
    async (
      { db, browser },
    ) => {
      const noc = await serveNoc(db);
      try {
        const [a] = await fleet(noc, ["ams"], 3);
        for (const viewport of [phone, desktop]) {
          const p = await openPage(browser, viewport);
          await signInBrowser(p.page, noc.url, noc.adminToken);
          await p.page.goto(`${noc.url}/ui/appliances`);
          await assertReachable(p.page.locator("#appliances input[type=checkbox]"), "checkboxes");
          await assertReachable(p.page.locator("#bulk button"), "bulk buttons");
          await assertReachable(
            p.page.locator("#bulk select, #bulk input:not([type=hidden])"),
            "bulk fields",
          );
          await assertReachable(p.page.locator("form[role=search] button"), "filter button");
          await assertReachable(p.page.locator("#appliances a"), "appliance links");
          await p.page.goto(`${noc.url}/ui/appliances/${a!.uid}`);
          await assertReachable(p.page.locator("button", { hasText: "Wake now" }), "Wake");
          await assertReachable(p.page.locator("#revoke"), "Revoke");
          await assertReachable(p.page.locator("#edit button"), "Save");
          await assertReachable(p.page.locator("#hold button"), "Hold");
          await p.page.click("#revoke");
          await assertReachable(p.page.locator("form.confirm button.danger"), "confirm Revoke");
          await p.page.close();
        }
      } finally {
        await noc.close();
      }
    },
});
