/**
 * `GET /openapi.json`: the OpenAPI 3.1 description of every route — the
 * appliance protocol, the local component server protocol, the admin API,
 * the operator console and the operational endpoints — with request schemas
 * generated from the same zod schemas the routes validate with, the request
 * headers each route reads ({@link requestHeaders}; a signed route's RFC 9421
 * `Signature-Input` and `Content-Digest` as header parameters, its `Signature`
 * as the `applianceSignature` security scheme), every request body's content
 * types, and the answers' bodies, content types and headers from
 * noc/http/ops/responses.ts (every refusal's body from `errorBody`);
 * `GET /docs`: a self-contained viewer that can also send requests.
 *
 * @module
 */
import {
  installWindowBody,
  installWindowListQuery,
  installWindowParam,
} from "../admin/install_windows.ts";
import { Hono } from "hono";
import { z } from "zod";
import * as s from "../../../protocol/schemas.ts";
import { signedFileinfoSchema } from "../../../protocol/fileinfo.ts";
import { releaseKeyBodySchema } from "../admin/release_keys.ts";
import { rolloutAppliancesQuery, targetChoicesQuery } from "../admin/assignments.ts";
import { createTokenBody } from "../admin/enrollment_tokens.ts";
import { listQuery as listAppliancesQuery } from "../admin/appliances.ts";
import * as op from "../admin/operators.ts";
import * as audit from "../admin/audit.ts";
import { auditQuery } from "../../services/audit.ts";
import { auditListQuery } from "../admin/audit.ts";
import { membersQuery } from "../admin/rollouts.ts";
import * as plan from "../../../protocol/rollout_plan.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { docsPage } from "./openapi_viewer.ts";
import * as r from "./responses.ts";

type Auth = "none" | "admin" | "appliance" | "grant" | "local" | "token" | "metrics" | "session";

/** A request header an operation reads beyond its authentication's (see {@link requestHeaders}). */
export type RequestHeader = "Range" | "If-None-Match" | "If-Match" | "X-NOC-Wrapped-Key";

/** One operation of the API. */
export interface Operation {
  method: "get" | "post" | "put" | "patch" | "delete" | "head";
  /** Hono-style path (`/v1/x/:id`). */
  path: string;
  summary: string;
  tag: string;
  auth: Auth;
  params?: z.ZodObject;
  /** Its query parameters (a field's `describe()` text is the parameter's description). */
  query?: z.ZodObject;
  /**
   * Request headers it reads, beyond its authentication's: a signed route's `Signature-Input`
   * and `Content-Digest` are added from `auth`.
   */
  headers?: RequestHeader[];
  /** A JSON body's schema, or the body's content types (type → what it is) and a description. */
  body?: z.ZodType | { types: Record<string, string>; description: string };
  /**
   * Status → description. Added for every operation: 4XX and 5XX; 401 (with WWW-Authenticate)
   * when `auth` authenticates; 429 (with Retry-After) behind the refusal gate (all but /healthz).
   */
  responses: Record<string, string>;
  /** Status → the JSON body answered with it (a refusal's is `errorBody` unless given). */
  bodies?: Record<string, z.ZodType>;
  /** Status → the headers (noc/http/ops/responses.ts `responseHeaders`) answered with it. */
  responseHeaders?: Record<string, r.ResponseHeader[]>;
  /** Content type of the 2xx answer (JSON unless said), or its types (type → what it is). */
  produces?: string | Record<string, string>;
}

const json = "application/json";
const uidParam = s.uidParam, idParam = s.idParam;

/**
 * What each {@link RequestHeader} says, and its value's JSON Schema. Sources:
 * protocol/http/range.ts `parseRange` (Range), noc/services/catalogs.ts (If-None-Match),
 * noc/http/admin/uploads.ts (X-NOC-Wrapped-Key).
 */
export const requestHeaders: Record<
  RequestHeader,
  { description: string; schema: Record<string, unknown>; example: string }
> = {
  "Range": {
    description: "One byte range, to resume a download (RFC 9110 §14.2): " +
      "`bytes=<first>-[<last>]` or `bytes=-<suffix length>` answers 206 with Content-Range; " +
      "a range outside the bytes 416; any other form the whole (200)",
    schema: { type: "string" },
    example: "bytes=1048576-",
  },
  "If-None-Match": {
    description: "The ETag of the catalog the appliance holds (`*`, a weak or a listed one " +
      "count as a match too: send only the one you hold): while it is still the current one, " +
      "GET /v1/catalog answers 304 and POST /v1/checkin `catalog: null`, each with a fresh " +
      "Catalog-Binding over this request and the held body",
    schema: { type: "string" },
    example: '"' + "0".repeat(64) + '"',
  },
  "If-Match": {
    description: "The revision the change was made against (RFC 9110 §13.1.1): the ETag a GET " +
      'answered (`"3"`), a list of them, or `*`. When it names none that is current the change ' +
      "is refused, 409 stale_revision with `revision` and `current` (the resource now), and " +
      "nothing is written; malformed: 400 invalid_header. Without it the last writer wins " +
      "(docs/operations.md, Versions and concurrent changes)",
    schema: { type: "string", maxLength: 1000 },
    example: '"3"',
  },
  "X-NOC-Wrapped-Key": {
    description: "With application/vnd.noc-package, required: the package's content key wrapped " +
      "to the NOC's X25519 key (HPKE; base64url), as `noc package` writes it",
    schema: { type: "string", pattern: "^[A-Za-z0-9_-]{100,120}$" },
    example: "A".repeat(110),
  },
};

