/**
 * The console in a real browser, for tests: Debian's chromium driven by playwright-core (never a
 * browser download), a page that counts the operator's clicks, sign-in as a browser does it, axe
 * (npm:axe-core) run on the page, and the phone viewport (390×844) the checks use.
 *
 * Click budgets count `click()` calls made through {@link BrowserPage.click} (and the counted
 * locator {@link BrowserPage.clickOn}); typing and page loads by URL are not clicks.
 *
 * Browser tests register through {@link browserTests}: one chromium per test file, shared by its
 * cases (a launch costs seconds on a slow machine; a new context costs little), each case on a
 * fresh database of its own. They run on PGlite only, never twice: what a browser sees does not
 * depend on the database behind the NOC, and every PostgreSQL path the console calls is run on
 * PostgreSQL by the admin API and console tests over HTTP (dbTest, with TEST_DATABASE_URL).
 *
 * Where axe runs: tests/console_conventions_browser_test.ts checks every console page (and /docs)
 * on a desktop and on a phone; the other browser tests run axe only on what that test cannot
 * reach (a confirmation, a page in a state only their flow makes), not again on the same page.
 */
import assert from "node:assert/strict";
import axe from "axe-core";
import { type Browser, chromium, type Locator, type Page } from "playwright-core";
import { type Db, openPglite } from "../noc/db/db.ts";
import { migrate } from "../noc/db/migrate.ts";
import { migratedPglite } from "./_harness.ts";

/** Where Debian installs chromium. */
export const browserPath = "/usr/bin/chromium";

/** True when chromium is installed; browser tests skip (and say so) otherwise. */
export const haveBrowser = await Deno.stat(browserPath).then(() => true, () => false);

if (!haveBrowser) {
  console.log(
    `console browser tests skipped: ${browserPath} is not installed (apt-get install chromium)`,
  );
}

/** The desktop viewport. */
export const desktop = { width: 1280, height: 800 } as const;
/** The phone viewport (an iPhone 12-14 in CSS pixels). */
export const phone = { width: 390, height: 844 } as const;

