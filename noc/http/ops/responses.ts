/**
 * The JSON bodies the NOC answers with, as zod schemas, and the response headers it sends
 * ({@link responseHeaders}): `/openapi.json` describes every operation's answers with them
 * (noc/http/ops/openapi.ts), and tests/openapi_test.ts checks real answers against them. Objects
 * are open (a client must ignore members it does not know), but every member the NOC sends is
 * listed here.
 *
 * @module
 */
import { z } from "zod";
import { rolloutStates } from "../../services/rollouts.ts";
import {
  memberStateNames,
  phaseSchema,
  rolloutEventKinds,
  rolloutStateNames,
} from "../../../protocol/rollout_plan.ts";

/** An ISO 8601 time, as `Date.prototype.toISOString` (or PostgreSQL's JSON) writes it. */
const time = z.iso.datetime({ offset: true });
const uid = z.uuid();
const sha256 = z.string().regex(/^[0-9a-f]{64}$/).describe("SHA-256, lower-case hex");
const kid = z.string().describe("Key id: the first 16 hex digits of SHA-256 of the public key");
const base64url = z.string().regex(/^[A-Za-z0-9_-]*$/);
const kind = z.enum(["package", "file"]);
const count = z.number().int().min(0);
/** A resource's version (issue 22 item 2): its ETag's value; send it back in If-Match. */
const revision = z.number().int().min(1).describe(
  "Its version: bumped by every change of what it shows; send it back as If-Match " +
    '(`"<revision>"`) to refuse a change made against an older one (409 stale_revision)',
);

/** Every refusal's body (4xx, and 500/503): `error` is the stable code docs/protocol.md lists. */
/** An assignment that depends on a thing (noc/services/dependents.ts). */
const dependent = z.object({
  assignmentId: z.number().int(),
  kind: z.enum(["package", "file"]),
  app: z.string(),
  name: z.string(),
  version: z.string(),
  target: z.string().describe("`type` or `type:value`, e.g. `all`, `site:lab`"),
  rolloutId: z.number().int().nullable().describe("The phased rollout managing it, if any"),
});

/** `DELETE /v1/admin/release-keys/:kid?force=true` over dependents: what stops installing. */
export const retiredKey = z.object({
  kid: z.string(),
  retired: z.literal(true),
  dependents: z.array(dependent).describe("The assignments that need what it signed (at most 50)"),
  more: z.number().int().describe("How many more there are"),
});

export const errorBody = z.object({
  error: z.string().describe("Stable code (docs/protocol.md, Errors)"),
  message: z.string().describe("What was refused and why, for people"),
  issues: z.array(z.object({ path: z.string(), message: z.string() })).optional()
    .describe("The fields refused (invalid_body, invalid_query, invalid_param, …)"),
  reason: z.string().optional().describe("bad_package: which check failed"),
  rolloutId: z.number().int().optional()
    .describe(
      "rollout_exists: the component's running or paused rollout; managed_by_rollout: the " +
        "rollout that manages the assignment",
    ),
  state: z.string().optional()
    .describe("rollout_state, managed_by_rollout: the rollout's state"),
  dependents: z.array(dependent).optional()
    .describe("in_use: the assignments that depend on what was to be deleted (at most 50)"),
  more: z.number().int().optional().describe("in_use: how many more dependents there are"),
  revision: z.number().int().nullable().optional()
    .describe("stale_revision: the resource's current revision (null: it is gone)"),
  current: z.unknown().optional()
    .describe("stale_revision: the resource now, as its GET (or list) answers it; null if gone"),
}).describe("A refusal");

/** An endorsement of a release key (protocol/release_keys.ts). */
const endorsement = z.object({ signer: kid, notAfter: time.nullable(), signature: base64url });

/** A published public key (protocol/keys.ts `PublishedKey`, with its endorsement if any). */
export const publishedKey = z.object({
  kid,
  alg: z.literal("ed25519"),
  use: z.array(z.enum(["catalog", "package"])),
  publicKey: base64url.describe("Raw Ed25519 public key, 32 bytes"),
  notAfter: time.nullable(),
  endorsement: endorsement.optional(),
});

/** `POST /v1/enroll` 201. */
export const enrolled = z.object({
  uid,
  intervalS: z.number().int(),
  nocKeys: z.array(publishedKey),
  serverTime: time,
  site: z.string().nullable(),
  channel: z.string().nullable(),
  tags: z.array(z.string()),
  supersedes: z.array(uid).describe(
    "The records of this hostname in this site it retired (a re-imaged appliance); usually empty",
  ),
});

