/**
 * NOC configuration, read from the environment (and the NOC's few flags) and validated once at
 * start-up. Flags are parsed by `node:util` `parseArgs` (see protocol/util/args.ts).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { parseCommandLine, UsageError } from "../protocol/util/args.ts";

/** Tunables the app reads at request time. */
export interface Settings {
  /** Default report interval handed to appliances, seconds (the spec's 15 min 9 s). */
  reportIntervalS: number;
  /** How long after its due time an appliance is `late` before it is `missing`, seconds. */
  graceS: number;
  /** How far a request signature's `created` may be from the NOC's clock, seconds. */
  maxSkewS: number;
  /** How long beat history, delivered notices and identity failures are kept, days. */
  historyRetentionDays: number;
  /** At most one identity-failure notice per this many seconds. */
  identityNoticeWindowS: number;
  /** Largest request body accepted, bytes. */
  maxBodyBytes: number;
  /** Largest application-specific data per application in a beat, bytes of JSON. */
  maxAppDataBytes: number;
  /** Enrolment token lifetime when the admin does not give one, seconds. */
  enrollmentTokenTtlS: number;
  /** How long a catalog (and the download grants in it) stays valid, seconds. */
  catalogTtlS: number;
  /** Base URL for download links in catalogs; the request's own origin when absent. */
  publicUrl: string | null;
  /**
   * Base URL of the catalog server (spec, FIGURE 2) when it runs apart (role `catalog`): beat
   * answers name it, and agents fetch catalogs and report installs there. Null: this server.
   */
  catalogUrl: string | null;
  /**
   * Base URL of the component server when it runs apart (role `component`): catalogs list
   * downloads there (after the site's local servers). Null: `publicUrl`, or the request's origin.
   */
  componentUrl: string | null;
  /** Serve files over plain HTTP (development only; files are otherwise HTTPS only). */
  allowPlainHttpFiles: boolean;
  /** Believe `X-Forwarded-Proto` and `X-Forwarded-For` from a TLS-terminating proxy. */
  trustProxy: boolean;
  /** Largest package or file upload, bytes. */
  maxUploadBytes: number;
  /** A bearer token that may read `/metrics` (admin tokens always may). */
  metricsToken: string | null;
  /** Admission control (noc/services/admission.ts): check-in slots (`NOC_MAX_IN_FLIGHT`). */
  maxInFlight: number;
  /** Check-ins waiting for a slot (`NOC_MAX_QUEUE`). */
  maxQueue: number;
  /** The longest a request waits for a slot, ms (`NOC_MAX_QUEUE_WAIT_MS`). */
  maxQueueWaitMs: number;
  /** The `Retry-After` of a 503 overloaded, seconds (`NOC_RETRY_AFTER_S`; up to half more, random). */
  retryAfterS: number;
  /** Signed requests per appliance per minute, per instance (0: no limit). */
  rateAppliancePerMin: number;
  /** Signed requests per local component server per minute, per instance. */
  rateLocalServerPerMin: number;
  /** Enrolments per client address per minute, per instance (a site behind one NAT counts once). */
  rateEnrollPerMin: number;
  /** Console sign-in attempts per client address per minute, per instance. */
  rateLoginPerMin: number;
  /** Seconds a request body (not an upload) may take to arrive. */
  bodyTimeoutS: number;
  /** Seconds an upload may go without a byte arriving. */
  uploadIdleS: number;
  /** Which requests get a `request` log line: all, only refused or failed (≥ 400) and slow (≥ 1 s) ones, or none. */
  requestLog: "all" | "errors" | "off";
  /**
   * Release keys' public halves (base64url) the operator vouches for in configuration
   * (`NOC_RELEASE_KEY_ROOTS`): in release-keys-only mode the admin API registers one of these
   * without an endorsement by an existing release key (how the first release key is bootstrapped).
   */
  releaseKeyRoots: string[];
  /**
   * This server's names (`host[:port]`, lower case, default port elided) appliance and
   * local-server signatures must be made for: the host of `NOC_PUBLIC_URL` and those of
   * `NOC_PUBLIC_HOSTS`. Empty: the listener's own names and loopback. The hosts of
   * `catalogUrl` and `componentUrl` are accepted too (noc/services/authorities.ts).
   */
  publicHosts: string[];
  /**
   * Refused requests per client address per minute, per instance, before that address is
   * answered 429 without any work (0: no limit). Also how many of its refusals are recorded.
   */
  rateRefusalsPerMin: number;
  /** Refusal records (`auth_failures` rows) per minute, per instance, from all addresses together. */
  refusalRecordsPerMin: number;
  /**
   * Seconds between two rows of one appliance's beat history: a beat sooner than this after the
   * last row updates the appliance's status and last report, but adds no history row.
   */
  historyMinGapS: number;
  /**
   * Refusal records per minute, per instance, for proven refusals (the signature verified under
   * the enrolled key: revoked key, replay, a body not matching its signed digest): a budget of
   * their own, which anonymous refusals (a bad signature for any UID included) and refused admin
   * tokens cannot spend.
   */
  identityRefusalRecordsPerMin: number;
  /**
   * Install outcomes kept per appliance (newest first), beyond the latest outcome of each
   * version the appliance was delivered, which is always kept.
   */
  installOutcomesPerAppliance: number;
  /**
   * Largest difference, seconds, between this instance's clock and the database's before the
   * status daemon stops sweeping and nonce pruning stops (one notice says so): due times and
   * replay windows never trust one instance's wall clock.
   */
  clockToleranceS: number;
  /** Seconds one webhook delivery attempt may take before it counts as failed. */
  webhookTimeoutS: number;
  /**
   * What enrolling does when an active appliance of the same hostname exists: `supersede` (the
   * old record is retired and linked to the new one, with no alert and its history kept) or
   * `refuse` (409). An enrolment token may say otherwise.
   */
  reenrolment: "supersede" | "refuse";
  /**
   * Longest maintenance window, days (`NOC_MAINTENANCE_MAX_DAYS`): a longer one is refused (400
   * naming the bound), so no window silences an appliance's alerts for ever.
   */
  maintenanceMaxDays: number;
}

