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
import { rolloutHealth } from "../noc/services/rollouts.ts";

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
    const text = await r.text();
    return {
      status: r.status,
      body: r.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text,
    };
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

/** A local server's sync body, with `url`. */
const syncBody = (url: string) => ({
  url,
  version: "test",
  cache: { bytes: 0, limit: 0, entries: 0 },
  hits: 0,
  misses: 0,
  servedBytes: 0,
  pendingRecords: 0,
  problems: [],
});

/** Downloads `url` (a catalog URL, over https); returns the status and JSON error, if any. */
async function get(noc: TestNoc, url: string): Promise<{ status: number; error?: string }> {
  const res = await noc.app.request(url.replace("http://", "https://"));
  if (res.status === 200) {
    await res.body?.cancel();
    return { status: 200 };
  }
  return { status: res.status, error: (await res.json()).error };
}

const entryOf = async (noc: TestNoc, a: TestAppliance, app: string) =>
  (await fetchCatalog(noc, a)).doc!.components.find((c) => c.app === app);

dbTest(
  "a held appliance is never rolled back by a local server's records, URL changes or an old grant",
  async ({ db }) => {
    const noc = await testNoc(db);
    const c = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "s" }) });
    const target = { type: "site", value: "s" };
    const v1 = await publishAndAssign(
      noc,
      { app: "app", name: "core", version: "1.0.0" },
      undefined,
      target,
    );
    const e1 = (await entryOf(noc, c, "app"))!;
    assert.equal((await get(noc, e1.urls.at(-1)!)).status, 200);
    await publishAndAssign(noc, { app: "app", name: "core", version: "2.0.0" }, undefined, target);
    const e2 = (await entryOf(noc, c, "app"))!;
    assert.equal(e2.version, "2.0.0");
    assert.equal((await get(noc, e2.urls.at(-1)!)).status, 200);
    const local = await enrolLocal(noc, "s");
    const hold = await noc.admin("POST", "/v1/admin/holds", {
      uid: c.uid,
      app: "app",
      reason: "freeze",
    });
    assert.equal(hold.status, 201);
    assert.equal((await entryOf(noc, c, "app"))!.version, "2.0.0");

    // The site's local server reports C got 1.0.0 (a day ahead), then flaps its URL.
    noc.clock.advance(60);
    const r = await local("POST", "/v1/local/deliveries", {
      epoch: crypto.randomUUID(),
      records: [{
        seq: 1,
        uid: c.uid,
        componentId: v1.componentId,
        at: new Date(noc.clock.now().getTime() + 86400e3).toISOString(),
      }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (let i = 0; i < 4; i++) {
      noc.clock.advance(3600);
      const s = await local("POST", "/v1/local/sync", syncBody(`https://ls${i % 2}.example`));
      assert.equal(s.status, 200, JSON.stringify(s.body));
    }
    const held = (await fetchCatalog(noc, c)).doc!;
    assert.ok(held.components[0]!.urls[0]!.startsWith("https://ls1.example/"), "rebuilt");
    assert.deepEqual(held.components.map((x) => `${x.name}@${x.version}`), ["core@2.0.0"]);
    // And whoever holds C's old 1.0.0 grant (not expired) fetches it: refused, nothing recorded.
    const [before] = await db.sql`
      select last_sent_at from deliveries where uid = ${c.uid} and component_id = ${v1.componentId}`;
    assert.deepEqual(await get(noc, e1.urls.at(-1)!), { status: 403, error: "not_in_catalog" });
    const [after] = await db.sql`
      select last_sent_at from deliveries where uid = ${c.uid} and component_id = ${v1.componentId}`;
    assert.deepEqual(after, before);
    // Nor does a record take it back without a hold: a paused assignment of 1.0.0 to C alone
    // (a rollback staged, not started) reaches no appliance that is not on 1.0.0 now.
    await noc.admin("DELETE", `/v1/admin/holds/${hold.body.id}`);
    const back = await noc.admin("POST", "/v1/admin/assignments", {
      kind: "package",
      app: "app",
      name: "core",
      version: "1.0.0",
      target: { type: "appliance", value: c.uid },
    });
    assert.equal(back.status, 201, JSON.stringify(back.body));
    await noc.admin("PATCH", `/v1/admin/assignments/${back.body.id}`, { paused: true });
    assert.equal((await entryOf(noc, c, "app"))!.version, "2.0.0");
  },
);

dbTest(
  "a grant stops working when its appliance moves away; unsigned it records only for that appliance",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "a" }) });
    const b = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "b" }) });
    const { componentId } = await publishAndAssign(
      noc,
      { app: "appa", name: "core", version: "1" },
      undefined,
      { type: "site", value: "a" },
    );
    const url = (await entryOf(noc, a, "appa"))!.urls.at(-1)!.replace("http://", "https://");
    const signedBy = async (x: TestAppliance) => {
      const u = new URL(url);
      const req = await x.request("GET", u.pathname + u.search);
      const res = await noc.app.request(new Request(url, { headers: req.headers }));
      return {
        status: res.status,
        body: res.status === 200 ? await res.body?.cancel() : await res.json(),
      };
    };
    const deliveries = () =>
      db.sql<{ uid: string; times: number }>`
        select uid, times from deliveries where component_id = ${componentId} order by uid`;
    // B with A's grant, signed: refused. Unsigned (as a mirror fetches for A): served, for A alone.
    assert.equal((await signedBy(b)).body.error, "wrong_appliance");
    assert.equal((await get(noc, url)).status, 200);
    assert.deepEqual((await deliveries()).map((d) => d.uid), [a.uid]);
    // A moves to site b: its next catalog drops the application, and its old grant (not expired)
    // is refused from then on, signed or not, and records nothing.
    assert.equal(
      (await noc.admin("PATCH", `/v1/admin/appliances/${a.uid}`, { site: "b" })).status,
      200,
    );
    assert.equal(await entryOf(noc, a, "appa"), undefined);
    const recorded = await deliveries();
    assert.deepEqual(await get(noc, url), { status: 403, error: "not_in_catalog" });
    assert.equal((await signedBy(a)).body.error, "not_in_catalog");
    assert.deepEqual(await deliveries(), recorded);
  },
);