/** Launches headless chromium (`--no-sandbox`); close it in a `finally`. */
export async function launchBrowser(): Promise<Browser> {
  return await chromium.launch({
    executablePath: browserPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

/** What a browser test case is given: its own database, and the file's chromium. */
export interface BrowserCase {
  /** A fresh, migrated database (a schema of its own on the file's PGlite). */
  db: Db;
  /** The file's chromium; the case's pages and contexts are closed after it. */
  browser: Browser;
}

/**
 * Registers one test `name` that launches chromium once and runs each of `cases` as a step, in
 * order, each on a fresh migrated PGlite schema (PGlite only: see the module's comment). A failed
 * case fails the test; the others still run. Where chromium is not installed, the test is listed
 * as ignored, saying so.
 */
export function browserTests(
  name: string,
  cases: Record<string, (c: BrowserCase) => Promise<void>>,
): void {
  if (!haveBrowser) {
    Deno.test({ name: `${name} [chromium not installed]`, ignore: true, fn: () => {} });
    return;
  }
  Deno.test({
    name: `${name} [pglite, chromium]`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      const instance = await migratedPglite();
      const browser = await launchBrowser();
      try {
        for (const [caseName, fn] of Object.entries(cases)) {
          await t.step(caseName, async () => {
            const schema = `t_${crypto.randomUUID().replace(/-/g, "")}`;
            const db = await openPglite({ instance, schema });
            try {
              await migrate(db);
              await fn({ db, browser });
            } finally {
              for (const context of browser.contexts()) await context.close();
              await instance.exec(`drop schema "${schema}" cascade; set search_path to public`);
            }
          });
        }
      } finally {
        await browser.close();
        await instance.close();
      }
    },
  });
}

/** A page whose clicks are counted. */
export interface BrowserPage {
  /** The playwright page. */
  page: Page;
  /** Clicks made so far through {@link click} and {@link clickOn}. */
  clicks: number;
  /** Clicks `selector` (playwright selector) and counts it. */
  click(selector: string): Promise<void>;
  /** Clicks `locator` and counts it. */
  clickOn(locator: Locator): Promise<void>;
  /** Sets the counter back to 0 (at the start of a task). */
  resetClicks(): void;
}

/**
 * Opens a page in `browser` at `viewport` (desktop by default) with a click counter. Its pages
 * refresh live once an hour only (the console's `noc.live` test hook), so that a live refresh
 * never swaps a page's nodes while a test reads them (a slow, loaded machine takes longer than
 * the console's 15 s); a test of the live refresh sets the hook itself, after this one.
 */
export async function openPage(
  browser: Browser,
  viewport: { width: number; height: number } = desktop,
): Promise<BrowserPage> {
  const page = await browser.newPage({ viewport });
  await page.addInitScript(`sessionStorage.setItem("noc.live", "3600")`);
  const p: BrowserPage = {
    page,
    clicks: 0,
    async click(selector) {
      await page.locator(selector).first().click();
      p.clicks++;
    },
    async clickOn(locator) {
      await locator.click();
      p.clicks++;
    },
    resetClicks() {
      p.clicks = 0;
    },
  };
  return p;
}

/**
 * Signs in at `baseUrl` with `token` (an admin token, an operator's personal token, or, when
 * `name` is given, the password of operator `name`) through the sign-in form, and waits to land
 * on the console. Not counted as clicks.
 */
export async function signInBrowser(
  page: Page,
  baseUrl: string,
  secret: string,
  name?: string,
): Promise<void> {
  await page.goto(`${baseUrl}/ui/login`);
  if (name !== undefined) {
    await page.fill("input[name=name]", name);
    await page.fill("input[name=password]", secret);
  } else {
    await page.fill("input[name=token]", secret);
  }
  await page.locator("form[action='/ui/login'] button[type=submit]").first().click();
  await page.waitForURL((u) => !u.pathname.startsWith("/ui/login"));
}

/** One axe violation, as the assertion message shows it. */
export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/**
 * Runs axe on the page as it is (injected through the DevTools protocol, so the console's CSP
 * does not block it) and returns its violations of impact `serious` or `critical`.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  const injected = await page.evaluate("typeof window.axe === 'object'");
  if (!injected) await page.evaluate(axe.source);
  const result = await page.evaluate(async () => {
    // deno-lint-ignore no-explicit-any
    const g = globalThis as any;
    const r = await g.axe.run(g.document, {
      resultTypes: ["violations"],
    });
    // deno-lint-ignore no-explicit-any
    return r.violations.map((v: any) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      // deno-lint-ignore no-explicit-any
      targets: v.nodes.slice(0, 5).map((n: any) => String(n.target)),
    }));
  }) as AxeViolation[];
  return result.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** Asserts axe finds no serious or critical violation on the page (`where` names it). */
export async function assertAccessible(page: Page, where: string): Promise<void> {
  const found = await axeViolations(page);
  assert.deepEqual(found, [], `axe on ${where}: ${JSON.stringify(found, null, 1)}`);
}

/**
 * Asserts `locator` (every element it matches) is visible and reachable at the page's current
 * viewport: rendered, not `display:none` nor `visibility:hidden`, with a size, and inside the
 * viewport once scrolled into view (a phone may scroll a table but never loses a control). All
 * of it is checked in the page in one round trip (a page's dozens of controls, one by one through
 * the driver, cost seconds on a slow machine).
 */
export async function assertReachable(locator: Locator, what: string): Promise<void> {
  const found = await locator.evaluateAll((els) =>
    els.map((el, i) => {
      // deno-lint-ignore no-explicit-any
      const g = globalThis as any;
      const rect = () => el.getBoundingClientRect();
      const sized = (r: { width: number; height: number }) => r.width > 0 && r.height > 0;
      // deno-lint-ignore no-explicit-any
      const check = (el as any).checkVisibility?.() ?? true;
      if (!check || g.getComputedStyle(el).visibility !== "visible" || !sized(rect())) {
        return `#${i + 1} is not visible`;
      }
      el.scrollIntoView({ block: "nearest", inline: "nearest" });
      const r = rect();
      if (!sized(r)) return `#${i + 1} has no size`;
      if (r.bottom <= 0 || r.right <= 0 || r.top >= g.innerHeight || r.left >= g.innerWidth) {
        return `#${i + 1} is out of view once scrolled to`;
      }
      return null;
    })
  );
  assert.ok(found.length > 0, `${what}: nothing matched`);
  const problem = found.find((f) => f !== null);
  assert.equal(problem ?? null, null, `${what} ${problem}`);
}