/** The settings used when nothing else is configured. */
export const defaultSettings: Settings = {
  reportIntervalS: 909,
  graceS: 300,
  maxSkewS: 300,
  historyRetentionDays: 30,
  identityNoticeWindowS: 300,
  maxBodyBytes: 256 * 1024,
  maxAppDataBytes: 16 * 1024,
  enrollmentTokenTtlS: 24 * 3600,
  catalogTtlS: 24 * 3600,
  publicUrl: null,
  catalogUrl: null,
  componentUrl: null,
  allowPlainHttpFiles: false,
  trustProxy: false,
  maxUploadBytes: 4 * 1024 ** 3,
  metricsToken: null,
  maxInFlight: 64,
  maxQueue: 512,
  // Answered requests wait at most this long (issue 23: p99 of answered check-ins ≤ 1 s at 2× load).
  maxQueueWaitMs: 500,
  retryAfterS: 60,
  rateAppliancePerMin: 120,
  rateLocalServerPerMin: 1200,
  rateEnrollPerMin: 300,
  rateLoginPerMin: 10,
  bodyTimeoutS: 30,
  uploadIdleS: 60,
  requestLog: "all",
  releaseKeyRoots: [],
  publicHosts: [],
  rateRefusalsPerMin: 30,
  refusalRecordsPerMin: 300,
  historyMinGapS: 300,
  identityRefusalRecordsPerMin: 300,
  installOutcomesPerAppliance: 200,
  clockToleranceS: 30,
  webhookTimeoutS: 10,
  reenrolment: "supersede",
  maintenanceMaxDays: 30,
};

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const envSchema = z.object({
  PORT: int(0, 65535).default(8000),
  NOC_HOST: z.string().optional(),
  NOC_PUBLIC_URL: z.url().optional(),
  NOC_CATALOG_URL: z.url().optional(),
  NOC_COMPONENT_URL: z.url().optional(),
  DATABASE_URL: z.string().min(1).optional(),
  NOC_DATA_DIR: z.string().min(1).default("./.noc-data"),
  NOC_ADMIN_TOKEN: z.string().min(24, "NOC_ADMIN_TOKEN must be at least 24 characters").optional(),
  NOC_SIGNING_KEY: z.string().min(1).optional(),
  NOC_SIGNING_KEY_FILE: z.string().min(1).optional(),
  NOC_WEBHOOK_URLS: z.string().default(""),
  NOC_REPORT_INTERVAL_S: int(10, 86400).default(defaultSettings.reportIntervalS),
  NOC_GRACE_S: int(0, 86400).default(defaultSettings.graceS),
  NOC_MAX_SKEW_S: int(5, 3600).default(defaultSettings.maxSkewS),
  NOC_HISTORY_RETENTION_DAYS: int(1, 3650).default(defaultSettings.historyRetentionDays),
  NOC_IDENTITY_NOTICE_WINDOW_S: int(0, 86400).default(defaultSettings.identityNoticeWindowS),
  NOC_CATALOG_TTL_S: int(300, 30 * 86400).default(defaultSettings.catalogTtlS),
  NOC_MASTER_KEY: z.string().min(1).optional(),
  NOC_MASTER_KEY_FILE: z.string().min(1).optional(),
  NOC_RETIRED_KEYS: z.string().default(""),
  NOC_KEY_STATEMENT: z.string().min(1).optional(),
  NOC_KEY_STATEMENT_FILE: z.string().min(1).optional(),
  NOC_RELEASE_KEYS_ONLY: z.enum(["true", "false"]).default("false"),
  NOC_RELEASE_KEY_ROOTS: z.string().default(""),
  NOC_TRUST_PROXY: z.enum(["true", "false"]).default("false"),
  NOC_MAX_UPLOAD_BYTES: int(1024, 2 ** 53 - 1).default(defaultSettings.maxUploadBytes),
  NOC_MAX_BODY_BYTES: int(16 * 1024, 16 * 1024 * 1024).default(defaultSettings.maxBodyBytes),
  NOC_MAX_APP_DATA_BYTES: int(1024, 1024 * 1024).default(defaultSettings.maxAppDataBytes),
  NOC_MAX_IN_FLIGHT: int(1, 100_000).default(defaultSettings.maxInFlight),
  NOC_MAX_QUEUE: int(0, 1_000_000).default(defaultSettings.maxQueue),
  NOC_MAX_QUEUE_WAIT_MS: int(1, 600_000).default(defaultSettings.maxQueueWaitMs),
  NOC_RETRY_AFTER_S: int(1, 86_400).default(defaultSettings.retryAfterS),
  NOC_METRICS_TOKEN: z.string().min(24, "NOC_METRICS_TOKEN must be at least 24 characters")
    .optional(),
  NOC_RATE_APPLIANCE_PER_MIN: int(0, 1_000_000).default(defaultSettings.rateAppliancePerMin),
  NOC_RATE_LOCAL_SERVER_PER_MIN: int(0, 1_000_000).default(defaultSettings.rateLocalServerPerMin),
  NOC_RATE_ENROLL_PER_MIN: int(0, 1_000_000).default(defaultSettings.rateEnrollPerMin),
  NOC_RATE_LOGIN_PER_MIN: int(0, 1_000_000).default(defaultSettings.rateLoginPerMin),
  NOC_REQUEST_LOG: z.enum(["all", "errors", "off"]).default("all"),
  NOC_PUBLIC_HOSTS: z.string().default(""),
  NOC_RATE_REFUSALS_PER_MIN: int(0, 1_000_000).default(defaultSettings.rateRefusalsPerMin),
  NOC_REFUSAL_RECORDS_PER_MIN: int(0, 1_000_000).default(defaultSettings.refusalRecordsPerMin),
  NOC_HISTORY_MIN_GAP_S: int(0, 86400).default(defaultSettings.historyMinGapS),
  NOC_IDENTITY_REFUSAL_RECORDS_PER_MIN: int(0, 1_000_000).default(
    defaultSettings.identityRefusalRecordsPerMin,
  ),
  NOC_INSTALL_OUTCOMES_PER_APPLIANCE: int(1, 100_000).default(
    defaultSettings.installOutcomesPerAppliance,
  ),
  NOC_CLOCK_TOLERANCE_S: int(1, 3600).default(defaultSettings.clockToleranceS),
  NOC_WEBHOOK_TIMEOUT_S: int(1, 300).default(defaultSettings.webhookTimeoutS),
  NOC_REENROLMENT: z.enum(["supersede", "refuse"]).default(defaultSettings.reenrolment),
  NOC_MAINTENANCE_MAX_DAYS: int(1, 3650).default(defaultSettings.maintenanceMaxDays),
  NOC_DB_TIMEOUT_S: int(1, 600).default(5),
  NOC_BLOB_CACHE_DIR: z.string().min(1).optional(),
  NOC_BLOB_CACHE_MIB: int(0, 2 ** 30).default(4096),
  NOC_WAKE_BUS: z.enum(["postgres", "broadcast"], {
    message: 'must be "postgres" (pg_notify) or "broadcast" (BroadcastChannel, for Deno Deploy)',
  }).default("postgres"),
  NOC_LOG_SINK: z.enum(["stdout", "console"], {
    message:
      'must be "stdout" (the non-blocking line writer) or "console" (console.log, for Deno Deploy)',
  }).optional(),
});

