/** zod schemas for every request body and query the NOC accepts. */
import { z } from "zod";

/** An application, component or model name. */
export const nameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
  message: "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
});
/** True when `s` can be stored and shown as text: well-formed UTF-16 and no NUL. */
export function isCleanText(s: string): boolean {
  return !s.includes("\u0000") && s.isWellFormed();
}

/** A string of at most `max` characters, without NUL or lone surrogates. */
export const text = (max: number) =>
  z.string().max(max).refine(isCleanText, {
    message: "must not contain NUL or unpaired surrogates",
  });
const label = (max: number) => text(max).trim().min(1);
const bytes = z.number().int().min(0).max(2 ** 53 - 1);
/** An ISO 8601 time with an offset, between 1970 and 9999. */
export const isoTime = z.iso.datetime({ offset: true }).refine((v) => {
  const year = new Date(v).getUTCFullYear();
  return year >= 1970 && year <= 9999;
}, { message: "must be between 1970 and 9999" });

/**
 * Finds what makes arbitrary JSON unfit to store: nesting deeper than
 * `maxDepth`, or a key or string with NUL or unpaired surrogates. Iterative,
 * so a hostile depth cannot overflow the stack. Returns a message, or null.
 */
export function badJson(value: unknown, maxDepth = 16): string | null {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v === "string") {
      if (!isCleanText(v)) return "must not contain NUL or unpaired surrogates";
    } else if (v !== null && typeof v === "object") {
      if (depth >= maxDepth) return `must not nest deeper than ${maxDepth} levels`;
      for (const [k, child] of Object.entries(v)) {
        if (!isCleanText(k)) return "keys must not contain NUL or unpaired surrogates";
        stack.push([child, depth + 1]);
      }
    }
  }
  return null;
}
const b64key = z.string().regex(/^[A-Za-z0-9_-]{43}$/, {
  message: "must be 32 bytes in unpadded base64url",
});

/** A host name: letters, digits, '.', '-', at most 253 characters. */
export const hostnameSchema = z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, {
  message: "must be a host name (letters, digits, '.', '-')",
});

/** `POST /v1/enroll`. */
export const enrollSchema = z.strictObject({
  token: text(200).min(1),
  model: nameSchema,
  hostname: hostnameSchema,
  signingKey: b64key,
  encryptionKey: b64key,
  agentVersion: label(64).optional(),
});

/** An installed component as reported by an appliance. */
export const installedComponentSchema = z.strictObject({
  kind: z.enum(["package", "file"]),
  app: nameSchema,
  name: nameSchema,
  version: label(128),
});

/**
 * The most components a SecureBeat lists (docs/protocol.md, "The SecureBeat's limits"); an agent
 * with more reports this many and names the rest in `dropped`.
 */
export const BEAT_MAX_COMPONENTS = 2000;

/** The most entries of a SecureBeat's `dropped` list. */
export const BEAT_MAX_DROPPED = 64;

