/**
 * Named operators and roles, over real HTTP: the admin API enforces each role (a viewer reads but
 * cannot write; an operator runs the fleet but cannot touch accounts or release keys), refusals
 * are recorded in the audit log, a disabled operator's token and console session stop at once,
 * and every admin route of the OpenAPI description is in the role table.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { serveNoc } from "./_agent.ts";
import { neededRole, roleRow, roleTable, verifyPassword } from "../noc/services/operators.ts";

type Json = Record<string, unknown> & { items?: Array<Record<string, unknown>> };

/** Calls the admin API at `url` with bearer `token`. */
async function api(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      "user-agent": "roles-test/1",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

/** Signs in to the console at `url` with a name and password; returns the session cookie. */
async function consoleSignIn(url: string, name: string, password: string): Promise<string> {
  const page = await fetch(`${url}/ui/login`);
  const cookie = page.headers.get("set-cookie")!.split(";")[0]!;
  const csrf = (await page.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
  const res = await fetch(`${url}/ui/login`, {
    method: "POST",
    redirect: "manual",
    headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ _csrf: csrf, name, password, next: "/ui" }),
  });
  await res.body?.cancel();
  assert.equal(res.status, 303);
  assert.equal(res.headers.get("location"), "/ui", "signed in, not sent back to the form");
  return res.headers.getSetCookie().find((h) => h.startsWith("noc_session="))!.split(";")[0]!;
}

const password = "correct horse battery";

