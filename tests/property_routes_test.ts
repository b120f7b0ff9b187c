/**
 * Property tests (fast-check) over every route the NOC serves: arbitrary and
 * malformed paths, queries, headers, content types and bodies, with no
 * credentials, forged ones or a real admin token. The NOC always answers —
 * within five seconds — with a status below 500, and a refusal (4xx) writes
 * nothing but the audit trail of refused identities.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { dbTest, testNoc } from "./_harness.ts";
import { publishAndAssign } from "./_components.ts";
import { operations } from "../noc/http/ops/openapi.ts";
import { consoleOperations } from "../noc/http/console/mod.tsx";
import type { Db } from "../noc/db/db.ts";

/**
 * Row counts of every table a refusal must not touch (all but the audit trail of refused identities
 * and the notices it raises: auth_failures, notices, notice_deliveries, notice_throttle), and the
 * catalog epoch.
 */
async function snapshot(db: Db): Promise<string> {
  const [row] = await db.sql`
    select
      (select count(*) from admin_tokens)::int as admin_tokens,
      (select count(*) from enrollment_tokens)::int as enrollment_tokens,
      (select count(*) from appliances)::int as appliances,
      (select count(*) from beats)::int as beats,
      (select count(*) from alerts)::int as alerts,
      (select count(*) from maintenance_windows)::int as maintenance_windows,
      (select count(*) from request_nonces)::int as request_nonces,
      (select count(*) from blobs)::int as blobs,
      (select count(*) from blob_chunks)::int as blob_chunks,
      (select count(*) from release_keys)::int as release_keys,
      (select count(*) from components)::int as components,
      (select count(*) from fileinfo)::int as fileinfo,
      (select count(*) from assignments)::int as assignments,
      (select count(*) from holds)::int as holds,
      (select count(*) from wrapped_keys)::int as wrapped_keys,
      (select count(*) from deliveries)::int as deliveries,
      (select count(*) from install_outcomes)::int as install_outcomes,
      (select count(*) from wake_requests)::int as wake_requests,
      (select count(*) from local_servers)::int as local_servers,
      (select count(*) from local_record_marks)::int as local_record_marks,
      (select count(*) from local_server_fetches)::int as local_server_fetches,
      (select count(*) from admin_sessions)::int as admin_sessions,
      (select epoch from catalog_epoch)::int as epoch`;
  return JSON.stringify(row);
}

const segment = fc.oneof(
  fc.constantFrom("1", "999999", "0", "-1", "abc", "..%2F..%2Fsweep", "%00", "a".repeat(300)),
  fc.uuid(),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
);
const body = fc.oneof(
  fc.constant(undefined),
  fc.json({ maxDepth: 4 }),
  fc.string({ maxLength: 200 }),
  fc.uint8Array({ maxLength: 300 }),
  fc.constantFrom("{", "[]", "null", '{"token":1}', '{"records":[{"seq":1}]}', "x".repeat(300_000)),
);
const contentType = fc.constantFrom(
  undefined,
  "application/json",
  "text/plain",
  "multipart/form-data",
  "multipart/form-data; boundary=xyz",
  "application/x-www-form-urlencoded",
  "application/gzip",
  "application/vnd.noc-package",
);

dbTest(
  "every route answers arbitrary requests with a status below 500 and refusals write nothing",
  async ({ db }) => {
    const noc = await testNoc(db);
    await publishAndAssign(noc, { app: "demo", name: "demo", version: "1" });
    const a = await noc.enrollAppliance();
    await a.beat();
    const ops = [...operations(noc.deps.settings), ...consoleOperations];
    const auth = fc.constantFrom<Record<string, string>>(
      {},
      { authorization: `Bearer ${noc.adminToken}` },
      { authorization: "Bearer noc_adm_forged" },
      { authorization: "Basic Zm9vOmJhcg==" },
      {
        "signature-input": `sig1=("@method");created=1;keyid="${a.uid}";alg="ed25519"`,
        signature: "sig1=:AAAA:",
        "content-digest": "sha-256=:AAAA:",
      },
      { cookie: "noc_session=forged" },
    );
    const request = fc.record({
      op: fc.constantFrom(...ops),
      params: fc.array(segment, { minLength: 3, maxLength: 3 }),
      query: fc.dictionary(
        fc.constantFrom(
          "grant",
          "wait",
          "after",
          "limit",
          "cursor",
          "state",
          "app",
          "history",
          "q",
        ),
        fc.string({ maxLength: 30 }),
        { maxKeys: 3 },
      ),
      headers: auth,
      type: contentType,
      body,
    });
    const failures: string[] = [];
    const routesSeen = new Set<string>();
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        let i = 0;
        const path = r.op.path.replace(/:[A-Za-z_]+/g, () => r.params[i++]!);
        const url = `http://noc.test${path}?${new URLSearchParams(r.query)}`;
        const method = r.op.method.toUpperCase();
        const headers: Record<string, string> = { ...r.headers };
        if (r.type) headers["content-type"] = r.type;
        const payload = method === "GET" || method === "HEAD" || r.body === undefined
          ? undefined
          : typeof r.body === "string" || r.body instanceof Uint8Array
          ? r.body
          : JSON.stringify(r.body);
        const before = await snapshot(db);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const res = await Promise.race([
          noc.app.request(url, {
            method,
            headers,
            ...(payload === undefined ? {} : { body: payload as BodyInit }),
          }),
          new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 5000)),
        ]);
        clearTimeout(timer);
        if (res === null) {
          failures.push(`${method} ${url}: no answer in 5 s`);
          return false;
        }
        await res.body?.cancel().catch(() => {});
        routesSeen.add(`${method} ${r.op.path}`);
        const cls = Math.floor(res.status / 100);
        statuses.set(cls, (statuses.get(cls) ?? 0) + 1);
        if (res.status >= 500) {
          failures.push(`${method} ${url} (${r.type}): ${res.status}`);
          return false;
        }
        if (res.status >= 400 && (await snapshot(db)) !== before) {
          failures.push(`${method} ${url}: ${res.status} but something was written`);
          return false;
        }
        return true;
      }),
      { numRuns: 400, seed: 20261124 },
    ).catch((e) => {
      throw new Error(`${failures.join("\n")}\n${e.message.slice(0, 2000)}`);
    });
    assert.deepEqual(failures, []);
    // Not a vacuous pass: nearly every route was reached, and some requests got through.
    assert.ok(routesSeen.size >= ops.length * 0.85, `${routesSeen.size} of ${ops.length} routes`);
    assert.ok((statuses.get(2) ?? 0) > 0, JSON.stringify([...statuses]));
    assert.ok((statuses.get(4) ?? 0) > 100, JSON.stringify([...statuses]));
  },
);
