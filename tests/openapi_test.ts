// deno-lint-ignore-file no-explicit-any
/**
 * `/openapi.json` is valid OpenAPI 3.1, lists every route the app serves, and describes every
 * answer: each operation's success body and its refusals' Error body, content types and the
 * protocol's response headers; real answers of every appliance-facing and admin operation match
 * it; every header, query parameter and body content type it documents is one its route reads.
 * `/docs` shows it.
 */
import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { dbTest, sampleBeat, testNoc } from "./_harness.ts";
import {
  fetchCatalog,
  payload,
  publishAndAssign,
  signedPackage,
  uploadSigned,
} from "./_components.ts";
import { newSeed } from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { generateApplianceKeys, signedRequest } from "../protocol/client.ts";
import { exportRawPublic, generateEd25519 } from "../protocol/crypto/ed25519.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";

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

/** A JSON Schema (the subset zod emits), as /openapi.json carries it. */
type Schema = Record<string, any>;

/**
 * Checks `value` against `schema` (the JSON Schema subset zod writes: type, properties, required,
 * additionalProperties, items, anyOf, enum, const, format date-time, pattern, minimum), `$ref`s
 * resolved in `doc`. Stricter than JSON Schema in one way: an object member the schema's
 * `properties` do not name is a problem unless `additionalProperties` allows it, so an answer
 * cannot carry members the document does not describe. Returns the problems, each with its path.
 */
