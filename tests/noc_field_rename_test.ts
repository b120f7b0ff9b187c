// deno-lint-ignore-file no-explicit-any
/**
 * Issue 21 item 8, the NOC's side: a renamed host. The host name an appliance reports in its
 * beats is the one the NOC shows, searches (`?q=`) and pages with; the names it had stay in its
 * history, with when they stopped.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";

dbTest(
  "a beat's hostname renames the appliance: shown, searched and paged with; the old name kept",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-par-07" });
    await a.beat();
    assert.equal(
      (await noc.admin("GET", "/v1/admin/appliances?q=mx-lon-01")).body.items.length,
      0,
    );
    noc.clock.advance(900);
    const renamedAt = noc.clock.now().toISOString();
    await a.beat({ hostname: "mx-lon-01" });

    const found = await noc.admin("GET", "/v1/admin/appliances?q=mx-lon-01");
    assert.equal(found.status, 200);
    assert.deepEqual(found.body.items.map((i: any) => i.uid), [a.uid]);
    assert.equal(found.body.items[0].hostname, "mx-lon-01");
    assert.equal(
      (await noc.admin("GET", "/v1/admin/appliances?q=mx-par-07")).body.items.length,
      0,
      "the old name no longer finds it",
    );
    const one = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(one.body.hostname, "mx-lon-01");
    assert.deepEqual(one.body.hostnameHistory, [{ hostname: "mx-par-07", until: renamedAt }]);

    // The same name again changes nothing; a beat without one keeps it.
    noc.clock.advance(900);
    await a.beat({ hostname: "mx-lon-01" });
    noc.clock.advance(900);
    await a.beat();
    const again = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(again.body.hostname, "mx-lon-01");
    assert.equal(again.body.hostnameHistory.length, 1);

    // A beat delayed behind a newer one renames nothing.
    const late = new Date(noc.clock.now().getTime() - 200_000).toISOString();
    await a.beat({ hostname: "mx-stale-name", sentAt: late });
    assert.equal(
      (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.hostname,
      "mx-lon-01",
    );

    // The alert and its notice use the new name.
    noc.clock.advance(3 * 909);
    await sweep({ ...noc.deps, graceS: 60 });
    const [notice] = await db.sql<{ text: string }>`
      select text from notices where kind = 'missed_heartbeat' and uid = ${a.uid}`;
    assert.match(notice!.text, /Missed heartbeat: mx-lon-01 /);
  },
);

dbTest("the name history keeps the 20 newest names, newest first", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance({ hostname: "gw-0" });
  for (let i = 1; i <= 25; i++) {
    noc.clock.advance(60);
    await a.beat({ hostname: `gw-${i}` });
  }
  const one = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
  assert.equal(one.body.hostname, "gw-25");
  assert.equal(one.body.hostnameHistory.length, 20);
  assert.equal(one.body.hostnameHistory[0].hostname, "gw-24");
  assert.equal(one.body.hostnameHistory[19].hostname, "gw-5");
  // Pages in host-name order follow the new name.
  const b = await noc.enrollAppliance({ hostname: "gw-3" });
  const page = await noc.admin("GET", "/v1/admin/appliances?sort=hostname&limit=10");
  assert.deepEqual(page.body.items.map((i: any) => i.uid), [a.uid, b.uid], "gw-25 before gw-3");
});
