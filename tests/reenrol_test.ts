// deno-lint-ignore-file no-explicit-any
/**
 * Re-enrolment (issue 18, item 10): a re-imaged appliance that enrols again with new keys and a
 * new token supersedes its old record (retired, linked, key refused, no page, history kept) or
 * is refused with 409 `appliance_exists`, as the token or `NOC_REENROLMENT` decides.
 */
import assert from "node:assert/strict";
import { count, dbTest, testNoc } from "./_harness.ts";
import { enroll, generateApplianceKeys, NocError } from "../protocol/client.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";
import { recentlyRevoked } from "../noc/services/local_servers.ts";

const grace = 300;

async function refused(p: Promise<unknown>, status: number, code: string): Promise<any> {
  let body: any;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof NocError, String(e));
    assert.equal(e.status, status, JSON.stringify(e.body));
    assert.equal(e.body.error, code);
    body = e.body;
    return true;
  });
  return body;
}

async function noticeKinds(db: Parameters<typeof count>[0]): Promise<string[]> {
  const rows = await db.sql<{ kind: string; uid: string | null }>`
    select kind, uid from notices order by id`;
  return rows.map((r) => `${r.kind}:${r.uid ?? ""}`);
}

dbTest(
  "re-enrolling mail-gw-7 with new keys retires the old record: no ghost, no page, key refused",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { graceS: grace } });
    const old = await noc.enrollAppliance({
      hostname: "mail-gw-7",
      token: await noc.enrollmentToken({ site: "hq" }),
    });
    await old.beat();
    noc.clock.advance(909);
    await old.beat();
    noc.clock.advance(120);
    // Re-imaged: new keys, new token, same name.
    const fresh = await noc.enrollAppliance({
      hostname: "mail-gw-7",
      token: await noc.enrollmentToken({ site: "hq" }),
    });
    assert.deepEqual((fresh.enrollment as any).supersedes, [old.uid]);
    await fresh.beat();

    // The old record is retired and linked; the new one says what it replaced.
    const was = await noc.admin("GET", `/v1/admin/appliances/${old.uid}`);
    assert.equal(was.status, 200);
    assert.equal(was.body.state, "revoked");
    assert.equal(was.body.supersededBy, fresh.uid);
    assert.match(was.body.revokedReason, new RegExp(`superseded by ${fresh.uid}`));
    assert.equal(was.body.history.length, 2, "its history stays visible");
    const now = await noc.admin("GET", `/v1/admin/appliances/${fresh.uid}`);
    assert.deepEqual(now.body.supersedes, [old.uid]);
    assert.equal(now.body.supersededBy, null);

    // Its key is refused as revoked.
    await refused(old.beat(), 401, "revoked_key");
    // Its site's local servers learn of it at their next sync, and refuse its grants.
    assert.deepEqual(await recentlyRevoked(db.sql, "hq", noc.clock.now()), [old.uid]);

    // The fleet shows one mail-gw-7; a filter shows the retired record.
    const list = await noc.admin("GET", "/v1/admin/appliances?q=mail-gw-7");
    assert.deepEqual(list.body.items.map((a: any) => a.uid), [fresh.uid]);
    const all = await noc.admin("GET", "/v1/admin/appliances?q=mail-gw-7&retired=include");
    assert.deepEqual(new Set(all.body.items.map((a: any) => a.uid)), new Set([fresh.uid, old.uid]));
    const only = await noc.admin("GET", "/v1/admin/appliances?retired=only");
    assert.deepEqual(only.body.items.map((a: any) => a.uid), [old.uid]);
    const bad = await noc.admin("GET", "/v1/admin/appliances?retired=maybe");
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /retired/);
    const fleet = await noc.admin("GET", "/v1/admin/fleet");
    assert.deepEqual(fleet.body.states, { ok: 1, late: 0, missing: 0, revoked: 0 });

    // Hours later, with mail-gw-7 beating, the sweep pages nothing: the old record is not due.
    for (let i = 0; i < 4; i++) {
      noc.clock.advance(909);
      await fresh.beat();
      const r = await sweep({ ...noc.deps, graceS: grace });
      assert.deepEqual(r.alerted, [], `sweep ${i} alerted nobody`);
    }
    // No page: the notices are the supersede itself (the admin hears of every retired record)
    // and the refused signature of the old key, above.
    assert.deepEqual(await noticeKinds(db), [
      `appliance_superseded:${fresh.uid}`,
      "identity_failure:",
    ]);
    const [told] = await db.sql<{ text: string; payload: any }>`
      select text, payload from notices where kind = 'appliance_superseded'`;
    assert.match(
      told!.text,
      new RegExp(`mail-gw-7 \\(site hq\\) enrolled again .* ${old.uid} retired`),
    );
    assert.equal(told!.payload.supersedes[0].uid, old.uid);
    assert.equal(
      told!.payload.supersedes[0].lastBeatAt,
      new Date(noc.clock.now().getTime() - 120_000 - 4 * 909_000).toISOString(),
    );
    assert.equal(await count(db, "alerts"), 0);
  },
);