function schemaProblems(doc: any, schema: Schema, value: unknown, path = "$"): string[] {
  if (schema.$ref) return schemaProblems(doc, resolved(doc, schema), value, path);
  if (schema.anyOf) {
    const each = (schema.anyOf as Schema[]).map((s) => schemaProblems(doc, s, value, path));
    return each.some((p) => p.length === 0) ? [] : each.flat();
  }
  const problems: string[] = [];
  const is = (t: string) => {
    switch (t) {
      case "object":
        return typeof value === "object" && value !== null && !Array.isArray(value);
      case "array":
        return Array.isArray(value);
      case "integer":
        return Number.isInteger(value);
      case "null":
        return value === null;
      case "number":
        return typeof value === "number";
      case "string":
        return typeof value === "string";
      case "boolean":
        return typeof value === "boolean";
      default:
        return false;
    }
  };
  const types: string[] | null = schema.type === undefined ? null : [schema.type].flat();
  if (types && !types.some(is)) {
    return [`${path}: ${JSON.stringify(value)} is not ${types.join(" or ")}`];
  }
  if (schema.const !== undefined && value !== schema.const) {
    problems.push(`${path}: not ${schema.const}`);
  }
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${path}: ${value} not in enum`);
  if (typeof value === "string") {
    if (schema.format === "date-time" && Number.isNaN(Date.parse(value))) {
      problems.push(`${path}: ${value} is not a time`);
    }
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) {
      problems.push(`${path}: ${value} does not match ${schema.pattern}`);
    }
  }
  if (typeof value === "number" && schema.minimum !== undefined && value < schema.minimum) {
    problems.push(`${path}: ${value} < ${schema.minimum}`);
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((v, i) =>
      problems.push(...schemaProblems(doc, schema.items, v, `${path}[${i}]`))
    );
  }
  if (is("object") && types?.includes("object")) {
    const o = value as Record<string, unknown>;
    for (const k of schema.required ?? []) {
      if (!(k in o)) problems.push(`${path}.${k}: missing`);
    }
    for (const [k, v] of Object.entries(o)) {
      const p = schema.properties?.[k];
      if (p) problems.push(...schemaProblems(doc, p, v, `${path}.${k}`));
      else if (typeof schema.additionalProperties === "object") {
        problems.push(...schemaProblems(doc, schema.additionalProperties, v, `${path}.${k}`));
      } else if (schema.properties || schema.additionalProperties === false) {
        problems.push(`${path}.${k}: not in the document`);
      }
    }
  }
  return problems;
}

/** `o`, or what its `$ref` points at in `doc`. */
function resolved(doc: any, o: any): any {
  if (typeof o?.$ref !== "string") return o;
  return (o.$ref as string).replace(/^#\//, "").split("/").reduce((x: any, k) => x?.[k], doc);
}

/**
 * The response headers an answer must not carry unless the document describes them on that
 * answer: the protocol's own (catalog binding, ranges, rate limits, challenges, a local server's
 * component description), and RFC 9421/9530's, which the NOC does not send on answers.
 */
const protocolHeaders = [
  "etag",
  "catalog-binding",
  "accept-ranges",
  "content-range",
  "x-noc-component",
  "retry-after",
  "www-authenticate",
  "content-digest",
  "signature",
  "signature-input",
];

/**
 * Checks that each of {@link protocolHeaders} `headers` carries is described by `response` (an
 * OpenAPI Response Object of `doc`), its value matching the described schema. Returns the
 * problems; adds each header found to `seen`.
 */
function headerProblems(doc: any, response: any, headers: Headers, seen: Set<string>): string[] {
  const problems: string[] = [];
  for (const name of protocolHeaders) {
    const value = headers.get(name);
    if (value === null) continue;
    seen.add(name);
    const described = Object.entries(response.headers ?? {})
      .find(([k]) => k.toLowerCase() === name)?.[1];
    if (!described) {
      problems.push(`${name}: sent, not described`);
      continue;
    }
    const h = resolved(doc, described);
    const json = h.content?.["application/json"]?.schema;
    const schema = json ?? h.schema;
    const v = json ? JSON.parse(value) : schema?.type === "integer" ? Number(value) : value;
    problems.push(...schemaProblems(doc, schema ?? {}, v, name));
  }
  return problems;
}

Deno.test("headerProblems() finds a protocol header sent but not described, or a bad value", () => {
  const doc = { components: { headers: { ETag: { schema: { type: "string", pattern: "^a$" } } } } };
  const response = {
    headers: {
      ETag: { $ref: "#/components/headers/ETag" },
      "Retry-After": { schema: { type: "integer", minimum: 1 } },
    },
  };
  const seen = new Set<string>();
  assert.deepEqual(
    headerProblems(doc, response, new Headers({ etag: "a", "retry-after": "5" }), seen),
    [],
  );
  assert.deepEqual([...seen], ["etag", "retry-after"]);
  assert.deepEqual(
    headerProblems(
      doc,
      response,
      new Headers({ etag: "b", "retry-after": "0", "catalog-binding": "x", "x-other": "y" }),
      seen,
    ),
    [
      "etag: b does not match ^a$",
      "catalog-binding: sent, not described",
      "retry-after: 0 < 1",
    ],
  );
});

Deno.test("schemaProblems() finds wrong types, missing and undocumented members, bad times", () => {
  const doc = {
    components: {
      schemas: { T: { type: "string", format: "date-time" } },
    },
  };
  const schema = {
    type: "object",
    required: ["a", "t"],
    properties: {
      a: { type: "integer", minimum: 0 },
      t: { $ref: "#/components/schemas/T" },
      n: { anyOf: [{ type: "string", enum: ["x"] }, { type: "null" }] },
      r: { type: "object", additionalProperties: {} },
    },
  };
  assert.deepEqual(schemaProblems(doc, schema, { a: 1, t: "2026-01-01T00:00:00Z", n: null }), []);
  assert.deepEqual(
    schemaProblems(doc, schema, { a: 1, t: "2026-01-01T00:00:00Z", r: { z: 1 } }),
    [],
  );
  assert.deepEqual(schemaProblems(doc, schema, { a: 1.5, t: "never", n: "y", extra: 1 }), [
    "$.a: 1.5 is not integer",
    "$.t: never is not a time",
    "$.n: y not in enum",
    '$.n: "y" is not null',
    "$.extra: not in the document",
  ]);
  assert.deepEqual(schemaProblems(doc, schema, { t: "2026-01-01T00:00:00Z" }), ["$.a: missing"]);
});

/** Every operation of `doc`: method, path (Hono style), tags and responses. */
function operationsOf(doc: any) {
  return Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({
      key: `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`,
      tag: op.tags[0] as string,
      responses: op.responses as Record<string, any>,
    }))
  );
}

/** The tags of the appliance-facing routes and the admin API. */
const apiTags = [
  "appliance",
  "local component server",
  "appliances",
  "alerts",
  "releases",
  "enrolment",
];

dbTest(
  "/openapi.json gives every operation's answers a schema, and refusals the Error body",
  async ({ db }) => {
    const noc = await testNoc(db);
    const doc = await (await noc.app.request("http://noc.test/openapi.json")).json();
    const error = doc.components.schemas.Error;
    assert.deepEqual([...error.required].sort(), ["error", "message"]);
    const bare: string[] = [];
    let checked = 0;
    for (const op of operationsOf(doc)) {
      if (!apiTags.includes(op.tag)) continue;
      for (const s of ["4XX", "5XX"]) {
        assert.equal(
          op.responses[s]?.content?.["application/json"]?.schema?.$ref,
          "#/components/schemas/Error",
          `${op.key} ${s}`,
        );
      }
      const ok = Object.entries(op.responses).filter(([s]) => /^2\d\d$/.test(s));
      assert.ok(ok.length > 0, `${op.key} has a success answer`);
      for (const [status, r] of ok) {
        const content = r.content as Record<string, any> | undefined;
        if (status === "204" || op.key.startsWith("HEAD ")) {
          assert.equal(content, undefined, `${op.key} ${status} has no body`);
          continue;
        }
        const json = content?.["application/json"]?.schema;
        const binary = content?.["application/octet-stream"]?.schema;
        if (binary) continue;
        if (!json?.properties) bare.push(`${op.key} ${status}`);
        checked++;
      }
      for (
        const [status, r] of Object.entries(op.responses).filter(([s]) => /^[45]\d\d$/.test(s))
      ) {
        assert.equal(
          r.content?.["application/json"]?.schema?.$ref,
          "#/components/schemas/Error",
          `${op.key} ${status}`,
        );
      }
    }
    assert.deepEqual(bare, [], "success answers without a described body");
    assert.ok(checked >= 45, `only ${checked} answers checked`);
  },
);

dbTest(
  "real answers of every appliance-facing and admin operation match /openapi.json",
  async ({ db }) => {
    // Two enrolments a minute, so the test can also meet a 429 (and its Retry-After).
    const noc = await testNoc(db, { settings: { rateEnrollPerMin: 2 } });
    const base = "http://noc.test";
    const doc = await (await noc.app.request(`${base}/openapi.json`)).json();
    const ops = operationsOf(doc);
    const routeOf = (method: string, url: string) => {
      const path = new URL(url).pathname;
      return ops.find((o) => {
        const [m, p] = o.key.split(" ") as [string, string];
        return m === method && new RegExp(`^${p.replace(/:\w+/g, "[^/]+")}$`).test(path);
      });
    };
    const seen = new Set<string>();
    const sentHeaders = new Set<string>();
    const problems: string[] = [];
    /**
     * Sends `req`, checks its answer against the document (status, JSON body, content type,
     * protocol headers); returns status, JSON and headers.
     */
    const send = async (req: Request, expect: number) => {
      const res = await noc.app.request(req);
      const text = await res.text();
      const op = routeOf(req.method, req.url);
      assert.ok(op, `${req.method} ${req.url} is documented`);
      assert.equal(res.status, expect, `${op.key}: ${text.slice(0, 500)}`);
      const described = op.responses[String(res.status)] ??
        op.responses[`${String(res.status)[0]}XX`];
      assert.ok(described, `${op.key} documents ${res.status}`);
      const schema = described.content?.["application/json"]?.schema;
      const type = res.headers.get("content-type")?.split(";")[0]?.trim();
      if (type === "application/json") {
        assert.ok(schema, `${op.key} ${res.status} is JSON, and documented as such`);
        problems.push(
          ...schemaProblems(doc, schema, JSON.parse(text)).map((p) => `${op.key} ${p}`),
        );
      } else {
        assert.ok(!schema || text === "", `${op.key} ${res.status}: documented JSON, got ${text}`);
        if (text !== "") {
          assert.ok(
            type && described.content?.[type],
            `${op.key} ${res.status}: ${type} is not a documented content type`,
          );
        }
      }
      problems.push(
        ...headerProblems(doc, described, res.headers, sentHeaders)
          .map((p) => `${op.key} ${res.status} ${p}`),
      );
      seen.add(`${op.key} ${res.status}`);
      return {
        status: res.status,
        body: text && schema ? JSON.parse(text) : text,
        headers: res.headers,
      };
    };
    const adminReq = (
      method: string,
      path: string,
      body?: unknown,
      type = "application/json",
    ) =>
      new Request(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${noc.adminToken}`,
          ...(body === undefined ? {} : { "content-type": type }),
        },
        ...(body === undefined ? {} : {
          body: body instanceof Uint8Array ? body as Uint8Array<ArrayBuffer> : JSON.stringify(body),
        }),
      });
    const admin = (method: string, path: string, expect: number, body?: unknown) =>
      send(adminReq(method, path, body), expect);

    // Operations, enrolment and the appliance protocol.
    await send(new Request(`${base}/healthz`), 200);
    const token = (await admin("POST", "/v1/admin/enrollment-tokens", 201, { site: "lab" })).body;
    await admin("GET", "/v1/admin/enrollment-tokens", 200);
    const spare = (await admin("POST", "/v1/admin/enrollment-tokens", 201, {})).body;
    await admin("DELETE", `/v1/admin/enrollment-tokens/${spare.id}`, 200);
    const keys = await generateApplianceKeys();
    const enrolled = (await send(
      new Request(`${base}/v1/enroll`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          token: token.token,
          model: "vs-2000",
          hostname: "mail-gw-1",
          signingKey: keys.signingPublic,
          encryptionKey: keys.encryptionPublic,
        }),
      }),
      201,
    )).body;
    const uid = enrolled.uid;
    const signed = (
      method: string,
      path: string,
      body?: unknown,
      as = { uid, key: keys.signing },
      headers: Record<string, string> = {},
    ) => signedRequest({ baseUrl: base, ...as, method, path, body, headers, now: noc.clock.now() });
    await send(await signed("POST", "/v1/beats", sampleBeat(1, noc.clock.now())), 200);
    await send(new Request(`${base}/v1/keys`), 200);

    // Releases.
    const pkg = await payload({ install: "#!/bin/sh\nexit 0\n" });
    const q = "app=vscreen&name=vscreen&version=1.0.0";
    const published = (await send(
      adminReq("POST", `/v1/admin/packages?${q}`, pkg, "application/gzip"),
      201,
    )).body;
    await send(adminReq("POST", `/v1/admin/packages?${q}`, pkg, "application/gzip"), 200);
    const file = new TextEncoder().encode("rules\n");
    const fq = "app=vscreen&name=rules.conf&version=7";
    await send(adminReq("POST", `/v1/admin/files?${fq}`, file, "application/octet-stream"), 201);
    await send(adminReq("POST", `/v1/admin/files?${fq}`, file, "application/octet-stream"), 200);
    await admin("PUT", "/v1/admin/apps/vscreen/fileinfo/rules.conf", 200, {
      destination: "etc/vscreen/rules.conf",
      mode: "0640",
      action: ["systemctl", "restart", "vscreen"],
    });
    await admin("GET", "/v1/admin/apps/vscreen/fileinfo", 200);
    await admin("GET", "/v1/admin/components", 200);
    await admin("GET", `/v1/admin/components/${published.id}`, 200);
    const ref = { app: "vscreen", name: "vscreen", version: "1.0.0" };
    const assigned = (await admin("POST", "/v1/admin/assignments", 201, {
      kind: "package",
      ...ref,
      target: { type: "all" },
      failureThresholdPercent: 50,
    })).body;
    const fileAssigned = (await admin("POST", "/v1/admin/assignments", 201, {
      kind: "file",
      app: "vscreen",
      name: "rules.conf",
      version: "7",
      target: { type: "site", value: "lab" },
    })).body;
    await admin("GET", "/v1/admin/assignments", 200);
    await admin("GET", "/v1/admin/assignments/targets", 200);
    await admin("GET", `/v1/admin/assignments/${assigned.id}`, 200);
    await admin("PATCH", `/v1/admin/assignments/${assigned.id}`, 200, { rolloutPercent: 100 });
    // Versions (issue 22 item 2): the ETag of a read, sent back as If-Match; an older one is 409.
    {
      const read = await admin("GET", `/v1/admin/assignments/${assigned.id}`, 200);
      const ifMatch = (req: Request, tag: string) => (req.headers.set("if-match", tag), req);
      const path = `/v1/admin/assignments/${assigned.id}`;
      const tag = read.headers.get("etag")!;
      await send(ifMatch(adminReq("PATCH", path, { rolloutPercent: 90 }), tag), 200);
      const old = await send(ifMatch(adminReq("PATCH", path, { rolloutPercent: 80 }), tag), 409);
      assert.equal(old.body.error, "stale_revision");
      await send(ifMatch(adminReq("PATCH", path, { rolloutPercent: 100 }), "*"), 200);
      // Install windows (issue 22 item 5): set, replaced, read, listed, stale, removed.
      const w = "/v1/admin/install-windows/site/lab";
      const hours = { start: "02:00", end: "04:00", timeZone: "Europe/Berlin" };
      await admin("PUT", w, 201, { ...hours, reason: "mail peak by day" });
      const replaced = await admin("PUT", w, 200, { ...hours, end: "05:00" });
      await admin("GET", w, 200);
      await admin("GET", "/v1/admin/install-windows?limit=5", 200);
      await send(ifMatch(adminReq("PUT", w, hours), '"1"'), 409);
      await send(ifMatch(adminReq("DELETE", w), '"1"'), 409);
      await send(ifMatch(adminReq("PUT", w, hours), replaced.headers.get("etag")!), 200);
      await admin("GET", "/v1/admin/install-windows/site/nowhere", 404);
      await admin("PUT", "/v1/admin/install-windows/model/vs-2000", 201, hours);
      await admin("DELETE", "/v1/admin/install-windows/model/vs-2000", 204);
      // An urgent assignment: installed even outside the window.
      await admin("PATCH", path, 200, { urgent: true });
    }
    const fetched = await send(await signed("GET", "/v1/catalog"), 200);
    const catalog = fetched.body;
    const etag = fetched.headers.get("etag")!;
    await send(
      await signed("GET", "/v1/catalog", undefined, undefined, { "if-none-match": etag }),
      304,
    );
    // The beat and the catalog in one request: the catalog, then unchanged (null).
    const joined = await send(
      await signed("POST", "/v1/checkin", sampleBeat(2, noc.clock.now())),
      200,
    );
    assert.equal(typeof joined.body.catalog, "string");
    const unchanged = await send(
      await signed("POST", "/v1/checkin", sampleBeat(3, noc.clock.now()), undefined, {
        "if-none-match": joined.headers.get("etag")!,
      }),
      200,
    );
    assert.equal(unchanged.body.catalog, null);
    const doc2 = JSON.parse(catalog.catalog);
    // Downloads: a package and a file (files only over HTTPS), whole, resumed, out of range.
    const url = doc2.components.find((c: any) => c.kind === "package").urls[0];
    const whole = await send(new Request(url), 200);
    assert.equal(whole.headers.get("content-type"), "application/vnd.noc-package");
    await send(new Request(url, { headers: { range: "bytes=0-9" } }), 206);
    await send(new Request(url, { headers: { range: "bytes=99999999-" } }), 416);
    await send(new Request(url, { method: "HEAD" }), 200);
    const fileUrl = doc2.components.find((c: any) => c.kind === "file").urls[0]
      .replace(/^http:/, "https:");
    const fileBytes = await send(new Request(fileUrl), 200);
    assert.equal(fileBytes.headers.get("content-type"), "application/octet-stream");
    assert.equal(fileBytes.body, "rules\n");
    await send(
      await signed("POST", "/v1/installs", {
        results: [{ kind: "package", ...ref, outcome: "installed" }],
      }),
      200,
    );
    const sentTo = await admin("GET", `/v1/admin/assignments/${assigned.id}/appliances`, 200);
    assert.equal(sentTo.body.items[0]?.state, "running", JSON.stringify(sentTo.body));
    await send(await signed("GET", "/v1/wake?wait=0"), 200);
    // A phased rollout of 1.0.1 over 1.0.0, with every gate, evaluated once by the daemon's pass.
    const next = await payload({ install: "#!/bin/sh\nexit 0\n" });
    await send(
      adminReq(
        "POST",
        "/v1/admin/packages?app=vscreen&name=vscreen&version=1.0.1",
        next,
        "application/gzip",
      ),
      201,
    );
    const plan = {
      component: { kind: "package", ...ref, version: "1.0.1" },
      target: { type: "all" },
      phases: [
        {
          count: 1,
          soakS: 3600,
          gates: {
            pluginHealth: { maxUnhealthyPercent: 10 },
            metric: { path: "vscreen.mailsScanned", maxDropPercent: 30 },
            beatRegularity: { maxExtraMissedPercent: 10 },
          },
        },
        { percent: 100, soakS: 0 },
      ],
      rollback: true,
      note: "canary",
    };
    const rollout = (await admin("POST", "/v1/admin/rollouts", 201, plan)).body;
    assert.equal(
      (await admin("POST", "/v1/admin/rollouts", 409, plan)).body.error,
      "rollout_exists",
    );
    const managed = await admin("PATCH", `/v1/admin/assignments/${rollout.assignmentId}`, 409, {
      paused: true,
    });
    assert.equal(managed.body.error, "managed_by_rollout");
    const pass = await rolloutPass(noc.deps);
    assert.equal(pass.evaluated, 1, JSON.stringify(pass));
    const judged = (await admin("GET", `/v1/admin/rollouts/${rollout.id}`, 200)).body;
    assert.ok(judged.evaluation?.judgement, "the pass left its figures to check");
    await admin("GET", "/v1/admin/rollouts?state=running,paused&limit=5", 200);
    await admin("GET", `/v1/admin/rollouts/${rollout.id}/appliances?phase=0`, 200);
    await admin("POST", `/v1/admin/rollouts/${rollout.id}/pause`, 200, { note: "look" });
    await admin("POST", `/v1/admin/rollouts/${rollout.id}/pause`, 409, {});
    await admin("POST", `/v1/admin/rollouts/${rollout.id}/resume`, 200, {});
    await admin("POST", `/v1/admin/rollouts/${rollout.id}/advance`, 200, {});
    await admin("POST", `/v1/admin/rollouts/${rollout.id}/cancel`, 200, { note: "enough" });
    await admin("GET", "/v1/admin/rollouts/999999", 404);
    const release = await generateEd25519();
    const releaseKey = toBase64Url(await exportRawPublic(release.publicKey));
    const registered = (await admin("POST", "/v1/admin/release-keys", 201, {
      publicKey: releaseKey,
      label: "release team",
    })).body;
    await admin("GET", "/v1/admin/release-keys", 200);
    // A second release key that signs an assigned package: retired at the end only by force.
    const signing = await nocKeysFromSeed(newSeed());
    await admin("POST", "/v1/admin/release-keys", 201, {
      publicKey: signing.published[0]!.publicKey,
      label: "signs vscreen/signed",
    });
    const signedRef = { app: "vscreen", name: "signed", version: "1" };
    const signedUp = await uploadSigned(
      noc,
      await signedPackage(
        noc,
        signedRef,
        await payload({ install: "#!/bin/sh\nexit 0\n" }),
        signing,
      ),
    );
    assert.equal(signedUp.status, 201, JSON.stringify(signedUp.body));
    await admin("POST", "/v1/admin/assignments", 201, {
      kind: "package",
      ...signedRef,
      target: { type: "appliance", value: uid },
    });
    const hold = (await admin("POST", "/v1/admin/holds", 201, { uid, reason: "testing" })).body;
    await admin("GET", "/v1/admin/holds", 200);

    // A local component server of site lab.
    const localToken = (await admin("POST", "/v1/admin/enrollment-tokens", 201, {
      purpose: "local-server",
      site: "lab",
    })).body;
    const local = await generateEd25519();
    const server = (await send(
      new Request(`${base}/v1/local/enroll`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          token: localToken.token,
          name: "cache-lab",
          url: "https://cache.lab.example.com:8443",
          signingKey: toBase64Url(await exportRawPublic(local.publicKey)),
          version: "1.0.0",
        }),
      }),
      201,
    )).body;
    const asServer = { uid: server.id, key: local.privateKey };
    const now = noc.clock.now().toISOString();
    await send(
      await signed("POST", "/v1/local/sync", {
        url: "https://cache.lab.example.com:8443",
        version: "1.0.0",
        cache: { bytes: 0, limit: 1024, entries: 0 },
        hits: 0,
        misses: 0,
        servedBytes: 0,
        pendingRecords: 0,
        problems: [{ code: "cache_full", message: "full", at: now }],
      }, asServer),
      200,
    );
    await send(
      await signed("POST", "/v1/local/deliveries", {
        epoch: crypto.randomUUID(),
        records: [
          { seq: 1, uid, componentId: published.id, at: now },
          { seq: 2, uid: crypto.randomUUID(), componentId: published.id, at: now },
        ],
      }, asServer),
      200,
    );
    // What it fetches for its site's stage, described by X-NOC-Component.
    const staged = `/v1/local/components/${published.id}`;
    await send(await signed("GET", staged, undefined, asServer), 200);
    await send(await signed("GET", staged, undefined, asServer, { range: "bytes=-5" }), 206);
    await admin("GET", "/v1/admin/local-servers", 200);
    await admin("GET", `/v1/admin/local-servers/${server.id}`, 200);

    // Appliances, alerts, the rest of the admin API.
    await admin("GET", "/v1/admin/appliances", 200);
    await admin("GET", "/v1/admin/appliances?count=true&sort=lastBeat&order=desc", 200);
    await admin("GET", "/v1/admin/appliances/facets", 200);
    await admin("POST", "/v1/admin/appliances/bulk", 200, {
      uids: [uid],
      action: { type: "move", addTags: ["audited"] },
    });
    await admin("POST", "/v1/admin/appliances/bulk", 200, {
      filter: { site: "lab" },
      action: { type: "wake" },
    });
    await admin("GET", `/v1/admin/appliances/${uid}`, 200);
    await admin("GET", `/v1/admin/appliances/${uid}/configuration`, 200);
    await admin("PATCH", `/v1/admin/appliances/${uid}`, 200, { tags: ["edge"] });
    const window = (await admin("POST", "/v1/admin/maintenance", 201, {
      site: "lab",
      endsAt: new Date(noc.clock.now().getTime() + 60_000).toISOString(),
      reason: "move",
    })).body;
    await admin("GET", "/v1/admin/maintenance", 200);
    const ended = (await admin("POST", "/v1/admin/maintenance", 201, {
      site: "lab",
      endsAt: new Date(noc.clock.now().getTime() + 60_000).toISOString(),
      reason: "power",
    })).body;
    await admin("POST", `/v1/admin/maintenance/${ended.id}/end`, 200);
    await admin("DELETE", `/v1/admin/maintenance/${window.id}`, 204);
    noc.clock.advance(3 * 3600 * 1000);
    await admin("POST", "/v1/admin/sweep", 200);
    const alerts = (await admin("GET", "/v1/admin/alerts?status=all", 200)).body;
    assert.ok(alerts.items.length > 0, "the sweep raised an alert");
    await admin("POST", `/v1/admin/alerts/${alerts.items[0].id}/ack`, 200);
    await admin("POST", "/v1/admin/alerts/ack", 200, { filter: { status: "all" }, note: "seen" });
    await admin("GET", "/v1/admin/fleet/sites", 200);
    await admin("POST", "/v1/admin/wake", 202, { uid });
    await admin("GET", "/v1/admin/fleet", 200);
    await admin("GET", "/v1/admin/notices", 200);
    // A signature of 1970: clock_skew, recorded as a refused identity.
    const stale = await signedRequest({
      baseUrl: base,
      uid,
      key: keys.signing,
      method: "POST",
      path: "/v1/beats",
      body: sampleBeat(2, noc.clock.now()),
      now: new Date(0),
    });
    assert.equal((await send(stale, 401)).body.error, "clock_skew");
    await admin("GET", "/v1/admin/auth-failures", 200);
    // Past its enrolment budget (two a minute here), an address is answered 429, Retry-After.
    const enrol = () =>
      new Request(`${base}/v1/enroll`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
    await send(enrol(), 400);
    await send(enrol(), 400);
    assert.equal((await send(enrol(), 429)).body.error, "rate_limited");
    // Refusals, each the Error body.
    await admin("GET", "/v1/admin/appliances/00000000-0000-4000-8000-000000000000", 404);
    await admin("POST", "/v1/admin/holds", 400, { uid: "nope" });
    await admin("POST", "/v1/admin/holds", 409, { uid, reason: "testing" });
    await send(new Request(`${base}/v1/admin/fleet`), 401);
    // Deletions and revocations last.
    await admin("DELETE", `/v1/admin/appliances/${uid}/identity-conflict`, 200);
    await admin("DELETE", `/v1/admin/holds/${hold.id}`, 204);
    await admin("DELETE", `/v1/admin/assignments/${assigned.id}`, 204);
    // In use: refused, naming the assignment (issue 22 item 3).
    await admin("DELETE", "/v1/admin/apps/vscreen/fileinfo/rules.conf", 409);
    await admin("DELETE", `/v1/admin/assignments/${fileAssigned.id}`, 204);
    await admin("DELETE", "/v1/admin/apps/vscreen/fileinfo/rules.conf", 204);
    await admin("DELETE", `/v1/admin/release-keys/${registered.kid}`, 204);
    await admin("DELETE", `/v1/admin/release-keys/${signing.kid}`, 409);
    await admin("DELETE", `/v1/admin/release-keys/${signing.kid}?force=true`, 200);
    await admin("POST", `/v1/admin/local-servers/${server.id}/revoke`, 200, { reason: "gone" });
    await admin("POST", `/v1/admin/appliances/${uid}/revoke`, 200, { reason: "stolen" });

    assert.deepEqual(problems, [], "answers that do not match the document");
    // Not a vacuous check: every protocol header the NOC sends was met (it sends no RFC 9421/9530
    // header on an answer).
    assert.deepEqual(
      protocolHeaders.filter((h) => !sentHeaders.has(h)),
      ["content-digest", "signature", "signature-input"],
    );
    // Every JSON operation of the appliance protocol and the admin API answered, successfully.
    const untried = ops.filter((o) => apiTags.includes(o.tag)).flatMap((o) =>
      Object.entries(o.responses)
        .filter(([s, r]) => /^2\d\d$/.test(s) && (s === "204" || r.content?.["application/json"]))
        .map(([s]) => `${o.key} ${s}`)
    ).filter((k) => !seen.has(k));
    assert.deepEqual(untried, [], "documented answers no request here produced");
  },
);