/** The RFC 9421 headers a signed request carries besides `Signature` (the security scheme's). */
const signatureHeaders = {
  "Signature-Input": {
    description: "RFC 9421 signature parameters, covering " +
      '`("@method" "@authority" "@path" "@query" "content-digest")`, with `created` (within the ' +
      "allowed clock skew), `keyid` (the appliance UID or the local server id), a single-use " +
      '`nonce` and `alg="ed25519"`',
    schema: { type: "string" },
    example: 'sig1=("@method" "@authority" "@path" "@query" "content-digest");' +
      'created=1767225600;keyid="<uid>";nonce="<random>";alg="ed25519"',
  },
  "Content-Digest": {
    description: "RFC 9530 digest of the body (of the empty body when there is none), covered " +
      "by the signature",
    schema: { type: "string" },
    // The empty body's (newcomer review 23: an older example here was not SHA-256 of anything).
    example: "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
  },
} as const;

/** A component download's `grant` (noc/http/v1/components.ts, noc/http/v1/local.ts). */
const grant = z.string().max(1000).regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);

/** A component's bytes, by its kind (protocol/http/range.ts `componentAnswer`). */
const componentTypes = {
  "application/vnd.noc-package":
    "A package: signed header, then its encrypted payload (docs/protocol.md, Packages)",
  "application/octet-stream": "A file, as published",
};

/** The answers of a component download (GET or HEAD) — `bytes`, and `refusals` — and headers. */
function download(bytes: string, refusals: Record<string, string> = {}) {
  const sent: r.ResponseHeader[] = ["ETag", "Accept-Ranges"];
  return {
    responses: {
      "200": bytes,
      "206": "The range asked for",
      "416": "The range is outside the bytes (range_not_satisfiable)",
      ...refusals,
    },
    responseHeaders: {
      "200": sent,
      "206": [...sent, "Content-Range" as const],
      "416": ["Content-Range" as const],
    },
    headers: ["Range" as const],
    produces: componentTypes,
  };
}

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
      bodies: { "200": r.health, "503": r.health },
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
      bodies: { "200": z.record(z.string(), z.unknown()).describe("An OpenAPI 3.1 document") },
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
      responses: {
        "201":
          "Enrolled: UID, interval, NOC keys; `supersedes`: the records of this name it retired",
        "409":
          "`appliance_exists`: an active appliance of this hostname is in the token's site and " +
          "re-enrolment is `refuse` (token unspent; `existing` lists it); `key_in_use`",
      },
      bodies: { "201": r.enrolled },
    },
    {
      method: "post",
      path: "/v1/beats",
      summary: "SecureBeat: the periodic signed status report",
      tag: "appliance",
      auth: "appliance",
      body: s.beatSchema(settings.maxAppDataBytes),
      responses: { "200": "Accepted: interval and next due time" },
      bodies: { "200": r.beatAnswer },
    },
    {
      method: "post",
      path: "/v1/checkin",
      summary: "A whole check-in cycle in one request: the SecureBeat, and the catalog " +
        "(If-None-Match → catalog null); served where one process is both status monitor and " +
        "catalog server",
      tag: "appliance",
      auth: "appliance",
      headers: ["If-None-Match"],
      body: s.beatSchema(settings.maxAppDataBytes),
      responses: { "200": "Beat recorded; the catalog, or null when unchanged" },
      bodies: { "200": r.checkinAnswer },
      responseHeaders: { "200": ["ETag", "Catalog-Binding"] },
    },
    {
      method: "get",
      path: "/v1/keys",
      summary: "Public keys to pin, the NOC's X25519 key, and the key chain (signed rotations)",
      tag: "appliance",
      auth: "none",
      responses: { "200": "Keys" },
      bodies: { "200": r.keysAnswer },
    },
    {
      method: "get",
      path: "/v1/catalog",
      summary:
        "The signed catalog made for this appliance (If-None-Match → 304); every answer carries Catalog-Binding over the request's nonce",
      tag: "appliance",
      auth: "appliance",
      headers: ["If-None-Match"],
      responses: { "200": "Signed catalog envelope", "304": "Unchanged" },
      bodies: { "200": r.catalogEnvelope },
      responseHeaders: { "200": ["ETag", "Catalog-Binding"], "304": ["ETag", "Catalog-Binding"] },
    },
    {
      method: "get",
      path: "/v1/components/:id",
      summary: "A package or file, by download grant or signature (Range resumes)",
      tag: "appliance",
      auth: "grant",
      params: idParam,
      query: z.object({
        grant: grant.optional().describe(
          "The download grant from the catalog's URL: an appliance, a local component server " +
            "or a mirror fetches with it unsigned. Without it the request must be signed by " +
            "the appliance.",
        ),
      }),
      ...download("The bytes: a package or a file", {
        "401": "Neither a valid grant nor a valid signature, or the grant expired (expired_grant)",
        "403": "Not in this appliance's catalog (not_in_catalog), a grant refused, or a file " +
          "asked for over plain HTTP (https_required)",
      }),
    },
    {
      method: "head",
      path: "/v1/components/:id",
      summary: "Size and digest of a package or file",
      tag: "appliance",
      auth: "grant",
      params: idParam,
      query: z.object({ grant: grant.optional().describe("As for GET") }),
      ...download("Headers only: Content-Type, Content-Length, ETag"),
    },
    {
      method: "post",
      path: "/v1/installs",
      summary: "Install outcomes; one sent again under its reportId is recorded once",
      tag: "appliance",
      auth: "appliance",
      body: s.installsSchema,
      responses: {
        "200": "Recorded; outcomes for versions never sent to the appliance listed as uncounted",
      },
      bodies: { "200": r.installsAnswer },
    },
    {
      method: "get",
      path: "/v1/wake",
      summary: "Long poll for a wake-up",
      tag: "appliance",
      auth: "appliance",
      query: s.wakeQuery,
      responses: { "200": "wake and cursor", "503": "This instance is shutting down" },
      bodies: { "200": r.wakeAnswer },
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
      bodies: { "201": r.localEnrolled },
    },
    {
      method: "post",
      path: "/v1/local/sync",
      summary: "Report on itself; get the site's stage and the NOC keys",
      tag: "local component server",
      auth: "local",
      body: s.localSyncSchema,
      responses: { "200": "Stage, keys, and the appliances revoked since (their grants refused)" },
      bodies: { "200": r.localSynced },
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
      bodies: { "200": r.localRecorded },
    },
    {
      method: "get",
      path: "/v1/local/components/:id",
      summary: "A staged component (or one an appliance of its site has a grant for)",
      tag: "local component server",
      auth: "local",
      params: idParam,
      query: z.object({
        grant: grant.optional().describe(
          "An appliance's download grant: lets the server fetch a component its site's stage " +
            "does not list (yet), for an appliance of its site whose catalog lists it",
        ),
      }),
      ...download("The bytes, described by X-NOC-Component"),
      responseHeaders: {
        "200": ["ETag", "Accept-Ranges", "X-NOC-Component"],
        "206": ["ETag", "Accept-Ranges", "Content-Range", "X-NOC-Component"],
        "416": ["Content-Range"],
      },
    },
    // Admin API.
    ...withRevisions(adminOperations()),
  ];
}