/** `POST /v1/beats` 200. */
export const beatAnswer = z.object({
  uid,
  receivedAt: time,
  intervalS: z.number().int(),
  nextBeatInS: z.number().int(),
  nextDueAt: time,
  catalogUrl: z.string().optional().describe("Only when the catalog server runs apart"),
});

/** `POST /v1/checkin` 200: the beat's answer, and the catalog (noc/http/v1/checkin.ts). */
export const checkinAnswer = z.object({
  receipt: beatAnswer,
  catalog: z.string().nullable().optional().describe(
    "The signed envelope's exact text (its SHA-256 is the ETag the Catalog-Binding signs); null " +
      "when the If-None-Match ETag is current; absent when the catalog server runs apart " +
      "(receipt.catalogUrl names it)",
  ),
});

/** `GET /v1/keys` 200. */
export const keysAnswer = z.object({
  keys: z.array(publishedKey),
  encryptionKey: base64url.describe("The NOC's X25519 public key (offline packages wrap to it)"),
  chain: z.array(z.object({
    statement: z.string().describe("The noc-keys/1 statement's JSON text"),
    signatures: z.array(z.object({ kid, signature: base64url })),
  })),
});

/** `GET /v1/catalog` 200: the signed envelope (the document is `catalog`, as text). */
export const catalogEnvelope = z.object({
  catalog: z.string().describe("The noc-catalog/1 document's exact JSON text"),
  kid,
  signature: base64url.describe("Ed25519 over noc-catalog/1\\n and the text"),
});

/** `POST /v1/installs` 200. */
export const installsAnswer = z.object({
  recorded: count,
  pausedAssignments: z.array(z.number().int()),
  uncounted: z.array(z.object({ kind, app: z.string(), name: z.string(), version: z.string() })),
});

/** `GET /v1/wake` 200. */
export const wakeAnswer = z.object({ wake: z.boolean(), cursor: z.number().int() });

/** A component version (the local server's stage, the admin API's component). */
const componentVersion = z.object({
  id: z.number().int(),
  kind,
  app: z.string(),
  name: z.string(),
  version: z.string(),
  size: count,
  sha256,
});

/**
 * The `X-NOC-Component` header of `GET /v1/local/components/:id`: the component served, as JSON
 * (the local component server keeps its cached copy under it).
 */
export const componentHeader = componentVersion;

/** `POST /v1/local/enroll` 201. */
export const localEnrolled = z.object({
  id: uid,
  site: z.string(),
  syncS: z.number().int(),
  nocKeys: z.array(publishedKey),
  serverTime: time,
});

/** `POST /v1/local/sync` 200. */
export const localSynced = z.object({
  id: uid,
  site: z.string(),
  syncS: z.number().int(),
  serverTime: time,
  keys: z.array(publishedKey),
  stage: z.array(componentVersion),
  revoked: z.array(uid),
});

/** `POST /v1/local/deliveries` 200. */
export const localRecorded = z.object({
  acked: count,
  applied: count,
  duplicates: count,
  refused: count,
  refusedRecords: z.array(z.object({
    seq: z.number().int(),
    uid: z.string(),
    componentId: z.number().int(),
    reason: z.enum(["not_in_site", "not_in_catalog"]),
  })),
});

/** `GET /healthz`. */
export const health = z.object({
  status: z.enum(["ok", "unavailable", "migrations_pending"]),
  database: z.string(),
  pending: z.array(z.string()).optional(),
  error: z.string().optional(),
});

// Admin API.

const items = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });
/** The next page of a list (docs/operations.md, "Lists and paging"). */
const nextCursor = z.string().nullable().describe(
  "Pass as `cursor` for the next page; null: this is the last page (set exactly when more exist)",
);
/** A page of a list: its items and `nextCursor`. */
const paged = <T extends z.ZodType>(item: T) => items(item).extend({ nextCursor });

/** An enrolment token (`token` only in the answer that created it). */
export const enrollmentToken = z.object({
  revision,
  id: z.number().int(),
  label: z.string().nullable(),
  site: z.string().nullable(),
  channel: z.string().nullable(),
  tags: z.array(z.string()),
  reenrolment: z.enum(["supersede", "refuse"]).nullable()
    .describe("What enrolling a name an active appliance holds does; null: NOC_REENROLMENT"),
  purpose: z.enum(["appliance", "local-server"]),
  status: z.enum(["unused", "used", "expired", "revoked"]),
  createdAt: time,
  expiresAt: time,
  usedAt: time.nullable(),
  usedBy: z.string().nullable(),
  revokedAt: time.nullable(),
  token: z.string().optional().describe("The token itself: shown once, when it is created"),
});

