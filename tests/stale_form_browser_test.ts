/**
 * Issue 22 item 2 in a real browser, the issue's own example: operator A loads the Releases page;
 * operator B pauses the rollout through the API; A changes the percentage and saves. The save is
 * refused (the form carried the revision A loaded, as If-Match): the page comes back with the
 * current state — paused — and says that nothing was saved, never "saved"; the assignment is still
 * paused at its old percentage. Then A, on the page as it now is, widens it: that passes, and the
 * pause B made stays (the form sends only the field A changed). Skipped, saying so, where chromium
 * is not installed.
 */
import assert from "node:assert/strict";
import { type ServedNoc, serveNoc } from "./_agent.ts";
import { payload, upload } from "./_components.ts";
import { browserTests, desktop, openPage, signInBrowser } from "./_browser.ts";

async function publish(noc: ServedNoc, app: string, version: string): Promise<void> {
  const up = await upload(
    noc,
    `/v1/admin/packages?app=${app}&name=${app}&version=${version}`,
    await payload({ install: "#!/bin/sh\nexit 0\n" }),
    "application/gzip",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
}

browserTests("stale_form_browser", {
  "a stale Releases form is refused and shows the pause another operator made": async (
    { db, browser },
  ) => {
    const noc = await serveNoc(db);
    try {
      for (let i = 0; i < 4; i++) {
        await (await noc.enrollAppliance({ hostname: `vs-${i}`, model: "vs-2000" })).beat();
      }
      await publish(noc, "vscreen", "2.0.0");
      const made = await noc.admin("POST", "/v1/admin/assignments", {
        kind: "package",
        app: "vscreen",
        name: "vscreen",
        version: "2.0.0",
        target: { type: "model", value: "vs-2000" },
        rolloutPercent: 10,
      });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const id = made.body.id;

      // A loads the Releases page.
      const a = await openPage(browser, desktop);
      await signInBrowser(a.page, noc.url, noc.adminToken);
      await a.page.goto(`${noc.url}/ui/releases`);
      const row = a.page.locator(`#assignments tr[data-assignment='${id}']`);
      assert.match((await row.locator("td[data-rollout]").textContent())!, /running at 10 %/);

      // B pauses the rollout through the API.
      const paused = await noc.admin("PATCH", `/v1/admin/assignments/${id}`, { paused: true });
      assert.equal(paused.status, 200, JSON.stringify(paused.body));

      // A changes the percentage and saves.
      await row.locator("input[name=rolloutPercent]").fill("50");
      await row.getByRole("button", { name: /^Save rollout/ }).click();
      await a.page.waitForURL(/seal=/);
      const error = (await a.page.locator(".flash.error").textContent())!;
      assert.match(
        error,
        /^Changed by someone else since you loaded this page \(now: paused at 10 %/,
      );
      assert.match(error, /Nothing was saved: here is the current state\.$/);
      assert.equal(await a.page.locator(".flash.ok").count(), 0, "no success message");
      assert.doesNotMatch(await a.page.locator("main").textContent() ?? "", /saved(?!:)/i);
      // The page shows the current state: paused, and the form holds the current figures.
      const now = a.page.locator(`#assignments tr[data-assignment='${id}']`);
      assert.match((await now.locator("td[data-rollout]").textContent())!, /paused/);
      assert.equal(await now.locator("input[name=rolloutPercent]").inputValue(), "10");
      assert.equal(
        (await now.getByRole("button", { name: /rollout of/ }).last().textContent())!.trim(),
        "Resume rollout",
      );
      // Nothing was written: still paused at its old percentage.
      const after = (await noc.admin("GET", `/v1/admin/assignments/${id}`)).body;
      assert.deepEqual([after.paused, after.rolloutPercent], [true, 10]);
      assert.equal(after.revision, paused.body.revision);

      // On the page as it is now, A widens it: that passes, and B's pause stays.
      await now.locator("input[name=rolloutPercent]").fill("50");
      await now.getByRole("button", { name: /^Save rollout/ }).click();
      await a.page.waitForURL(/seal=/);
      assert.match((await a.page.locator(".flash.ok").textContent())!, /widened: 10 % → 50 %/);
      const widened = (await noc.admin("GET", `/v1/admin/assignments/${id}`)).body;
      assert.deepEqual([widened.paused, widened.rolloutPercent], [true, 50]);
    } finally {
      await noc.close();
    }
  },
});
