/**
 * `GET /openapi.json`: the OpenAPI 3.1 description of every route — the
 * appliance protocol, the local component server protocol, the admin API,
 * the operator console and the operational endpoints — with request schemas
 * generated from the same zod schemas the routes validate with; `GET /docs`:
 * a self-contained viewer that can also send requests.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import * as s from "../../../protocol/schemas.ts";
import { signedFileinfoSchema } from "../../../protocol/fileinfo.ts";
import { endorsedReleaseKeySchema } from "../../../protocol/release_keys.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { docsPage } from "./openapi_viewer.ts";

type Auth = "none" | "admin" | "appliance" | "grant" | "local" | "token" | "metrics" | "session";

/** One operation of the API. */
export interface Operation {
  method: "get" | "post" | "put" | "patch" | "delete" | "head";
  /** Hono-style path (`/v1/x/:id`). */
  path: string;
  summary: string;
  tag: string;
  auth: Auth;
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** A JSON body's schema, or another content type's description. */
  body?: z.ZodType | { type: string; description: string };
  /** Status → description; errors are added for every operation. */
  responses: Record<string, string>;
  /** Content type of the 2xx answer (JSON unless said). */
  produces?: string;
}

const json = "application/json";
const uidParam = s.uidParam, idParam = s.idParam;

/** Every operation the NOC serves. */
export function operations(settings: { maxAppDataBytes: number }): Operation[] {
  return [
    // Operations.
    {
      method: "get",
      path: "/healthz",
      summary: "Database reachable and every migration applied",
      tag: "operations",
      auth: "none",
      responses: { "200": "Healthy", "503": "Database unreachable or migrations pending" },
    },
    {
      method: "get",
      path: "/metrics",
      summary: "Metrics in the Prometheus text format",
      tag: "operations",
      auth: "metrics",
      responses: { "200": "Text exposition (version 0.0.4)" },
      produces: "text/plain",
    },
    {
      method: "get",
      path: "/openapi.json",
      summary: "This document",
      tag: "operations",
      auth: "none",
      responses: { "200": "OpenAPI 3.1 document" },
    },
    {
      method: "get",
      path: "/docs",
      summary: "Interactive viewer of this document",
      tag: "operations",
      auth: "none",
      responses: { "200": "HTML page" },
      produces: "text/html",
    },
    // Appliance protocol.
    {
      method: "post",
      path: "/v1/enroll",
      summary: "Register an appliance's keys with a one-time enrolment token",
      tag: "appliance",
      auth: "token",
      body: s.enrollSchema,
      responses: { "201": "Enrolled: UID, interval, NOC keys" },
    },
    {
      method: "post",
      path: "/v1/beats",
      summary: "SecureBeat: the periodic signed status report",
      tag: "appliance",
      auth: "appliance",
      body: s.beatSchema(settings.maxAppDataBytes),
      responses: { "200": "Accepted: interval and next due time" },
    },
    {
      method: "get",
      path: "/v1/keys",
      summary: "Public keys to pin, the NOC's X25519 key, and the key chain (signed rotations)",
      tag: "appliance",
      auth: "none",
      responses: { "200": "Keys" },
    },
    {
      method: "get",
      path: "/v1/catalog",
      summary:
        "The signed catalog made for this appliance (If-None-Match → 304); every answer carries Catalog-Binding over the request's nonce",
      tag: "appliance",
      auth: "appliance",
      responses: { "200": "Signed catalog envelope", "304": "Unchanged" },
    },
    {
      method: "get",
      path: "/v1/components/:id",
      summary: "A package or file, by download grant or signature (Range resumes)",
      tag: "appliance",
      auth: "grant",
      params: idParam,
      responses: {
        "200": "The bytes",
        "206": "A range of them",
        "403": "Not in this appliance's catalog (not_in_catalog), or a grant refused",
      },
      produces: "application/octet-stream",
    },
    {
      method: "head",
      path: "/v1/components/:id",
      summary: "Size and digest of a package or file",
      tag: "appliance",
      auth: "grant",
      params: idParam,
      responses: { "200": "Headers only" },
      produces: "application/octet-stream",
    },
    {
      method: "post",
      path: "/v1/installs",
      summary: "Install outcomes",
      tag: "appliance",
      auth: "appliance",
      body: s.installsSchema,
      responses: {
        "200": "Recorded; outcomes for versions never sent to the appliance listed as uncounted",
      },
    },
    {
      method: "get",
      path: "/v1/wake",
      summary: "Long poll for a wake-up",
      tag: "appliance",
      auth: "appliance",
      query: s.wakeQuery,
      responses: { "200": "wake and cursor", "503": "This instance is shutting down" },
    },
    // Local component servers.
    {
      method: "post",
      path: "/v1/local/enroll",
      summary: "Register a local component server for a site",
      tag: "local component server",
      auth: "token",
      body: s.localEnrollSchema,
      responses: { "201": "Enrolled: id, site, NOC keys" },
    },
    {
      method: "post",
      path: "/v1/local/sync",
      summary: "Report on itself; get the site's stage and the NOC keys",
      tag: "local component server",
      auth: "local",
      body: s.localSyncSchema,
      responses: { "200": "Stage, keys, and the appliances revoked since (their grants refused)" },
    },
    {
      method: "post",
      path: "/v1/local/deliveries",
      summary: "Downloads it served, in sequence",
      tag: "local component server",
      auth: "local",
      body: s.localRecordsSchema,
      responses: {
        "200":
          "Highest sequence number applied; records outside the site or its catalogs listed as refusedRecords",
      },
    },
    {
      method: "get",
      path: "/v1/local/components/:id",
      summary: "A staged component (or one an appliance of its site has a grant for)",
      tag: "local component server",
      auth: "local",
      params: idParam,
      responses: { "200": "The bytes, described by X-NOC-Component", "206": "A range of them" },
      produces: "application/octet-stream",
    },
    // Admin API.
    ...adminOperations(),
  ];
}