/** `POST /v1/beats`: the SecureBeat. */
export function beatSchema(maxAppDataBytes: number) {
  return z.strictObject({
    seq: z.number().int().min(0).max(2 ** 53 - 1),
    sentAt: isoTime,
    agentVersion: label(64).optional(),
    /**
     * A random UUID the agent process draws when it starts (not kept in the state folder): two
     * devices sharing one identity (a copied state folder) beat with two of them at once
     * (issue 21 item 7).
     */
    instanceId: z.uuid().optional(),
    /** The host name the appliance runs under now (issue 21 item 8). */
    hostname: hostnameSchema.optional(),
    /**
     * What the agent left out of this report to fit the NOC's limits or after a refusal, in
     * words, e.g. `apps.scanner (15,210 bytes)` or `components: 2,001 installed, 2,000 listed`.
     */
    dropped: z.array(text(200)).max(BEAT_MAX_DROPPED).optional(),
    health: z.strictObject({
      load: z.tuple([z.number().min(0), z.number().min(0), z.number().min(0)]),
      memory: z.strictObject({ totalBytes: bytes, availableBytes: bytes }),
      disks: z.array(z.strictObject({ mount: label(256), totalBytes: bytes, freeBytes: bytes }))
        .max(64),
      uptimeS: z.number().min(0),
    }),
    components: z.array(installedComponentSchema).max(BEAT_MAX_COMPONENTS),
    lastCycle: z.strictObject({
      outcome: z.enum(["none", "ok", "partial", "failed"]),
      startedAt: isoTime.optional(),
      finishedAt: isoTime.optional(),
      message: text(2000).optional(),
      /** What the agent refused or failed last cycle (bad signature, rollback, digest, path...). */
      problems: z.array(z.strictObject({
        code: label(64),
        message: text(2000),
        kind: z.enum(["package", "file", "catalog", "plugin"]).optional(),
        app: nameSchema.optional(),
        name: nameSchema.optional(),
        version: label(128).optional(),
        /** `install_deferred`: when the install window opens next. */
        opensAt: isoTime.optional(),
      })).max(100).optional(),
    }),
    apps: z.record(nameSchema, z.record(text(128), z.unknown()))
      .refine((apps) => Object.keys(apps).length <= 64, { message: "at most 64 applications" })
      .superRefine((apps, ctx) => {
        for (const [app, data] of Object.entries(apps)) {
          const bad = badJson(data);
          if (bad) {
            ctx.addIssue({
              code: "custom",
              path: [app],
              message: `data of application "${app}" ${bad}`,
            });
            continue;
          }
          const size = new TextEncoder().encode(JSON.stringify(data)).length;
          if (size > maxAppDataBytes) {
            ctx.addIssue({
              code: "custom",
              path: [app],
              message:
                `data of application "${app}" is ${size} bytes, more than ${maxAppDataBytes}`,
            });
          }
        }
      }),
  });
}

/** A parsed SecureBeat. */
export type Beat = z.infer<ReturnType<typeof beatSchema>>;

/** `POST /v1/admin/enrollment-tokens`. */
export const createEnrollmentTokenSchema = z.strictObject({
  ttlS: z.number().int().min(60).max(30 * 86400).optional(),
  label: label(200).optional(),
  site: nameSchema.optional(),
  channel: nameSchema.optional(),
  tags: z.array(nameSchema).max(32).optional(),
  purpose: z.enum(["appliance", "local-server"]).optional(),
}).refine((t) => t.purpose !== "local-server" || t.site !== undefined, {
  path: ["site"],
  message: "a local-server token needs the site it will serve",
});

/** `PATCH /v1/admin/appliances/:uid`. */
export const patchApplianceSchema = z.strictObject({
  intervalS: z.number().int().min(10).max(86400).optional(),
  site: nameSchema.nullable().optional(),
  channel: nameSchema.optional(),
  tags: z.array(nameSchema).max(32).optional(),
}).refine((v) => Object.keys(v).length > 0, {
  message: "give at least one of intervalS, site, channel, tags",
});

/** `POST /v1/admin/appliances/:uid/revoke`. */
export const revokeSchema = z.strictObject({ reason: label(500) });

/** `POST /v1/admin/maintenance`. */
export const maintenanceSchema = z.strictObject({
  uid: z.uuid().optional(),
  site: nameSchema.optional(),
  startsAt: isoTime.optional(),
  endsAt: isoTime,
  reason: label(500),
}).refine((v) => (v.uid === undefined) !== (v.site === undefined), {
  message: "give exactly one of uid or site",
});

/** Appliance states. */
export const applianceStates = ["ok", "late", "missing", "revoked"] as const;

/**
 * Last install outcomes an appliance list filters by: the outcome of the newest install result it
 * reported (`installed`, `failed`, `rolled_back`), or `interrupted` (its last beat's cycle
 * reported an install the agent stopped mid-way, `install_interrupted`).
 */
export const installOutcomeFilters = ["installed", "failed", "rolled_back", "interrupted"] as const;