function admin(
  method: Operation["method"],
  path: string,
  summary: string,
  tag: string,
  answer: { status: "200" | "201" | "202" | "204"; body?: z.ZodType; description?: string },
  extra: Partial<Operation> = {},
): Operation {
  return {
    method,
    path: `/v1/admin${path}`,
    summary,
    tag,
    auth: "admin",
    responses: { [answer.status]: answer.description ?? (answer.body ? "Done" : "Done; no body") },
    ...(answer.body ? { bodies: { [answer.status]: answer.body } } : {}),
    ...extra,
  };
}

/**
 * The admin operations that read or change a versioned resource (noc/http/admin/revisions.ts):
 * a single GET answers its ETag; a change reads If-Match, may be refused 409 stale_revision, and
 * answers its new ETag with a body.
 */
const versioned: Record<string, "read" | "change"> = {
  "POST /assignments": "read",
  "POST /rollouts": "read",
  "GET /assignments/:id": "read",
  "PATCH /assignments/:id": "change",
  "DELETE /assignments/:id": "change",
  "GET /appliances/:uid": "read",
  "PATCH /appliances/:uid": "change",
  "DELETE /appliances/:uid/identity-conflict": "change",
  "POST /appliances/:uid/revoke": "change",
  "DELETE /holds/:id": "change",
  "POST /maintenance/:id/end": "change",
  "DELETE /maintenance/:id": "change",
  "PUT /apps/:app/fileinfo/:name": "change",
  "DELETE /apps/:app/fileinfo/:name": "change",
  "DELETE /release-keys/:kid": "change",
  "GET /operators/:name": "read",
  "PATCH /operators/:name": "change",
  "POST /operators/:name/password": "change",
  "DELETE /enrollment-tokens/:id": "change",
  "GET /local-servers/:id": "read",
  "POST /local-servers/:id/revoke": "change",
  "GET /rollouts/:id": "read",
  "POST /rollouts/:id/pause": "change",
  "POST /rollouts/:id/resume": "change",
  "POST /rollouts/:id/cancel": "change",
  "POST /rollouts/:id/advance": "change",
  "GET /install-windows/:scope/:value": "read",
  "PUT /install-windows/:scope/:value": "change",
  "DELETE /install-windows/:scope/:value": "change",
};

const staleRevision = "If-Match names no current revision (stale_revision): `revision` is the " +
  "current one, `current` the resource now (null once it is gone); nothing was changed";

