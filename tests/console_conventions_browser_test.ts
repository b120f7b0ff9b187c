/**
 * The conventions operators expect of the console, in a real browser against a NOC served over
 * HTTP: every page (and /docs) passes axe and keeps every control within reach on a desktop and
 * on a phone — the one place every page is checked with axe at both sizes, on a fleet that puts
 * something on every page (an open alert, a failed install, a maintenance window, an operator);
 * the skip link, `aria-current` and distinct success and error styles; a live refresh
 * that keeps keyboard focus and scroll position, announces itself, and waits while a field is
 * being edited; a chart's values given as text; confirmations on irreversible actions.
 */
import assert from "node:assert/strict";
import { enrolSites, outage } from "./_incident_fleet.ts";
import { type ServedNoc, serveNoc } from "./_agent.ts";
import { payload, publishAndAssign, upload } from "./_components.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import {
  assertReachable,
  axeViolations,
  browserTests,
  desktop,
  openPage,
  phone,
  signInBrowser,
} from "./_browser.ts";
import type { Page } from "playwright-core";
import { exportRawPublic, generateEd25519 } from "../protocol/crypto/ed25519.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { sealFlash } from "../noc/http/console/page.ts";

/** Every control in `main` that is not folded away in a closed `<details>`. */
const controls =
  "main :is(button, a[href], input:not([type=hidden]), select, textarea):not(details:not([open]) *)";

/** Enrols a local component server for `site` (its enrolment API, in process). */
async function enrolLocal(noc: ServedNoc, site: string, name: string): Promise<string> {
  const pair = await generateEd25519();
  const token = await noc.enrollmentToken({ purpose: "local-server", site });
  const res = await noc.app.request("http://noc.test/v1/local/enroll", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      token,
      name,
      url: `https://${name}.${site}.example:8443`,
      signingKey: toBase64Url(await exportRawPublic(pair.publicKey)),
    }),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body.id;
}

/**
 * A small fleet with something on every page: beats, a release, fileinfo, a local server; with
 * `rich`, also an appliance gone missing with its open alert, a failed install with its message,
 * a maintenance window, a named operator (so that the alerts, appliance, release, maintenance
 * and operators pages show rows, not "None") and a phased rollout of demo 1.1.0 (a canary of 1
 * with a metric gate, evaluated once, so that its page shows phases, figures and a timeline).
 */
async function smallFleet(noc: ServedNoc, rich = false) {
  let rolloutId: number | null = null;
  const fleet = (await enrolSites(noc, ["lab"], 4))["lab"]!;
  const { assignmentId } = await publishAndAssign(noc, {
    app: "demo",
    name: "demo",
    version: "1.0.0",
  });
  if (rich) {
    await outage(noc, { lab: fleet }, [fleet[3]!]);
    const failed = await noc.send(
      await fleet[1]!.request("POST", "/v1/installs", {
        results: [{
          kind: "package",
          app: "demo",
          name: "demo",
          version: "1.0.0",
          outcome: "failed",
          message: "postinst exited 3",
        }],
      }),
    );
    assert.ok(failed.status < 300, await failed.text());
    const window = await noc.admin("POST", "/v1/admin/maintenance", {
      uid: fleet[2]!.uid,
      endsAt: new Date(noc.clock.now().getTime() + 3600_000).toISOString(),
      reason: "disk swap",
    });
    assert.equal(window.status, 201, JSON.stringify(window.body));
    const operator = await noc.admin("POST", "/v1/admin/operators", {
      name: "olga",
      role: "operator",
      password: "olga's long password",
    });
    assert.equal(operator.status, 201, JSON.stringify(operator.body));
    const published = await upload(
      noc,
      "/v1/admin/packages?app=demo&name=demo&version=1.1.0",
      await payload({ install: "#!/bin/sh\nexit 0\n" }),
      "application/gzip",
    );
    assert.ok(published.status < 300, JSON.stringify(published.body));
    const rollout = await noc.admin("POST", "/v1/admin/rollouts", {
      component: { kind: "package", app: "demo", name: "demo", version: "1.1.0" },
      target: { type: "all" },
      phases: [
        {
          count: 1,
          soakS: 90,
          gates: {
            metric: { path: "demo.mails", maxDropPercent: 30, minAppliances: 1, minBeats: 1 },
          },
        },
        { percent: 100, soakS: 0 },
      ],
      note: "canary first",
    });
    assert.equal(rollout.status, 201, JSON.stringify(rollout.body));
    rolloutId = rollout.body.id;
    await rolloutPass(noc.deps);
  }
  const put = await noc.admin("PUT", "/v1/admin/apps/demo/fileinfo/rules.conf", {
    destination: "etc/demo/rules.conf",
    mode: "0640",
    action: ["systemctl", "reload", "demo"],
  });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  await enrolLocal(noc, "lab", "cache-1");
  await noc.enrollmentToken({ label: "spare" });
  return { fleet, assignmentId, rolloutId };
}