dbTest(
  "a viewer's write through the API is refused 403 and recorded, and their read works",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const made = await api(noc.url, noc.adminToken, "POST", "/v1/admin/operators", {
        name: "vera",
        role: "viewer",
        password,
      });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      assert.equal(made.body.hasPassword, true);
      assert.equal(JSON.stringify(made.body).includes("scrypt"), false, "no hash is answered");
      const issued = await api(noc.url, noc.adminToken, "POST", "/v1/admin/operators/vera/tokens", {
        label: "laptop",
      });
      assert.equal(issued.status, 201);
      const token = String(issued.body.token);
      assert.match(token, /^noc_op_[A-Za-z0-9_-]{43}$/);

      const read = await api(noc.url, token, "GET", "/v1/admin/appliances");
      assert.equal(read.status, 200);
      const me = await api(noc.url, token, "GET", "/v1/admin/me");
      assert.deepEqual(me.body, { name: "vera", role: "viewer", via: "api" });

      const write = await api(noc.url, token, "POST", "/v1/admin/enrollment-tokens", {
        label: "sneaky",
      });
      assert.equal(write.status, 403);
      assert.equal(write.body.error, "forbidden_role");
      assert.match(String(write.body.message), /needs the operator role; vera has the viewer role/);
      const none = await api(noc.url, noc.adminToken, "GET", "/v1/admin/enrollment-tokens");
      assert.equal(none.body.items!.length, 0, "nothing was created");

      // The viewer may not read the audit log; an admin does, and finds the refusal.
      assert.equal((await api(noc.url, token, "GET", "/v1/admin/audit")).status, 403);
      const log = await api(noc.url, noc.adminToken, "GET", "/v1/admin/audit?actor=vera");
      assert.equal(log.status, 200);
      const [refusal, ...rest] = log.body.items!;
      assert.equal(rest.length, 0, "reads are not recorded, and the audit read was a GET");
      assert.equal(refusal!.method, "POST");
      assert.equal(refusal!.route, "/v1/admin/enrollment-tokens");
      assert.equal(refusal!.status, 403);
      assert.equal(refusal!.error, "forbidden_role");
      assert.equal(refusal!.role, "viewer");
      assert.equal(refusal!.via, "api");
      assert.equal(refusal!.address, "127.0.0.1");
      assert.equal(refusal!.userAgent, "roles-test/1");

      // The admin's own changes are there too, with the token's label as actor, and no secrets.
      const mine = await api(noc.url, noc.adminToken, "GET", "/v1/admin/audit?actor=test");
      const created = mine.body.items!.find((i) => i.route === "/v1/admin/operators")!;
      assert.equal(created.status, 201);
      assert.deepEqual(created.summary, {
        body: { name: "vera", role: "viewer", password: "[redacted]" },
      });
      const tokenIssue = mine.body.items!.find((i) =>
        i.route === "/v1/admin/operators/:name/tokens"
      )!;
      assert.deepEqual(tokenIssue.targets, { name: "vera" });
      assert.equal(JSON.stringify(mine.body).includes(token), false, "no token is recorded");
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "an operator runs the fleet but cannot create an operator or register a release key",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      await api(noc.url, noc.adminToken, "POST", "/v1/admin/operators", {
        name: "olga",
        role: "operator",
      });
      const token = String(
        (await api(noc.url, noc.adminToken, "POST", "/v1/admin/operators/olga/tokens", {
          label: "cli",
        })).body.token,
      );
      const made = await api(noc.url, token, "POST", "/v1/admin/enrollment-tokens", {});
      assert.equal(made.status, 201, "an operator creates enrolment tokens");
      const sweep = await api(noc.url, token, "POST", "/v1/admin/sweep");
      assert.equal(sweep.status, 200);

      const op = await api(noc.url, token, "POST", "/v1/admin/operators", {
        name: "mallory",
        role: "admin",
        password,
      });
      assert.equal(op.status, 403);
      assert.match(String(op.body.message), /needs the admin role; olga has the operator role/);
      const key = await api(noc.url, token, "POST", "/v1/admin/release-keys", {
        publicKey: "A".repeat(43),
        label: "x",
      });
      assert.equal(key.status, 403);
      assert.equal(key.body.error, "forbidden_role");
      assert.equal((await api(noc.url, token, "GET", "/v1/admin/operators")).status, 403);
      // The audit log, an operator may read: its own refusals are there.
      const log = await api(noc.url, token, "GET", "/v1/admin/audit?actor=olga&method=POST");
      assert.deepEqual(
        log.body.items!.map((i) => `${i.route} ${i.status}`),
        [
          "/v1/admin/release-keys 403",
          "/v1/admin/operators 403",
          "/v1/admin/sweep 200",
          "/v1/admin/enrollment-tokens 201",
        ],
      );
      const list = await api(noc.url, noc.adminToken, "GET", "/v1/admin/operators");
      assert.deepEqual(list.body.items!.map((o) => o.name), ["olga"], "no mallory");
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "a disabled operator's token and console session stop working at once",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      await api(noc.url, noc.adminToken, "POST", "/v1/admin/operators", {
        name: "dave",
        role: "operator",
        password,
      });
      const token = String(
        (await api(noc.url, noc.adminToken, "POST", "/v1/admin/operators/dave/tokens", {
          label: "ci",
        })).body.token,
      );
      const session = await consoleSignIn(noc.url, "dave", password);
      const page = await fetch(`${noc.url}/ui`, { headers: { cookie: session } });
      assert.equal(page.status, 200);
      assert.match(await page.text(), /Sign out \(dave\)/);
      assert.equal((await api(noc.url, token, "GET", "/v1/admin/fleet")).status, 200);

      const off = await api(noc.url, noc.adminToken, "PATCH", "/v1/admin/operators/dave", {
        disabled: true,
      });
      assert.equal(off.status, 200);
      assert.ok(off.body.disabledAt);
      const refused = await api(noc.url, token, "GET", "/v1/admin/fleet");
      assert.equal(refused.status, 401, "the token stops at once");
      const after = await fetch(`${noc.url}/ui`, {
        headers: { cookie: session },
        redirect: "manual",
      });
      await after.body?.cancel();
      assert.equal(after.status, 303, "the session has ended");
      assert.match(after.headers.get("location")!, /^\/ui\/login/);
      // Nor can they sign in again, with the right password.
      const page2 = await fetch(`${noc.url}/ui/login`);
      const cookie = page2.headers.get("set-cookie")!.split(";")[0]!;
      const csrf = (await page2.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
      const again = await fetch(`${noc.url}/ui/login`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: csrf, name: "dave", password }),
      });
      await again.body?.cancel();
      assert.match(again.headers.get("location")!, /failed=1/);

      // Enabled again as a viewer: a new session has the new role, and the API holds it to it.
      await api(noc.url, noc.adminToken, "PATCH", "/v1/admin/operators/dave", {
        disabled: false,
        role: "viewer",
      });
      assert.equal((await api(noc.url, token, "POST", "/v1/admin/sweep")).status, 403);
      const viewer = await consoleSignIn(noc.url, "dave", password);
      const page3 = await fetch(`${noc.url}/ui`, { headers: { cookie: viewer } });
      const csrf3 = (await page3.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
      const sweep = await fetch(`${noc.url}/ui/sweep`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: viewer, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: csrf3 }),
      });
      assert.equal(sweep.status, 403);
      assert.match(await sweep.text(), /needs the operator role/);
      const log = await api(noc.url, noc.adminToken, "GET", "/v1/admin/audit?actor=dave");
      const consoleRefusal = log.body.items!.find((i) => i.via === "console")!;
      // Refused by the console for the role, before the form was read.
      assert.equal(consoleRefusal.route, "/ui/sweep");
      assert.equal(consoleRefusal.error, "forbidden_role");
      assert.equal(consoleRefusal.status, 403);
      assert.equal(consoleRefusal.address, "127.0.0.1", "the browser's address, from the console");
      const signIns = await api(noc.url, noc.adminToken, "GET", "/v1/admin/audit?path=/ui/login");
      assert.deepEqual(
        signIns.body.items!.map((i) => `${i.actor} ${i.role} ${i.error}`),
        ["dave viewer null", "dave null sign_in_failed", "dave operator null"],
      );
    } finally {
      await noc.close();
    }
  },
);