dbTest(
  "an open missed-heartbeat alert on the superseded record closes without a recovered notice",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { graceS: grace } });
    const old = await noc.enrollAppliance({ hostname: "mail-gw-7" });
    await old.beat();
    // Re-imaging took long enough for the old record to be paged missing.
    noc.clock.advance(909 + grace + 1);
    assert.deepEqual((await sweep({ ...noc.deps, graceS: grace })).alerted, [old.uid]);
    const fresh = await noc.enrollAppliance({ hostname: "MAIL-GW-7" });
    assert.deepEqual((fresh.enrollment as any).supersedes, [old.uid], "names match ignoring case");
    await fresh.beat();
    const r = await sweep({ ...noc.deps, graceS: grace });
    assert.deepEqual(r.recovered, [], "no recovered page for a retired record");
    assert.deepEqual(r.alerted, []);
    assert.deepEqual(await noticeKinds(db), [
      `missed_heartbeat:${old.uid}`,
      `appliance_superseded:${fresh.uid}`,
    ]);
    const [told] = await db.sql<{ payload: any }>`
      select payload from notices where kind = 'appliance_superseded'`;
    assert.equal(told!.payload.supersedes[0].openAlertsClosed, 1);
    const open = await noc.admin("GET", "/v1/admin/alerts");
    assert.equal(open.body.items.length, 0, "no alert left open");
    const [alert] = await db.sql<{ resolved_at: Date | null; detail: any }>`
      select resolved_at, detail from alerts where uid = ${old.uid}`;
    assert.equal(alert!.resolved_at?.toISOString(), noc.clock.now().toISOString());
    assert.equal(alert!.detail.supersededBy, fresh.uid);
  },
);

dbTest(
  "with NOC_REENROLMENT=refuse a re-enrolment gets 409 appliance_exists and spends nothing",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { reenrolment: "refuse" } });
    const old = await noc.enrollAppliance({ hostname: "mail-gw-7" });
    const token = await noc.enrollmentToken();
    const body = await refused(
      enroll(noc.send, "http://noc.test", {
        token,
        model: "vs-2000",
        hostname: "mail-gw-7",
        keys: await generateApplianceKeys(),
      }),
      409,
      "appliance_exists",
    );
    assert.deepEqual(body.existing, [old.uid]);
    assert.match(body.message, /mail-gw-7/);
    assert.equal(await count(db, "appliances"), 1);
    const tokens = await noc.admin("GET", "/v1/admin/enrollment-tokens");
    assert.equal(tokens.body.items[0].status, "unused", "the refused token is not spent");
    assert.equal((await noc.admin("GET", `/v1/admin/appliances/${old.uid}`)).body.state, "ok");

    // A token created to supersede overrides the setting.
    const override = await noc.enrollmentToken({ reenrolment: "supersede" });
    const fresh = await noc.enrollAppliance({ hostname: "mail-gw-7", token: override });
    assert.deepEqual((fresh.enrollment as any).supersedes, [old.uid]);
    const created = await noc.admin("GET", "/v1/admin/enrollment-tokens");
    assert.equal(created.body.items[0].reenrolment, "supersede");
  },
);