/** Everything `main.ts` needs to start a NOC. */
export interface Config {
  /** Port to listen on (0 picks a free one). */
  port: number;
  /**
   * Address to listen on (`NOC_HOST`); undefined (unset or empty): every address, IPv4 and IPv6
   * (see {@link listenAddresses}).
   */
  host: string | undefined;
  /** The URL appliances use, when it differs from the listening address. */
  publicUrl: string | undefined;
  /** PostgreSQL URL; PGlite under `dataDir` when absent. */
  databaseUrl: string | undefined;
  /** Folder for the embedded database and generated secrets. */
  dataDir: string;
  /** An admin token to accept (its hash is stored). */
  adminToken: string | undefined;
  /** The NOC signing key seed (base64url), when given directly. */
  signingKey: string | undefined;
  /** A file holding the signing key seed. */
  signingKeyFile: string | undefined;
  /** The master secret (content keys at rest, the NOC's X25519 key). */
  masterKey: string | undefined;
  /** A file holding the master secret. */
  masterKeyFile: string | undefined;
  /** Retired signing keys still accepted until a date. */
  retiredKeys: Array<{ publicKey: string; notAfter: string }>;
  /** A key-list statement (noc-keys/1 JSON) making NOC_SIGNING_KEY current (a rotation). */
  keyStatement?: string | undefined;
  /** A file holding that statement. */
  keyStatementFile?: string | undefined;
  /** Packages must be signed by a registered release key. */
  releaseKeysOnly: boolean;
  /** Webhook URLs notified of alerts. */
  webhookUrls: string[];
  /** Request-time settings. */
  settings: Settings;
  /** Development mode: print tokens, create secrets in the data folder. */
  dev: boolean;
  /** Folder of the component server's disk cache; null: no cache (downloads stream from the database). */
  blobCacheDir: string | null;
  /** Most bytes the disk cache keeps. */
  blobCacheBytes: number;
  /**
   * Where log lines go (`NOC_LOG_SINK`): `stdout` through the non-blocking line writer, or
   * `console` (console.log, for Deno Deploy). Explicit: never guessed from the platform.
   */
  logSink: "stdout" | "console";
  /**
   * How wake-ups reach the instance holding an agent's long poll (`NOC_WAKE_BUS`): `postgres`
   * (`pg_notify`, self-hosted; the default) or `broadcast` (`BroadcastChannel`, Deno Deploy).
   */
  wakeBus: "postgres" | "broadcast";
  /**
   * Seconds a request waits for the database (`NOC_DB_TIMEOUT_S`): for a connection, then for
   * each statement, before it is answered 503 with `Retry-After`.
   */
  dbTimeoutS: number;
}

