// deno-lint-ignore-file no-explicit-any
/**
 * Review 21 leftover: a catalog cut to the beat's components limit is a fleet-wide cause
 * (assignments name more than 2,000 distinct components), so the operator gets one
 * `catalog_over_limit` notice a day for the whole fleet, naming how many appliances' catalogs
 * were cut in the last 24 hours and a few of them — not one per appliance. Real catalog route.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { fetchCatalog, upload } from "./_components.ts";
import { BEAT_MAX_COMPONENTS } from "../protocol/schemas.ts";

/** 2,001 files assigned to all: one uploaded, the rest its rows copied (as made another way). */
async function overLimitFleet(noc: TestNoc): Promise<void> {
  const name = (i: number) => `f${String(i).padStart(4, "0")}`;
  const up = await upload(
    noc,
    `/v1/admin/files?app=bulk&name=${name(0)}&version=1`,
    new TextEncoder().encode("file 0\n"),
    "application/octet-stream",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const names = Array.from({ length: BEAT_MAX_COMPONENTS + 1 }, (_, i) => name(i));
  const db = noc.deps.db;
  await db.sql`
    insert into components (kind, app, name, version, blob_id, size, sha256, content_sha256,
      header, prefix, signer_kid, sealed_key, created_at)
    select c.kind, c.app, n, c.version, c.blob_id, c.size, c.sha256, c.content_sha256, c.header,
      c.prefix, c.signer_kid, c.sealed_key, c.created_at
    from components c, unnest(${names.slice(1)}::text[]) n
    where c.app = 'bulk' and c.name = ${name(0)}`;
  await db.sql`
    insert into assignments (kind, app, name, version, target_type, target_value,
      rollout_percent, min_sample, created_at, updated_at)
    select 'file', 'bulk', n, '1', 'all', null, 100, 5, ${noc.clock.now()}, ${noc.clock.now()}
    from unnest(${names}::text[]) n`;
}

async function notices(noc: TestNoc) {
  return await noc.deps.db.sql<{ uid: string; text: string; payload: any }>`
    select uid, text, payload from notices where kind = 'catalog_over_limit' order by id`;
}

dbTest(
  "catalogs cut to the components limit: one notice a day for the fleet, counting the appliances",
  async ({ db }) => {
    const noc = await testNoc(db);
    await overLimitFleet(noc);
    const fleet = [];
    for (let i = 1; i <= 8; i++) {
      fleet.push(await noc.enrollAppliance({ hostname: `mx-over-${String(i).padStart(2, "0")}` }));
    }
    for (const a of fleet) {
      const cat = await fetchCatalog(noc, a);
      assert.equal(cat.status, 200);
      assert.equal(cat.doc!.components.length, BEAT_MAX_COMPONENTS, "every catalog is cut");
      noc.clock.advance(60);
    }
    let sent = await notices(noc);
    assert.equal(sent.length, 1, "one notice for eight appliances cut by one cause");
    assert.equal(sent[0]!.uid, fleet[0]!.uid);
    assert.match(sent[0]!.text, /mx-over-01's catalog would list 2001 components/);
    assert.match(sent[0]!.text, /One notice a day for the whole fleet/);
    assert.equal(sent[0]!.payload.appliances, 1);

    // The next day: one more notice, naming how many were cut in the last 24 hours, and a few.
    noc.clock.advance(86400 - 8 * 60 + 30 * 60);
    await db.sql`update catalog_epoch set epoch = epoch + 1`;
    for (const a of fleet.slice(2)) {
      await fetchCatalog(noc, a);
      noc.clock.advance(60);
    }
    sent = await notices(noc);
    assert.equal(sent.length, 2, sent.map((n) => n.text).join("\n"));
    const day2 = sent[1]!;
    assert.equal(day2.uid, fleet[2]!.uid, "the first cut that day");
    // Every appliance cut since the first notice: 03 now, the others on the first day.
    assert.equal(day2.payload.appliances, 8, day2.text);
    assert.equal(day2.payload.examples.length, 5, "a few of them");
    assert.equal(day2.payload.examples[0].uid, fleet[2]!.uid);
    assert.match(day2.text, /mx-over-03's catalog would list 2001 components/);
    assert.match(day2.text, /8 appliances' catalogs were cut since the last such notice/);
    assert.match(
      day2.text,
      /\(also mx-over-\d\d, mx-over-\d\d, mx-over-\d\d, mx-over-\d\d and 3 more\)/,
    );
    // Until the next day, nothing more.
    noc.clock.advance(3600);
    await db.sql`update catalog_epoch set epoch = epoch + 1`;
    for (const a of fleet) await fetchCatalog(noc, a);
    assert.equal((await notices(noc)).length, 2);
  },
);