/** {@link versioned}'s ETag, If-Match and 409 added to `ops`. */
function withRevisions(ops: Operation[]): Operation[] {
  return ops.map((o) => {
    const use = versioned[`${o.method.toUpperCase()} ${o.path.replace(/^\/v1\/admin/, "")}`];
    if (!use) return o;
    const ok = Object.keys(o.responses).filter((st) => /^2\d\d$/.test(st) && st !== "204");
    const tagged = Object.fromEntries(ok.map((st) => [st, ["ETag" as const]]));
    if (use === "read") {
      return { ...o, responseHeaders: { ...o.responseHeaders, ...tagged } };
    }
    const conflict = o.responses["409"];
    return {
      ...o,
      headers: [...(o.headers ?? []), "If-Match"],
      responses: {
        ...o.responses,
        "409": conflict ? `${staleRevision}; or: ${conflict}` : staleRevision,
      },
      responseHeaders: { ...o.responseHeaders, ...tagged, "409": ["ETag"] },
    };
  });
}

function adminOperations(): Operation[] {
  const ok = (body: z.ZodType, description = "Done") => ({
    status: "200" as const,
    body,
    description,
  });
  const created = (body: z.ZodType) => ({ status: "201" as const, body, description: "Created" });
  const gone = { status: "204" as const, description: "Done; no body" };
  const published = {
    responses: { "201": "Published", "200": "Already published with the same content" },
    bodies: { "201": r.component, "200": r.component },
  };
  return [
    admin(
      "post",
      "/enrollment-tokens",
      "Create a one-time enrolment token",
      "enrolment",
      created(r.enrollmentToken),
      { body: createTokenBody },
    ),
    admin(
      "get",
      "/enrollment-tokens",
      "List enrolment tokens",
      "enrolment",
      ok(r.lists.enrollmentTokens, "Tokens"),
      { query: s.limitQuery },
    ),
    admin(
      "delete",
      "/enrollment-tokens/:id",
      "Revoke an enrolment token",
      "enrolment",
      ok(r.enrollmentToken, "The token, revoked"),
      { params: idParam },
    ),
    admin(
      "get",
      "/appliances",
      "List appliances (filters, keyset pages)",
      "appliances",
      ok(r.lists.appliances, "A page of appliances and the next cursor"),
      { query: listAppliancesQuery },
    ),
    admin(
      "get",
      "/appliances/facets",
      "Known sites, models, channels and tags to filter by (at most 200 each)",
      "appliances",
      ok(r.applianceFacets, "Facets"),
    ),
    admin(
      "post",
      "/appliances/bulk",
      "Wake, hold, release, move or put in maintenance the appliances `uids` (at most 1,000) " +
        "or all a filter selects (at most 5,000); checked whole before any write",
      "appliances",
      ok(r.bulkResult, "What was done, and what was skipped and why"),
      { body: s.bulkAppliancesSchema },
    ),
    admin(
      "get",
      "/appliances/:uid",
      "One appliance, its last report, history, alerts",
      "appliances",
      ok(r.applianceDetail, "The appliance"),
      { params: uidParam, query: s.applianceDetailQuery },
    ),
    admin(
      "get",
      "/appliances/:uid/configuration",
      "What the NOC sent it",
      "appliances",
      ok(r.configuration, "Every component version it was sent"),
      { params: uidParam },
    ),
    admin(
      "patch",
      "/appliances/:uid",
      "Change interval or placement",
      "appliances",
      ok(r.appliance, "The appliance, changed"),
      { params: uidParam, body: s.patchApplianceSchema },
    ),
    admin(
      "delete",
      "/appliances/:uid/identity-conflict",
      "Clear an appliance's identity-conflict (clone) mark",
      "appliances",
      ok(r.appliance, "The appliance, its mark cleared"),
      { params: uidParam },
    ),
    admin(
      "post",
      "/appliances/:uid/revoke",
      "Revoke an appliance",
      "appliances",
      ok(r.appliance, "The appliance, revoked"),
      { params: uidParam, body: s.revokeSchema },
    ),
    admin("get", "/alerts", "List alerts", "alerts", ok(r.lists.alerts, "Alerts"), {
      query: s.listAlertsQuery,
    }),
    admin("post", "/alerts/:id/ack", "Acknowledge an alert", "alerts", ok(r.alert, "The alert"), {
      params: idParam,
    }),
    admin(
      "post",
      "/alerts/ack",
      "Acknowledge alerts by id (at most 1,000) or all a filter selects, with one note",
      "alerts",
      ok(r.bulkAck, "How many were acknowledged (those already acknowledged are left)"),
      { body: s.bulkAckSchema },
    ),
    admin(
      "post",
      "/maintenance",
      "Open a maintenance window",
      "alerts",
      created(r.maintenanceWindow),
      { body: s.maintenanceSchema },
    ),
    admin(
      "get",
      "/maintenance",
      "List maintenance windows",
      "alerts",
      ok(r.lists.maintenanceWindows, "Windows"),
      { query: s.maintenanceListQuery },
    ),
    admin(
      "post",
      "/maintenance/:id/end",
      "End a maintenance window now (one not begun is left empty)",
      "alerts",
      ok(r.maintenanceWindow, "The window, ended"),
      { params: idParam },
    ),
    admin("delete", "/maintenance/:id", "Delete a maintenance window", "alerts", gone, {
      params: idParam,
    }),
    admin(
      "post",
      "/wake",
      "Wake an appliance, a site or the fleet",
      "appliances",
      { status: "202", body: r.wakeQueued, description: "Queued" },
      { body: s.wakeSchema },
    ),
    admin(
      "get",
      "/local-servers",
      "List local component servers",
      "local component server",
      ok(r.lists.localServers, "Local component servers"),
      { query: s.localServerListQuery },
    ),
    admin(
      "get",
      "/local-servers/:id",
      "One local component server",
      "local component server",
      ok(r.localServerDetail, "The server, and what it fetched from the NOC"),
      { params: s.localServerParam },
    ),
    admin(
      "post",
      "/local-servers/:id/revoke",
      "Revoke a local component server",
      "local component server",
      ok(r.localServer, "The server, revoked"),
      { params: s.localServerParam, body: s.revokeSchema },
    ),
    admin("get", "/fleet", "Counts by state and open alerts", "appliances", ok(r.fleet, "Fleet")),
    admin(
      "get",
      "/fleet/sites",
      "Each site's health, sites in trouble first",
      "appliances",
      ok(r.siteHealth, "Sites"),
      { query: s.siteHealthQuery },
    ),
    admin("post", "/sweep", "Run the status daemon now", "alerts", ok(r.sweep, "Sweep result")),
    admin(
      "get",
      "/notices",
      "Recent notices and their deliveries",
      "alerts",
      ok(r.notices, "Notices"),
      { query: s.limitQuery },
    ),
    admin(
      "get",
      "/auth-failures",
      "Recent refused identities (uid: those under one appliance's identity)",
      "alerts",
      ok(r.authFailures, "Refusals"),
      { query: s.authFailuresQuery },
    ),
    admin(
      "post",
      "/packages",
      "Publish a package (gzip tar payload, or a signed package)",
      "releases",
      created(r.component),
      {
        query: s.componentQuery.partial(),
        headers: ["X-NOC-Wrapped-Key"],
        body: {
          types: {
            "application/gzip":
              "A gzip'd tar payload for the NOC to encrypt and sign; app, name and version in the query",
            "application/x-gzip": "The same payload, labelled as some clients label gzip",
            "application/octet-stream": "The same payload, unlabelled",
            "application/vnd.noc-package":
              "A package signed offline (`noc package`), its content key in X-NOC-Wrapped-Key; no query: it names itself",
          },
          description:
            "A payload for the NOC to sign, or a package signed offline; either is checked as it " +
            "streams in (at most NOC_MAX_UPLOAD_BYTES)",
        },
        ...published,
        responses: {
          ...published.responses,
          "415": "Content-Type is none of these (unsupported_media_type)",
        },
      },
    ),
    admin("post", "/files", "Publish a file", "releases", created(r.component), {
      query: s.componentQuery,
      body: {
        types: { "application/octet-stream": "The file's bytes, stored as they are" },
        description: "The file (at most NOC_MAX_UPLOAD_BYTES)",
      },
      ...published,
    }),
    admin("get", "/components", "List components", "releases", ok(r.lists.components), {
      query: s.listComponentsQuery,
    }),
    admin("get", "/components/:id", "One component", "releases", ok(r.componentDetail), {
      params: idParam,
    }),
    admin(
      "post",
      "/release-keys",
      "Register an offline release key",
      "releases",
      created(r.releaseKey),
      { body: releaseKeyBodySchema },
    ),
    admin("get", "/release-keys", "List release keys", "releases", ok(r.lists.releaseKeys), {
      query: s.limitQuery,
    }),
    admin(
      "get",
      "/install-windows",
      "List install windows (when appliances may install)",
      "releases",
      ok(r.lists.installWindows),
      { query: installWindowListQuery },
    ),
    admin(
      "get",
      "/install-windows/:scope/:value",
      "One install window",
      "releases",
      ok(r.installWindow),
      { params: installWindowParam },
    ),
    admin(
      "put",
      "/install-windows/:scope/:value",
      "Set an appliance's, a site's or a model's install window",
      "releases",
      created(r.installWindow),
      {
        params: installWindowParam,
        body: installWindowBody,
        responses: { "201": "Created", "200": "Replaced (its revision goes up)" },
        bodies: { "201": r.installWindow, "200": r.installWindow },
      },
    ),
    admin(
      "delete",
      "/install-windows/:scope/:value",
      "Remove an install window",
      "releases",
      gone,
      { params: installWindowParam },
    ),
    admin("delete", "/release-keys/:kid", "Retire a release key", "releases", gone, {
      params: s.kidParam,
      query: s.retireKeyQuery,
      responses: {
        "204": "Retired",
        "200": "Retired with ?force=true although assignments need what it signed: `dependents` " +
          "names them (they stop installing)",
        "409": "Assignments need a package or fileinfo it signed (in_use; `dependents` names them)",
      },
      bodies: { "200": r.retiredKey },
    }),
    admin(
      "get",
      "/apps/:app/fileinfo",
      "An application's fileinfo",
      "releases",
      ok(r.lists.fileinfo),
      {
        params: s.appParam,
        query: s.limitQuery,
      },
    ),
    admin(
      "put",
      "/apps/:app/fileinfo/:name",
      "Save a file's fileinfo",
      "releases",
      ok(r.fileinfo),
      {
        params: s.fileinfoParam,
        body: signedFileinfoSchema,
      },
    ),
    admin("delete", "/apps/:app/fileinfo/:name", "Delete a file's fileinfo", "releases", gone, {
      params: s.fileinfoParam,
      responses: {
        "204": "Deleted",
        "409": "A file of that name is assigned (in_use; `dependents` names the assignments)",
      },
    }),
    admin(
      "post",
      "/assignments",
      "Assign a release to a target (rollout, threshold); an unknown target is refused",
      "releases",
      created(r.assignment),
      {
        body: s.assignmentSchema,
        responses: {
          "201": "Assigned",
          "409": "The target would take appliances from a running or paused phased rollout of " +
            "the component (managed_by_rollout; `rolloutId` names it): cancel it first; or the " +
            "assignment would let a catalog list more components than a SecureBeat can report " +
            "(too_many_components; `limit` and `components` give the figures)",
        },
      },
    ),
    admin(
      "get",
      "/assignments",
      "List assignments with progress",
      "releases",
      ok(r.lists.assignments),
      { query: s.assignmentListQuery },
    ),
    admin(
      "get",
      "/assignments/targets",
      "Known sites, models, channels and tags, with their appliance counts",
      "releases",
      ok(r.targetChoices),
      { query: targetChoicesQuery },
    ),
    admin("get", "/assignments/:id", "One assignment with progress", "releases", ok(r.assignment), {
      params: idParam,
    }),
    admin(
      "get",
      "/assignments/:id/appliances",
      "The appliances a release was sent to: state, running version, outcome (UID pages)",
      "releases",
      ok(r.rolloutAppliances),
      { params: idParam, query: rolloutAppliancesQuery },
    ),
    admin(
      "patch",
      "/assignments/:id",
      "Change rollout, pause, gate threshold and minimum sample",
      "releases",
      ok(r.assignment),
      {
        params: idParam,
        body: s.patchAssignmentSchema,
        responses: { "200": "Done", "409": managedByRollout },
      },
    ),
    admin("delete", "/assignments/:id", "Delete an assignment", "releases", gone, {
      params: idParam,
      responses: { "204": "Done; no body", "409": managedByRollout },
    }),
    admin(
      "post",
      "/holds",
      "Hold an appliance (or one application) where it is",
      "releases",
      created(r.hold),
      { body: s.holdSchema },
    ),
    admin("get", "/holds", "List holds", "releases", ok(r.lists.holds), { query: s.holdQuery }),
    admin("delete", "/holds/:id", "Release a hold", "releases", gone, { params: idParam }),
    ...rolloutOperations(),
    ...operatorOperations(),
  ];
}