/**
 * Reads and validates configuration from `env` and the NOC's flags in `args` (see
 * {@link parseNocArgs}); throws an Error naming each bad variable or flag.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  args: readonly string[] = [],
): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new Error(`Configuration is invalid:\n  ${lines.join("\n  ")}`);
  }
  const e = parsed.data;
  const webhookUrls = e.NOC_WEBHOOK_URLS.split(/[\s,]+/).filter((u) => u !== "");
  for (const u of webhookUrls) {
    if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) {
      throw new Error(
        `Configuration is invalid:\n  NOC_WEBHOOK_URLS: "${u}" is not an http(s) URL`,
      );
    }
  }
  const retiredKeys = e.NOC_RETIRED_KEYS.split(/[\s,]+/).filter((x) => x !== "").map((entry) => {
    const [publicKey, notAfter] = entry.split("@");
    if (
      !publicKey || !/^[A-Za-z0-9_-]{43}$/.test(publicKey) || !notAfter ||
      Number.isNaN(Date.parse(notAfter))
    ) {
      throw new Error(
        `Configuration is invalid:\n  NOC_RETIRED_KEYS: "${entry}" is not <public key>@<ISO time>`,
      );
    }
    return { publicKey, notAfter: new Date(notAfter).toISOString() };
  });
  const releaseKeyRoots = e.NOC_RELEASE_KEY_ROOTS.split(/[\s,]+/).filter((x) => x !== "");
  for (const k of releaseKeyRoots) {
    if (!/^[A-Za-z0-9_-]{43}$/.test(k)) {
      throw new Error(
        `Configuration is invalid:\n  NOC_RELEASE_KEY_ROOTS: "${
          k.slice(0, 60)
        }" is not an Ed25519 public key (base64url)`,
      );
    }
  }
  const publicHosts = publicHostsOf(e);
  const flags = parseNocArgs(args);
  const dev = flags.dev;
  return {
    port: flags.port ?? e.PORT,
    host: e.NOC_HOST === undefined || e.NOC_HOST.trim() === "" ? undefined : e.NOC_HOST.trim(),
    publicUrl: e.NOC_PUBLIC_URL,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.NOC_DATA_DIR,
    adminToken: e.NOC_ADMIN_TOKEN,
    signingKey: e.NOC_SIGNING_KEY,
    signingKeyFile: e.NOC_SIGNING_KEY_FILE,
    masterKey: e.NOC_MASTER_KEY,
    masterKeyFile: e.NOC_MASTER_KEY_FILE,
    retiredKeys,
    keyStatement: e.NOC_KEY_STATEMENT,
    keyStatementFile: e.NOC_KEY_STATEMENT_FILE,
    releaseKeysOnly: e.NOC_RELEASE_KEYS_ONLY === "true",
    webhookUrls,
    dev,
    // No local files when the database is PostgreSQL (Deno Deploy) unless a folder is named.
    blobCacheDir: e.NOC_BLOB_CACHE_MIB === 0
      ? null
      : e.NOC_BLOB_CACHE_DIR ?? (e.DATABASE_URL ? null : `${e.NOC_DATA_DIR}/blob-cache`),
    blobCacheBytes: e.NOC_BLOB_CACHE_MIB * 1024 * 1024,
    logSink: e.NOC_LOG_SINK ?? "stdout",
    wakeBus: e.NOC_WAKE_BUS,
    dbTimeoutS: e.NOC_DB_TIMEOUT_S,
    settings: {
      ...defaultSettings,
      reportIntervalS: e.NOC_REPORT_INTERVAL_S,
      graceS: e.NOC_GRACE_S,
      maxSkewS: e.NOC_MAX_SKEW_S,
      historyRetentionDays: e.NOC_HISTORY_RETENTION_DAYS,
      identityNoticeWindowS: e.NOC_IDENTITY_NOTICE_WINDOW_S,
      catalogTtlS: e.NOC_CATALOG_TTL_S,
      publicUrl: e.NOC_PUBLIC_URL ?? null,
      catalogUrl: e.NOC_CATALOG_URL?.replace(/\/$/, "") ?? null,
      componentUrl: e.NOC_COMPONENT_URL?.replace(/\/$/, "") ?? null,
      allowPlainHttpFiles: dev,
      trustProxy: e.NOC_TRUST_PROXY === "true",
      maxUploadBytes: e.NOC_MAX_UPLOAD_BYTES,
      maxBodyBytes: e.NOC_MAX_BODY_BYTES,
      maxAppDataBytes: e.NOC_MAX_APP_DATA_BYTES,
      metricsToken: e.NOC_METRICS_TOKEN ?? null,
      maxInFlight: e.NOC_MAX_IN_FLIGHT,
      maxQueue: e.NOC_MAX_QUEUE,
      maxQueueWaitMs: e.NOC_MAX_QUEUE_WAIT_MS,
      retryAfterS: e.NOC_RETRY_AFTER_S,
      rateAppliancePerMin: e.NOC_RATE_APPLIANCE_PER_MIN,
      rateLocalServerPerMin: e.NOC_RATE_LOCAL_SERVER_PER_MIN,
      rateEnrollPerMin: e.NOC_RATE_ENROLL_PER_MIN,
      rateLoginPerMin: e.NOC_RATE_LOGIN_PER_MIN,
      requestLog: e.NOC_REQUEST_LOG,
      releaseKeyRoots,
      publicHosts,
      rateRefusalsPerMin: e.NOC_RATE_REFUSALS_PER_MIN,
      refusalRecordsPerMin: e.NOC_REFUSAL_RECORDS_PER_MIN,
      historyMinGapS: e.NOC_HISTORY_MIN_GAP_S,
      identityRefusalRecordsPerMin: e.NOC_IDENTITY_REFUSAL_RECORDS_PER_MIN,
      installOutcomesPerAppliance: e.NOC_INSTALL_OUTCOMES_PER_APPLIANCE,
      clockToleranceS: e.NOC_CLOCK_TOLERANCE_S,
      webhookTimeoutS: e.NOC_WEBHOOK_TIMEOUT_S,
      reenrolment: e.NOC_REENROLMENT,
      maintenanceMaxDays: e.NOC_MAINTENANCE_MAX_DAYS,
    },
  };
}

const authorityPattern =
  /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]{2,45}\])(?::[1-9][0-9]{0,4})?$/;

/**
 * This server's names: the host (with its port unless it is the scheme's default) of
 * `NOC_PUBLIC_URL`, and each `host[:port]` of `NOC_PUBLIC_HOSTS` (comma or space separated).
 * Throws naming a malformed entry.
 */