const maintenanceNow = z.object({ id: z.number().int(), endsAt: time, reason: z.string() })
  .nullable();

/** An appliance as the admin API lists it. */
export const appliance = z.object({
  revision,
  uid,
  hostname: z.string(),
  model: z.string(),
  site: z.string().nullable(),
  channel: z.string().nullable(),
  tags: z.array(z.string()),
  state: z.enum(["ok", "late", "missing", "revoked"]),
  maintenance: maintenanceNow,
  intervalS: z.number().int().describe("The report interval the operator set, seconds"),
  knownIntervalS: z.number().int().optional().describe(
    "The interval of the last catalog the appliance fetched (its agent's schedule, which its " +
      "due time counts); differs from intervalS until it fetches one with the new interval " +
      "(single appliance only)",
  ),
  agentVersion: z.string().nullable(),
  enrolledAt: time,
  lastBeatAt: time.nullable(),
  lastSeq: z.number().int().nullable(),
  lastAddress: z.string().nullable(),
  nextDueAt: time,
  missingSince: time.nullable(),
  revokedAt: time.nullable(),
  revokedReason: z.string().nullable(),
  supersededBy: uid.nullable().describe("Retired by a re-enrolment: the record that replaced it"),
  supersedes: z.array(uid).describe("The records this one replaced when it enrolled"),
  identityConflict: z.object({
    reason: z.enum(["seq_not_increasing"])
      .describe(
        "A beat from another agent instance whose seq did not pass the last one seen, " +
          "or two instances taking turns within two intervals",
      ),
    firstAt: time,
    lastAt: time,
    beats: z.number().int().describe("Conflicting beats seen since it was marked"),
    seq: z.number().int().describe("The seq of the beat that marked it"),
    lastSeq: z.number().int().nullable().describe("The last seq seen before that beat"),
    stateUnwritable: z.string().nullable().describe(
      "The state_unwritable problem the beat that marked it (or the report before it) carried: " +
        "separate runs on a state folder that cannot be written repeat seq; null: none",
    ),
    instances: z.array(z.object({
      instanceId: uid.nullable().describe("null: beats that carried no instanceId"),
      firstSeenAt: time.nullable(),
      lastSeenAt: time.nullable(),
      address: z.string().nullable().describe(
        "The source address of its latest beat seen while marked; null: not recorded",
      ),
    })).describe("The agent instances seen (at most 8), each with when and where it was seen"),
  }).nullable().describe(
    "Two devices beating under this identity (a copied state folder; docs/operations.md, " +
      '"Cloned identities"), until an operator clears it; null: none',
  ),
});

/** `GET /v1/admin/appliances/:uid`. */
export const applianceDetail = appliance.extend({
  lastReport: z.record(z.string(), z.unknown()).nullable()
    .describe("The latest SecureBeat, as sent"),
  problems: z.array(z.looseObject({ code: z.string(), message: z.string() }))
    .describe(
      "What the agent reported as going wrong in its last cycle (`lastCycle.problems` " +
        "of the latest beat, e.g. `state_unwritable` with the path and the OS error)",
    ),
  dropped: z.array(z.string())
    .describe("What the agent left out of its latest beat to fit the NOC's limits, in words"),
  installWindow: z.object({
    start: z.string(),
    end: z.string(),
    timeZone: z.string(),
    source: z.string().describe("`appliance`, `site:<name>` or `model:<name>`"),
  }).nullable().describe(
    "When it may install (its own window, else its site's, else its model's); null: at any time",
  ),
  hostnameHistory: z.array(z.object({ hostname: z.string(), until: time }))
    .describe("The names it had before the one it reports now, newest first (at most 20)"),
  catalog: z.array(
    z.object({
      id: z.number().int(),
      kind,
      app: z.string(),
      name: z.string(),
      version: z.string(),
    }),
  ),
  installOutcomes: z.array(z.object({
    kind,
    app: z.string(),
    name: z.string(),
    version: z.string(),
    outcome: z.enum(["installed", "failed", "rolled_back"]),
    message: z.string().nullable(),
    reportedAt: time,
  })),
  history: z.array(z.object({
    receivedAt: time,
    seq: z.number().int(),
    sentAt: time,
    report: z.record(z.string(), z.unknown()).describe("Health figures and the cycle's outcome"),
  })),
  alerts: z.array(z.object({
    id: z.number().int(),
    kind: z.string(),
    openedAt: time,
    resolvedAt: time.nullable(),
  })),
});