/** The 409 of an assignment a running or paused phased rollout manages. */
const managedByRollout = "A running or paused phased rollout manages this assignment " +
  "(managed_by_rollout; `rolloutId` names it): pause, resume, cancel or advance the rollout instead";

/** `/v1/admin/rollouts`: phased rollouts (noc/http/admin/rollouts.ts). */
function rolloutOperations(): Operation[] {
  const tag = "releases";
  const detail = r.rolloutDetail;
  const ok = (body: z.ZodType, description: string) => ({
    status: "200" as const,
    body,
    description,
  });
  const wrongState = "The action does not apply in the rollout's state (rollout_state; `state` " +
    "names it)";
  const action = (verb: string, summary: string, only: string) =>
    admin(
      "post",
      `/rollouts/:id/${verb}`,
      `${summary}, with an optional note kept in its event (${only})`,
      tag,
      { status: "200", body: detail, description: "The rollout, changed" },
      {
        params: idParam,
        body: plan.rolloutActionSchema,
        responses: {
          "200": "The rollout, changed",
          "404": "No such rollout (not_found)",
          "409": wrongState,
        },
      },
    );
  return [
    admin(
      "post",
      "/rollouts",
      "Start a phased rollout of a published release to a target: phases by count or " +
        "percentage, each with a soak time, advance and stop conditions and gates on reported " +
        "health (plug-in health, a metric against a control group, beat regularity); the first " +
        "phase starts at once",
      tag,
      { status: "201", body: detail, description: "Created: the rollout, its first phase begun" },
      {
        body: plan.createRolloutSchema,
        responses: {
          "201": "Created: the rollout, its first phase begun",
          "404": "The release (or previousVersion) is not published (not_found)",
          "409": "The component has a running or paused rollout already (rollout_exists)",
        },
      },
    ),
    admin(
      "get",
      "/rollouts",
      "List phased rollouts, newest first (by state; keyset pages)",
      tag,
      ok(r.lists.rollouts, "A page of rollouts and the next cursor"),
      { query: plan.rolloutListQuery },
    ),
    admin(
      "get",
      "/rollouts/:id",
      "One phased rollout: phases with sizes and members, control sample, the last gate " +
        "figures against control, and the timeline of events with their actors",
      tag,
      ok(detail, "The rollout"),
      { params: idParam, responses: { "200": "The rollout", "404": "No such rollout" } },
    ),
    admin(
      "get",
      "/rollouts/:id/appliances",
      "A rollout's appliances (by phase and state): install state or not_sent, running " +
        "version, latest outcome (UID pages)",
      tag,
      ok(r.rolloutMembers, "A page of members"),
      {
        params: idParam,
        query: membersQuery,
        responses: { "200": "A page of members", "404": "No such rollout" },
      },
    ),
    action("pause", "Pause a running rollout: nobody new gets the release", "running only"),
    action("resume", "Resume a paused rollout: the soak time starts anew", "paused only"),
    action(
      "cancel",
      "Cancel a rollout for good: its assignment stays paused",
      "running or paused",
    ),
    action(
      "advance",
      "Advance now: start the next phase whatever the figures (or complete after the last)",
      "running only",
    ),
  ];
}

