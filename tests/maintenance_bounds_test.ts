// deno-lint-ignore-file no-explicit-any
/**
 * Issue 19's attacker review, F8, over real HTTP against a real NOC: every maintenance window
 * records who opened it — through `POST /v1/admin/maintenance` and a bulk action alike — as every
 * hold records who put it; and no window lasts longer than `NOC_MAINTENANCE_MAX_DAYS` (30 days by
 * default): `endsAt` 9999-12-31 is refused 400 naming the bound, and nothing is written.
 */
import assert from "node:assert/strict";
import { count, dbTest } from "./_harness.ts";
import { type ServedNoc, serveNoc } from "./_agent.ts";
import { signIn } from "./_console.ts";

async function api(noc: ServedNoc, method: string, path: string, body?: unknown) {
  const res = await fetch(`${noc.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${noc.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null as any };
}

const days = (noc: ServedNoc, n: number) =>
  new Date(noc.clock.now().getTime() + n * 86_400_000).toISOString();

dbTest(
  "windows opened one by one and in bulk record who opened them, as holds do",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const token = await noc.enrollmentToken({ site: "lab" });
      const a = await noc.enrollAppliance({ token });
      const b = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
      const one = await api(noc, "POST", "/v1/admin/maintenance", {
        uid: a.uid,
        endsAt: days(noc, 1),
        reason: "disk swap",
      });
      assert.equal(one.status, 201, JSON.stringify(one.body));
      assert.equal(one.body.createdBy, "test");
      const bulk = await api(noc, "POST", "/v1/admin/appliances/bulk", {
        filter: { site: "lab" },
        action: { type: "maintenance", endsAt: days(noc, 2), reason: "rack move" },
      });
      assert.equal(bulk.status, 200, JSON.stringify(bulk.body));
      assert.equal(bulk.body.done, 2);
      const held = await api(noc, "POST", "/v1/admin/appliances/bulk", {
        uids: [b.uid],
        action: { type: "hold", reason: "freeze" },
      });
      assert.equal(held.body.done, 1);
      assert.equal(
        (await api(noc, "POST", "/v1/admin/holds", { uid: a.uid, reason: "pin" })).status,
        201,
      );
      // Through the console: the signed-in operator (here the admin token's label).
      const ui = await signIn(noc);
      const said = await ui.post("/ui/maintenance", {
        site: "lab",
        until: days(noc, 3).slice(0, 16),
        reason: "site visit",
      });
      assert.match(said, /Site lab in maintenance/);
      // The console's form is held to the same bound: the API's refusal is shown.
      const refused = await ui.post("/ui/maintenance", {
        site: "lab",
        until: "9999-12-31T00:00",
        reason: "for ever",
      });
      assert.match(refused, /at most 30 days/);
      const windows = await db.sql<{ reason: string; created_by: string | null }>`
        select reason, created_by from maintenance_windows order by id`;
      assert.equal(windows.length, 4, JSON.stringify(windows));
      assert.deepEqual(
        windows.filter((w) => w.created_by === null),
        [],
        "every window has an author",
      );
      assert.deepEqual(
        windows.map((w) => [w.reason, w.created_by]),
        [
          ["disk swap", "test"],
          ["rack move", "test"],
          ["rack move", "test"],
          ["site visit", "console:test"],
        ],
      );
      const holds = await db.sql<{ created_by: string | null }>`
        select created_by from holds order by id`;
      assert.deepEqual(holds.map((h) => h.created_by), ["test", "test"]);
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "a window longer than NOC_MAINTENANCE_MAX_DAYS is refused 400 naming the bound, one by one and in bulk",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const a = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
      for (
        const [path, body, field] of [
          [
            "/v1/admin/maintenance",
            { site: "lab", endsAt: "9999-12-31T00:00:00Z", reason: "x" },
            "endsAt",
          ],
          ["/v1/admin/appliances/bulk", {
            uids: [a.uid],
            action: { type: "maintenance", endsAt: "9999-12-31T00:00:00Z", reason: "x" },
          }, "action.endsAt"],
          ["/v1/admin/maintenance", { uid: a.uid, endsAt: days(noc, 31), reason: "x" }, "endsAt"],
        ] as const
      ) {
        const r = await api(noc, "POST", path, body);
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.equal(r.body.error, "invalid_body");
        assert.match(r.body.message, /at most 30 days \(NOC_MAINTENANCE_MAX_DAYS\)/);
        assert.equal(r.body.issues[0].path, field);
      }
      assert.equal(await count(db, "maintenance_windows"), 0, "nothing was written");
      // Thirty days exactly is allowed; a start later than now counts from the start.
      const ok = await api(noc, "POST", "/v1/admin/maintenance", {
        uid: a.uid,
        startsAt: days(noc, 10),
        endsAt: days(noc, 40),
        reason: "planned",
      });
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "the bound is a setting: NOC_MAINTENANCE_MAX_DAYS=2 refuses a 3-day window",
  async ({ db }) => {
    const noc = await serveNoc(db, { maintenanceMaxDays: 2 });
    try {
      const a = await noc.enrollAppliance();
      const r = await api(noc, "POST", "/v1/admin/maintenance", {
        uid: a.uid,
        endsAt: days(noc, 3),
        reason: "x",
      });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /at most 2 days/);
      const ok = await api(noc, "POST", "/v1/admin/maintenance", {
        uid: a.uid,
        endsAt: days(noc, 2),
        reason: "x",
      });
      assert.equal(ok.status, 201);
    } finally {
      await noc.close();
    }
  },
);
