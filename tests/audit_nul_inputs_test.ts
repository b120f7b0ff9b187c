// deno-lint-ignore-file no-explicit-any
/**
 * Text PostgreSQL cannot store (a NUL, an unpaired surrogate) in any part of any admin request —
 * a path parameter, a query parameter, a JSON body's string — never gets a 500, and every write
 * is in the audit log with its answer, over real HTTP against a real NOC. Each admin operation of
 * the OpenAPI description is tried: a body made from its schema with one string at a time spoiled.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { serveNoc } from "./_agent.ts";

/** Spoiled strings in a JSON body, and spoiled percent-encodings in a URL. */
const bad = ["a\u0000b", "a\ud800b"] as const;
const badUrl = ["a%00b", "a%ED%A0%80b", "a%FFb"] as const;

/** A value that fits `schema` as well as a guess can; strings marked so they can be spoiled. */
function sample(schema: any, doc: any, depth = 0): any {
  if (!schema || depth > 6) return null;
  if (schema.$ref) return sample(resolve(doc, schema.$ref), doc, depth + 1);
  for (const k of ["oneOf", "anyOf"]) if (schema[k]) return sample(schema[k][0], doc, depth + 1);
  if (schema.allOf) {
    return Object.assign(
      {},
      ...schema.allOf.map((s: any) => sample(s, doc, depth + 1)),
    );
  }
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return schema.enum[0];
  const type = Array.isArray(schema.type)
    ? schema.type.find((t: string) => t !== "null")
    : schema.type;
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(schema.properties ?? {})) {
        out[k] = sample(v, doc, depth + 1);
      }
      return out;
    }
    case "array":
      return [sample(schema.items, doc, depth + 1)];
    case "integer":
    case "number":
      return schema.minimum ?? 1;
    case "boolean":
      return false;
    case "string":
      if (schema.format === "uuid") return crypto.randomUUID();
      if (schema.format === "date-time") return new Date(Date.now() + 3_600_000).toISOString();
      return "abc";
    default:
      return null;
  }
}

function resolve(doc: any, ref: string): any {
  return ref.replace(/^#\//, "").split("/").reduce((o, k) => o?.[k], doc);
}

/** Every path to a string leaf of `v`. */
function stringPaths(v: any, at: (string | number)[] = []): (string | number)[][] {
  if (typeof v === "string") return [at];
  if (Array.isArray(v)) return v.flatMap((x, i) => stringPaths(x, [...at, i]));
  if (v && typeof v === "object") {
    return Object.entries(v).flatMap(([k, x]) => stringPaths(x, [...at, k]));
  }
  return [];
}

function spoiled(v: any, path: (string | number)[], text: string): any {
  const copy = structuredClone(v);
  if (path.length === 0) return text;
  let o = copy;
  for (const k of path.slice(0, -1)) o = o[k];
  o[path.at(-1)!] = text;
  return copy;
}

dbTest(
  "a NUL or an unpaired surrogate anywhere in an admin request gets no 500, and every write is audited",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const doc = await (await fetch(`${noc.url}/openapi.json`)).json();
      const failures: string[] = [];
      let writes = 0;
      const answered = new Set<number>();
      const send = async (method: string, path: string, body?: unknown) => {
        const res = await fetch(`${noc.url}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${noc.adminToken}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        const text = await res.text();
        if (method !== "GET" && method !== "HEAD") writes++;
        answered.add(res.status);
        if (res.status >= 500) {
          failures.push(
            `${method} ${path} ${JSON.stringify(body)}: ${res.status} ${text.slice(0, 200)}`,
          );
        }
      };
      for (const [template, ops] of Object.entries(doc.paths as Record<string, any>)) {
        if (!template.startsWith("/v1/admin")) continue;
        for (const [method, op] of Object.entries(ops as Record<string, any>)) {
          const m = method.toUpperCase();
          const params: any[] = op.parameters ?? [];
          const fill = (spoil: string | null) =>
            template.replace(/\{(\w+)\}/g, (_, name) => {
              const p = params.find((x) => x.name === name && x.in === "path");
              return spoil ??
                encodeURIComponent(String(sample(p?.schema ?? { type: "string" }, doc)));
            });
          const json = op.requestBody?.content?.["application/json"]?.schema;
          const body = json ? sample(json, doc) : undefined;
          for (const b of badUrl) {
            // A path parameter, then a query parameter, spoiled.
            if (/\{\w+\}/.test(template)) await send(m, fill(b), body);
            await send(m, `${fill(null)}?_=${b}`, body);
            for (const q of params.filter((x) => x.in === "query")) {
              await send(m, `${fill(null)}?${q.name}=${b}`, body);
            }
          }
          for (const b of bad) {
            for (const p of body === undefined ? [] : stringPaths(body)) {
              await send(m, fill(null), spoiled(body, p, b));
            }
          }
        }
      }
      // The sweep reached routes' handlers, not only their validation.
      assert.ok(answered.has(201) && answered.has(404) && answered.has(400), [...answered].join());
      assert.deepEqual(failures, [], failures.join("\n"));
      // Every write is in the audit log, with its answer (none left "outcome unknown").
      const [row] = await db.sql<{ n: number; unknown: number }>`
        select count(*)::int as n, count(*) filter (where status is null)::int as unknown
        from audit_log`;
      assert.equal(row!.unknown, 0);
      assert.equal(row!.n, writes, `${writes} writes sent`);
    } finally {
      await noc.close();
    }
  },
);
