// deno-lint-ignore-file no-explicit-any
/**
 * Issue 16, items 1–3, in process (the NOC's whole app, PGlite and PostgreSQL): install outcomes
 * count only from appliances a release was delivered to; what a grant-less signed download may
 * fetch; the upgrade's backfill of what earlier catalogs listed.
 */
import assert from "node:assert/strict";
import { dbTest, type TestAppliance, type TestNoc, testNoc } from "./_harness.ts";
import { fetchCatalog, publishAndAssign, upload } from "./_components.ts";
import { exportRawPublic, generateEd25519 } from "../protocol/crypto/ed25519.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { signedRequest } from "../protocol/client.ts";
import { migrationFiles } from "../noc/db/migrations/mod.ts";

const base = "http://noc.test";

/** Downloads the first component of `a`'s catalog with its grant (over https). */
async function downloadFirst(noc: TestNoc, a: TestAppliance): Promise<number> {
  const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
  const res = await noc.app.request(entry.urls[0]!.replace("http://", "https://"));
  await res.body?.cancel();
  return res.status;
}

/** Reports one outcome for app/pkg@2 as `a`; returns the answer. */
async function report(noc: TestNoc, a: TestAppliance, outcome: string): Promise<any> {
  const res = await noc.app.request(
    await a.request("POST", "/v1/installs", {
      results: [{ kind: "package", app: "app", name: "pkg", version: "2", outcome }],
    }),
  );
  assert.equal(res.status, 200);
  return await res.json();
}

async function isPaused(noc: TestNoc, assignmentId: number): Promise<boolean> {
  return (await noc.admin("GET", `/v1/admin/assignments/${assignmentId}`)).body.paused;
}

dbTest(
  "install outcomes from appliances never sent a release do not pause its rollout",
  async ({ db }) => {
    const noc = await testNoc(db);
    const fleet: TestAppliance[] = [];
    for (let i = 0; i < 5; i++) fleet.push(await noc.enrollAppliance({ hostname: `gw-${i}` }));
    const { assignmentId } = await publishAndAssign(
      noc,
      { app: "app", name: "pkg", version: "2" },
      undefined,
      { type: "all" },
      { failureThresholdPercent: 30, minSample: 2 },
    );
    // Two appliances never sent it (one never asked for a catalog, one was listed it but never
    // downloaded it) report it failed: recorded, not counted, the rollout goes on.
    await fetchCatalog(noc, fleet[1]!);
    for (const a of [fleet[0]!, fleet[1]!]) {
      const r = await report(noc, a, "failed");
      assert.deepEqual(r.pausedAssignments, []);
      assert.deepEqual(r.uncounted, [{ kind: "package", app: "app", name: "pkg", version: "2" }]);
    }
    assert.equal(await isPaused(noc, assignmentId), false);
    const progress = (await noc.admin("GET", `/v1/admin/assignments/${assignmentId}`)).body;
    assert.equal(progress.progress.failed, 0, JSON.stringify(progress.progress));
    const [kept] = await db.sql<{ n: number }>`select count(*)::int as n from install_outcomes`;
    assert.equal(kept!.n, 2, "the outcomes are kept in the appliances' history");
    // The appliances it was delivered to do count: two failures of two pause it.
    for (const a of [fleet[2]!, fleet[3]!]) assert.equal(await downloadFirst(noc, a), 200);
    assert.deepEqual((await report(noc, fleet[2]!, "failed")).pausedAssignments, []);
    const r = await report(noc, fleet[3]!, "rolled_back");
    assert.deepEqual(r.uncounted, []);
    assert.deepEqual(r.pausedAssignments, [assignmentId]);
    assert.equal(await isPaused(noc, assignmentId), true);
  },
);