/** `GET /v1/admin/appliances/:uid/configuration`. */
export const configuration = z.object({
  uid,
  items: z.array(z.object({
    kind,
    app: z.string(),
    name: z.string(),
    version: z.string(),
    firstSentAt: time,
    lastSentAt: time,
    times: z.number().int(),
    via: z.object({ localServer: uid, name: z.string().nullable() }).nullable(),
  })),
});

/** An alert. */
export const alert = z.object({
  id: z.number().int(),
  kind: z.string(),
  uid: uid.nullable(),
  hostname: z.string().nullable(),
  site: z.string().nullable(),
  status: z.enum(["open", "resolved"]),
  openedAt: time,
  resolvedAt: time.nullable(),
  acknowledgedAt: time.nullable(),
  acknowledgedBy: z.string().nullable(),
  acknowledgedNote: z.string().nullable(),
  detail: z.record(z.string(), z.unknown()),
  applianceState: z.enum(["ok", "late", "missing", "revoked"]).nullable()
    .describe("The alert's appliance's state now"),
  lastBeatAt: time.nullable().describe("Its appliance's last beat"),
  durationS: count.describe("Open: how long so far; resolved: how long it lasted (seconds)"),
});

/** `POST /v1/admin/alerts/ack`. */
export const bulkAck = z.object({ acknowledged: count });

/** A maintenance window. */
export const maintenanceWindow = z.object({
  revision,
  id: z.number().int(),
  uid: uid.nullable(),
  site: z.string().nullable(),
  startsAt: time,
  endsAt: time,
  reason: z.string(),
  active: z.boolean(),
  hostname: z.string().nullable(),
  state: z.enum(["active", "upcoming", "ended"]),
  createdAt: time,
  createdBy: z.string().nullable(),
  endedAt: time.nullable().describe("When it was ended early, or null"),
  endedBy: z.string().nullable(),
});

/** `POST /v1/admin/wake` 202. */
export const wakeQueued = z.object({
  id: z.number().int(),
  target: z.object({ type: z.enum(["appliance", "site", "all"]), value: z.string().nullable() }),
});

/** A local component server. */
export const localServer = z.object({
  revision,
  id: uid,
  site: z.string(),
  name: z.string(),
  url: z.string(),
  version: z.string().nullable(),
  state: z.enum(["ok", "silent", "revoked"]),
  enrolledAt: time,
  lastContactAt: time.nullable(),
  lastAddress: z.string().nullable(),
  cache: z.object({ bytes: count, limit: count, entries: count, staged: count }),
  hits: count,
  misses: count,
  hitRate: z.number().nullable(),
  servedBytes: count,
  fetchedFromNocBytes: count,
  pendingRecords: count,
  problems: z.array(z.record(z.string(), z.unknown())),
  revokedAt: time.nullable(),
  revokedReason: z.string().nullable(),
});

/** `GET /v1/admin/local-servers/:id`. */
export const localServerDetail = localServer.extend({
  fetchedFromNoc: z.array(z.object({
    componentId: z.number().int(),
    kind,
    app: z.string(),
    name: z.string(),
    version: z.string(),
    times: z.number().int(),
    bytes: count,
    lastAt: time,
  })),
});

/** `GET /v1/admin/fleet`. */
export const fleet = z.object({
  states: z.object({ ok: count, late: count, missing: count, revoked: count }),
  openAlerts: count,
  unacknowledgedAlerts: count,
  acknowledgedAlerts: count,
  at: time,
  beatsPerMinute: z.array(z.object({ at: time, perMinute: z.number() })),
  versions: z.array(
    z.object({ app: z.string(), name: z.string(), version: z.string(), n: count }),
  ),
});

/** `GET /v1/admin/fleet/sites`. */
export const siteHealth = z.object({
  items: z.array(z.object({
    site: z.string().nullable(),
    total: count,
    missing: count,
    late: count,
    missingSince: time.nullable(),
    openAlerts: count.describe("Open alerts no one has acknowledged"),
    acknowledgedAlerts: count,
    maintenance: z.object({ id: z.number().int(), endsAt: time, reason: z.string() }).nullable(),
    appliancesInMaintenance: count.describe("Its appliances in a window of their own, now"),
  })),
  total: count.describe("Sites in all"),
  at: time,
});