/** Which appliances a filter selects (the list's filters; bulk actions by filter). */
const applianceFilter = {
  state: z.enum(applianceStates).optional(),
  model: nameSchema.optional(),
  site: nameSchema.optional(),
  channel: nameSchema.optional(),
  tag: nameSchema.optional(),
  /** With `version`: appliances that last reported a component of this application. */
  app: nameSchema.optional(),
  /** Appliances that last reported a component at this version. */
  version: text(128).optional(),
  q: text(200).optional(),
  /** The last install outcome (see {@link installOutcomeFilters}). */
  outcome: z.enum(installOutcomeFilters).optional(),
};

/** List orders: host name, last beat (never first), state (by due time: most overdue first). */
export const applianceSorts = ["hostname", "lastBeat", "state"] as const;

/**
 * The paging of every admin list (docs/operations.md, "Lists and paging";
 * noc/http/admin/paging.ts): at most `limit` items (1–1,000, default 100) after `cursor`, the
 * previous page's `nextCursor`. Spread into a list's query schema.
 */
export const pageFields = {
  limit: z.coerce.number().int().min(1).max(1000).default(100)
    .describe("At most this many items (1-1000, default 100)"),
  cursor: z.string().min(1).max(400).optional()
    .describe("The page after the previous one: its nextCursor (opaque)"),
};

/** `GET /v1/admin/appliances`. */
export const listAppliancesQuery = z.strictObject({
  ...applianceFilter,
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** The page after this cursor (a `nextCursor`). */
  cursor: z.string().max(400).optional(),
  /** The page before this cursor (a `prevCursor`); not with `cursor`. */
  before: z.string().max(400).optional(),
  sort: z.enum(applianceSorts).optional(),
  order: z.enum(["asc", "desc"]).optional(),
  /** `true`: also count the matches, exactly up to 10,000 (`total`, `totalCapped`). */
  count: z.enum(["true", "false"]).optional(),
});

/**
 * `POST /v1/admin/appliances/bulk`: one action on the appliances `uids` (at most 1,000) or on
 * every appliance `filter` selects (refused when it selects more than 5,000).
 */
export const bulkAppliancesSchema = z.strictObject({
  uids: z.array(z.uuid({ message: "must be a UUID" })).min(1).max(1000).optional(),
  filter: z.strictObject({
    ...applianceFilter,
    retired: z.enum(["exclude", "include", "only"]).optional(),
  }).optional(),
  action: z.discriminatedUnion("type", [
    z.strictObject({ type: z.literal("wake") }),
    z.strictObject({ type: z.literal("hold"), reason: label(500), app: nameSchema.optional() }),
    z.strictObject({ type: z.literal("release") }),
    z.strictObject({
      type: z.literal("move"),
      site: nameSchema.nullable().optional(),
      channel: nameSchema.optional(),
      tags: z.array(nameSchema).max(32).optional(),
      addTags: z.array(nameSchema).max(32).optional(),
      removeTags: z.array(nameSchema).max(32).optional(),
    }).refine(
      (v) => Object.keys(v).length > 1,
      { message: "give at least one of site, channel, tags, addTags, removeTags" },
    ),
    z.strictObject({
      type: z.literal("maintenance"),
      startsAt: isoTime.optional(),
      endsAt: isoTime,
      reason: label(500),
    }),
  ]),
}).refine((v) => (v.uids === undefined) !== (v.filter === undefined), {
  message: "give exactly one of uids or filter",
});

/** `GET /v1/admin/auth-failures`: newest first, of one appliance's identity with `uid`. */
export const authFailuresQuery = z.strictObject({
  ...pageFields,
  uid: z.uuid({ message: "must be a UUID" }).optional(),
});

/** `GET /v1/admin/appliances/:uid`. */
export const applianceDetailQuery = z.strictObject({
  history: z.coerce.number().int().min(0).max(1000).default(20),
});

/** Which alerts a filter selects (`GET /v1/admin/alerts`, `POST /v1/admin/alerts/ack`). */
const alertFilter = {
  status: z.enum(["open", "resolved", "all"]).default("open"),
  kind: text(64).optional(),
  uid: z.uuid().optional(),
  /** The site of the alert's appliance. */
  site: nameSchema.optional(),
  /** `true`: only alerts no one has acknowledged. */
  unacknowledged: z.enum(["true", "false"]).default("false"),
};