dbTest(
  "a token created with reenrolment refuse is refused where the setting supersedes",
  async ({ db }) => {
    const noc = await testNoc(db);
    const old = await noc.enrollAppliance({ hostname: "mail-gw-7" });
    const token = await noc.enrollmentToken({ reenrolment: "refuse" });
    await refused(
      noc.enrollAppliance({ hostname: "mail-gw-7", token }),
      409,
      "appliance_exists",
    );
    // A new name with the same token is no re-enrolment.
    const other = await noc.enrollAppliance({ hostname: "mail-gw-8", token });
    assert.deepEqual((other.enrollment as any).supersedes, []);
    assert.equal((await noc.admin("GET", `/v1/admin/appliances/${old.uid}`)).body.state, "ok");
  },
);

dbTest("a token's reenrolment must be supersede or refuse, on appliance tokens", async ({ db }) => {
  const noc = await testNoc(db);
  for (
    const body of [
      { reenrolment: "replace" },
      { reenrolment: 1 },
      { reenrolment: "supersede", purpose: "local-server", site: "hq" },
    ]
  ) {
    const r = await noc.admin("POST", "/v1/admin/enrollment-tokens", body);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error, "invalid_body");
    assert.match(JSON.stringify(r.body), /reenrolment/);
  }
  assert.equal(await count(db, "enrollment_tokens"), 0);
});

dbTest(
  "the same hostname at another site, or after an admin revoked it, supersedes nothing",
  async ({ db }) => {
    const noc = await testNoc(db);
    const hq = await noc.enrollAppliance({
      hostname: "mail-gw-7",
      token: await noc.enrollmentToken({ site: "hq" }),
    });
    const branch = await noc.enrollAppliance({
      hostname: "mail-gw-7",
      token: await noc.enrollmentToken({ site: "branch" }),
    });
    assert.deepEqual((branch.enrollment as any).supersedes, []);
    const revoked = await noc.enrollAppliance({ hostname: "mail-gw-9" });
    await noc.admin("POST", `/v1/admin/appliances/${revoked.uid}/revoke`, { reason: "stolen" });
    const again = await noc.enrollAppliance({ hostname: "mail-gw-9" });
    assert.deepEqual((again.enrollment as any).supersedes, []);
    const was = await noc.admin("GET", `/v1/admin/appliances/${revoked.uid}`);
    assert.equal(was.body.revokedReason, "stolen");
    assert.equal(was.body.supersededBy, null);
    const list = await noc.admin("GET", "/v1/admin/appliances?q=mail-gw-7");
    assert.deepEqual(
      new Set(list.body.items.map((a: any) => a.uid)),
      new Set([hq.uid, branch.uid]),
    );
  },
);

dbTest(
  "concurrent enrolments of one name on two instances leave exactly one active record",
  async ({ db, another }) => {
    const one = await testNoc(db);
    const two = await testNoc(another(), { clock: one.clock });
    for (let round = 0; round < 5; round++) {
      const hostname = `race-${round}`;
      const tokens = [await one.enrollmentToken(), await one.enrollmentToken()];
      const [a, b] = await Promise.all([
        one.enrollAppliance({ hostname, token: tokens[0]! }),
        two.enrollAppliance({ hostname, token: tokens[1]! }),
      ]);
      const rows = await db.sql<{ uid: string; superseded_by: string | null }>`
        select uid, superseded_by from appliances where hostname = ${hostname} and revoked_at is null`;
      assert.equal(rows.length, 1, `round ${round}: one active record`);
      const winner = rows[0]!.uid;
      const loser = winner === a.uid ? b.uid : a.uid;
      const [retired] = await db.sql<{ superseded_by: string | null }>`
        select superseded_by from appliances where uid = ${loser}`;
      assert.equal(retired!.superseded_by, winner, `round ${round}: the other is linked to it`);
    }
  },
  { instances: 2 },
);
