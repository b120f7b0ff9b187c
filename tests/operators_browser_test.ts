/**
 * Named operators in a real browser (Debian's chromium, playwright-core) against a NOC served over
 * real HTTP: an operator signs in with their name and password, creates an enrolment token, and
 * the audit page shows it with who, what and from where; the CSV export parses (RFC 4180) with a
 * typed formula neutralised; every control of the audit page and of an admin's operators page is
 * reachable at 390 px. axe checks the sign-in, operators and audit pages at both sizes in
 * tests/console_conventions_browser_test.ts, not again here. Skipped, saying so, where
 * chromium is not installed.
 */
import assert from "node:assert/strict";
import { serveNoc } from "./_agent.ts";
import { assertReachable, browserTests, openPage, phone, signInBrowser } from "./_browser.ts";
import { parseCsv } from "./_audit_csv.ts";

const password = "olga's long password";

browserTests("operators_browser", {
  "an operator signs in with a password, acts, and the audit page and its CSV show who, what and from where":
    async ({ db, browser }) => {
      const noc = await serveNoc(db);
      try {
        const made = await fetch(`${noc.url}/v1/admin/operators`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${noc.adminToken}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({ name: "olga", role: "operator", password }),
        });
        assert.equal(made.status, 201);

        const p = await openPage(browser);
        const { page } = p;
        // A failed sign-in, with a name a spreadsheet would run as a formula.
        const typed = "=cmd|' /C calc'!A0";
        await page.goto(`${noc.url}/ui/login`);
        await page.fill("input[name=name]", typed);
        await page.fill("input[name=password]", "not the password");
        await page.locator("form[action='/ui/login'] button[type=submit]").click();
        await page.waitForURL(/failed=1/);
        assert.match(await page.textContent("[role=alert]") ?? "", /not valid/);

        await signInBrowser(page, noc.url, password, "olga");
        assert.match(await page.textContent("nav form button") ?? "", /Sign out \(olga\)/);
        await page.goto(`${noc.url}/ui/tokens`);
        await page.fill("#create-token input[name=label]", 'rack 7, "east"');
        await p.click("#create-token button[type=submit]");
        await page.waitForURL(/\/ui\/tokens\/\d+\/new/);

        // Operators are for admins: olga is told so, and the API refuses her.
        await page.goto(`${noc.url}/ui/operators`);
        assert.match(await page.textContent("#operators-forbidden") ?? "", /managed by admins/);

        await page.goto(`${noc.url}/ui/audit`);
        await page.fill("#audit-filter input[name=actor]", "olga");
        await p.click("#audit-filter button[type=submit]");
        await page.waitForURL(/actor=olga/);
        const rows = await page.locator("#audit tr").allInnerTexts();
        const created = rows.find((r) => r.includes("POST /v1/admin/enrollment-tokens"));
        assert.ok(created, rows.join("\n"));
        assert.match(created, /olga\s+\(operator, console\)/);
        assert.match(created, /201/);
        assert.match(created, /127\.0\.0\.1/);
        assert.ok(rows.some((r) => /POST \/ui\/login/.test(r) && /olga/.test(r)), "the sign-in");
        assert.ok(
          rows.some((r) => /GET|operators/.test(r) && /403/.test(r)) === false,
          "reads are not recorded",
        );

        // The CSV export, as the link gives it (the browser's session).
        const href = await page.getAttribute("#audit-csv", "href");
        assert.equal(href, "/ui/audit.csv?actor=olga");
        const all = await page.request.get(`${noc.url}/ui/audit.csv`);
        assert.equal(all.status(), 200);
        assert.match(all.headers()["content-disposition"] ?? "", /attachment/);
        const text = await all.text();
        const [head, ...records] = parseCsv(text);
        const col = (n: string) => head!.indexOf(n);
        const token = records.find((r) => r[col("route")] === "/v1/admin/enrollment-tokens")!;
        assert.equal(token[col("actor")], "olga");
        assert.equal(token[col("via")], "console");
        assert.equal(token[col("address")], "127.0.0.1");
        assert.match(token[col("user_agent")]!, /Chrome/);
        assert.equal(JSON.parse(token[col("summary")]!).body.label, 'rack 7, "east"');
        const failed = records.find((r) => r[col("error")] === "sign_in_failed")!;
        // A name no operator has is not recorded (it may be a password typed in the wrong field);
        // formula cells are neutralised in tests/audit_format_test.ts.
        assert.equal(failed[col("actor")], "(unknown name)", "the typed name is not kept");
        assert.ok(!text.toLowerCase().includes(typed.toLowerCase()), "nowhere in the CSV");

        // On a phone: nothing of the audit page is lost.
        await page.setViewportSize(phone);
        await page.goto(`${noc.url}/ui/audit`);
        await assertReachable(page.locator("#audit-filter button, #audit-csv"), "audit controls");
        await assertReachable(page.locator("#audit summary").first(), "a record's summary");

        // An admin's operators page keeps its controls within reach on a phone.
        const admin = await openPage(browser, phone);
        await signInBrowser(admin.page, noc.url, noc.adminToken);
        await admin.page.goto(`${noc.url}/ui/operators`);
        await assertReachable(
          admin.page.locator("#operators button"),
          "operator controls on a phone",
        );
      } finally {
        await noc.close();
      }
    },
});