/** `POST /v1/admin/sweep`. */
export const sweep = z.object({
  alerted: z.array(uid).describe("Appliances alerted missing by this sweep"),
  recovered: z.array(uid).describe("Appliances whose recovery was announced"),
  notices: count,
  durationMs: z.number(),
  skipped: z.enum(["clock_skew", "busy"]).optional().describe(
    "Why nothing was judged: this instance's clock is off the database's (clock_skew), or " +
      "another instance holds the sweep lease (busy)",
  ),
  creditedS: count.describe("NOC downtime given back to the fleet before it was judged, seconds"),
});

/** `GET /v1/admin/notices`. */
export const notices = z.object({
  nextCursor,
  targets: z.array(z.object({ key: z.string(), label: z.string() })),
  items: z.array(z.object({
    id: z.number().int(),
    createdAt: time,
    kind: z.string(),
    uid: uid.nullable(),
    text: z.string(),
    deliveries: z.array(z.object({
      target: z.string(),
      attempts: count,
      deliveredAt: time.nullable(),
      nextAttemptAt: time.nullable(),
      lastError: z.string().nullable(),
    })),
  })),
});

/** `GET /v1/admin/auth-failures`. */
export const authFailures = paged(z.object({
  id: z.number().int(),
  at: time,
  reason: z.string(),
  keyid: z.string().nullable(),
  method: z.string(),
  path: z.string(),
  address: z.string().nullable(),
  heldBack: count,
  proven: z.boolean(),
}));

/** A published component. */
export const component = componentVersion.extend({
  contentSha256: sha256.describe("SHA-256 of the payload or file content"),
  signerKid: kid.nullable(),
  createdAt: time,
});

/** `GET /v1/admin/components/:id`. */
export const componentDetail = component.extend({
  header: z.record(z.string(), z.unknown()).nullable().describe("A package's signed header"),
  sentTo: count,
});

/** A registered release key. */
export const releaseKey = z.object({
  revision,
  kid,
  publicKey: base64url,
  label: z.string(),
  createdAt: time.optional().describe("Not in the answer that registers it"),
  notAfter: time.nullable(),
  endorsement: endorsement.nullable(),
});

/** A file's fileinfo (admin API). */
export const fileinfo = z.object({
  revision,
  app: z.string(),
  name: z.string(),
  destination: z.string(),
  mode: z.string(),
  action: z.array(z.string()).nullable(),
  uploadDir: z.string().nullable(),
  uploadServer: z.string().nullable(),
  signer: kid.nullable(),
  signature: base64url.nullable(),
  updatedAt: time,
});

/** Where an appliance a release was sent to stands (noc/services/rollouts.ts). */
const rolloutState = z.enum(rolloutStates).describe(
  "From its latest beat: running (runs the release), unconfirmed (reported installed, no beat " +
    "since), pending (runs an older version or none, no outcome), failed, reverted (reported " +
    "installed, now runs an older version), other (runs a version neither older nor the " +
    "release), missing (open missed-heartbeat alert), superseded (runs a version sent later)",
);

/** A rollout's figures over the appliances its version was delivered to. */
const rolloutProgress = z.object({
  sent: count.describe("Appliances (not revoked) the version was delivered to"),
  installed: count.describe("The gate's successes: states running and unconfirmed"),
  failed: count.describe("The gate's failures: states failed, reverted, other and missing"),
  states: z.object({
    running: count,
    unconfirmed: count,
    pending: count,
    failed: count,
    reverted: count,
    other: count,
    missing: count,
    superseded: count,
  }).describe("Appliances in each state; they add up to sent"),
});

/** An assignment, with its rollout's figures. */
export const assignment = z.object({
  revision,
  id: z.number().int(),
  kind,
  app: z.string(),
  name: z.string(),
  version: z.string(),
  target: z.object({
    type: z.enum(["all", "model", "site", "channel", "tag", "appliance"]),
    value: z.string().optional(),
  }),
  rolloutPercent: z.number(),
  paused: z.boolean(),
  pausedReason: z.string().nullable(),
  failureThresholdPercent: z.number().nullable(),
  minSample: z.number().int(),
  urgent: z.boolean().describe("Installed even outside install windows"),
  urgentBy: z.string().nullable().describe("Who made it urgent"),
  urgentAt: time.nullable().describe("When it was made urgent"),
  createdAt: time,
  updatedAt: time,
  targetSize: count.describe("Appliances (not revoked) its target matches now"),
  progress: rolloutProgress,
});

/** `GET /v1/admin/assignments/targets`: known target values with their appliance counts. */
export const targetChoices = (() => {
  const choices = z.array(z.object({ value: z.string(), appliances: count }));
  return z.object({
    all: count.describe("Appliances (not revoked): the size of target all"),
    model: choices,
    site: choices.describe("Sites of appliances, live enrolment tokens and local servers"),
    channel: choices.describe("Channels of appliances and live enrolment tokens"),
    tag: choices.describe("Tags of appliances and live enrolment tokens"),
  });
})();

