// deno-lint-ignore-file no-explicit-any
/** The NOC's local component server API, in process: enrolment, sync, fetches, records, admin. */
import assert from "node:assert/strict";
import { count, dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { fetchCatalog, publishAndAssign } from "./_components.ts";
import { exportRawPublic, generateEd25519 } from "../protocol/crypto/ed25519.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { signedRequest } from "../protocol/client.ts";

const base = "http://noc.test";

async function enrolLocal(noc: TestNoc, site = "lab", url = "https://cache.lab.example:8443") {
  const pair = await generateEd25519();
  const token = await noc.enrollmentToken({ purpose: "local-server", site });
  const res = await noc.app.request(`${base}/v1/local/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      token,
      name: "cache-1",
      url,
      signingKey: toBase64Url(await exportRawPublic(pair.publicKey)),
    }),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  const call = async (method: string, path: string, payload?: unknown) => {
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
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: r.status, body: json, headers: r.headers };
  };
  return { id: body.id as string, call };
}

const status = (over: Record<string, unknown> = {}) => ({
  url: "https://cache.lab.example:8443",
  version: "1.0.0",
  cache: { bytes: 10, limit: 100, entries: 1 },
  hits: 3,
  misses: 1,
  servedBytes: 30,
  pendingRecords: 0,
  problems: [],
  ...over,
});

dbTest("tokens are for an appliance or a local server, never both", async ({ db }) => {
  const noc = await testNoc(db);
  const noSite = await noc.admin("POST", "/v1/admin/enrollment-tokens", {
    purpose: "local-server",
  });
  assert.equal(noSite.status, 400);
  assert.match(JSON.stringify(noSite.body), /site/);
  const localToken = await noc.enrollmentToken({ purpose: "local-server", site: "lab" });
  await assert.rejects(noc.enrollAppliance({ token: localToken }), /wrong_token_purpose/);
  const pair = await generateEd25519();
  const res = await noc.app.request(`${base}/v1/local/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      token: await noc.enrollmentToken({ site: "lab" }),
      name: "cache-1",
      url: "https://cache.lab.example",
      signingKey: toBase64Url(await exportRawPublic(pair.publicKey)),
    }),
  });
  assert.equal(res.status, 401);
  assert.equal((await res.json()).error, "wrong_token_purpose");
  assert.equal(await count(db, "appliances"), 0);
  assert.equal((await db.sql`select 1 from local_servers`).length, 0);
});

dbTest(
  "catalogs of a site list its local server first; revoking it takes it out",
  async ({ db }) => {
    const noc = await testNoc(db);
    await publishAndAssign(noc, { app: "demo", name: "demo", version: "1.0.0" });
    const inLab = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
    const elsewhere = await noc.enrollAppliance();
    const local = await enrolLocal(noc);
    const lab = await fetchCatalog(noc, inLab);
    const urls = lab.doc!.components[0]!.urls;
    assert.equal(urls.length, 2);
    assert.ok(urls[0]!.startsWith("https://cache.lab.example:8443/v1/components/"), urls[0]);
    assert.ok(urls[1]!.startsWith("https://noc.test/v1/components/"), urls[1]);
    assert.equal((await fetchCatalog(noc, elsewhere)).doc!.components[0]!.urls.length, 1);

    const revoked = await noc.admin("POST", `/v1/admin/local-servers/${local.id}/revoke`, {
      reason: "stolen",
    });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body.state, "revoked");
    assert.equal((await fetchCatalog(noc, inLab)).doc!.components[0]!.urls.length, 1);
    const refused = await local.call("POST", "/v1/local/sync", status());
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error, "revoked_key");
  },
);

dbTest(
  "sync reports the server and answers its site's stage; bad reports are refused",
  async ({ db }) => {
    const noc = await testNoc(db);
    // Assigned before the site has appliances, tokens or a local server: said explicitly.
    const early = { allowUnknownTarget: true };
    const { componentId } = await publishAndAssign(
      noc,
      { app: "demo", name: "demo", version: "1.0.0" },
      undefined,
      { type: "site", value: "lab" },
      early,
    );
    await publishAndAssign(noc, { app: "demo", name: "other", version: "1.0.0" }, undefined, {
      type: "site",
      value: "elsewhere",
    }, early);
    await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
    const local = await enrolLocal(noc);
    const r = await local.call("POST", "/v1/local/sync", status());
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.stage.map((s: any) => s.id), [componentId]);
    assert.ok(r.body.keys.length >= 1);

    for (
      const [bad, field] of [
        [status({ url: "http://cache.lab.example" }), "url"],
        [status({ hits: -1 }), "hits"],
        [status({ problems: [{ code: "x", message: "y" }] }), "problems"],
      ] as const
    ) {
      const res = await local.call("POST", "/v1/local/sync", bad);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match(JSON.stringify(res.body), new RegExp(field));
    }
    const listed = await noc.admin("GET", "/v1/admin/local-servers");
    assert.equal(listed.body.items.length, 1);
    assert.equal(listed.body.items[0].hits, 3);
    assert.equal(listed.body.items[0].hitRate, 0.75);
    assert.equal(listed.body.items[0].cache.staged, 1);

    // A problem it reports reaches the operator.
    const p = await local.call(
      "POST",
      "/v1/local/sync",
      status({
        problems: [{
          code: "cache_digest_mismatch",
          message: "changed on disk",
          componentId,
          at: noc.clock.now().toISOString(),
        }],
      }),
    );
    assert.equal(p.status, 200);
    const [notice] = await db.sql<{ kind: string }>`select kind from notices`;
    assert.equal(notice?.kind, "local_server_problem");
  },
);