/** `GET /v1/admin/alerts`. */
export const listAlertsQuery = z.strictObject({
  ...alertFilter,
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** The previous page's `nextCursor` (or, as before, `before`: its `nextBefore`). */
  cursor: pageFields.cursor,
  before: z.coerce.number().int().min(1).optional(),
});

/** `GET /v1/admin/fleet/sites`: the first `limit` sites, in trouble first. */
export const siteHealthQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(50),
});

/**
 * `POST /v1/admin/alerts/ack`: acknowledge the alerts `ids` (at most 1,000) or every alert that
 * matches `filter` (as the list's query), with one `note`.
 */
export const bulkAckSchema = z.strictObject({
  ids: z.array(z.number().int().min(1).max(2 ** 53 - 1)).min(1).max(1000).optional(),
  filter: z.strictObject(alertFilter).optional(),
  note: text(500).trim().optional(),
}).refine((v) => (v.ids === undefined) !== (v.filter === undefined), {
  message: "give exactly one of ids or filter",
});

/** A `limit` query on its own. */
/** A list's query with nothing but its paging. */
export const limitQuery = z.strictObject({ ...pageFields });

/** `GET /v1/wake`: the agent's long poll. */
export const wakeQuery = z.strictObject({
  after: z.coerce.number().int().min(0).max(2 ** 53 - 1).optional(),
  wait: z.coerce.number().int().min(0).max(60).optional(),
});

/** `POST /v1/admin/wake`: one appliance, a site, or all. */
export const wakeSchema = z.union([
  z.strictObject({ uid: z.uuid({ message: "must be a UUID" }) }),
  z.strictObject({ site: nameSchema }),
  z.strictObject({ all: z.literal(true) }),
], { message: 'give exactly one of "uid", "site" or "all": true' });

/** A component reference in a query string (uploads). */
export const componentQuery = z.strictObject({
  app: nameSchema,
  name: nameSchema,
  version: z.string().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9.+_~-]*$/, {
    message:
      "must be 1-128 letters, digits, '.', '+', '_', '~' or '-', starting with a letter or digit",
  }),
});

/** `GET /v1/admin/components`. */
export const listComponentsQuery = z.strictObject({
  kind: z.enum(["package", "file"]).optional(),
  app: nameSchema.optional(),
  name: nameSchema.optional(),
  ...pageFields,
});

/** A path relative to the appliance root that cannot leave it. */
export const relativePath = text(1024).refine(
  (p) =>
    p !== "" && !p.startsWith("/") && !p.includes("\\") &&
    p.split("/").every((s) => s !== ".." && s !== ""),
  { message: "must be a relative path without '..', '//' or '\\'" },
);

/** `PUT /v1/admin/apps/:app/fileinfo/:name`. */
export const fileinfoSchema = z.strictObject({
  destination: relativePath,
  mode: z.string().regex(/^0?[0-7]{3}$/, { message: "must be an octal mode such as 0644" }),
  action: z.array(text(1024).min(1)).min(1).max(64).nullable().optional(),
  uploadDir: nameSchema.nullable().optional(),
  uploadServer: nameSchema.nullable().optional(),
});

/** `POST /v1/admin/release-keys`. */
export const releaseKeySchema = z.strictObject({
  publicKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/, {
    message: "must be 32 bytes in unpadded base64url",
  }),
  label: label(200),
  notAfter: isoTime.optional(),
});

/** Release targets. */
export const targetSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("all") }),
  z.strictObject({ type: z.literal("model"), value: nameSchema }),
  z.strictObject({ type: z.literal("channel"), value: nameSchema }),
  z.strictObject({ type: z.literal("site"), value: nameSchema }),
  z.strictObject({ type: z.literal("tag"), value: nameSchema }),
  z.strictObject({ type: z.literal("appliance"), value: z.uuid() }),
]);