/** `GET /v1/admin/assignments/:id/appliances`: the appliances a release was sent to. */
export const rolloutAppliances = items(z.object({
  uid,
  hostname: z.string(),
  site: z.string().nullable(),
  state: rolloutState,
  runningVersion: z.string().nullable()
    .describe("The version of the component its latest beat lists; null: none, or no beat yet"),
  outcome: z.object({ outcome: z.string(), message: z.string().nullable(), reportedAt: time })
    .nullable().describe("Its latest install outcome of the release: the explanation"),
  lastBeatAt: time.nullable(),
  sentAt: time.describe("When it was first sent the release"),
  missingSince: time.nullable(),
})).extend({
  nextAfter: uid.nullable().describe("Pass as `after` for the next page; null: last page"),
  nextCursor: uid.nullable().describe("The same as nextAfter: pass as `cursor` for the next page"),
});

/** A phased rollout's release and target (noc/services/phased_rollouts.ts). */
const rolloutSummary = z.object({
  id: z.number().int(),
  assignmentId: z.number().int().describe("The assignment the rollout manages"),
  component: z.object({ kind, app: z.string(), name: z.string(), version: z.string() }),
  target: z.object({
    type: z.enum(["all", "model", "site", "channel", "tag", "appliance"]),
    value: z.string().nullable().describe("Null for all"),
  }),
  state: z.enum(rolloutStateNames),
  phase: count.describe("The current phase, 0-based"),
  phaseCount: z.number().int().min(1),
  previousVersion: z.string().nullable()
    .describe("What the target ran before: control's version, and the version rolled back to"),
  rollback: z.boolean().describe("Whether a failed phase's appliances go back to it"),
  createdBy: z.string(),
  createdAt: time,
  updatedAt: time,
  endedAt: time.nullable().describe("When it failed, was cancelled or completed"),
});

/** A group's metric figures (noc/services/rollout_gates.ts `GroupStatistic`). */
const groupStatistic = z.object({
  appliances: count.describe("Appliances with at least minBeats samples"),
  statistic: z.number().nullable().describe("The median of their medians; null: none"),
  size: count.describe(
    "The group's appliances (not revoked): a group smaller than minAppliances is judged on all",
  ),
});

/** What a rollout's last evaluation found (noc/services/rollout_gates.ts `RolloutEvaluation`). */
const rolloutEvaluation = z.object({
  at: time,
  figures: z.object({
    phase: count,
    phaseStartedAt: time,
    members: count.describe("Appliances that joined with this phase"),
    evaluated: count.describe("Members the figures are read from (at most 1,000)"),
    install: rolloutProgress,
    notSent: count.describe("Evaluated members the release was not sent to (yet)"),
    healthy: count.describe("Running the release, not missing, not reporting the app unhealthy"),
    healthyPercent: z.number(),
    reporting: count.describe("Evaluated members that beat since the phase started"),
    unhealthy: count.describe("Of them, those whose plug-ins report the app unhealthy"),
    metric: z.object({
      path: z.string(),
      phase: groupStatistic,
      control: groupStatistic,
      ratio: z.number().nullable().describe("1 + (phase - control) / |control|"),
    }).nullable(),
    beats: z.object({
      members: count,
      membersMissed: count,
      control: count,
      controlMissed: count,
    }).nullable().describe("Missed-heartbeat alerts since phase start, phase vs control"),
  }),
  judgement: (() => {
    const gate = z.object({
      gate: z.enum(["stop", "pluginHealth", "metric", "beatRegularity"]),
      judged: z.boolean().describe("Whether it had its minimum sample"),
      fails: z.boolean(),
      summary: z.string().describe("The figures in words"),
    });
    return z.object({
      gates: z.array(gate),
      failed: gate.nullable().describe("The first failing condition: the rollout fails"),
      holds: z.boolean().describe("Whether the advance condition holds"),
      waiting: z.array(z.string()).describe("Why it does not hold"),
    });
  })(),
  heldSince: time.nullable(),
  advanceAt: time.nullable().describe("When it advances by itself if it keeps holding"),
});