dbTest(
  "a hold freezes only what is assigned now: it never gives back a site the appliance left",
  async ({ db }) => {
    const noc = await testNoc(db);
    const lb = await enrolLocal(noc, "b");
    const a1 = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "a" }) });
    const a2 = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "a" }) });
    const { componentId } = await publishAndAssign(
      noc,
      { app: "appa", name: "core", version: "1" },
      undefined,
      { type: "site", value: "a" },
    );
    await publishAndAssign(noc, { app: "appb", name: "core", version: "1" }, undefined, {
      type: "site",
      value: "b",
    });
    for (const x of [a1, a2]) {
      assert.equal((await get(noc, (await entryOf(noc, x, "appa"))!.urls[0]!)).status, 200);
    }
    // a1 moves to b and takes its catalog, then is held; a2 moves and is held before it asks.
    for (const x of [a1, a2]) {
      assert.equal(
        (await noc.admin("PATCH", `/v1/admin/appliances/${x.uid}`, { site: "b" })).status,
        200,
      );
      if (x === a1) assert.equal(await entryOf(noc, x, "appa"), undefined);
      const hold = await noc.admin("POST", "/v1/admin/holds", {
        uid: x.uid,
        reason: "investigate",
      });
      assert.equal(hold.status, 201);
    }
    assert.deepEqual((await fetchCatalog(noc, a1)).doc!.components.map((c) => c.app), ["appb"]);
    assert.deepEqual((await fetchCatalog(noc, a2)).doc!.components.map((c) => c.app), []);
    const s = await lb("POST", "/v1/local/sync", syncBody("https://cache.example:8443"));
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.ok(!s.body.stage.some((i: any) => i.id === componentId), JSON.stringify(s.body.stage));
  },
);

dbTest(
  "a local server's URL change rebuilds only its site's catalogs, at most once per 15 minutes",
  async ({ db }) => {
    const noc = await testNoc(db);
    const mine = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "s1" }) });
    const other = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "s2" }) });
    await publishAndAssign(noc, { app: "app", name: "core", version: "1" });
    const local = await enrolLocal(noc, "s1");
    const first = { mine: await fetchCatalog(noc, mine), other: await fetchCatalog(noc, other) };
    const epoch = async () => Number((await db.sql`select epoch from catalog_epoch`)[0]!.epoch);
    const epochBefore = await epoch();
    const mirrorOf = async () => {
      const r = await fetchCatalog(noc, mine);
      return new URL(r.doc!.components[0]!.urls[0]!).origin;
    };
    noc.clock.advance(1);
    const sync = (url: string) => local("POST", "/v1/local/sync", syncBody(url));
    assert.equal((await sync("https://new.example")).status, 200);
    assert.equal(await mirrorOf(), "https://new.example");
    // The other site's appliance keeps its cached catalog: a 304, not rebuilt.
    const again = await fetchCatalog(noc, other, { etag: first.other.etag! });
    assert.equal(again.status, 304);
    assert.equal(await epoch(), epochBefore, "the fleet-wide epoch is untouched");
    // Flapping: a change within 15 minutes is not taken; after them, it is.
    noc.clock.advance(14 * 60);
    const etag = (await fetchCatalog(noc, mine)).etag!;
    assert.equal((await sync("https://flap.example")).status, 200);
    assert.equal((await fetchCatalog(noc, mine, { etag })).status, 304);
    const [stored] = await db.sql`select url from local_servers`;
    assert.equal(stored!.url, "https://new.example");
    noc.clock.advance(60);
    assert.equal((await sync("https://flap.example")).status, 200);
    assert.equal(await mirrorOf(), "https://flap.example");
    assert.equal((await fetchCatalog(noc, other, { etag: first.other.etag! })).status, 304);
  },
);