function admin(
  method: Operation["method"],
  path: string,
  summary: string,
  tag: string,
  extra: Partial<Operation> = {},
): Operation {
  return {
    method,
    path: `/v1/admin${path}`,
    summary,
    tag,
    auth: "admin",
    responses: { [method === "post" && !extra.responses ? "201" : "200"]: "Done" },
    ...extra,
  };
}

function adminOperations(): Operation[] {
  const ok = (d = "Done") => ({ "200": d });
  return [
    admin("post", "/enrollment-tokens", "Create a one-time enrolment token", "enrolment", {
      body: s.createEnrollmentTokenSchema,
    }),
    admin("get", "/enrollment-tokens", "List enrolment tokens", "enrolment", {
      query: s.limitQuery,
      responses: ok("Tokens"),
    }),
    admin("delete", "/enrollment-tokens/:id", "Revoke an enrolment token", "enrolment", {
      params: idParam,
    }),
    admin("get", "/appliances", "List appliances (filters, keyset pages)", "appliances", {
      query: s.listAppliancesQuery,
      responses: ok("A page of appliances and the next cursor"),
    }),
    admin(
      "get",
      "/appliances/:uid",
      "One appliance, its last report, history, alerts",
      "appliances",
      {
        params: uidParam,
        query: s.applianceDetailQuery,
      },
    ),
    admin("get", "/appliances/:uid/configuration", "What the NOC sent it", "appliances", {
      params: uidParam,
    }),
    admin("patch", "/appliances/:uid", "Change interval or placement", "appliances", {
      params: uidParam,
      body: s.patchApplianceSchema,
    }),
    admin("post", "/appliances/:uid/revoke", "Revoke an appliance", "appliances", {
      params: uidParam,
      body: s.revokeSchema,
      responses: ok(),
    }),
    admin("get", "/alerts", "List alerts", "alerts", {
      query: s.listAlertsQuery,
      responses: ok("Alerts"),
    }),
    admin("post", "/alerts/:id/ack", "Acknowledge an alert", "alerts", {
      params: idParam,
      responses: ok(),
    }),
    admin("post", "/maintenance", "Open a maintenance window", "alerts", {
      body: s.maintenanceSchema,
    }),
    admin("get", "/maintenance", "List maintenance windows", "alerts", {
      query: s.maintenanceListQuery,
    }),
    admin("delete", "/maintenance/:id", "End a maintenance window", "alerts", {
      params: idParam,
    }),
    admin("post", "/wake", "Wake an appliance, a site or the fleet", "appliances", {
      body: s.wakeSchema,
      responses: { "202": "Queued" },
    }),
    admin("get", "/local-servers", "List local component servers", "local component server", {
      query: s.localServerListQuery,
    }),
    admin("get", "/local-servers/:id", "One local component server", "local component server", {
      params: s.localServerParam,
    }),
    admin(
      "post",
      "/local-servers/:id/revoke",
      "Revoke a local component server",
      "local component server",
      {
        params: s.localServerParam,
        body: s.revokeSchema,
        responses: ok(),
      },
    ),
    admin("get", "/fleet", "Counts by state and open alerts", "appliances"),
    admin("post", "/sweep", "Run the status daemon now", "alerts", {
      responses: ok("Sweep result"),
    }),
    admin("get", "/notices", "Recent notices and their deliveries", "alerts", {
      query: s.limitQuery,
    }),
    admin("get", "/auth-failures", "Recent refused identities", "alerts", { query: s.limitQuery }),
    admin(
      "post",
      "/packages",
      "Publish a package (gzip tar payload, or a signed package)",
      "releases",
      {
        query: s.componentQuery.partial(),
        body: {
          type: "application/gzip",
          description:
            "A payload to encrypt and sign; or application/vnd.noc-package with X-NOC-Wrapped-Key",
        },
        responses: { "201": "Published", "200": "Already published with the same content" },
      },
    ),
    admin("post", "/files", "Publish a file", "releases", {
      query: s.componentQuery,
      body: { type: "application/octet-stream", description: "The file's bytes" },
      responses: { "201": "Published", "200": "Already published with the same content" },
    }),
    admin("get", "/components", "List components", "releases", { query: s.listComponentsQuery }),
    admin("get", "/components/:id", "One component", "releases", { params: idParam }),
    admin("post", "/release-keys", "Register an offline release key", "releases", {
      body: endorsedReleaseKeySchema,
    }),
    admin("get", "/release-keys", "List release keys", "releases"),
    admin("delete", "/release-keys/:kid", "Retire a release key", "releases", {
      params: s.kidParam,
    }),
    admin("get", "/apps/:app/fileinfo", "An application's fileinfo", "releases", {
      params: s.appParam,
    }),
    admin("put", "/apps/:app/fileinfo/:name", "Save a file's fileinfo", "releases", {
      params: s.fileinfoParam,
      body: signedFileinfoSchema,
    }),
    admin("delete", "/apps/:app/fileinfo/:name", "Delete a file's fileinfo", "releases", {
      params: s.fileinfoParam,
    }),
    admin("post", "/assignments", "Assign a release to a target (rollout, threshold)", "releases", {
      body: s.assignmentSchema,
    }),
    admin("get", "/assignments", "List assignments with progress", "releases", {
      query: s.assignmentListQuery,
    }),
    admin("get", "/assignments/:id", "One assignment with progress", "releases", {
      params: idParam,
    }),
    admin("patch", "/assignments/:id", "Change rollout, pause, threshold", "releases", {
      params: idParam,
      body: s.patchAssignmentSchema,
    }),
    admin("delete", "/assignments/:id", "Delete an assignment", "releases", { params: idParam }),
    admin("post", "/holds", "Hold an appliance (or one application) where it is", "releases", {
      body: s.holdSchema,
    }),
    admin("get", "/holds", "List holds", "releases", { query: s.holdQuery }),
    admin("delete", "/holds/:id", "Release a hold", "releases", { params: idParam }),
  ];
}