export function publicHostsOf(e: {
  NOC_PUBLIC_URL?: string | undefined;
  NOC_PUBLIC_HOSTS?: string | undefined;
}): string[] {
  const hosts = new Set<string>();
  if (e.NOC_PUBLIC_URL !== undefined) hosts.add(new URL(e.NOC_PUBLIC_URL).host.toLowerCase());
  for (const entry of (e.NOC_PUBLIC_HOSTS ?? "").split(/[\s,]+/).filter((x) => x !== "")) {
    const h = entry.toLowerCase();
    const port = /:(\d+)$/.exec(h)?.[1];
    if (!authorityPattern.test(h) || (port !== undefined && Number(port) > 65535)) {
      throw new Error(
        `Configuration is invalid:\n  NOC_PUBLIC_HOSTS: "${
          entry.slice(0, 100)
        }" is not a host name or address with an optional port (host[:port])`,
      );
    }
    hosts.add(h);
  }
  return [...hosts];
}

/** An address family a listener takes connections in. */
export type AddressFamily = "IPv4" | "IPv6";

/**
 * The wildcard addresses to try for `NOC_HOST` unset (`host` undefined): `::` (on Linux's default
 * `net.ipv6.bindv6only=0`, IPv4 too), then, where that cannot be bound (a machine without IPv6),
 * `0.0.0.0`. A given `host` is the only one.
 */
