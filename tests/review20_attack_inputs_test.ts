/**
 * Review of issue 20 (phased rollouts), attacker with the source: odd inputs to the rollout admin
 * API and the console get 4xx, never 500. PGlite, and PostgreSQL with TEST_DATABASE_URL.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { fleet, ref } from "./_rollouts.ts";

/** Every appliance at site s0. */
const s0 = () => "s0";

dbTest("review20: odd rollout inputs get 4xx, never 500", async ({ db }) => {
  const { noc } = await fleet(db, 12, [], {
    site: s0,
    tags: ["t"],
    components: [ref("1"), ref("2"), ref("3")],
  });
  const phases = [{ count: 2, soakS: 0 }, { percent: 100, soakS: 0 }];
  const base = { component: ref("2"), target: { type: "all" }, phases };
  const bodies: unknown[] = [
    { ...base, note: "a\u0000b" },
    { ...base, previousVersion: "a\u0000b" },
    { ...base, target: { type: "tag", value: "a\u0000b" } },
    { ...base, target: { type: "appliance", value: "not-a-uuid" } },
    { ...base, phases: [{ count: 10_000_000, soakS: 0 }] },
    { ...base, phases: [{ percent: 1e-300, soakS: 0 }, { percent: 100, soakS: 0 }] },
    { ...base, phases: [{ count: 1, soakS: 0, stop: { minSample: 100000 } }] },
    {
      ...base,
      phases: [{
        count: 1,
        soakS: 0,
        gates: { metric: { path: "app.a.b.c.d.e.f.g.h", maxRisePercent: 100000 } },
      }],
    },
    { ...base, component: { ...ref("2"), version: "x".repeat(300) } },
  ];
  const seen: string[] = [];
  for (const b of bodies) {
    const r = await noc.admin("POST", "/v1/admin/rollouts", b);
    seen.push(`${r.status} ${JSON.stringify(b).slice(0, 80)}`);
    if (r.status === 201) {
      const c = await noc.admin("POST", `/v1/admin/rollouts/${r.body.id}/cancel`, {});
      assert.equal(c.status, 200, JSON.stringify(c.body));
    }
  }
  const gets = [
    "/v1/admin/rollouts/99999999999999999999",
    "/v1/admin/rollouts/9223372036854775807",
    "/v1/admin/rollouts/1/appliances?phase=9",
    "/v1/admin/rollouts/1/appliances?after=00000000-0000-0000-0000-000000000000&state=not_sent,running",
    "/v1/admin/rollouts/1/appliances?limit=1000&state=not_sent",
    "/v1/admin/rollouts?cursor=999999999999999999",
    "/v1/admin/rollouts?state=running,",
    "/v1/admin/rollouts?limit=1e3",
  ];
  for (const g of gets) {
    const r = await noc.admin("GET", g);
    seen.push(`${r.status} GET ${g}`);
  }
  for (const a of ["pause", "resume", "advance", "cancel"]) {
    for (const body of [undefined, { note: "x".repeat(501) }, { note: "a\u0000b" }, []]) {
      const r = await noc.admin("POST", `/v1/admin/rollouts/1/${a}`, body);
      seen.push(`${r.status} POST ${a} ${JSON.stringify(body)?.slice(0, 30)}`);
    }
  }
  const fives = seen.filter((s) => s.startsWith("5"));
  assert.deepEqual(fives, [], seen.join("\n"));
});

dbTest(
  "review20: every rollout write is audited with its actor and the rollout as target",
  async ({ db }) => {
    const { noc } = await fleet(db, 6, [], {
      site: s0,
      components: [ref("1"), ref("2")],
      assignments: [],
    });
    const c = await noc.admin("POST", "/v1/admin/rollouts", {
      component: ref("2"),
      target: { type: "all" },
      phases: [{ count: 2, soakS: 0 }, { count: 4, soakS: 0 }, { percent: 100, soakS: 0 }],
    });
    assert.equal(c.status, 201);
    const id = String(c.body.id);
    for (const a of ["pause", "resume", "advance", "cancel", "resume"]) {
      await noc.admin("POST", `/v1/admin/rollouts/${id}/${a}`, { note: a });
    }
    const rows = await db.sql<{ actor: string; path: string; targets: unknown; status: number }>`
    select actor, path, affected as targets, status from audit_log where path like '/v1/admin/rollouts%'
    order by id`;
    assert.equal(rows.length, 6, JSON.stringify(rows));
    for (const r of rows) {
      assert.ok(r.actor, JSON.stringify(r));
      assert.ok(JSON.stringify(r.targets).includes(id), JSON.stringify(r));
    }
    assert.deepEqual(rows.map((r) => r.status), [201, 200, 200, 200, 200, 409]);
  },
);
