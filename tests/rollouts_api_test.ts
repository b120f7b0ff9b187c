/**
 * Issue 20: the phased rollout admin API (`/v1/admin/rollouts`) through `app.request()`: create,
 * list, read, members, the operator's actions with their notes and actors in the timeline, the
 * refusals (400 naming the field, 404, 409 `rollout_state`/`rollout_exists`), and the plain
 * assignment routes refusing (409 `managed_by_rollout`) to change or delete an assignment an
 * active rollout manages. PGlite, and PostgreSQL with TEST_DATABASE_URL.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc } from "./_harness.ts";
import { fleet as seeded, ref } from "./_rollouts.ts";
import type { Db } from "../noc/db/db.ts";

/** 40 appliances, app/pkg 1 and 2 published, 1 assigned to all. */
const fleet = async (db: Db): Promise<TestNoc> =>
  (await seeded(db, 40, [], { components: [ref("1"), ref("2")] })).noc;

const body = {
  component: ref("2"),
  target: { type: "all" },
  phases: [{ count: 4, soakS: 3600 }, { percent: 50, soakS: 3600 }, { percent: 100, soakS: 0 }],
  rollback: true,
  note: "canary first",
};

dbTest("rollouts API: create, list, read, members, actions in the timeline", async ({ db }) => {
  const noc = await fleet(db);
  const created = await noc.admin("POST", "/v1/admin/rollouts", body);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  assert.equal(created.body.state, "running");
  assert.equal(created.body.previousVersion, "1");
  assert.equal(created.body.phases[0].members, 4);

  const list = await noc.admin("GET", "/v1/admin/rollouts?state=running");
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.items.map((r: { id: number }) => r.id), [id]);
  assert.equal((await noc.admin("GET", "/v1/admin/rollouts?state=failed")).body.items.length, 0);

  const members = await noc.admin("GET", `/v1/admin/rollouts/${id}/appliances?phase=0`);
  assert.equal(members.status, 200);
  assert.equal(members.body.items.length, 4);
  assert.ok(members.body.items.every((m: { state: string }) => m.state === "not_sent"));

  const again = await noc.admin("POST", "/v1/admin/rollouts", body);
  assert.equal(again.status, 409);
  assert.equal(again.body.error, "rollout_exists");

  // An action's body may be empty; a note is kept in its event.
  const paused = await noc.send(
    new Request(`http://noc.test/v1/admin/rollouts/${id}/pause`, {
      method: "POST",
      headers: { authorization: `Bearer ${noc.adminToken}` },
    }),
  );
  assert.equal(paused.status, 200, await paused.clone().text());
  assert.equal((await paused.json()).state, "paused");
  const twice = await noc.admin("POST", `/v1/admin/rollouts/${id}/pause`, {});
  assert.equal(twice.status, 409);
  assert.equal(twice.body.error, "rollout_state");
  assert.equal(
    (await noc.admin("POST", `/v1/admin/rollouts/${id}/resume`, { note: "looked fine" })).status,
    200,
  );
  const advanced = await noc.admin("POST", `/v1/admin/rollouts/${id}/advance`, {});
  assert.equal(advanced.status, 200);
  assert.equal(advanced.body.phase, 1);
  assert.equal(advanced.body.phases[1].members, 16);
  const cancelled = await noc.admin("POST", `/v1/admin/rollouts/${id}/cancel`, { note: "stop" });
  assert.equal(cancelled.status, 200);
  assert.equal(cancelled.body.state, "cancelled");

  const detail = await noc.admin("GET", `/v1/admin/rollouts/${id}`);
  const kinds = detail.body.events.map((e: { kind: string }) => e.kind);
  assert.deepEqual(
    kinds,
    [
      "created",
      "phase_started",
      "paused",
      "resumed",
      "advanced",
      "phase_started",
      "cancelled",
    ].filter((k) => kinds.includes(k)),
  );
  const resumed = detail.body.events.find((e: { kind: string }) => e.kind === "resumed");
  assert.equal(resumed.detail.note, "looked fine");
  assert.ok(resumed.actor.length > 0);
});

dbTest("rollouts API: bad bodies, queries and ids get 4xx naming the problem", async ({ db }) => {
  const noc = await fleet(db);
  const cases: [string, string, unknown, number, string][] = [
    ["POST", "/v1/admin/rollouts", { ...body, phases: [] }, 400, "invalid_body"],
    [
      "POST",
      "/v1/admin/rollouts",
      { ...body, phases: [{ percent: 50, count: 3, soakS: 0 }] },
      400,
      "invalid_body",
    ],
    ["POST", "/v1/admin/rollouts", { ...body, component: ref("9") }, 404, "not_found"],
    ["POST", "/v1/admin/rollouts", { ...body, surprise: 1 }, 400, "invalid_body"],
    ["GET", "/v1/admin/rollouts?state=nope", undefined, 400, "invalid_query"],
    ["GET", "/v1/admin/rollouts?cursor=x", undefined, 400, "invalid_query"],
    ["GET", "/v1/admin/rollouts/99", undefined, 404, "not_found"],
    ["GET", "/v1/admin/rollouts/abc", undefined, 400, "invalid_param"],
    ["GET", "/v1/admin/rollouts/99/appliances", undefined, 404, "not_found"],
    ["POST", "/v1/admin/rollouts/99/advance", {}, 404, "not_found"],
    ["POST", "/v1/admin/rollouts/99/pause", { note: "x".repeat(501) }, 400, "invalid_body"],
  ];
  for (const [method, path, b, status, code] of cases) {
    const r = await noc.admin(method, path, b);
    assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error, code, `${method} ${path}`);
    assert.equal(typeof r.body.message, "string");
  }
  assert.equal(await noc.deps.db.sql`select 1 from rollouts`.then((r) => r.length), 0);
});