/** Enrols a local server for `site` in process; returns a signed caller. */
async function enrolLocal(noc: TestNoc, site: string) {
  const pair = await generateEd25519();
  const res = await noc.app.request(`${base}/v1/local/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      token: await noc.enrollmentToken({ purpose: "local-server", site }),
      name: "cache-1",
      url: "https://cache.example:8443",
      signingKey: toBase64Url(await exportRawPublic(pair.publicKey)),
    }),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return async (method: string, path: string, payload?: unknown) => {
    const r = await noc.app.request(
      await signedRequest({
        baseUrl: base,
        uid: body.id,
        key: pair.privateKey,
        method,
        path,
        now: noc.clock.now(),
        ...(payload === undefined ? {} : { body: payload }),
      }),
    );
    return { status: r.status, body: await r.json() };
  };
}

dbTest(
  "an outcome reported before its local server's record counts once the record arrives",
  async ({ db }) => {
    const noc = await testNoc(db);
    const token = await noc.enrollmentToken({ site: "lab" });
    const x = await noc.enrollAppliance({ token });
    const y = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
    const { componentId, assignmentId } = await publishAndAssign(
      noc,
      { app: "app", name: "pkg", version: "2" },
      undefined,
      { type: "site", value: "lab" },
      { failureThresholdPercent: 50, minSample: 2 },
    );
    const local = await enrolLocal(noc, "lab");
    // y fetched it from the NOC; x from the local server, whose record is not in yet.
    assert.equal(await downloadFirst(noc, y), 200);
    await fetchCatalog(noc, x);
    assert.deepEqual((await report(noc, y, "failed")).pausedAssignments, [], "1 of 1 < minSample");
    assert.equal((await report(noc, x, "failed")).uncounted.length, 1);
    assert.equal(await isPaused(noc, assignmentId), false);
    const r = await local("POST", "/v1/local/deliveries", {
      epoch: crypto.randomUUID(),
      records: [{ seq: 1, uid: x.uid, componentId, at: noc.clock.now().toISOString() }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.applied, 1);
    assert.equal(await isPaused(noc, assignmentId), true, "2 failures of 2 delivered");
  },
);

dbTest(
  "a download is refused once the current catalog no longer lists it, by signature or by its grant",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const v1 = await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" });
    const old = (await fetchCatalog(noc, a)).doc!.components[0]!;
    const signedGet = async (id: number) => {
      const req = await a.request("GET", `/v1/components/${id}`);
      const res = await noc.app.request(
        new Request(req.url.replace("http://", "https://"), { headers: req.headers }),
      );
      return { status: res.status, body: res.status === 200 ? null : await res.json() };
    };
    assert.equal((await signedGet(v1.componentId)).status, 200);
    const byGrant = async () => {
      const res = await noc.app.request(old.urls[0]!.replace("http://", "https://"));
      return {
        status: res.status,
        body: res.status === 200 ? await res.body?.cancel() : await res.json(),
      };
    };
    assert.equal((await byGrant()).status, 200);
    // Version 2 replaces it in the next catalog: version 1 is no longer the appliance's to fetch,
    // by signature or by the grant its older catalog carried (not expired), and nothing is recorded.
    const [sent] = await db.sql<{ last_sent_at: Date }>`
      select last_sent_at from deliveries where uid = ${a.uid} and component_id = ${v1.componentId}`;
    const v2 = await publishAndAssign(noc, { app: "app", name: "pkg", version: "2" });
    assert.equal((await fetchCatalog(noc, a)).doc!.components[0]!.version, "2");
    const refused = await signedGet(v1.componentId);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error, "not_in_catalog");
    assert.equal((await signedGet(v2.componentId)).status, 200);
    noc.clock.advance(60);
    const stale = await byGrant();
    assert.equal(stale.status, 403);
    assert.equal(stale.body.error, "not_in_catalog");
    assert.match(stale.body.message, /no longer honoured/);
    const [after] = await db.sql<{ last_sent_at: Date }>`
      select last_sent_at from deliveries where uid = ${a.uid} and component_id = ${v1.componentId}`;
    assert.deepEqual(after, sent, "the refused grant rewrote no delivery record");
    // Another appliance's component, assigned to it alone, is never this one's.
    const b = await noc.enrollAppliance();
    const theirs = await publishAndAssign(
      noc,
      { app: "other", name: "pkg", version: "1" },
      undefined,
      { type: "appliance", value: b.uid },
    );
    await fetchCatalog(noc, b);
    assert.equal((await signedGet(theirs.componentId)).body.error, "not_in_catalog");
    const recorded = await db.sql`
      select 1 from deliveries where uid = ${a.uid} and component_id = ${theirs.componentId}`;
    assert.equal(recorded.length, 0);
  },
);

dbTest(
  "upgrading to catalog listings keeps what earlier catalogs listed: a held appliance keeps its pins",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" });
    const up = await upload(
      noc,
      "/v1/admin/files?app=app&name=f&version=1",
      new TextEncoder().encode("x"),
      "application/octet-stream",
    );
    assert.equal(up.status, 201);
    await noc.admin("POST", "/v1/admin/assignments", {
      kind: "file",
      app: "app",
      name: "f",
      version: "1",
      target: { type: "all" },
    });
    for (const c of (await fetchCatalog(noc, a)).doc!.components) {
      const res = await noc.app.request(c.urls[0]!.replace("http://", "https://"));
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    const listed = async () =>
      (await db.sql<{ component_id: number; current: boolean }>`
        select component_id, current from catalog_listings where uid = ${a.uid}
        order by component_id`).map((r) => [r.component_id, r.current]);
    const before = await listed();
    assert.equal(before.length, 2);
    // As before the upgrade: no listings at all. The migration's backfill restores them from the
    // wrapped keys and the stored signed catalog.
    await db.sql`delete from catalog_listings`;
    const file = migrationFiles.find((f) => f.name === "006_authorisation.sql")!.sql;
    await db.sql.script(file.slice(file.indexOf("-- Upgrading")));
    assert.deepEqual(await listed(), before);
    const hold = await noc.admin("POST", "/v1/admin/holds", { uid: a.uid, reason: "freeze" });
    assert.equal(hold.status, 201);
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "2" });
    assert.deepEqual(
      (await fetchCatalog(noc, a)).doc!.components.map((c) => `${c.name}@${c.version}`),
      ["pkg@1", "f@1"],
    );
  },
);
