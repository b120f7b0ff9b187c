/**
 * Issue 19, item 3, through the console's forms (in process): the revoke confirmation does
 * nothing until confirmed; a revoked appliance is not woken (the refusal in the error style); the
 * appliance page shows an interrupted install as inconsistent (amber) with the agent's message, and
 * the requests refused under its identity; the list shows its total and links first, previous and
 * next pages with the filter kept.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, testNoc } from "./_harness.ts";
import { signIn } from "./_console.ts";

dbTest(
  "revoke asks first, then revokes; a revoked appliance is neither offered nor given a wake",
  async ({ db }) => {
    const noc = await testNoc(db);
    const ui = await signIn(noc);
    const a = await noc.enrollAppliance({ hostname: "gw-revoke" });
    const ask = await ui.get(`/ui/appliances/${a.uid}/revoke`);
    assert.equal(ask.status, 200);
    const page = await ask.text();
    assert.match(page, /class="panel confirm"/);
    assert.match(page, /name="confirmed" value="yes"/);
    // A post without confirmed=yes only asks again, with the reason kept.
    const res = await noc.app.request(`http://noc.test/ui/appliances/${a.uid}/revoke`, {
      method: "POST",
      headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: ui.csrf, reason: "lost" }),
    });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /value="lost"/);
    assert.equal((await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.revokedAt, null);
    // Confirmed without a reason: refused, back on the confirmation.
    const noReason = await noc.app.request(`http://noc.test/ui/appliances/${a.uid}/revoke`, {
      method: "POST",
      headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: ui.csrf, reason: "", confirmed: "yes" }),
    });
    assert.equal(noReason.status, 303);
    assert.match(noReason.headers.get("location")!, /\/revoke\?error=/);
    assert.equal(
      await ui.post(`/ui/appliances/${a.uid}/revoke`, { reason: "lost", confirmed: "yes" }),
      "Revoked",
    );
    const after = await (await ui.get(`/ui/appliances/${a.uid}`)).text();
    assert.ok(!after.includes("Wake now"));
    assert.ok(!after.includes(`/ui/appliances/${a.uid}/revoke"`));
    assert.match(after, /id="revoked"/);
    // Posting the wake form anyway: refused, in the error style.
    const woke = await noc.app.request(`http://noc.test/ui/appliances/${a.uid}/wake`, {
      method: "POST",
      headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: ui.csrf }),
    });
    assert.equal(woke.status, 303);
    assert.match(decodeURIComponent(woke.headers.get("location")!), /error=.*is revoked/);
  },
);

dbTest(
  "the appliance page shows an interrupted install as inconsistent, and refusals under its UID",
  async ({ db }) => {
    const noc = await testNoc(db);
    const ui = await signIn(noc);
    const a = await noc.enrollAppliance({ hostname: "gw-odd" });
    await a.beat({
      lastCycle: {
        outcome: "partial",
        problems: [{
          code: "install_interrupted",
          message: "The install program of vscreen never finished in an earlier run",
        }],
      },
    });
    let page = await (await ui.get(`/ui/appliances/${a.uid}`)).text();
    assert.match(page, /data-install-state="inconsistent"/);
    assert.match(page, /install_interrupted: The install program of vscreen never finished/);
    assert.match(page, /<details><summary>Raw report \(JSON\)<\/summary>/);
    assert.match(page, /None recorded\./);
    // A request under its identity refused (a replayed nonce): listed on its page. (A beat's
    // nonce is spent with the beat: a replay of one the NOC accepted.)
    const req = await a.request("POST", "/v1/beats", sampleBeat(99, noc.clock.now()), {
      nonce: "n-once-1234567890",
    });
    await (await noc.send(req.clone())).body?.cancel();
    const again = await noc.send(req);
    assert.equal(again.status, 401);
    await again.body?.cancel();
    page = await (await ui.get(`/ui/appliances/${a.uid}`)).text();
    assert.match(page, /id="refusals"/);
    assert.match(page, /replayed_signature/);
  },
);

dbTest(
  "the list shows its total and first, previous and next pages with the filter kept",
  async ({ db }) => {
    const noc = await testNoc(db);
    const ui = await signIn(noc);
    const token = () => noc.enrollmentToken({ site: "ams" });
    for (let i = 0; i < 55; i++) {
      await noc.enrollAppliance({
        hostname: `gw-${String(i).padStart(2, "0")}`,
        token: await token(),
      });
    }
    await noc.enrollAppliance({ hostname: "other" });
    const first = await (await ui.get("/ui/appliances?site=ams&sort=lastBeat&order=desc")).text();
    assert.match(first, /55 appliances match/);
    assert.ok(!first.includes('rel="prev"'));
    assert.ok(!first.includes('rel="first"'));
    const next = first.match(/href="([^"]+)" rel="next"/)![1]!.replaceAll("&amp;", "&");
    assert.match(next, /site=ams/);
    assert.match(next, /sort=lastBeat/);
    const second = await (await ui.get(next)).text();
    assert.equal([...second.matchAll(/<input type="checkbox" name="uid"/g)].length, 5);
    assert.match(second, /rel="first"/);
    const prev = second.match(/href="([^"]+)" rel="prev"/)![1]!.replaceAll("&amp;", "&");
    const back = await (await ui.get(prev)).text();
    assert.equal([...back.matchAll(/<input type="checkbox" name="uid"/g)].length, 50);
    const uids = (html: string) =>
      [...html.matchAll(/name="uid" value="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(uids(back), uids(first));
    // Filters are choices of the known values.
    assert.match(first, /<option value="ams" selected="">ams<\/option>/);
    // A bulk action with nothing selected is refused, with the page's filter kept.
    const refused = await noc.app.request("http://noc.test/ui/appliances/bulk", {
      method: "POST",
      headers: { cookie: ui.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        _csrf: ui.csrf,
        back: "/ui/appliances?site=ams",
        action: "wake",
        scope: "selected",
      }),
    });
    assert.equal(refused.status, 303);
    assert.match(refused.headers.get("location")!, /^\/ui\/appliances\?site=ams&error=Select/);
  },
);