dbTest("assignment routes refuse to change an active rollout's assignment", async ({ db }) => {
  const noc = await fleet(db);
  const r = (await noc.admin("POST", "/v1/admin/rollouts", body)).body;
  const path = `/v1/admin/assignments/${r.assignmentId}`;
  const patch = await noc.admin("PATCH", path, { rolloutPercent: 100 });
  assert.equal(patch.status, 409);
  assert.equal(patch.body.error, "managed_by_rollout");
  assert.equal(patch.body.rolloutId, r.id);
  const del = await noc.admin("DELETE", path);
  assert.equal(del.status, 409);
  assert.equal(del.body.error, "managed_by_rollout");
  const [a] = await noc.deps.db.sql<{ rollout_percent: number }>`
    select rollout_percent from assignments where id = ${r.assignmentId}`;
  assert.notEqual(a!.rollout_percent, 100);
  // Once the rollout has ended the assignment is an ordinary one again.
  await noc.admin("POST", `/v1/admin/rollouts/${r.id}/cancel`, {});
  assert.equal((await noc.admin("PATCH", path, { paused: false })).status, 200);
});

dbTest(
  "a rollout is refused where a more specific assignment keeps its appliances",
  async ({ db }) => {
    const noc = await fleet(db);
    // Site s1 has its own assignment of 1: the catalog engine gives s1's 20 appliances version 1
    // whatever a rollout to `all` does, so they would sit in its phases without ever getting 2.
    const site = await noc.admin("POST", "/v1/admin/assignments", {
      ...ref("1"),
      target: { type: "site", value: "s1" },
    });
    assert.equal(site.status, 201, JSON.stringify(site.body));
    const refused = await noc.admin("POST", "/v1/admin/rollouts", body);
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error, "invalid_body");
    assert.match(
      refused.body.message,
      new RegExp(`assignment ${site.body.id} \\(site "s1" → 1, 20 appliances\\)`),
    );
    assert.equal((await noc.deps.db.sql`select 1 from rollouts`).length, 0);
    // A rollout to the site itself is as specific and newer: it wins, and is accepted.
    const ok = await noc.admin("POST", "/v1/admin/rollouts", {
      ...body,
      target: { type: "site", value: "s1" },
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  },
);

dbTest("a new assignment may not take appliances from an active rollout", async ({ db }) => {
  const noc = await fleet(db);
  const r = (await noc.admin("POST", "/v1/admin/rollouts", body)).body;
  for (const target of [{ type: "site", value: "s0" }, { type: "all" }]) {
    const a = await noc.admin("POST", "/v1/admin/assignments", { ...ref("1"), target });
    assert.equal(a.status, 409, JSON.stringify(a.body));
    assert.equal(a.body.error, "managed_by_rollout");
    assert.equal(a.body.rolloutId, r.id);
  }
  // Nor the release itself: its members would get it outside their phases.
  const same = await noc.admin("POST", "/v1/admin/assignments", {
    ...ref("2"),
    target: { type: "site", value: "s0" },
  });
  assert.equal(same.status, 409);
  assert.equal(same.body.error, "managed_by_rollout");
  await noc.admin("POST", `/v1/admin/rollouts/${r.id}/cancel`, {});
  const after = await noc.admin("POST", "/v1/admin/assignments", {
    ...ref("1"),
    target: { type: "site", value: "s1" },
  });
  assert.equal(after.status, 201);
});

dbTest(
  "the assignment list counts each appliance once when a version has several assignments",
  async ({ db }) => {
    const noc = await fleet(db);
    // A cancelled rollout and its retry: two assignments of version 2.
    const first = (await noc.admin("POST", "/v1/admin/rollouts", body)).body;
    await noc.admin("POST", `/v1/admin/rollouts/${first.id}/cancel`, {});
    const second = (await noc.admin("POST", "/v1/admin/rollouts", body)).body;
    const now = noc.clock.now();
    await db.sql`
    insert into deliveries (uid, component_id, first_sent_at, last_sent_at)
    select a.uid, c.id, ${now}, ${now} from (select uid from appliances order by uid limit 8) a
    join components c on c.kind = 'package' and c.app = 'app' and c.name = 'pkg'
      and c.version = '2'`;
    const list = await noc.admin("GET", "/v1/admin/assignments");
    assert.equal(list.status, 200, JSON.stringify(list.body));
    const mine = list.body.items.filter((a: { version: string }) => a.version === "2");
    assert.deepEqual(
      mine.map((a: { id: number }) => a.id).sort(),
      [first.assignmentId, second.assignmentId].sort(),
    );
    for (const a of mine) assert.equal(a.progress.sent, 8, JSON.stringify(a.progress));
    const one = await noc.admin("GET", `/v1/admin/assignments/${second.assignmentId}`);
    assert.equal(one.body.progress.sent, 8);
  },
);

dbTest("a plan mixing counts and percentages may not shrink for today's target", async ({ db }) => {
  const noc = await fleet(db);
  // 40 appliances: 10 % is 4, fewer than the 6 of the phase before.
  const r = await noc.admin("POST", "/v1/admin/rollouts", {
    ...body,
    phases: [{ count: 6, soakS: 0 }, { percent: 10, soakS: 0 }, { percent: 100, soakS: 0 }],
  });
  assert.equal(r.status, 400);
  assert.equal(r.body.error, "invalid_body");
  assert.match(
    r.body.message,
    /phase 2 asks for 4 of the target's 40 appliances, fewer than phase 1's 6/,
  );
  const ok = await noc.admin("POST", "/v1/admin/rollouts", {
    ...body,
    phases: [{ count: 4, soakS: 0 }, { percent: 10, soakS: 0 }, { percent: 100, soakS: 0 }],
  });
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
});