dbTest("passwords are checked for length and stored only as scrypt hashes", async ({ db }) => {
  const noc = await testNoc(db);
  const short = await noc.admin("POST", "/v1/admin/operators", {
    name: "sam",
    role: "viewer",
    password: "too-short",
  });
  assert.equal(short.status, 400);
  assert.match(short.body.message, /password/);
  const long = await noc.admin("POST", "/v1/admin/operators", {
    name: "sam",
    role: "viewer",
    password: "x".repeat(257),
  });
  assert.equal(long.status, 400);
  const bad = await noc.admin("POST", "/v1/admin/operators", { name: "Sam!", role: "viewer" });
  assert.equal(bad.status, 400);
  const ok = await noc.admin("POST", "/v1/admin/operators", { name: "sam", role: "viewer" });
  assert.equal(ok.status, 201);
  assert.equal(ok.body.hasPassword, false);
  const dup = await noc.admin("POST", "/v1/admin/operators", { name: "sam", role: "admin" });
  assert.equal(dup.status, 409);
  assert.equal(dup.body.error, "operator_exists");
  const set = await noc.admin("POST", "/v1/admin/operators/sam/password", { password });
  assert.equal(set.status, 200);
  const [row] = await db.sql<{ password_hash: string }>`
    select password_hash from operators where name = 'sam'`;
  assert.match(row!.password_hash, /^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  assert.equal(await verifyPassword(password, row!.password_hash), true);
  assert.equal(await verifyPassword(`${password}!`, row!.password_hash), false);
  assert.equal(await verifyPassword(password, null), false);
  assert.equal(await verifyPassword(password + "x".repeat(300), row!.password_hash), false);
  // Salted: the same password hashes differently for another account.
  await noc.admin("POST", "/v1/admin/operators", { name: "tom", role: "viewer", password });
  const hashes = await db.sql<{ password_hash: string }>`
    select password_hash from operators where name in ('sam', 'tom')`;
  assert.notEqual(hashes[0]!.password_hash, hashes[1]!.password_hash);
});

dbTest("every admin API route of the OpenAPI description is in the role table", async ({ db }) => {
  const noc = await testNoc(db);
  const doc = await (await noc.app.request("http://noc.test/openapi.json")).json() as {
    paths: Record<string, Record<string, unknown>>;
  };
  // OpenAPI paths name parameters as {id}; the table matches prefixes, so that is no matter.
  const admin = Object.entries(doc.paths).filter(([p]) => p.startsWith("/v1/admin"))
    .flatMap(([path, ops]) => Object.keys(ops).map((method) => ({ method, path })));
  assert.ok(admin.length > 40, `only ${admin.length} admin routes found`);
  const uncovered = admin.filter((r) => roleRow(r.path.slice("/v1/admin".length)) === null);
  assert.deepEqual(uncovered, [], "these routes are not in the role table (they need admin)");
  // And no row of the table is stale.
  for (const row of roleTable) {
    assert.ok(
      admin.some((r) => roleRow(r.path.slice("/v1/admin".length)) === row),
      `role table row ${row.prefix} matches no admin route`,
    );
  }
  // Fail closed: a path no row names needs admin, whatever the method.
  assert.equal(neededRole("GET", "/brand-new"), "admin");
  assert.equal(neededRole("GET", "/appliancesX"), "admin");
  assert.equal(neededRole("GET", "/appliances/x"), "viewer");
  assert.equal(neededRole("DELETE", "/appliances/x"), "operator");
  assert.equal(neededRole("GET", "/audit.csv"), "operator");
});

Deno.test("docs/operations.md's role table is the code's", async () => {
  const doc = await Deno.readTextFile(new URL("../docs/operations.md", import.meta.url));
  const section = doc.slice(doc.indexOf("## Operators, roles and the audit log"));
  const rows = [...section.matchAll(/^\| `(\/[a-z-]+)` +\| (\w+) +\| (\w+) +\|$/gm)].map((m) => ({
    prefix: m[1]!,
    read: m[2]!,
    write: m[3]!,
  }));
  assert.deepEqual(rows, roleTable.map((r) => ({ ...r })));
});

dbTest(
  "a personal token signs in to the console, and revoking it ends that session",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      await api(noc.url, noc.adminToken, "POST", "/v1/admin/operators", {
        name: "tina",
        role: "operator",
      });
      const issued = await api(noc.url, noc.adminToken, "POST", "/v1/admin/operators/tina/tokens", {
        label: "browser",
      });
      const page = await fetch(`${noc.url}/ui/login`);
      const cookie = page.headers.get("set-cookie")!.split(";")[0]!;
      const csrf = (await page.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
      const res = await fetch(`${noc.url}/ui/login`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: csrf, token: String(issued.body.token) }),
      });
      await res.body?.cancel();
      assert.equal(res.headers.get("location"), "/ui");
      const session = res.headers.getSetCookie().find((h) => h.startsWith("noc_session="))!
        .split(";")[0]!;
      const fleet = await fetch(`${noc.url}/ui`, { headers: { cookie: session } });
      assert.match(await fleet.text(), /Sign out \(tina\)/);
      const revoked = await api(
        noc.url,
        noc.adminToken,
        "DELETE",
        `/v1/admin/operators/tina/tokens/${issued.body.id}`,
      );
      assert.equal(revoked.status, 204);
      const after = await fetch(`${noc.url}/ui`, {
        headers: { cookie: session },
        redirect: "manual",
      });
      await after.body?.cancel();
      assert.equal(after.status, 303, "the session opened with the token has ended");
      const again = await api(
        noc.url,
        noc.adminToken,
        "DELETE",
        `/v1/admin/operators/tina/tokens/${issued.body.id}`,
      );
      assert.equal(again.status, 404, "a revoked token cannot be revoked twice");
    } finally {
      await noc.close();
    }
  },
);
