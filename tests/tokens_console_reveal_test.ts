/**
 * A new enrolment token in the console is shown by Post/Redirect/Get without its secret ever
 * being in a URL or stored readable: the POST redirects to a page that shows it to the session
 * that created it, for ten minutes; another session, a revoked token or a later visit sees none.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { signIn } from "./_console.ts";

const base = "http://noc.test";

dbTest(
  "a new console token is shown to its own session for ten minutes and never kept readable",
  async ({ db }) => {
    const noc = await testNoc(db);
    const ui = await signIn(noc);
    const create = () =>
      noc.app.request(`${base}/ui/tokens`, {
        method: "POST",
        headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: ui.csrf, purpose: "appliance", site: "lab" }),
      });
    const made = await create();
    assert.equal(made.status, 303);
    const at = made.headers.get("location")!;
    assert.match(at, /^\/ui\/tokens\/\d+\/new$/);
    const page = await (await ui.get(at)).text();
    const token = page.match(/id="new-token" readonly="" value="(noc_enr_[^"]+)"/)![1]!;
    assert.match(
      page,
      new RegExp(`noc-agent enroll --noc http://noc\\.test --token ${token}</textarea>`),
    );
    // Kept sealed: nothing stored holds the secret in the clear.
    const kept = await db.sql<{ sealed: string }>`select sealed from console_reveals`;
    assert.equal(kept.length, 1);
    assert.ok(!kept[0]!.sealed.includes(token));
    assert.ok(!kept[0]!.sealed.includes(token.slice("noc_enr_".length)));
    // It enrols; the page shows it again (a reload), and no second token was made.
    await noc.enrollAppliance({ hostname: "gw-1", token });
    assert.match(await (await ui.get(at)).text(), /id="new-token"/);
    const [counted] = await db.sql<{ n: number }>`select count(*)::int as n from enrollment_tokens`;
    assert.equal(Number(counted!.n), 1);

    // Another session of the same operator does not see it.
    const other = await signIn(noc);
    const elsewhere = await (await other.get(at)).text();
    assert.ok(!elsewhere.includes(token));
    assert.match(elsewhere, /id="token-gone"/);

    // A revoked token is no longer shown; nor is any after ten minutes.
    const second = await create();
    const secondAt = second.headers.get("location")!;
    const secondId = secondAt.split("/")[3]!;
    assert.match(await (await ui.get(secondAt)).text(), /id="new-token"/);
    assert.equal(
      await ui.post(`/ui/tokens/${secondId}/revoke`, { confirmed: "yes" }),
      "Token revoked",
    );
    assert.match(await (await ui.get(secondAt)).text(), /id="token-gone"/);
    const third = await create();
    const thirdAt = third.headers.get("location")!;
    noc.clock.advance(599);
    assert.match(await (await ui.get(thirdAt)).text(), /id="new-token"/);
    noc.clock.advance(2);
    assert.match(await (await ui.get(thirdAt)).text(), /id="token-gone"/);
    // Revoking asks first: without confirmed=yes the token stays unused.
    const thirdId = thirdAt.split("/")[3]!;
    const asked = await noc.app.request(`${base}/ui/tokens/${thirdId}/revoke`, {
      method: "POST",
      headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: ui.csrf }),
    });
    assert.equal(asked.status, 200);
    assert.match(await asked.text(), /class="panel confirm"/);
    const [row] = await db.sql<{ revoked: boolean }>`
      select revoked_at is not null as revoked from enrollment_tokens where id = ${thirdId}`;
    assert.equal(row!.revoked, false);
  },
);

dbTest(
  "a refused token form comes back with its fields and an error, minting nothing",
  async ({ db }) => {
    const noc = await testNoc(db);
    const ui = await signIn(noc);
    const res = await noc.app.request(`${base}/ui/tokens`, {
      method: "POST",
      headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: ui.csrf, label: "rack 9", site: "lab", hours: "9999" }),
    });
    assert.equal(res.status, 303);
    const to = new URL(res.headers.get("location")!, base);
    assert.equal(to.pathname, "/ui/tokens");
    assert.match(to.searchParams.get("error")!, /Valid \(hours\)/);
    const page = await (await ui.get(to.pathname + to.search)).text();
    assert.match(page, /class="flash error" role="alert"/);
    assert.match(page, /name="label"[^>]*value="rack 9"/);
    assert.match(page, /name="hours"[^>]*value="9999"/);
    const [counted] = await db.sql<{ n: number }>`select count(*)::int as n from enrollment_tokens`;
    assert.equal(Number(counted!.n), 0);
  },
);