export function listenAddresses(host: string | undefined): string[] {
  return host === undefined ? ["::", "0.0.0.0"] : [host];
}

/** True for a wildcard listening address (every address of a family): `0.0.0.0`, `::`. */
export function isWildcardAddress(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

/**
 * The names a wildcard listener taking `families` answers to: the machine's host name, then its
 * interfaces' addresses in those families (IPv6 in brackets), leaving out IPv6 link-local ones
 * (`fe80::/10`: they are reached only with a zone). `machine` is Deno's host name and interfaces
 * by default; what cannot be read (no `--allow-sys`) is left out.
 */
export function wildcardNames(
  families: ReadonlySet<AddressFamily>,
  machine: { hostname(): string; interfaces(): Array<{ family: string; address: string }> } = {
    hostname: () => Deno.hostname(),
    interfaces: () => Deno.networkInterfaces(),
  },
): string[] {
  const names = new Set<string>();
  try {
    names.add(machine.hostname().toLowerCase());
  } catch {
    // no --allow-sys: the host name is not known
  }
  let interfaces: Array<{ family: string; address: string }> = [];
  try {
    interfaces = machine.interfaces();
  } catch {
    // no --allow-sys: the interfaces are not known
  }
  for (const i of interfaces) {
    if (!families.has(i.family as AddressFamily)) continue;
    const a = i.address.split("%")[0]!.toLowerCase();
    if (i.family === "IPv6" && /^fe[89ab]/.test(a)) continue;
    names.add(i.family === "IPv6" ? `[${a}]` : a);
  }
  return [...names];
}

/** The server roles this codebase runs (DESIGN: the role set is config); `all` by default. */
export const serverRoles = ["all", "noc", "catalog", "component", "local-component"] as const;

/** A server role: the whole NOC, one of its parts, or a site's local component server. */
export type ServerRole = (typeof serverRoles)[number];

/** The NOC's own flags (everything else is configured from the environment). */
const nocOptions = {
  dev: { type: "boolean" },
  port: { type: "string" },
  role: { type: "string" },
} as const;

/** The usage of `main.ts` (`deno task dev`, `deno task start`) for the NOC's roles. */
export const nocUsage = `Usage: deno task start -- [flags]      (deno task dev adds --dev)
       deno run <permissions> main.ts [flags]

Runs the NOC, or one of its parts. Everything else is configured from the environment
(PORT, NOC_HOST, DATABASE_URL, NOC_DATA_DIR, NOC_LOG_SINK, ...: see docs/operations.md).

Flags (in any order):
  --role <role>   all (default), noc, catalog, component or local-component [NOC_ROLE]
                  ("--role local-component --help" lists the local component server's flags)
  --dev           development mode: create and print secrets and tokens, serve files over http
  --port <n>      port to listen on, 0 picks a free one [PORT; default 8000]
  -h, --help      this help

A flag error exits 64; a configuration that does not start exits 1.`;

/** The NOC's flags, parsed. */
export interface NocArgs {
  /** `--dev`. */
  dev: boolean;
  /** `--port`, when given. */
  port: number | undefined;
  /** `--role`, when given. */
  role: ServerRole | undefined;
  /** `--help` or `-h`: print {@link nocUsage} and exit 0. */
  help: boolean;
}

function checkRole(role: string): ServerRole {
  const r = serverRoles.find((x) => x === role);
  if (r === undefined) {
    throw new UsageError(
      `Configuration is invalid:\n  role: "${role}" is not a role this server runs (${
        serverRoles.join(", ")
      })`,
    );
  }
  return r;
}

/** Parses the NOC's flags strictly; throws {@link UsageError} naming an unknown or bad flag. */
export function parseNocArgs(args: readonly string[]): NocArgs {
  const { values } = parseCommandLine(args, nocOptions);
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!/^\d+$/.test(values.port) || port > 65535) {
      throw new UsageError(`"--port" must be a whole number from 0 to 65535, not "${values.port}"`);
    }
  }
  return {
    dev: values.dev === true,
    port,
    role: values.role === undefined || values.role === "" ? undefined : checkRole(values.role),
    help: values.help === true,
  };
}

