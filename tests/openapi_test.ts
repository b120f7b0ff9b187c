// deno-lint-ignore-file no-explicit-any
/** `/openapi.json` is valid OpenAPI 3.1 and lists every route the app serves; `/docs` shows it. */
import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { dbTest, testNoc } from "./_harness.ts";

dbTest(
  "/openapi.json validates as OpenAPI 3.1 and lists every route the app serves",
  async ({ db }) => {
    const noc = await testNoc(db);
    const res = await noc.app.request("http://noc.test/openapi.json");
    assert.equal(res.status, 200);
    const doc = await res.json();
    assert.equal(doc.openapi, "3.1.0");
    const result = await new Validator().validate(doc);
    assert.ok(result.valid, JSON.stringify(result.errors, null, 2)?.slice(0, 3000));

    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths as Record<string, object>)) {
      for (const method of Object.keys(ops)) {
        documented.add(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`);
      }
    }
    const served = new Set(
      noc.app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`),
    );
    const missing = [...served].filter((r) => !documented.has(r));
    assert.deepEqual(missing, [], "every served route is documented");
    const extra = [...documented].filter((r) => !served.has(r));
    assert.deepEqual(extra, [], "every documented route is served");

    // Request schemas come from the routes' own zod schemas.
    const enroll = doc.paths["/v1/enroll"].post.requestBody.content["application/json"].schema;
    assert.deepEqual(
      [...enroll.required].sort(),
      ["encryptionKey", "hostname", "model", "signingKey", "token"],
    );
    const list = doc.paths["/v1/admin/appliances"].get.parameters.map((p: any) => p.name);
    assert.ok(list.includes("state") && list.includes("cursor"), list.join());
  },
);

dbTest("/docs is a self-contained viewer of the document", async ({ db }) => {
  const noc = await testNoc(db);
  const res = await noc.app.request("http://noc.test/docs");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /text\/html/);
  assert.match(res.headers.get("content-security-policy")!, /default-src 'none'/);
  const html = await res.text();
  assert.ok(html.includes('fetch("/openapi.json")'));
  assert.ok(!/<script[^>]+src=/.test(html), "no script from elsewhere");
});