/**
 * What is wrong with `page` as it is: axe's serious/critical findings (unless `axe` is false),
 * unreachable controls.
 */
async function problemsOf(page: Page, where: string, axe = true): Promise<string[]> {
  const found: string[] = [];
  for (const v of axe ? await axeViolations(page) : []) {
    found.push(`${where}: axe ${v.id} (${v.impact}) ${v.help} at ${v.targets.join(", ")}`);
  }
  try {
    await assertReachable(page.locator(controls), `${where} controls`);
  } catch (e) {
    found.push(e instanceof Error ? e.message : String(e));
  }
  return found;
}

browserTests("console conventions", {
  "every console page and /docs passes axe and keeps every control reachable, desktop and phone":
    async ({ db, browser }) => {
      const noc = await serveNoc(db);
      try {
        const { fleet, assignmentId, rolloutId } = await smallFleet(noc, true);
        const pages = [
          "/ui",
          "/ui/appliances",
          // One with a failed install, one missing with its open alert, a revoke confirmation.
          `/ui/appliances/${fleet[1]!.uid}`,
          `/ui/appliances/${fleet[3]!.uid}`,
          `/ui/appliances/${fleet[0]!.uid}/revoke`,
          "/ui/alerts",
          "/ui/releases",
          `/ui/releases/assignments/${assignmentId}/appliances`,
          "/ui/tokens",
          "/ui/apps/demo/fileinfo",
          "/ui/local-servers",
          "/ui/maintenance",
          "/ui/rollouts/new",
          `/ui/rollouts/${rolloutId}`,
          "/docs",
        ];
        const problems: string[] = [];
        // And every page the navigation offers (a page not built yet is said, not failed).
        const first = await openPage(browser, desktop);
        await signInBrowser(first.page, noc.url, noc.adminToken);
        for (
          const href of await first.page.locator("nav a[href]").evaluateAll((as) =>
            as.map((a) => a.getAttribute("href")!)
          )
        ) {
          if (pages.includes(href)) continue;
          const res = await first.page.goto(`${noc.url}${href}`);
          if (res?.status() === 200) pages.push(href);
          else console.log(`${href} (in the navigation) answers ${res?.status()}: not checked`);
        }
        await first.page.close();
        for (const viewport of [desktop, phone]) {
          const p = await openPage(browser, viewport);
          // The sign-in page, as a browser first sees it.
          const login = await p.page.goto(`${noc.url}/ui/login`);
          assert.equal(login?.status(), 200, "/ui/login");
          problems.push(...await problemsOf(p.page, `/ui/login at ${viewport.width} px`));
          await signInBrowser(p.page, noc.url, noc.adminToken);
          for (const path of pages) {
            const res = await p.page.goto(`${noc.url}${path}`);
            assert.equal(res?.status(), 200, path);
            if (path !== "/docs") {
              problems.push(...await problemsOf(p.page, `${path} at ${viewport.width} px`));
              continue;
            }
            // /docs: controls within reach as it opens (folded); axe once, on it all unfolded:
            // every operation's parameters, body and Send button, and all the folded page shows
            // (no style of the viewer depends on a <details> being open).
            await p.page.waitForSelector("#api details");
            problems.push(...await problemsOf(p.page, `/docs at ${viewport.width} px`, false));
            await p.page.evaluate(
              `document.querySelectorAll("#api details").forEach((d) => d.open = true)`,
            );
            for (const v of await axeViolations(p.page)) {
              problems.push(`/docs unfolded at ${viewport.width} px: axe ${v.id} ${v.targets}`);
            }
          }
          await p.page.close();
        }
        assert.deepEqual(problems, []);
      } finally {
        await noc.close();
      }
    },
  "a live refresh keeps focus and scroll, announces itself, and waits while a field is edited":
    async ({ db, browser }) => {
      const noc = await serveNoc(db);
      try {
        await enrolLocal(noc, "lab", "cache-1");
        // A short window so that the page scrolls; refreshes every second (the test hook).
        const p = await openPage(browser, { width: 390, height: 300 });
        await signInBrowser(p.page, noc.url, noc.adminToken);
        await p.page.addInitScript(`sessionStorage.setItem("noc.live", "1")`);
        await p.page.goto(`${noc.url}/ui/local-servers`);
        const revoke = p.page.locator("#local-servers button.danger").first();
        await revoke.focus();
        await p.page.evaluate(`scrollTo(0, document.documentElement.scrollHeight); 0`);
        const y = await p.page.evaluate("scrollY") as number;
        assert.ok(y > 0, "the page scrolls");
        // Mark the focused node: after the refresh, focus is on the same control, a new node.
        await p.page.evaluate(`document.activeElement.dataset.before = "1"`);
        await enrolLocal(noc, "zz", "cache-2");
        await p.page.evaluate(`new Promise((ok, no) => {
        document.addEventListener("noc:refreshed", ok, { once: true });
        setTimeout(() => no(new Error("no refresh within 10 s")), 10000);
      })`);
        assert.equal(await p.page.locator("#local-servers tr").count(), 3, "the new row came");
        const focused = await p.page.evaluate(`(() => {
        const a = document.activeElement;
        return { tag: a.tagName, text: a.textContent, action: a.closest("form")?.getAttribute("action"),
          before: a.dataset.before ?? null };
      })()`) as { tag: string; text: string; action: string; before: string | null };
        assert.equal(focused.tag, "BUTTON");
        assert.equal(focused.text, "Revoke…");
        assert.equal(
          focused.action,
          await p.page.locator("#local-servers form").first().getAttribute("action"),
        );
        assert.equal(focused.before, null, "the content was swapped");
        assert.equal(await p.page.evaluate("scrollY"), y);
        assert.match(
          (await p.page.textContent("#live-status"))!,
          /^Updated \d\d:\d\d:\d\d UTC$/,
        );

        // A page of untouched filters (selects, check boxes) refreshes; while a field holds an edit,
        // the refresh waits and the edit stays.
        await p.page.setViewportSize(desktop);
        await p.page.goto(`${noc.url}/ui/alerts`);
        assert.ok(await p.page.locator("main select").count() > 0, "the alerts page has choices");
        await p.page.evaluate(`new Promise((ok, no) => {
        document.addEventListener("noc:refreshed", ok, { once: true });
        document.addEventListener("noc:live-skipped", () => no(new Error("skipped, nothing edited")));
        setTimeout(() => no(new Error("no refresh within 10 s")), 10000);
      })`);
        const field = p.page.locator("main form input:is([type=text], [type=search], :not([type]))")
          .first();
        await field.fill("half-typed");
        await p.page.locator("main h1").click();
        await p.page.evaluate(`new Promise((ok, no) => {
        document.addEventListener("noc:live-skipped", ok, { once: true });
        document.addEventListener("noc:refreshed", () => no(new Error("refreshed over an edit")));
        setTimeout(() => no(new Error("no refresh attempt within 10 s")), 10000);
      })`);
        assert.equal(await field.inputValue(), "half-typed");
      } finally {
        await noc.close();
      }
    },
  "skip link, aria-current, distinct success and error, chart values as text, confirmations":
    async ({ db, browser }) => {
      const noc = await serveNoc(db);
      try {
        const [a] = (await smallFleet(noc)).fleet;
        const p = await openPage(browser, desktop);
        await signInBrowser(p.page, noc.url, noc.adminToken);

        // The skip link is the first stop, visible when focused, and leads to main.
        await p.page.goto(`${noc.url}/ui/appliances/${a!.uid}`);
        await p.page.keyboard.press("Tab");
        assert.equal(await p.page.evaluate("document.activeElement.className"), "skip");
        const box = await p.page.locator("a.skip").boundingBox();
        assert.ok(box && box.x >= 0 && box.y >= 0, "the focused skip link is on screen");
        await p.page.keyboard.press("Enter");
        assert.equal(await p.page.evaluate("document.activeElement.id"), "main");
        assert.equal(await p.page.textContent("nav a[aria-current=page]"), "Appliances");
        assert.equal(await p.page.locator("nav a[aria-current]").count(), 1);

        // A chart's values are text: its name sums them up, a folded table lists them.
        const chart = p.page.locator("svg.chart").first();
        assert.match(
          (await chart.getAttribute("aria-label"))!,
          /: \d+ points? from .* UTC; lowest .* highest .* last /,
        );
        assert.equal(await p.page.locator("details.chart-data td.num").first().isVisible(), false);
        await p.page.locator("details.chart-data summary").first().click();
        assert.ok(await p.page.locator("details.chart-data td.num").first().isVisible());
        await p.page.goto(`${noc.url}/ui`);
        assert.equal(await p.page.textContent("nav a[aria-current=page]"), "Fleet");

        // Success and refusal look different, and are announced differently (both sealed for this
        // browser's session, as the console's redirects carry them).
        const session = (await p.page.context().cookies()).find((k) => k.name === "noc_session")!;
        const both = sealFlash(session.value, noc.clock.now(), {
          flash: "Saved",
          error: "Refused",
        });
        await p.page.goto(`${noc.url}/ui/tokens?${both}`);
        const look = (sel: string) =>
          p.page.locator(sel).evaluate((el) => {
            // deno-lint-ignore no-explicit-any
            const s = (globalThis as any).getComputedStyle(el);
            return `${s.backgroundColor} ${s.color} ${el.getAttribute("role")}`;
          });
        const ok = await look(".flash.ok"), error = await look(".flash.error");
        assert.match(ok, / status$/);
        assert.match(error, / alert$/);
        assert.notEqual(ok.split(" status")[0], error.split(" alert")[0]);

        // Irreversible actions ask first: fileinfo delete and local-server revoke.
        await p.page.goto(`${noc.url}/ui/apps/demo/fileinfo`);
        p.resetClicks();
        await p.click("#fileinfo button.danger");
        assert.match(
          (await p.page.textContent("form.confirm"))!,
          /Delete the fileinfo of rules\.conf/,
        );
        assert.equal((await noc.admin("GET", "/v1/admin/apps/demo/fileinfo")).body.items.length, 1);
        await p.click("form.confirm button.danger");
        assert.equal(await p.page.textContent(".flash.ok"), "Deleted");
        assert.equal((await noc.admin("GET", "/v1/admin/apps/demo/fileinfo")).body.items.length, 0);
        assert.equal(p.clicks, 2);

        await p.page.goto(`${noc.url}/ui/local-servers`);
        await p.click("#local-servers button.danger");
        await p.page.fill("form.confirm input[name=reason]", "stolen");
        const listed = await noc.admin("GET", "/v1/admin/local-servers");
        assert.equal(listed.body.items[0].state === "revoked", false);
        await p.click("form.confirm button.danger");
        assert.equal(await p.page.textContent(".flash.ok"), "Local server revoked");
        assert.match((await p.page.textContent("#local-servers"))!, /revoked: stolen/);
      } finally {
        await noc.close();
      }
    },
});