/** `/v1/admin/operators`, `/v1/admin/me` and `/v1/admin/audit` (noc/http/admin/operators.ts, audit.ts). */
function operatorOperations(): Operation[] {
  const tag = "operators";
  const one = op.operatorAnswer;
  const forbidden = {
    "403": "The caller's role is below what the route needs (forbidden_role; see the role table)",
  };
  const csv = { "text/csv": "Every matching record (at most 100,000), RFC 4180, newest first" };
  return [
    admin("get", "/me", "Who the caller is: name, role", tag, {
      status: "200",
      body: op.meAnswer,
    }),
    admin("get", "/operators", "List operators and their personal tokens (admin)", tag, {
      status: "200",
      body: z.object({
        items: z.array(one),
        nextCursor: z.string().nullable().describe(
          "Pass as `cursor` for the next page; null: this is the last page",
        ),
      }),
    }, { query: s.limitQuery, responses: { "200": "Operators", ...forbidden } }),
    admin("post", "/operators", "Create an operator (admin)", tag, {
      status: "201",
      body: one,
      description: "Created",
    }, {
      body: op.createOperatorBody,
      responses: { "201": "Created", "409": "The name is taken (operator_exists)", ...forbidden },
    }),
    admin("get", "/operators/:name", "One operator (admin)", tag, { status: "200", body: one }, {
      params: op.operatorParam,
    }),
    admin(
      "patch",
      "/operators/:name",
      "Change an operator's role, disable or enable them (their console sessions end)",
      tag,
      { status: "200", body: one },
      { params: op.operatorParam, body: op.patchOperatorBody },
    ),
    admin(
      "post",
      "/operators/:name/password",
      "Set an operator's password (their console sessions end)",
      tag,
      { status: "200", body: one },
      { params: op.operatorParam, body: op.passwordBody },
    ),
    admin(
      "post",
      "/operators/:name/tokens",
      "Issue a personal API token (its secret is answered once)",
      tag,
      { status: "201", body: op.issuedToken, description: "Created" },
      { params: op.operatorParam, body: op.tokenBody },
    ),
    admin(
      "delete",
      "/operators/:name/tokens/:id",
      "Revoke a personal API token",
      tag,
      { status: "204", description: "Done; no body" },
      { params: op.operatorTokenParam },
    ),
    admin(
      "get",
      "/audit",
      "The audit log, newest first (admin, operator): filters (actor, path, target: an " +
        "appliance UID, id or name a change named or resolved to), keyset pages, or CSV",
      tag,
      { status: "200", body: audit.auditPageAnswer, description: "A page of records" },
      { query: auditListQuery, produces: { "application/json": "", ...csv } },
    ),
    admin(
      "get",
      "/audit.csv",
      "The audit log as CSV (admin, operator): as /audit?format=csv",
      tag,
      { status: "200", description: "CSV" },
      { query: auditQuery, produces: csv },
    ),
  ];
}