/** `GET /v1/admin/rollouts/:id` and the actions' answers: a phased rollout in full. */
export const rolloutDetail = rolloutSummary.extend({
  phaseStartedAt: time,
  heldSince: time.nullable().describe("Since when the advance condition holds, if it does"),
  revision: z.number().int().describe("Bumped by every change of state or phase"),
  assignment: z.object({
    paused: z.boolean(),
    pausedReason: z.string().nullable(),
    phaseLimit: z.number().int().nullable().describe("Fine buckets below it get the release"),
    excludedFrom: z.number().int().nullable().describe("Rolled back from this fine bucket"),
  }),
  phases: z.array(z.object({
    index: count,
    plan: phaseSchema.describe("The phase as planned, defaults filled in"),
    started: z.object({
      at: time,
      by: z.string(),
      lowerLimit: z.number().int(),
      limit: z.number().int(),
      targetSize: count.describe("N: the target's appliances when it started"),
      wanted: count.describe("k: how many the phase asked for then"),
      joined: count.describe("Appliances that joined with it"),
      control: count.describe("The control sample chosen then"),
      endedAt: time.nullable(),
    }).nullable().describe("Null for a phase not started yet"),
    members: count.describe("Its members now (not revoked)"),
  })),
  control: count.describe("The control sample's size now"),
  evaluation: rolloutEvaluation.nullable()
    .describe("The last evaluation's figures against control and verdict; null: none yet"),
  evaluatedAt: time.nullable(),
  events: z.array(z.object({
    id: z.number().int(),
    at: time,
    actor: z.string().describe("The operator, or noc (rollout daemon)"),
    kind: z.enum(rolloutEventKinds),
    detail: z.record(z.string(), z.unknown())
      .describe("note, phase, from/to, auto, gate, reason, figures, …"),
  })).describe("Oldest first (the latest 500)"),
});

/** `GET /v1/admin/rollouts/:id/appliances`: a rollout's members, where each stands. */
export const rolloutMembers = items(z.object({
  uid,
  hostname: z.string(),
  site: z.string().nullable(),
  phase: count.describe("The phase it joined with, 0-based"),
  state: z.enum(memberStateNames).describe(
    "Its install state (as an assignment's appliances), or not_sent: not sent the release yet",
  ),
  runningVersion: z.string().nullable(),
  outcome: z.object({ outcome: z.string(), message: z.string().nullable(), reportedAt: time })
    .nullable(),
  lastBeatAt: time.nullable(),
  sentAt: time.nullable().describe("When it was first sent the release; null: not sent"),
  missingSince: time.nullable(),
})).extend({
  nextAfter: uid.nullable().describe("Pass as `after` for the next page; null: last page"),
  nextCursor: uid.nullable().describe("The same as nextAfter: pass as `cursor` for the next page"),
});

/** `POST /v1/admin/appliances/bulk`: what a bulk action did. */
export const bulkResult = z.object({
  action: z.string(),
  matched: count.describe("Appliances selected (the UIDs, or the filter's matches)"),
  done: count.describe("Appliances changed"),
  skipped: count.describe("Appliances left as they were"),
  skippedWhy: z.string().nullable().describe("Why (revoked: never woken; already held; …)"),
});

/** `GET /v1/admin/appliances/facets`: known values to filter by, at most 200 of each. */
export const applianceFacets = z.object({
  sites: z.array(z.string()),
  models: z.array(z.string()),
  channels: z.array(z.string()),
  tags: z.array(z.string()),
  more: z.object({
    sites: z.boolean(),
    models: z.boolean(),
    channels: z.boolean(),
    tags: z.boolean(),
  }).describe("True for a kind with more than 200 values (the first 200 are listed)"),
});

/** A hold. */
export const hold = z.object({
  revision,
  id: z.number().int(),
  uid,
  app: z.string().nullable(),
  reason: z.string(),
  createdAt: time,
});

/** Lists of the above. */
/** An install window (noc/http/admin/install_windows.ts). */
export const installWindow = z.object({
  id: z.number().int(),
  scope: z.enum(["appliance", "site", "model"]),
  value: z.string().describe("The appliance's UID, or the site's or model's name"),
  start: z.string().describe("Opens at this local time, HH:MM"),
  end: z.string().describe("Closes at this local time, HH:MM (before start: over midnight)"),
  timeZone: z.string().describe("IANA time zone of start and end"),
  reason: z.string(),
  createdBy: z.string(),
  createdAt: time,
  updatedBy: z.string(),
  updatedAt: time,
  revision: z.number().int().describe("Its version: the ETag, for If-Match"),
});