dbTest(
  "a local server fetches only what its site references, or with a grant of its site",
  async ({ db }) => {
    const noc = await testNoc(db);
    const { componentId } = await publishAndAssign(noc, {
      app: "demo",
      name: "demo",
      version: "1",
    });
    const outsider = await noc.enrollAppliance();
    const local = await enrolLocal(noc);
    const before = await local.call("GET", `/v1/local/components/${componentId}`);
    assert.equal(before.status, 403);
    assert.equal(before.body.error, "not_staged");
    // A grant of an appliance outside its site does not open it either.
    const grant = new URL((await fetchCatalog(noc, outsider)).doc!.components[0]!.urls[0]!)
      .searchParams.get("grant")!;
    const wrong = await local.call("GET", `/v1/local/components/${componentId}?grant=${grant}`);
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.error, "wrong_site");

    await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
    assert.equal((await local.call("POST", "/v1/local/sync", status())).status, 200);
    const ok = await local.call("GET", `/v1/local/components/${componentId}`);
    assert.equal(ok.status, 200);
    const meta = JSON.parse(ok.headers.get("x-noc-component")!);
    assert.equal(meta.id, componentId);
    assert.equal(meta.kind, "package");
    const [f] = await db.sql<{ times: number }>`select times from local_server_fetches`;
    assert.equal(f?.times, 1);
  },
);

dbTest(
  "download records are applied once, only for the server's site and its catalogs, never in the future",
  async ({ db }) => {
    const noc = await testNoc(db);
    const { componentId } = await publishAndAssign(noc, {
      app: "demo",
      name: "demo",
      version: "1",
    });
    // Published and assigned to another site only: never in a catalog of the lab's appliances.
    const { componentId: elsewhere } = await publishAndAssign(
      noc,
      { app: "other", name: "other", version: "1" },
      undefined,
      { type: "site", value: "hq" },
      { allowUnknownTarget: true },
    );
    const a = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
    const outsider = await noc.enrollAppliance();
    await fetchCatalog(noc, a);
    const local = await enrolLocal(noc);
    const at = noc.clock.now().toISOString();
    const future = new Date(noc.clock.now().getTime() + 86_400_000).toISOString();
    const epoch = crypto.randomUUID();
    const batch = {
      epoch,
      records: [
        { seq: 1, uid: a.uid, componentId, at },
        { seq: 2, uid: a.uid, componentId, at: future },
        { seq: 3, uid: outsider.uid, componentId, at },
        { seq: 4, uid: a.uid, componentId: 999999, at },
        { seq: 5, uid: a.uid, componentId: elsewhere, at },
      ],
    };
    const first = await local.call("POST", "/v1/local/deliveries", batch);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(first.body, {
      acked: 5,
      applied: 2,
      duplicates: 0,
      refused: 3,
      refusedRecords: [
        { seq: 3, uid: outsider.uid, componentId, reason: "not_in_site" },
        { seq: 4, uid: a.uid, componentId: 999999, reason: "not_in_catalog" },
        { seq: 5, uid: a.uid, componentId: elsewhere, reason: "not_in_catalog" },
      ],
    });
    const again = await local.call("POST", "/v1/local/deliveries", batch);
    assert.deepEqual(again.body, {
      acked: 5,
      applied: 0,
      duplicates: 5,
      refused: 0,
      refusedRecords: [],
    });
    const rows = await db.sql<{ uid: string; times: number; via: string; last_sent_at: Date }>`
    select uid, times, via, last_sent_at from deliveries`;
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.uid, a.uid);
    assert.equal(rows[0]!.times, 2);
    assert.equal(rows[0]!.via, local.id);
    assert.ok(rows[0]!.last_sent_at.getTime() <= noc.clock.now().getTime());

    // A journal started afresh (a new epoch) numbers from 1 again, and is not taken for the old one.
    const fresh = await local.call("POST", "/v1/local/deliveries", {
      epoch: crypto.randomUUID(),
      records: [{ seq: 1, uid: a.uid, componentId, at }],
    });
    assert.deepEqual(fresh.body, {
      acked: 1,
      applied: 1,
      duplicates: 0,
      refused: 0,
      refusedRecords: [],
    });
    const [after] = await db.sql<{ times: number }>`select times from deliveries`;
    assert.equal(after!.times, 3);

    const bad = await local.call("POST", "/v1/local/deliveries", { epoch, records: [{ seq: 0 }] });
    assert.equal(bad.status, 400);
  },
);
