/**
 * Review 21 leftover: a phased rollout is an assignment too, so creating one for a new component
 * when assignments already name 2,000 distinct components (what a SecureBeat can report back) is
 * refused through the admin API with the same 409 `too_many_components` body as
 * `POST /v1/admin/assignments`; a rollout of a component already assigned is not.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { upload } from "./_components.ts";
import { BEAT_MAX_COMPONENTS } from "../protocol/schemas.ts";

const name = (i: number) => `f${String(i).padStart(4, "0")}`;

async function uploadFile(noc: TestNoc, fileName: string, version: string): Promise<void> {
  const up = await upload(
    noc,
    `/v1/admin/files?app=bulk&name=${fileName}&version=${version}`,
    new TextEncoder().encode(`${fileName} ${version}\n`),
    "application/octet-stream",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
}

dbTest(
  "a rollout of a new component past the components limit is refused 409, as an assignment is",
  async ({ db }) => {
    const noc = await testNoc(db);
    await noc.enrollAppliance({ hostname: "mx-roll-01" });
    // 2,000 distinct files assigned to all: one through the API, its rows copied for the rest.
    await uploadFile(noc, name(0), "1");
    const first = await noc.admin("POST", "/v1/admin/assignments", {
      kind: "file",
      app: "bulk",
      name: name(0),
      version: "1",
      target: { type: "all" },
    });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const rest = Array.from({ length: BEAT_MAX_COMPONENTS - 1 }, (_, k) => name(k + 1));
    await db.sql`
      insert into components (kind, app, name, version, blob_id, size, sha256, content_sha256,
        header, prefix, signer_kid, sealed_key, created_at)
      select c.kind, c.app, n, c.version, c.blob_id, c.size, c.sha256, c.content_sha256, c.header,
        c.prefix, c.signer_kid, c.sealed_key, c.created_at
      from components c, unnest(${rest}::text[]) n
      where c.app = 'bulk' and c.name = ${name(0)}`;
    await db.sql`
      insert into assignments (kind, app, name, version, target_type, target_value,
        rollout_percent, min_sample, created_at, updated_at)
      select 'file', 'bulk', n, '1', 'all', null, 100, 5, ${noc.clock.now()}, ${noc.clock.now()}
      from unnest(${rest}::text[]) n`;

    // A new component: the 2,001st.
    await uploadFile(noc, "newcomer", "1");
    const rollout = (n: string, version: string) =>
      noc.admin("POST", "/v1/admin/rollouts", {
        component: { kind: "file", app: "bulk", name: n, version },
        target: { type: "all" },
        phases: [{ count: 1, soakS: 0 }, { percent: 100, soakS: 0 }],
      });
    const refused = await rollout("newcomer", "1");
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.error, "too_many_components");
    assert.equal(refused.body.limit, BEAT_MAX_COMPONENTS);
    assert.equal(refused.body.components, BEAT_MAX_COMPONENTS + 1);
    // The same body as the assignment route's.
    const viaAssignment = await noc.admin("POST", "/v1/admin/assignments", {
      kind: "file",
      app: "bulk",
      name: "newcomer",
      version: "1",
      target: { type: "all" },
    });
    assert.equal(viaAssignment.status, 409);
    assert.deepEqual(refused.body, viaAssignment.body);
    // Nothing was written: no rollout, no assignment of it.
    assert.equal((await noc.admin("GET", "/v1/admin/rollouts")).body.items.length, 0);
    const [left] = await db.sql<{ n: number }>`
      select count(*)::int as n from assignments where name = 'newcomer'`;
    assert.equal(left!.n, 0);

    // A new version of a component already assigned adds none: its rollout starts.
    await uploadFile(noc, name(0), "2");
    const fine = await rollout(name(0), "2");
    assert.equal(fine.status, 201, JSON.stringify(fine.body));
  },
);