/**
 * The role from `--role <role>` or `NOC_ROLE`; `all` by default. For the NOC's roles the other
 * flags are checked here too (so a bad one is a usage error before anything starts); for
 * `local-component` they are the local server's to check. Throws {@link UsageError}.
 */
export function serverRole(
  args: readonly string[],
  env: Record<string, string | undefined>,
): ServerRole {
  // Loose: --role may sit among the local component server's flags, which only it knows.
  const { values } = parseArgs({
    args: [...args],
    options: { role: { type: "string" } },
    strict: false,
    allowPositionals: true,
  });
  const given = values.role ?? env["NOC_ROLE"];
  if (typeof given === "boolean") throw new UsageError(`Flag "--role" needs a value`);
  // An empty value is a mistake (a deploy script's unset variable), not a request for `all`.
  if (given === "") {
    throw new UsageError(`"--role" / NOC_ROLE is empty: name a role (${serverRoles.join(", ")})`);
  }
  const role = given === undefined ? "all" : checkRole(given);
  if (role !== "local-component") parseNocArgs(args);
  return role;
}

/**
 * The log sink named by `NOC_LOG_SINK` in `env` (`stdout` when unset), read before the rest of
 * the configuration so that every role logs where it was told; throws naming the variable.
 */
export function logSinkOf(env: Record<string, string | undefined>): "stdout" | "console" {
  const v = env["NOC_LOG_SINK"];
  if (v === undefined || v === "" || v === "stdout") return "stdout";
  if (v === "console") return "console";
  throw new Error(
    `Configuration is invalid:\n  NOC_LOG_SINK: must be "stdout" (the non-blocking line writer) or "console" (console.log, for Deno Deploy)`,
  );
}