/** `POST /v1/admin/assignments`. */
export const assignmentSchema = z.strictObject({
  kind: z.enum(["package", "file"]),
  app: nameSchema,
  name: nameSchema,
  version: componentQuery.shape.version,
  target: targetSchema,
  rolloutPercent: z.number().int().min(0).max(100).default(100),
  failureThresholdPercent: z.number().int().min(1).max(100).optional(),
  minSample: z.number().int().min(1).max(100000).default(5),
  /** Assign to a site, model, channel, tag or appliance the NOC knows nothing of (0 appliances). */
  allowUnknownTarget: z.boolean().default(false),
  /** Installed even outside the appliances' install windows (recorded with who and when). */
  urgent: z.boolean().default(false),
});

/** `PATCH /v1/admin/assignments/:id`. */
export const patchAssignmentSchema = z.strictObject({
  rolloutPercent: z.number().int().min(0).max(100).optional(),
  paused: z.boolean().optional(),
  failureThresholdPercent: z.number().int().min(1).max(100).nullable().optional(),
  minSample: z.number().int().min(1).max(100000).optional(),
  urgent: z.boolean().optional(),
}).refine((v) => Object.keys(v).length > 0, {
  message: "give at least one of rolloutPercent, paused, failureThresholdPercent, minSample, " +
    "urgent",
});

/** `POST /v1/admin/holds`. */
export const holdSchema = z.strictObject({
  uid: z.uuid(),
  app: nameSchema.optional(),
  reason: label(500),
});

/**
 * `POST /v1/installs`: what an appliance installed, or failed to. Each outcome may carry a
 * `reportId` (a UUID the agent draws when it journals the outcome and sends with every re-send):
 * the NOC stores an outcome of a given appliance and `reportId` once (noc/http/v1/installs.ts).
 * Optional, for agents older than it; two results of one report may share one only as copies
 * (alike in every field: stored once).
 */
export const installsSchema = z.strictObject({
  results: z.array(z.strictObject({
    kind: z.enum(["package", "file"]),
    app: nameSchema,
    name: nameSchema,
    version: componentQuery.shape.version,
    outcome: z.enum(["installed", "failed", "rolled_back"]),
    message: text(2000).optional(),
    reportId: z.uuid({ message: "must be a UUID" }).optional().describe(
      "The outcome's idempotency key: drawn once when the outcome happens, sent again unchanged " +
        "with every re-send; an outcome whose reportId this appliance already sent is not stored again",
    ),
  })).min(1).max(500).superRefine((results, ctx) => {
    // A copy (every field alike) is one outcome sent twice, and is stored once; one reportId on
    // two different outcomes is refused.
    const first = new Map<string, number>();
    const same = (a: (typeof results)[number], b: (typeof results)[number]) =>
      a.kind === b.kind && a.app === b.app && a.name === b.name && a.version === b.version &&
      a.outcome === b.outcome && a.message === b.message;
    results.forEach((r, i) => {
      if (r.reportId === undefined) return;
      const at = first.get(r.reportId.toLowerCase());
      if (at === undefined) first.set(r.reportId.toLowerCase(), i);
      else if (!same(results[at]!, r)) {
        ctx.addIssue({
          code: "custom",
          path: [i, "reportId"],
          message: `repeats results[${at}].reportId with another outcome`,
        });
      }
    });
  }),
});

/** `:uid` path parameter. */
export const uidParam = z.strictObject({ uid: z.uuid({ message: "must be a UUID" }) });

/** `:id` path parameter. */
export const idParam = z.strictObject({
  id: z.coerce.number().int().min(1).max(2 ** 53 - 1),
});

/** The base URL of a local component server: HTTPS, no query or fragment. */
export const localServerUrl = z.url().max(500).refine((u) => {
  const url = new URL(u);
  return url.protocol === "https:" && url.search === "" && url.hash === "" &&
    url.username === "" && url.password === "";
}, { message: "must be an https:// base URL without query, fragment or credentials" });

