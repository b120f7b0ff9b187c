// deno-lint-ignore-file no-explicit-any
/**
 * Issue 19's attacker review, F1 and F6, over real HTTP against a real NOC: no input keeps a change
 * out of the audit log. A NUL in the query (`?_=%00`), a path or a body is recorded, cleaned; a
 * record that cannot be written stops the change (503 `audit_unavailable`, nothing done, logged
 * and counted); a completion that fails leaves the record with status null ("outcome unknown"),
 * logged and counted. The CSV export of a user agent with formulas after `;` runs none of them.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { serveNoc } from "./_agent.ts";
import { parseCsv } from "./_audit_csv.ts";

/** Calls the admin API at `url` with bearer `token`. */
async function api(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

const password = "correct horse battery";

dbTest(
  "a NUL in the query, the path or the body of a write is recorded, cleaned, with the answer",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const t = noc.adminToken;
      // The review's example: before, it answered 201 and left no record.
      const made = await api(noc.url, t, "POST", "/v1/admin/operators?_=%00", {
        name: "nul",
        role: "viewer",
        password,
      });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const log = await api(noc.url, t, "GET", "/v1/admin/audit?path=/v1/admin/operators");
      const [rec] = log.body.items;
      assert.equal(rec.status, 201);
      assert.deepEqual(rec.summary, {
        query: { _: "\u2400" },
        body: { name: "nul", role: "viewer", password: "[redacted]" },
      });
      // A NUL in a path parameter: refused 400, recorded with the path cleaned.
      const end = await api(noc.url, t, "POST", "/v1/admin/maintenance/1%00/end");
      assert.equal(end.status, 400);
      // A NUL and an unpaired surrogate in a body: refused 400, recorded.
      const raw = '{"label":"a\\u0000b","site":"\\ud800"}';
      const res = await fetch(`${noc.url}/v1/admin/enrollment-tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
        body: raw,
      });
      assert.equal(res.status, 400);
      await res.body?.cancel();
      const all = (await api(noc.url, t, "GET", "/v1/admin/audit")).body.items;
      assert.equal(all.length, 3);
      const [body, path] = all;
      assert.equal(path.path, "/v1/admin/maintenance/1\u2400/end");
      assert.deepEqual(path.targets, { id: "1\u2400" });
      assert.equal(path.error, "invalid_param");
      assert.equal(body.status, 400);
      assert.deepEqual(body.summary, { body: { label: "a\u2400b", site: "\ufffd" } });
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "a write whose audit record cannot be written changes nothing (503), and says so in logs and metrics",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const t = noc.adminToken;
      // The database refuses every new record (a full disk, a broken trigger, a revoked grant).
      await db.sql`alter table audit_log add constraint refuse_all check (false) not valid`;
      const refused = await api(noc.url, t, "POST", "/v1/admin/operators", {
        name: "ghost",
        role: "admin",
        password,
      });
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error, "audit_unavailable");
      assert.equal(refused.headers.get("retry-after"), "5");
      const ops = await api(noc.url, t, "GET", "/v1/admin/operators");
      assert.deepEqual(ops.body.items, [], "the operator was not created");
      const lines = (noc.deps.log as unknown as { lines: any[] }).lines;
      const error = lines.find((l) => l.event === "audit_write_failed" && l.stage === "before");
      assert.equal(error?.level, "error", "an error is logged");
      const metrics = await fetch(`${noc.url}/metrics`, {
        headers: { authorization: `Bearer ${t}` },
      });
      const text = await metrics.text();
      assert.match(text, /noc_audit_failures_total\{stage="before"\} 1/);

      // Records that can be inserted but not completed: the change is done (its answer stands)
      // and the record says "outcome unknown" (status null).
      await db.sql`alter table audit_log drop constraint refuse_all`;
      await db.sql`alter table audit_log add constraint stay_open check (status is null) not valid`;
      const made = await api(noc.url, t, "POST", "/v1/admin/operators", {
        name: "half",
        role: "viewer",
        password,
      });
      assert.equal(made.status, 201);
      await db.sql`alter table audit_log drop constraint stay_open`;
      const [rec] = (await api(noc.url, t, "GET", "/v1/admin/audit")).body.items;
      assert.equal(rec.route, "/v1/admin/operators");
      assert.equal(rec.status, null, "outcome unknown, never a silent gap");
      const after = await (await fetch(`${noc.url}/metrics`, {
        headers: { authorization: `Bearer ${t}` },
      })).text();
      assert.match(after, /noc_audit_failures_total\{stage="after-retry"\} 1/);
      // The console shows it as such.
      const csv = await (await fetch(`${noc.url}/v1/admin/audit.csv`, {
        headers: { authorization: `Bearer ${t}` },
      })).text();
      const [head, first] = parseCsv(csv);
      assert.equal(first![head!.indexOf("status")], "");
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "a user agent with formulas after ';' is exported as CSV that runs none of them",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const agent = "Mozilla/5.0;=1+1;=cmd|' /C calc'!A0";
      const r = await api(noc.url, noc.adminToken, "POST", "/v1/admin/enrollment-tokens", {
        label: "x",
      }, { "user-agent": agent });
      assert.equal(r.status, 201);
      const res = await fetch(`${noc.url}/v1/admin/audit.csv`, {
        headers: { authorization: `Bearer ${noc.adminToken}` },
      });
      const csv = await res.text();
      const [head, row] = parseCsv(csv);
      assert.equal(row![head!.indexOf("user_agent")], "Mozilla/5.0;'=1+1;'=cmd|' /C calc'!A0");
      // Split as a spreadsheet set to `;` would (quotes only at a field's start): no formula.
      const line = csv.split("\r\n")[1]!;
      const fields = line.split(";").map((f) => f.trim().replace(/^"/, ""));
      assert.deepEqual(fields.filter((f) => /^[=+\-@]/.test(f)), []);
    } finally {
      await noc.close();
    }
  },
);