function schemaOf(t: z.ZodType): Record<string, unknown> {
  const out = z.toJSONSchema(t, {
    io: "input",
    unrepresentable: "any",
    // A time says `format: date-time`; the long pattern zod adds for it says nothing more.
    override: (ctx) => {
      if (ctx.jsonSchema.format === "date-time") delete ctx.jsonSchema.pattern;
    },
  }) as Record<string, unknown>;
  delete out["$schema"];
  return out;
}

function parameters(op: Operation): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const [where, schema] of [["path", op.params], ["query", op.query]] as const) {
    if (!schema) continue;
    for (const [name, field] of Object.entries(schema.shape)) {
      const f = field as z.ZodType;
      const { description, ...rest } = schemaOf(f);
      out.push({
        name,
        in: where,
        ...(typeof description === "string" ? { description } : {}),
        required: where === "path" || !f.safeParse(undefined).success,
        schema: rest,
      });
    }
  }
  for (const name of op.headers ?? []) {
    out.push({ name, in: "header", required: false, ...requestHeaders[name] });
  }
  // Signed routes: the RFC 9421 headers besides Signature (the security scheme names that one).
  if (op.auth === "appliance" || op.auth === "local" || op.auth === "grant") {
    const signed = op.auth !== "grant";
    for (const [name, h] of Object.entries(signatureHeaders)) {
      out.push({
        name,
        in: "header",
        required: signed,
        ...h,
        description: signed ? h.description : `Without a grant, required: ${h.description}`,
      });
    }
  }
  return out;
}