export const lists = {
  installWindows: paged(installWindow),
  enrollmentTokens: paged(enrollmentToken),
  appliances: items(appliance).extend({
    nextCursor: z.string().nullable(),
    prevCursor: z.string().nullable().describe("Pass as `before` for the previous page"),
    total: count.optional().describe("With count=true: the matches, exact up to 10,000"),
    totalCapped: z.boolean().optional().describe("True: more than `total` (10,000) match"),
  }),
  alerts: items(alert).extend({
    nextBefore: z.number().int().nullable().describe("Pass as `before` (older name of cursor)"),
    nextCursor,
    open: z.object({ unacknowledged: count, acknowledged: count })
      .describe("Open alerts of the same site, kind and appliance (whatever the status filter)"),
  }),
  maintenanceWindows: paged(maintenanceWindow),
  localServers: paged(localServer),
  components: paged(component),
  releaseKeys: paged(releaseKey),
  fileinfo: paged(fileinfo).extend({ app: z.string() }),
  assignments: paged(assignment),
  holds: paged(hold),
  rollouts: items(rolloutSummary).extend({
    nextCursor: z.string().nullable().describe("Pass as `cursor` for the next page"),
  }),
};

/** A response header the NOC sends, by its name in `/openapi.json` (`components.headers`). */
export type ResponseHeader =
  | "ETag"
  | "Catalog-Binding"
  | "Accept-Ranges"
  | "Content-Range"
  | "X-NOC-Component"
  | "Retry-After"
  | "WWW-Authenticate";

/**
 * Every response header the NOC sends beyond the generic ones (Content-Type, Content-Length,
 * Cache-Control, the secure headers, X-Request-Id): what it says, and its value's schema (JSON
 * Schema, or zod for a JSON value). Sources: noc/http/v1/catalog.ts (ETag, Catalog-Binding),
 * protocol/http/range.ts (ETag, Accept-Ranges, Content-Range), noc/http/v1/local.ts
 * (X-NOC-Component), noc/services/rate_limit.ts and protocol/http/errors.ts (Retry-After),
 * noc/http/middleware and noc/http/ops/metrics.ts (WWW-Authenticate). The NOC signs no response
 * with RFC 9421 and sends no Content-Digest: a catalog is signed in its body and bound to its
 * request by Catalog-Binding, and a package carries its own signature.
 */
export const responseHeaders: Record<
  ResponseHeader,
  { description: string; schema: Record<string, unknown> | z.ZodType }
> = {
  "ETag": {
    description:
      "Of a catalog envelope or a component: the body's SHA-256, lower-case hex, quoted; send a " +
      "catalog's back in If-None-Match to get 304 while it is unchanged, a component's is the " +
      "digest its catalog entry gives. Of an admin resource (and a 409 stale_revision): its " +
      'revision, quoted (`"3"`); send it back in If-Match to refuse a change made against an ' +
      "older one (docs/operations.md, Versions and concurrent changes).",
    schema: { type: "string", pattern: '^"([0-9a-f]{64}|[1-9][0-9]{0,14})"$' },
  },
  "Catalog-Binding": {
    description: "Binds this catalog answer (200 or 304) to the request that asked, as Omaha's " +
      'CUP: an RFC 9651 dictionary `kid="<catalog key id>", sig=:<base64 Ed25519 signature>:` ' +
      "over `noc-catalog-binding/1\\n<UID>\\n<the request signature's nonce>\\n<SHA-256 hex " +
      "of the catalog body>` (of a 304, the body the appliance holds). An agent refuses a catalog " +
      "without a valid one (protocol/catalog.ts verifyCatalogBinding).",
    schema: { type: "string", maxLength: 512 },
  },
  "Accept-Ranges": {
    description: "`bytes`: a download can be resumed with Range",
    schema: { type: "string", enum: ["bytes"] },
  },
  "Content-Range": {
    description: "On 206, the bytes sent: `bytes <first>-<last>/<size>`; on 416, " +
      "`bytes */<size>`",
    schema: { type: "string", pattern: "^bytes (\\d+-\\d+|\\*)/\\d+$" },
  },
  "X-NOC-Component": {
    description: "The component served, as JSON: id, kind, app, name, version, size, sha256",
    schema: componentHeader,
  },
  "Retry-After": {
    description: "Seconds to wait before asking again: on 429 (rate limits, or an address past " +
      "its refusals), on 503 when the database is unreachable (30), and on a local component " +
      "server's 503 not_cached (60; the catalog's next URL may be tried at once)",
    schema: { type: "integer", minimum: 1 },
  },
  "WWW-Authenticate": {
    description: 'The challenge: `Signature realm="noc"` (signed requests), ' +
      '`Bearer realm="noc-admin"` (admin API), `Bearer realm="noc-metrics"` (/metrics)',
    schema: { type: "string" },
  },
};
