// deno-lint-ignore-file no-explicit-any
/**
 * Issue 21 items 1 and 4, the NOC's side: what the agent says went wrong reaches the operator.
 * The beat's `dropped` and its last cycle's problems (`state_unwritable`, ...) are shown on the
 * appliance (API and console), and a missed-heartbeat alert raised after such a beat names them.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";
import { signIn } from "./_console.ts";

const unwritable = {
  code: "state_unwritable",
  message: "Cannot write /var/lib/noc-agent/cycle.lock: Read-only file system (os error 30)",
};

dbTest(
  "dropped parts and agent problems are shown, and name the reason in the missed-heartbeat alert",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-ro-01" });
    const dropped = ["apps.scanner (15,210 bytes)", "components: 2,001 installed, 2,000 listed"];
    await a.beat({
      dropped,
      lastCycle: { outcome: "failed", problems: [unwritable] },
    });
    const one = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(one.status, 200);
    assert.deepEqual(one.body.dropped, dropped);
    assert.deepEqual(one.body.problems, [unwritable]);
    assert.deepEqual(one.body.lastReport.dropped, dropped, "kept in the last report");

    // The console's appliance page shows both as reasons.
    const ui = await signIn(noc);
    const page = await ui.get(`/ui/appliances/${a.uid}`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /id="report-reasons"/);
    assert.match(html, /state_unwritable/);
    assert.match(html, /Read-only file system/);
    assert.match(html, /apps\.scanner \(15,210 bytes\)/);

    // It stops beating: the alert and its notice name the last reported problem.
    noc.clock.advance(909 + 120);
    const r = await sweep({ ...noc.deps, graceS: 60 });
    assert.deepEqual(r.alerted, [a.uid]);
    const [notice] = await db.sql<{ text: string; payload: any }>`
      select text, payload from notices where kind = 'missed_heartbeat' and uid = ${a.uid}`;
    assert.match(notice!.text, /last reported problem: state_unwritable \(Cannot write/);
    assert.match(notice!.text, /left out apps\.scanner/);
    assert.equal(notice!.payload.problems[0].code, "state_unwritable");
    const alerts = await noc.admin("GET", "/v1/admin/alerts");
    const alert = alerts.body.items.find((x: any) => x.uid === a.uid);
    assert.equal(alert.detail.lastProblems[0].code, "state_unwritable");
    assert.deepEqual(alert.detail.lastDropped, dropped);
  },
);

dbTest("an appliance whose last beat was clean gets a plain alert", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance({ hostname: "mx-ok-01" });
  await a.beat();
  const one = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
  assert.deepEqual(one.body.problems, []);
  assert.deepEqual(one.body.dropped, []);
  noc.clock.advance(909 + 120);
  await sweep({ ...noc.deps, graceS: 60 });
  const [notice] = await db.sql<{ text: string }>`
    select text from notices where kind = 'missed_heartbeat' and uid = ${a.uid}`;
  assert.doesNotMatch(notice!.text, /problem|left out/);
});
