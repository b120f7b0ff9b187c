import assert from "node:assert/strict";
import { count, dbTest, testNoc } from "./_harness.ts";

dbTest("the admin API refuses a missing, malformed or unknown bearer token", async ({ db }) => {
  const noc = await testNoc(db);
  for (const auth of [undefined, "Basic abc", "Bearer", "Bearer noc_adm_wrong"]) {
    const res = await noc.app.request("http://noc.test/v1/admin/appliances", {
      headers: auth ? { authorization: auth } : {},
    });
    assert.equal(res.status, 401, String(auth));
    assert.match(res.headers.get("www-authenticate") ?? "", /Bearer/);
    assert.equal((await res.json()).error, "unauthorized");
  }
  const revoked = await db
    .sql`update admin_tokens set revoked_at = ${noc.clock.now()} returning id`;
  assert.equal(revoked.length, 1);
  assert.equal(
    (await noc.admin("GET", "/v1/admin/appliances")).status,
    401,
    "a revoked admin token is refused",
  );
});

dbTest(
  "the appliance list filters by state, model, site, tag and text, and pages with a cursor",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "alpha", model: "vs-2000" });
    const b = await noc.enrollAppliance({ hostname: "bravo", model: "rt-10" });
    const c = await noc.enrollAppliance({ hostname: "charlie", model: "vs-2000" });
    await noc.admin("PATCH", `/v1/admin/appliances/${b.uid}`, { site: "branch-1", tags: ["edge"] });
    await a.beat();
    await b.beat();
    noc.clock.advance(600);
    await c.beat();
    noc.clock.advance(909 - 600 + 1); // a and b are late, c is ok
    const names = async (q: string) =>
      (await noc.admin("GET", `/v1/admin/appliances${q}`)).body.items.map((
        x: { hostname: string },
      ) => x.hostname);
    assert.deepEqual(await names(""), ["alpha", "bravo", "charlie"]);
    assert.deepEqual(await names("?state=late"), ["alpha", "bravo"]);
    assert.deepEqual(await names("?state=ok"), ["charlie"]);
    assert.deepEqual(await names("?model=vs-2000"), ["alpha", "charlie"]);
    assert.deepEqual(await names("?site=branch-1"), ["bravo"]);
    assert.deepEqual(await names("?tag=edge"), ["bravo"]);
    assert.deepEqual(await names("?q=arl"), ["charlie"]);
    assert.deepEqual(await names(`?q=${a.uid}`), ["alpha"]);
    assert.deepEqual(await names("?q=%25"), [], "LIKE wildcards in q are literal");
    noc.clock.advance(300);
    assert.deepEqual(await names("?state=missing"), ["alpha", "bravo"], "past the grace period");
    const page1 = await noc.admin("GET", "/v1/admin/appliances?limit=2");
    assert.equal(page1.body.items.length, 2);
    assert.ok(page1.body.nextCursor);
    const page2 = await noc.admin(
      "GET",
      `/v1/admin/appliances?limit=2&cursor=${page1.body.nextCursor}`,
    );
    assert.deepEqual(page2.body.items.map((x: { hostname: string }) => x.hostname), ["charlie"]);
    assert.equal(page2.body.nextCursor, null);
    const fleet = await noc.admin("GET", "/v1/admin/fleet");
    assert.deepEqual(fleet.body.states, { ok: 1, late: 0, missing: 2, revoked: 0 });
  },
);