dbTest(
  "a local server learns only its own site's revoked appliances, and those that left it",
  async ({ db }) => {
    const noc = await testNoc(db);
    const local = await enrolLocal(noc, "s1");
    const inSite = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "s1" }) });
    const left = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "s1" }) });
    const elsewhere = await noc.enrollAppliance({
      token: await noc.enrollmentToken({ site: "s2" }),
    });
    const kept = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "s1" }) });
    assert.equal(
      (await noc.admin("PATCH", `/v1/admin/appliances/${left.uid}`, { site: "s2" })).status,
      200,
    );
    for (const x of [inSite, left, elsewhere]) {
      const r = await noc.admin("POST", `/v1/admin/appliances/${x.uid}/revoke`, {
        reason: "stolen",
      });
      assert.equal(r.status, 200);
    }
    const s = await local("POST", "/v1/local/sync", syncBody("https://cache.example:8443"));
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.deepEqual(s.body.revoked, [inSite.uid, left.uid].sort());
    assert.ok(!s.body.revoked.includes(kept.uid));
    // Past the revocation window (longer than any grant lives), the departed one drops off.
    noc.clock.advance(31 * 86400);
    const later = await local("POST", "/v1/local/sync", syncBody("https://cache.example:8443"));
    assert.deepEqual(later.body.revoked, []);
  },
);

dbTest(
  "a local server that stops syncing cannot fetch what its site's catalogs since dropped",
  async ({ db }) => {
    const noc = await testNoc(db);
    const local = await enrolLocal(noc, "lab");
    await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
    const { componentId, assignmentId } = await publishAndAssign(
      noc,
      { app: "app", name: "core", version: "1" },
      undefined,
      { type: "site", value: "lab" },
    );
    const s = await local("POST", "/v1/local/sync", syncBody("https://cache.example:8443"));
    assert.deepEqual(s.body.stage.map((i: any) => i.id), [componentId]);
    const fetchIt = async () => {
      const r = await local("GET", `/v1/local/components/${componentId}`);
      return r.status === 200 ? { status: 200 } : { status: r.status, error: r.body.error };
    };
    assert.equal((await fetchIt()).status, 200);
    // The release is withdrawn; the server never syncs again. Within a few syncs' time its stage
    // still counts; after that, nothing it did not sync for.
    assert.equal((await noc.admin("DELETE", `/v1/admin/assignments/${assignmentId}`)).status, 204);
    noc.clock.advance(3 * 60 + 1);
    assert.deepEqual(await fetchIt(), { status: 403, error: "not_staged" });
  },
);

dbTest(
  "a local server's record counts for a version its appliance's catalog lists or dropped within the hour, never earlier",
  async ({ db }) => {
    const noc = await testNoc(db);
    const lab = async () => await noc.enrollmentToken({ site: "lab" });
    const x = await noc.enrollAppliance({ token: await lab() });
    const y = await noc.enrollAppliance({ token: await lab() });
    const ref = { kind: "package", app: "app", name: "pkg", version: "1" };
    const v1 = await publishAndAssign(noc, ref, undefined, { type: "site", value: "lab" });
    for (const a of [x, y]) await fetchCatalog(noc, a);
    const local = await enrolLocal(noc, "lab");
    const served = noc.clock.now().toISOString();
    // Version 2 replaces it: both appliances' catalogs drop version 1 now.
    await publishAndAssign(noc, { ...ref, version: "2" }, undefined, {
      type: "site",
      value: "lab",
    });
    for (const a of [x, y]) {
      assert.equal((await fetchCatalog(noc, a)).doc!.components[0]!.version, "2");
    }
    const failed = await noc.app.request(
      await x.request("POST", "/v1/installs", { results: [{ ...ref, outcome: "failed" }] }),
    );
    assert.equal(failed.status, 200);
    const epoch = crypto.randomUUID();
    const send = async (seq: number, uid: string) =>
      (await local("POST", "/v1/local/deliveries", {
        epoch,
        records: [{ seq, uid, componentId: v1.componentId, at: served }],
      })).body;
    // A genuine record sent late (the local server could not reach the NOC for 59 minutes).
    noc.clock.advance(59 * 60);
    const late = await send(1, x.uid);
    assert.equal(late.applied, 1, JSON.stringify(late));
    const health = await rolloutHealth(noc.deps, ref);
    assert.deepEqual([health.sent, health.failed], [1, 1], "the late record counts its outcome");
    // Past the hour, a record for a version the catalog dropped is refused and writes nothing.
    noc.clock.advance(2 * 60);
    const stale = await send(2, y.uid);
    assert.deepEqual(stale.refusedRecords, [
      { seq: 2, uid: y.uid, componentId: v1.componentId, reason: "not_in_catalog" },
    ]);
    const rows = await db.sql`
      select 1 from deliveries where uid = ${y.uid} and component_id = ${v1.componentId}`;
    assert.equal(rows.length, 0);
    assert.equal((await rolloutHealth(noc.deps, ref)).sent, 1, "sent does not rise");
    // Listed again (version 1 assigned to y alone, newer than the site's): accepted again.
    await noc.admin("POST", "/v1/admin/assignments", {
      ...ref,
      target: { type: "appliance", value: y.uid },
    });
    assert.equal((await fetchCatalog(noc, y)).doc!.components[0]!.version, "1");
    assert.equal((await send(3, y.uid)).applied, 1);
  },
);