/** `POST /v1/local/enroll`. */
export const localEnrollSchema = z.strictObject({
  token: text(200).min(1),
  name: enrollSchema.shape.hostname,
  url: localServerUrl,
  signingKey: b64key,
  version: label(64).optional(),
});

const count = z.number().int().min(0).max(2 ** 53 - 1);

/** `POST /v1/local/sync`: a local component server's report on itself. */
export const localSyncSchema = z.strictObject({
  url: localServerUrl,
  version: label(64),
  cache: z.strictObject({ bytes, limit: bytes, entries: count }),
  hits: count,
  misses: count,
  servedBytes: count,
  pendingRecords: count,
  problems: z.array(z.strictObject({
    code: nameSchema,
    message: text(1000),
    componentId: z.number().int().min(1).optional(),
    at: isoTime,
  })).max(50),
});

/** `POST /v1/local/deliveries`: downloads a local component server served, in sequence order. */
export const localRecordsSchema = z.strictObject({
  epoch: z.uuid(),
  records: z.array(z.strictObject({
    seq: z.number().int().min(1).max(2 ** 53 - 1),
    uid: z.uuid(),
    componentId: z.number().int().min(1).max(2 ** 53 - 1),
    at: isoTime,
  })).min(1).max(500),
});

/** `:app` path parameter. */
export const appParam = z.strictObject({ app: nameSchema });
/** `:app/:name` path parameters (fileinfo). */
export const fileinfoParam = z.strictObject({ app: nameSchema, name: nameSchema });
/** `:kid` path parameter (release keys). */
export const kidParam = z.strictObject({
  kid: z.string().regex(/^[0-9a-f]{16}$/, { message: "must be a key id" }),
});
/** `GET /v1/admin/local-servers`. */
export const localServerListQuery = z.strictObject({ site: nameSchema.optional(), ...pageFields });
/** `:id` of a local component server. */
export const localServerParam = z.strictObject({ id: z.uuid({ message: "must be a UUID" }) });
/** `GET /v1/admin/maintenance`. */
export const maintenanceListQuery = z.strictObject({
  all: z.enum(["true", "false"]).default("false"),
  /** Also the windows that ended after this time (the active and upcoming ones are always listed). */
  endedSince: isoTime.optional(),
  /** Only the windows of this site. */
  site: nameSchema.optional(),
  ...pageFields,
});
/** `GET /v1/admin/assignments`. */
export const assignmentListQuery = z.strictObject({
  app: nameSchema.optional(),
  name: nameSchema.optional(),
  ...pageFields,
});
/** `GET /v1/admin/holds`. */
export const holdQuery = z.strictObject({ uid: z.uuid().optional(), ...pageFields });

/** A component version's identity: what catalogs, records and the admin API name it by. */
export interface ComponentRef {
  /** `package` (signed, encrypted, with an `install` program) or `file` (fileinfo says where). */
  kind: "package" | "file";
  /** The application it belongs to. */
  app: string;
  name: string;
  version: string;
}

/** A stored component version: its identity, row id, and the size and digest of the bytes served. */
export interface ComponentVersion extends ComponentRef {
  /** The row id (what download grants and delivery records name). */
  id: number;
  /** Bytes served. */
  size: number;
  /** SHA-256 of the bytes served, hex. */
  sha256: string;
}

/** The {@link ComponentVersion} fields of `c` alone (rows and catalog lines carry more). */
export function componentVersionOf(c: ComponentVersion): ComponentVersion {
  return {
    id: c.id,
    kind: c.kind,
    app: c.app,
    name: c.name,
    version: c.version,
    size: c.size,
    sha256: c.sha256,
  };
}

/** A component a local server should hold (`POST /v1/local/sync` answer). */
export type StageItem = ComponentVersion;

/** `DELETE /v1/admin/release-keys/:kid?force=true`: retire it although assignments need it. */
export const retireKeyQuery = z.object({
  force: z.enum(["true", "false"]).optional().describe(
    "true: retire the key although assignments need what it signed (they stop installing)",
  ),
});