dbTest(
  "every admin route answers bad input with a 4xx naming the problem and writes nothing",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const before = {
      tokens: await count(db, "enrollment_tokens"),
      windows: await count(db, "maintenance_windows"),
    };
    const uid = a.uid;
    const cases: Array<[string, string, unknown, number, string]> = [
      ["POST", "/v1/admin/enrollment-tokens", { ttlS: 5 }, 400, "ttlS"],
      ["POST", "/v1/admin/enrollment-tokens", { site: "../x" }, 400, "site"],
      ["POST", "/v1/admin/enrollment-tokens", { tags: "edge" }, 400, "tags"],
      ["POST", "/v1/admin/enrollment-tokens", { extra: 1 }, 400, "extra"],
      ["DELETE", "/v1/admin/enrollment-tokens/abc", undefined, 400, "id"],
      ["DELETE", "/v1/admin/enrollment-tokens/99999", undefined, 404, "99999"],
      ["GET", "/v1/admin/appliances?limit=0", undefined, 400, "limit"],
      ["GET", "/v1/admin/appliances?limit=abc", undefined, 400, "limit"],
      ["GET", "/v1/admin/appliances?cursor=garbage", undefined, 400, "cursor"],
      ["GET", "/v1/admin/appliances?colour=red", undefined, 400, "colour"],
      ["GET", "/v1/admin/appliances/not-a-uuid", undefined, 400, "uid"],
      ["GET", `/v1/admin/appliances/${crypto.randomUUID()}`, undefined, 404, "does not exist"],
      ["GET", `/v1/admin/appliances/${uid}?history=-1`, undefined, 400, "history"],
      ["PATCH", `/v1/admin/appliances/${uid}`, {}, 400, "at least one"],
      ["PATCH", `/v1/admin/appliances/${uid}`, { intervalS: "fast" }, 400, "intervalS"],
      ["PATCH", `/v1/admin/appliances/${uid}`, { channel: "" }, 400, "channel"],
      ["POST", `/v1/admin/appliances/${uid}/revoke`, {}, 400, "reason"],
      [
        "POST",
        `/v1/admin/appliances/${crypto.randomUUID()}/revoke`,
        { reason: "x" },
        404,
        "does not exist",
      ],
      ["GET", "/v1/admin/alerts?status=closed", undefined, 400, "status"],
      ["GET", "/v1/admin/alerts?uid=nope", undefined, 400, "uid"],
      ["POST", "/v1/admin/alerts/0/ack", undefined, 400, "id"],
      ["POST", "/v1/admin/maintenance", { site: "hq", reason: "x" }, 400, "endsAt"],
      [
        "POST",
        "/v1/admin/maintenance",
        { site: "hq", endsAt: "tomorrow", reason: "x" },
        400,
        "endsAt",
      ],
      [
        "POST",
        "/v1/admin/maintenance",
        { endsAt: "2030-01-01T00:00:00Z", reason: "x" },
        400,
        "exactly one",
      ],
      [
        "POST",
        "/v1/admin/maintenance",
        // Within the longest window (NOC_MAINTENANCE_MAX_DAYS): the appliance is what is wrong.
        {
          uid: crypto.randomUUID(),
          endsAt: new Date(Date.now() + 86_400_000).toISOString(),
          reason: "x",
        },
        404,
        "does not exist",
      ],
      ["DELETE", "/v1/admin/maintenance/12345", undefined, 404, "12345"],
      ["GET", "/v1/admin/maintenance?all=maybe", undefined, 400, "all"],
      ["GET", "/v1/admin/notices?limit=100000", undefined, 400, "limit"],
      ["GET", "/v1/admin/auth-failures?limit=x", undefined, 400, "limit"],
      ["GET", "/v1/admin/nothing-here", undefined, 404, "No route"],
    ];
    for (const [method, path, body, status, mention] of cases) {
      const r = await noc.admin(method, path, body);
      assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(typeof r.body.error, "string", `${method} ${path}`);
      assert.ok(
        JSON.stringify(r.body).includes(mention),
        `${method} ${path} mentions ${mention}: ${JSON.stringify(r.body)}`,
      );
    }
    const malformed = await noc.app.request("http://noc.test/v1/admin/enrollment-tokens", {
      method: "POST",
      headers: { authorization: `Bearer ${noc.adminToken}`, "content-type": "application/json" },
      body: "{oops",
    });
    assert.equal(malformed.status, 400);
    assert.equal((await malformed.json()).error, "malformed_json");
    const huge = await noc.app.request("http://noc.test/v1/admin/enrollment-tokens", {
      method: "POST",
      headers: { authorization: `Bearer ${noc.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ label: "x".repeat(300 * 1024) }),
    });
    assert.equal(huge.status, 413);
    assert.equal(await count(db, "enrollment_tokens"), before.tokens);
    assert.equal(await count(db, "maintenance_windows"), before.windows);
    const one = await noc.admin("GET", `/v1/admin/appliances/${uid}`);
    assert.equal(one.body.revokedAt, null);
    assert.equal(one.body.intervalS, 909);
  },
);