/** Operations that authenticate, and what their 401 says. */
const unauthenticated: Partial<Record<Auth, string>> = {
  admin: "No valid admin or personal token (Authorization: Bearer)",
  appliance: "The signature is missing or does not verify, is stale or replayed, or its key is " +
    "unknown or revoked",
  local: "The signature is missing or does not verify, is stale or replayed, or its key is " +
    "unknown or revoked",
  grant: "Neither a valid grant nor a valid signature",
  metrics: "No valid metrics or admin token (Authorization: Bearer)",
};

/** An OpenAPI Response Object's `headers` naming `names` (in `components.headers`). */
function headersOf(names: readonly r.ResponseHeader[]): Record<string, unknown> {
  if (names.length === 0) return {};
  return {
    headers: Object.fromEntries(
      [...new Set(names)].map((n) => [n, { $ref: `#/components/headers/${n}` }]),
    ),
  };
}

/** An OpenAPI `content` map: each of `types` (type → what it is) as a string of bytes. */
function contentOf(types: Record<string, string>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(types).map(([type, description]) => [type, {
      schema: {
        type: "string",
        ...(type.startsWith("text/") ? {} : { contentMediaType: type }),
        ...(description ? { description } : {}),
      },
    }]),
  );
}

/** `op`'s Responses Object: its own answers, then the refusals every operation can give. */
function responsesOf(op: Operation): Record<string, unknown> {
  const produces = op.produces ?? json;
  const types = typeof produces === "string" ? { [produces]: "" } : produces;
  const errorContent = { [json]: { schema: { $ref: "#/components/schemas/Error" } } };
  const refusal = produces === "text/html"
    ? { description: "Refused: a page naming the problem" }
    : { description: "Refused: a JSON body naming the problem", content: errorContent };
  // /healthz is answered before the refusal gate (noc/app.ts) and answers its own 503.
  const gated = op.path !== "/healthz";
  const described: Record<string, string> = { ...op.responses };
  const challenge = unauthenticated[op.auth];
  if (challenge) described["401"] ??= challenge;
  if (gated) {
    described["429"] ??= "Too many requests from this identity or address, or too many " +
      "refusals from this address: wait Retry-After seconds (rate_limited)";
  }
  const headers = (status: string): r.ResponseHeader[] => [
    ...(op.responseHeaders?.[status] ?? []),
    ...(status === "401" && challenge ? ["WWW-Authenticate" as const] : []),
    ...(gated && ["429", "503", "5XX"].includes(status) ? ["Retry-After" as const] : []),
  ];
  const out: Record<string, unknown> = {};
  for (const [status, description] of Object.entries(described)) {
    const body = op.bodies?.[status];
    const n = Number(status);
    const answer = body
      ? { description, content: { [json]: { schema: schemaOf(body) } } }
      : status === "429"
      // The refusal gate answers JSON, before any page.
      ? { description, content: errorContent }
      : n >= 400
      ? { ...refusal, description }
      : n === 204 || n === 304 || op.method === "head" || n < 200 || n >= 300
      ? { description }
      : produces === json
      ? { description, content: { [json]: { schema: { type: "object" } } } }
      : { description, content: contentOf(types) };
    out[status] = { ...answer, ...headersOf(headers(status)) };
  }
  out["4XX"] = refusal;
  out["5XX"] = {
    ...refusal,
    ...(gated
      ? {
        description: `${refusal.description} (503, with Retry-After: the database is unreachable)`,
        ...headersOf(headers("5XX")),
      }
      : {}),
  };
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
    const responses = responsesOf(op);
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
      operation["requestBody"] = op.body instanceof z.ZodType
        ? { required: true, content: { [json]: { schema: schemaOf(op.body) } } }
        : { required: true, description: op.body.description, content: contentOf(op.body.types) };
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
        Error: schemaOf(r.errorBody),
      },
      headers: Object.fromEntries(
        Object.entries(r.responseHeaders).map(([name, h]) => [
          name,
          {
            description: h.description,
            ...(h.schema instanceof z.ZodType
              ? { content: { [json]: { schema: schemaOf(h.schema) } } }
              : { schema: h.schema }),
          },
        ]),
      ),
      securitySchemes: {
        adminToken: {
          type: "http",
          scheme: "bearer",
          description: "An admin token (role admin), or an operator's personal token (their " +
            "role; a route below it answers 403 forbidden_role: docs/operations.md, the role table)",
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
          description: "RFC 9421 signature (Ed25519) of the request, `sig1=:<base64>:`, with the " +
            "Signature-Input and Content-Digest headers each signed route lists; keyid is the " +
            "appliance UID or local server id (docs/protocol.md)",
        },
        downloadGrant: {
          type: "apiKey",
          in: "query",
          name: "grant",
          description: "The download grant from the catalog URL (the `grant` query parameter)",
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
    // Beat and catalog in one: only where one process is both status monitor and catalog server.
    if (o.path === "/v1/checkin") return false;
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