function schemaOf(t: z.ZodType): Record<string, unknown> {
  const out = z.toJSONSchema(t, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  delete out["$schema"];
  return out;
}

function parameters(op: Operation): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const [where, schema] of [["path", op.params], ["query", op.query]] as const) {
    if (!schema) continue;
    for (const [name, field] of Object.entries(schema.shape)) {
      const f = field as z.ZodType;
      out.push({
        name,
        in: where,
        required: where === "path" || !f.safeParse(undefined).success,
        schema: schemaOf(f),
      });
    }
  }
  return out;
}

const security: Record<Auth, Array<Record<string, string[]>>> = {
  none: [],
  token: [],
  admin: [{ adminToken: [] }],
  appliance: [{ applianceSignature: [] }],
  local: [{ applianceSignature: [] }],
  grant: [{ downloadGrant: [] }, { applianceSignature: [] }],
  metrics: [{ adminToken: [] }, { metricsToken: [] }],
  session: [{ consoleSession: [] }],
};

/** Builds the OpenAPI 3.1 document for `ops`. */
export function openApiDocument(ops: readonly Operation[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of ops) {
    const path = op.path.replace(/:([A-Za-z_]+)/g, "{$1}");
    const responses: Record<string, unknown> = {};
    for (const [status, description] of Object.entries(op.responses)) {
      const produces = op.produces ?? json;
      responses[status] = status === "304" || op.method === "head" || status === "503"
        ? { description }
        : produces === json
        ? { description, content: { [json]: { schema: { type: "object" } } } }
        : { description, content: { [produces]: { schema: { type: "string" } } } };
    }
    responses["4XX"] = {
      description: "Refused: a JSON body naming the problem",
      content: { [json]: { schema: { $ref: "#/components/schemas/Error" } } },
    };
    const operation: Record<string, unknown> = {
      operationId: `${op.method}${
        op.path.replace(
          /[^A-Za-z0-9]+(.)?/g,
          (_, ch: string | undefined) => ch?.toUpperCase() ?? "",
        )
      }`,
      summary: op.summary,
      tags: [op.tag],
      security: security[op.auth],
      parameters: parameters(op),
      responses,
    };
    if (op.body) {
      operation["requestBody"] = {
        required: true,
        content: op.body instanceof z.ZodType ? { [json]: { schema: schemaOf(op.body) } } : {
          [op.body.type]: {
            schema: { type: "string", contentMediaType: op.body.type },
          },
        },
        ...(op.body instanceof z.ZodType ? {} : { description: op.body.description }),
      };
    }
    (paths[path] ??= {})[op.method] = operation;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Appliance NOC",
      version,
      description: "The appliance protocol (signed with RFC 9421 HTTP Message Signatures and an " +
        "RFC 9530 Content-Digest; see docs/protocol.md), the local component server protocol, " +
        "the admin API and the operator console.",
    },
    tags: [
      "appliance",
      "local component server",
      "appliances",
      "alerts",
      "releases",
      "enrolment",
      "console",
      "operations",
    ].map((name) => ({ name })),
    paths,
    components: {
      schemas: {
        Error: {
          type: "object",
          required: ["error", "message"],
          properties: {
            error: { type: "string", description: "Stable code" },
            message: { type: "string" },
            issues: {
              type: "array",
              items: {
                type: "object",
                properties: { path: { type: "string" }, message: { type: "string" } },
              },
            },
          },
        },
      },
      securitySchemes: {
        adminToken: {
          type: "http",
          scheme: "bearer",
          description: "An admin token",
        },
        metricsToken: {
          type: "http",
          scheme: "bearer",
          description: "NOC_METRICS_TOKEN (reads /metrics only)",
        },
        consoleSession: {
          type: "apiKey",
          in: "cookie",
          name: "noc_session",
          description: "The operator console's session; unsafe methods also need its CSRF token",
        },
        applianceSignature: {
          type: "apiKey",
          in: "header",
          name: "Signature",
          description:
            "RFC 9421 signature (Ed25519) with Signature-Input and Content-Digest; keyid is the appliance UID or local server id",
        },
        downloadGrant: {
          type: "apiKey",
          in: "query",
          name: "grant",
          description: "The download grant from the catalog URL",
        },
      },
    },
  };
}

/** The OpenAPI routes: the document and its viewer. */
export function openApiRoutes(
  deps: AppDeps,
  extra: () => Operation[],
  options: { role?: "all" | "noc" | "catalog" | "component" } = {},
) {
  const role = options.role ?? "all";
  const served = (o: Operation) => {
    if (role === "all" || /^\/(healthz|metrics|openapi\.json|docs)$/.test(o.path)) return true;
    const part = /^\/v1\/(catalog|installs)\b/.test(o.path)
      ? "catalog"
      : /^\/v1\/components\b/.test(o.path)
      ? "component"
      : "noc";
    return part === role;
  };
  let cached: string | null = null;
  const doc = () =>
    cached ??= JSON.stringify(
      openApiDocument([...operations(deps.settings), ...extra()].filter(served), "1.0.0"),
    );
  return new Hono<AppEnv>()
    .get("/openapi.json", (c) => c.body(doc(), 200, { "content-type": json }))
    .get("/docs", (c) =>
      c.html(docsPage(), 200, {
        "content-security-policy":
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
      }));
}
