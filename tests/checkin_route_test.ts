/**
 * `POST /v1/checkin` (noc/http/v1/checkin.ts): a beat and the catalog in one signed request, with
 * every check of the two routes it joins.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, type TestAppliance, type TestNoc, testNoc } from "./_harness.ts";
import { verifyCatalog, verifyCatalogBinding } from "../protocol/catalog.ts";
import { createApp } from "../noc/app.ts";

/** Sends a combined check-in of `a` (signed; `etag` as If-None-Match) and reads its answer. */
async function checkin(
  noc: TestNoc,
  a: TestAppliance,
  seq: number,
  opts: { etag?: string; nonce?: string; beat?: Record<string, unknown> } = {},
) {
  const nonce = opts.nonce ?? crypto.randomUUID();
  const req = await a.request(
    "POST",
    "/v1/checkin",
    opts.beat ?? sampleBeat(seq, noc.clock.now()),
    { nonce },
  );
  const h = new Headers(req.headers);
  if (opts.etag) h.set("if-none-match", opts.etag);
  const signed = new Request(req.url, { method: "POST", headers: h, body: await req.text() });
  const res = await noc.app.request(signed.clone());
  return { res, body: await res.json(), nonce, signed };
}

async function beatsOf(noc: TestNoc, uid: string) {
  const [row] = await noc.deps.db.sql<{ last_seq: number | null; last_catalog_at: Date | null }>`
    select last_seq, last_catalog_at from appliances where uid = ${uid}`;
  return row!;
}

dbTest(
  "POST /v1/checkin records the beat and answers a catalog bound to its nonce; its ETag gets null",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const first = await checkin(noc, a, 1);
    assert.equal(first.res.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.receipt.uid, a.uid);
    assert.equal(typeof first.body.receipt.nextDueAt, "string");
    assert.equal(first.res.headers.get("cache-control"), "no-store");
    const text = first.body.catalog as string;
    assert.equal(typeof text, "string");
    const options = { pinned: a.enrollment.nocKeys, uid: a.uid, now: noc.clock.now() };
    const binding = first.res.headers.get("catalog-binding");
    await verifyCatalogBinding(binding, { ...options, nonce: first.nonce, body: text });
    const doc = await verifyCatalog(text, { ...options, lastSerial: 0 });
    assert.equal(doc.uid, a.uid);
    const row = await beatsOf(noc, a.uid);
    assert.equal(row.last_seq, 1);
    assert.ok(row.last_catalog_at, "the catalog request is archived");

    // The same catalog again, a minute later: null, and the binding covers the copy the
    // appliance holds. (The clock moves, so a catalog built again would differ: its expiry.)
    const etag = first.res.headers.get("etag")!;
    noc.clock.advance(60);
    const second = await checkin(noc, a, 2, { etag });
    assert.equal(second.res.status, 200);
    assert.equal(second.body.catalog, null);
    assert.equal(second.res.headers.get("etag"), etag);
    await verifyCatalogBinding(second.res.headers.get("catalog-binding"), {
      ...options,
      nonce: second.nonce,
      body: text,
    });
    // A binding is for its own request only: the first one's does not pass for the second.
    await assert.rejects(() =>
      verifyCatalogBinding(binding, { ...options, nonce: second.nonce, body: text })
    );
    assert.equal((await beatsOf(noc, a.uid)).last_seq, 2);
    // A stale ETag gets the catalog again: the one stored, not one built anew.
    noc.clock.advance(60);
    const third = await checkin(noc, a, 3, { etag: `"${"0".repeat(64)}"` });
    assert.equal(third.body.catalog, text);
  },
);

dbTest(
  "a replayed POST /v1/checkin is refused 401 replayed_signature and records nothing",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const first = await checkin(noc, a, 1);
    assert.equal(first.res.status, 200);
    const before = await beatsOf(noc, a.uid);
    const again = await noc.app.request(first.signed.clone());
    assert.equal(again.status, 401);
    assert.equal((await again.json()).error, "replayed_signature");
    assert.deepEqual(await beatsOf(noc, a.uid), before);
    // The same nonce under a fresh signature of another beat is refused too.
    const reused = await checkin(noc, a, 2, { nonce: first.nonce });
    assert.equal(reused.res.status, 401);
    assert.equal(reused.body.error, "replayed_signature");
    assert.equal((await beatsOf(noc, a.uid)).last_seq, 1);
  },
);

dbTest(
  "POST /v1/checkin with a bad beat is 400 invalid_body naming the field, and serves no catalog",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const bad = await checkin(noc, a, 1, { beat: { ...sampleBeat(1, noc.clock.now()), seq: -1 } });
    assert.equal(bad.res.status, 400);
    assert.equal(bad.body.error, "invalid_body");
    assert.match(JSON.stringify(bad.body), /seq/);
    assert.equal(bad.res.headers.get("catalog-binding"), null);
    const row = await beatsOf(noc, a.uid);
    assert.equal(row.last_seq, null);
    assert.equal(row.last_catalog_at, null);
    // Unsigned: 401 before anything is read.
    const res = await noc.app.request("http://noc.test/v1/checkin", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(sampleBeat(1, noc.clock.now())),
    });
    assert.equal(res.status, 401);
    assert.equal(typeof (await res.json()).error, "string");
  },
);

dbTest(
  "a NOC whose roles are split answers /v1/checkin 404; a separate catalog server is named, not served",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    for (const role of ["noc", "catalog", "component"] as const) {
      const app = createApp(noc.deps, { role });
      const req = await a.request("POST", "/v1/checkin", sampleBeat(1, noc.clock.now()));
      const res = await app.request(req);
      assert.equal(res.status, 404, role);
      assert.equal((await res.json()).error, "not_found");
      const doc = await (await app.request("http://noc.test/openapi.json")).json();
      assert.equal(doc.paths["/v1/checkin"], undefined, role);
    }
    const apart = await testNoc(db, { settings: { catalogUrl: "https://catalogs.example" } });
    const b = await apart.enrollAppliance();
    const res = await checkin(apart, b, 1);
    assert.equal(res.res.status, 200);
    assert.equal(res.body.receipt.catalogUrl, "https://catalogs.example");
    assert.equal("catalog" in res.body, false);
    assert.equal(res.res.headers.get("catalog-binding"), null);
    assert.equal((await beatsOf(apart, b.uid)).last_seq, 1);
  },
);
