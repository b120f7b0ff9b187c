// deno-lint-ignore-file no-explicit-any
/**
 * Issue 21 items 1 and 2, the NOC's side: every catalog announces the NOC's limits (signed, so an
 * agent fits its SecureBeat before sending), and the NOC accepts no assignment set an appliance
 * cannot report back: with 2,001 small files published through the real admin API, the 2,001st
 * distinct component's assignment is refused (409 `too_many_components`, naming the limit and the
 * count), and a catalog never lists more than the limit (a `catalog_over_limit` notice when the
 * assignments would make it).
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { fetchCatalog, upload } from "./_components.ts";
import { BEAT_MAX_COMPONENTS } from "../protocol/schemas.ts";
import { DEFAULT_REPORT_LIMITS } from "../protocol/catalog.ts";
import { capCatalog, type Chosen } from "../noc/services/catalog_engine.ts";

dbTest("every catalog carries the NOC's limits, signed", async ({ db }) => {
  const noc = await testNoc(db, { settings: { maxBodyBytes: 128 * 1024, maxAppDataBytes: 8192 } });
  const a = await noc.enrollAppliance();
  const cat = await fetchCatalog(noc, a);
  assert.equal(cat.status, 200);
  assert.deepEqual(cat.doc!.limits, {
    bodyBytes: 128 * 1024,
    appDataBytes: 8192,
    components: BEAT_MAX_COMPONENTS,
  });
  // A body cached without limits (built before this NOC knew them) is rebuilt, not served.
  const env = JSON.parse(cat.body);
  const doc = JSON.parse(env.catalog);
  delete doc.limits;
  await db.sql`update appliances set catalog_body = ${
    JSON.stringify({ ...env, catalog: JSON.stringify(doc) })
  } where uid = ${a.uid}`;
  const again = await fetchCatalog(noc, a, { lastSerial: cat.doc!.serial });
  assert.equal(again.status, 200);
  assert.deepEqual(again.doc!.limits, cat.doc!.limits);

  // The defaults are the ones an agent assumes of a NOC that announces none.
  const plain = await testNoc(db);
  const b = await plain.enrollAppliance();
  assert.deepEqual((await fetchCatalog(plain, b)).doc!.limits, DEFAULT_REPORT_LIMITS);
});

dbTest(
  "2,001 small files: the assignment past the beat's components limit is refused, and no catalog lists more",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-many-01" });
    const total = BEAT_MAX_COMPONENTS + 1;
    const name = (i: number) => `f${String(i).padStart(4, "0")}`;
    // The first and the last two files are uploaded and assigned through the admin API; the
    // 1,998 between are copies of the first's rows written straight into the tables (the same
    // rows the API writes: a component, an assignment to all), so the test costs seconds, not
    // minutes, while the refusal and the catalogs are the real routes'.
    const through = [0, BEAT_MAX_COMPONENTS - 1, BEAT_MAX_COMPONENTS];
    for (const i of through) {
      const up = await upload(
        noc,
        `/v1/admin/files?app=bulk&name=${name(i)}&version=1`,
        new TextEncoder().encode(`file ${i}\n`),
        "application/octet-stream",
      );
      assert.equal(up.status, 201, JSON.stringify(up.body));
    }
    const assign = (i: number, version = "1") =>
      noc.admin("POST", "/v1/admin/assignments", {
        kind: "file",
        app: "bulk",
        name: name(i),
        version,
        target: { type: "all" },
      });
    assert.equal((await assign(0)).status, 201);
    const between = Array.from({ length: BEAT_MAX_COMPONENTS - 2 }, (_, k) => name(k + 1));
    await db.sql`
      insert into components (kind, app, name, version, blob_id, size, sha256, content_sha256,
        header, prefix, signer_kid, sealed_key, created_at)
      select c.kind, c.app, n, c.version, c.blob_id, c.size, c.sha256, c.content_sha256, c.header,
        c.prefix, c.signer_kid, c.sealed_key, c.created_at
      from components c, unnest(${between}::text[]) n
      where c.app = 'bulk' and c.name = ${name(0)}`;
    await db.sql`
      insert into assignments (kind, app, name, version, target_type, target_value,
        rollout_percent, min_sample, created_at, updated_at)
      select 'file', 'bulk', n, '1', 'all', null, 100, 5, ${noc.clock.now()}, ${noc.clock.now()}
      from unnest(${between}::text[]) n`;
    const last = await assign(BEAT_MAX_COMPONENTS - 1);
    assert.equal(last.status, 201, `the 2,000th: ${JSON.stringify(last.body)}`);
    const refused = await assign(BEAT_MAX_COMPONENTS);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error, "too_many_components");
    assert.equal(refused.body.limit, BEAT_MAX_COMPONENTS);
    assert.equal(refused.body.components, total);
    assert.match(refused.body.message, /2001 distinct components/);
    assert.match(refused.body.message, /more than the 2000/);
    // Another assignment of an already assigned component adds none: accepted.
    const same = await noc.admin("POST", "/v1/admin/assignments", {
      kind: "file",
      app: "bulk",
      name: name(0),
      version: "1",
      target: { type: "appliance", value: a.uid },
    });
    assert.equal(same.status, 201, JSON.stringify(same.body));

    const cat = await fetchCatalog(noc, a);
    assert.equal(cat.status, 200);
    assert.equal(cat.doc!.components.length, BEAT_MAX_COMPONENTS);
    // So the appliance can report everything it was given.
    const beat = await a.beat({
      components: cat.doc!.components.map((c) => ({
        kind: c.kind,
        app: c.app,
        name: c.name,
        version: c.version,
      })),
    });
    assert.equal(beat.uid, a.uid);

    // An assignment made another way (straight into the table, as a phased rollout of a new
    // component could): the catalog is still cut to the limit, and the operator is told once.
    await db.sql`
      insert into assignments (kind, app, name, version, target_type, target_value,
        rollout_percent, min_sample, created_at, updated_at)
      values ('file', 'bulk', ${name(BEAT_MAX_COMPONENTS)}, '1', 'all', null, 100, 5,
        ${noc.clock.now()}, ${noc.clock.now()})`;
    await db.sql`update catalog_epoch set epoch = epoch + 1`;
    const over = await fetchCatalog(noc, a, { lastSerial: cat.doc!.serial });
    assert.equal(over.doc!.components.length, BEAT_MAX_COMPONENTS);
    assert.ok(
      !over.doc!.components.some((c) => c.name === name(BEAT_MAX_COMPONENTS)),
      "the last in catalog order is left out",
    );
    const notices = await db.sql<{ text: string; payload: any }>`
      select text, payload from notices where kind = 'catalog_over_limit'`;
    assert.equal(notices.length, 1);
    assert.match(notices[0]!.text, /mx-many-01's catalog would list 2001 components/);
    assert.equal(notices[0]!.payload.omitted, 1);
    const detail = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(detail.body.catalog.length, BEAT_MAX_COMPONENTS);
  },
);

Deno.test("capCatalog keeps the first entries in catalog order and counts the rest", () => {
  const row = (i: number) => ({ id: i, name: `n${i}` }) as unknown as Chosen;
  const list = capCatalog([row(1), row(2), row(3)], 2);
  assert.deepEqual(list.map((c) => c.id), [1, 2]);
  assert.equal(list.omitted, 1);
  assert.equal(capCatalog([row(1)], 2).omitted, 0);
});