/** What an answer says, for telling two answers apart: status, error code, the fields refused. */
async function outcome(res: Response): Promise<string> {
  const text = await res.text();
  let body: any = null;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  const fields = (body?.issues ?? []).map((i: any) => i.path).sort().join(",");
  // Fields answered null (POST /v1/checkin's catalog, unchanged: what If-None-Match changes).
  const nulls = body && typeof body === "object"
    ? Object.keys(body).filter((k) => body[k] === null).sort().join(",")
    : "";
  return `${res.status} ${body?.error ?? ""} [${fields}]${nulls ? ` null:${nulls}` : ""}`.trim();
}

/**
 * Values to send a documented request header with when a request does not already carry it, and
 * the Content-Type its route reads it with. A header the document gains needs one here.
 */
const headerSamples: Record<string, { value: string; type?: string }> = {
  "range": { value: "bytes=0-0" },
  "if-none-match": { value: "*" },
  // Malformed: 400 invalid_header before the resource is looked for (it names none here).
  "if-match": { value: "not-an-entity-tag" },
  "x-noc-wrapped-key": { value: "A".repeat(110), type: "application/vnd.noc-package" },
};

dbTest(
  "each header and query parameter /openapi.json documents changes its route's answer",
  async ({ db }) => {
    // No rate limits: this test sends many refused requests on purpose.
    const noc = await testNoc(db, {
      settings: { rateAppliancePerMin: 0, rateLocalServerPerMin: 0, rateRefusalsPerMin: 0 },
    });
    const base = "http://noc.test";
    const doc = await (await noc.app.request(`${base}/openapi.json`)).json();
    // An appliance of site lab whose catalog lists a package, and a local server of site lab
    // that has not synced, so its stage holds nothing: it serves only with an appliance's grant.
    const a = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
    const ref = { app: "vscreen", name: "vscreen", version: "1.0.0" };
    const { componentId } = await publishAndAssign(noc, ref);
    const local = await generateEd25519();
    const enrolled = await noc.app.request(`${base}/v1/local/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        token: await noc.enrollmentToken({ purpose: "local-server", site: "lab" }),
        name: "cache-lab",
        url: "https://cache.lab.example.com:8443",
        signingKey: toBase64Url(await exportRawPublic(local.publicKey)),
      }),
    });
    assert.equal(enrolled.status, 201);
    const server = { uid: (await enrolled.json()).id, key: local.privateKey };
    // The catalog as of now (with the local server's URL), so If-None-Match: * can match it.
    const listed = (await fetchCatalog(noc, a)).doc!.components[0]!;
    const grant = new URL(listed.urls[0]!).searchParams.get("grant")!;
    const appliance = { uid: a.uid, key: a.keys.signing };

    /** Path parameters: the admin API's name nothing that exists, so no probe changes another's. */
    const pathOf = (path: string) =>
      path.replace(
        /:(\w+)/g,
        (_, name: string) =>
          path.startsWith("/v1/admin/")
            ? ({ app: "vscreen", name: "nothing", kid: "0123456789abcdef" } as any)[name] ??
              (name === "uid" ? "00000000-0000-4000-8000-000000000000" : "999999")
            : String(componentId),
      );
    /** Query a request carries unless told: a poll that does not wait, a local server's grant. */
    const defaultQuery: Record<string, Record<string, string>> = {
      "GET /v1/wake": { wait: "0" },
      "GET /v1/local/components/:id": { grant },
    };
    /** Bodies a request carries (else `{}`): a joined check-in's beat, each with a new seq. */
    let seq = 100;
    const defaultBody: Record<string, () => Record<string, unknown>> = {
      "POST /v1/checkin": () => sampleBeat(++seq, noc.clock.now()),
    };
    /**
     * A request to `op` that passes its authentication (an admin token, the appliance's or the
     * local server's signature; a grant instead when the query carries one), with `query`
     * (default: {@link defaultQuery}), extra `headers`, and the headers in `drop` removed.
     */
    const build = async (
      op: any,
      o: { query?: Record<string, string>; headers?: Record<string, string>; drop?: string } = {},
    ): Promise<Request> => {
      const query = new URLSearchParams(o.query ?? defaultQuery[op.key] ?? {}).toString();
      const path = `${pathOf(op.path)}${query ? `?${query}` : ""}`;
      const method = op.key.split(" ")[0] as string;
      const schemes = (op.security as Array<Record<string, unknown>>).flatMap(Object.keys);
      const body = op.requestBody?.content;
      const type = o.headers?.["content-type"] ?? (body ? Object.keys(body)[0] : undefined);
      let req: Request;
      const byGrant = schemes.includes("downloadGrant") && o.query?.grant !== undefined;
      if (schemes.includes("applianceSignature") && !byGrant) {
        req = await signedRequest({
          baseUrl: base,
          ...(op.path.startsWith("/v1/local/") ? server : appliance),
          method,
          path,
          ...(type === "application/json" ? { body: defaultBody[op.key]?.() ?? {} } : {}),
          headers: o.headers ?? {},
          now: noc.clock.now(),
        });
      } else {
        const headers = new Headers(o.headers);
        if (schemes.includes("adminToken")) {
          headers.set("authorization", `Bearer ${noc.adminToken}`);
        }
        if (type) headers.set("content-type", type);
        req = new Request(`${base}${path}`, {
          method,
          headers,
          ...(type ? { body: type === "application/json" ? "{}" : new Uint8Array() } : {}),
        });
      }
      if (o.drop === undefined) return req;
      const headers = new Headers(req.headers);
      headers.delete(o.drop);
      return new Request(req, { headers });
    };

    // Every parameter (query or header) and every security scheme's header or query parameter
    // of every operation but the console's (its session is a cookie; tests/console_test.ts).
    const probes: Array<{ op: any; where: string; name: string }> = [];
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, o] of Object.entries(ops)) {
        if (o.tags[0] === "console") continue;
        const op = { ...o, path: path.replace(/\{(\w+)\}/g, ":$1") };
        op.key = `${method.toUpperCase()} ${op.path}`;
        const named = new Set<string>();
        for (const p of o.parameters as any[]) {
          if (p.in !== "path") {
            named.add(`${p.in} ${p.in === "header" ? p.name.toLowerCase() : p.name}`);
          }
        }
        for (const scheme of (o.security as any[]).flatMap(Object.keys)) {
          const s = doc.components.securitySchemes[scheme];
          named.add(s.type === "http" ? "header authorization" : `${s.in} ${s.name.toLowerCase()}`);
        }
        for (const n of named) {
          const [where, name] = n.split(" ") as [string, string];
          probes.push({ op, where, name });
        }
      }
    }
    const same: string[] = [];
    const tried = new Set<string>();
    for (const { op, where, name } of probes) {
      let given: Request, withheld: Request;
      if (where === "query") {
        // Named, it is read (or refused by name); an undocumented name is refused or ignored.
        given = await build(op, { query: { [name]: "x" } });
        withheld = await build(op, { query: { zz_undocumented: "x" } });
      } else if ((await build(op)).headers.has(name)) {
        // Authentication: the request without it is refused.
        given = await build(op);
        withheld = await build(op, { drop: name });
      } else {
        const sample = headerSamples[name];
        assert.ok(sample, `${op.key}: no sample value for header ${name} (headerSamples)`);
        const type = sample.type ? { "content-type": sample.type } : {};
        given = await build(op, { headers: { ...type, [name]: sample.value } });
        withheld = await build(op, { headers: type });
      }
      const [g, w] = [
        await outcome(await noc.app.request(given)),
        await outcome(await noc.app.request(withheld)),
      ];
      if (g === w) same.push(`${op.key} ${where} ${name}: ${g} either way`);
      tried.add(`${where} ${name}`);
    }
    assert.deepEqual(same, [], "documented parameters their route does not read");
    // Not a vacuous pass: the parameters this document is meant to describe were all tried.
    for (
      const p of [
        "query grant",
        "header range",
        "header if-none-match",
        "header if-match",
        "header x-noc-wrapped-key",
        "header signature",
        "header signature-input",
        "header content-digest",
        "header authorization",
        "query limit",
        "query app",
      ]
    ) assert.ok(tried.has(p), `${p} was tried`);
    assert.ok(probes.length >= 100, `only ${probes.length} probes`);
  },
);

dbTest(
  "each request body content type /openapi.json documents is one its route accepts",
  async ({ db }) => {
    const noc = await testNoc(db);
    const doc = await (await noc.app.request("http://noc.test/openapi.json")).json();
    const refused: string[] = [];
    let tried = 0;
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(ops)) {
        const types = Object.keys(op.requestBody?.content ?? {}).filter((t) =>
          t !== "application/json"
        );
        if (types.length === 0) continue;
        assert.ok(path.startsWith("/v1/admin/"), `${path}: only the admin API takes other bodies`);
        const send = (type: string) =>
          noc.app.request(`http://noc.test${path}`, {
            method: method.toUpperCase(),
            headers: { authorization: `Bearer ${noc.adminToken}`, "content-type": type },
            body: new Uint8Array(),
          });
        for (const type of types) {
          const res = await send(type);
          const o = await outcome(res);
          if (res.status === 415) refused.push(`${method.toUpperCase()} ${path} ${type}: ${o}`);
          tried++;
        }
        // Where the document says a type can be refused, an undocumented one is.
        if (op.responses["415"]) {
          assert.equal((await send("text/plain")).status, 415, `${path} refuses text/plain`);
        }
      }
    }
    assert.deepEqual(refused, [], "documented body types the route refuses");
    assert.ok(tried >= 5, `only ${tried} body types tried`);
  },
);

dbTest("the document's Content-Digest example is the SHA-256 of the empty body", async ({ db }) => {
  const noc = await testNoc(db);
  const doc = await (await noc.app.request("http://noc.test/openapi.json")).json();
  const examples = new Set<string>();
  for (const ops of Object.values(doc.paths as Record<string, Record<string, any>>)) {
    for (const op of Object.values(ops)) {
      for (const p of op.parameters ?? []) {
        if (p.name === "Content-Digest" && p.example) examples.add(p.example);
      }
    }
  }
  const empty = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array()));
  const b64 = btoa(String.fromCharCode(...empty));
  assert.deepEqual([...examples], [`sha-256=:${b64}:`]);
});
