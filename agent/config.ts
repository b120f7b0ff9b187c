/**
 * The agent's configuration: defaults, then `agent.json` in the state folder,
 * then `NOC_AGENT_*` environment variables, then command-line flags (flags
 * win).
 *
 * @module
 */
import { z } from "zod";
import type { ParseArgsOptionsConfig } from "node:util";
import { readJson } from "../protocol/util/atomic_file.ts";
import { parseCommandLine, UsageError } from "../protocol/util/args.ts";
import { DEFAULT_BACKOFF_BASE_S, DEFAULT_START_SPREAD_S } from "./back_pressure.ts";

/** The agent's version, reported in every SecureBeat. */
export const agentVersion = "1.0.0";

/** Where the agent keeps its state unless told otherwise. */
export const defaultStateDir = "/var/lib/noc-agent";
/** The folder files and packages are installed into unless told otherwise. */
export const defaultRootDir = "/opt/appliance";

/** Everything the agent can be configured with. */
export interface AgentConfig {
  /** State folder: identity, `catalog.cur`, downloads, plug-ins. */
  state: string;
  /** Appliance root: every file destination is confined to it. */
  root: string;
  /** NOC base URL (from enrolment unless set). */
  noc: string | null;
  /** Model reported at enrolment. */
  model: string;
  /**
   * Host name reported at enrolment and in every SecureBeat (a renamed host says so). The beat's
   * is {@link reportedHostname}: an explicit one here, else the one kept at enrolment, else this.
   */
  hostname: string;
  /**
   * Where {@link hostname} came from: `flag` (`--hostname`), `env` (`NOC_AGENT_HOSTNAME`), `file`
   * (`agent.json`) or `system` (`Deno.hostname()`). Absent: `system`.
   */
  hostnameFrom?: "flag" | "env" | "file" | "system";
  /** Mount points whose free space is reported (the root and state folder by default). */
  mounts: string[];
  /** Seconds a plug-in may run. */
  pluginTimeoutS: number;
  /** Seconds a package's install program (or a file's action) may run. */
  installTimeoutS: number;
  /** Seconds a package's health check may run. */
  healthTimeoutS: number;
  /** Seconds a download may go without receiving a byte. */
  downloadIdleS: number;
  /** Seconds the wake-up long poll is held by the NOC (0 turns wake-ups off). */
  wakeWaitS: number;
  /** Accept files over plain HTTP (development only; files are unsigned). */
  allowHttpFiles: boolean;
  /**
   * The back-off's base after a failed cycle, seconds: the n-th failure in a row waits a random
   * time up to `min(interval, backoffBaseS × 2^(n−1))` (agent/back_pressure.ts).
   */
  backoffBaseS: number;
  /**
   * `run` waits a random time up to `min(interval, startSpreadS)` before its first cycle (not
   * after a fresh enrolment); 0 runs it at once.
   */
  startSpreadS: number;
  /** `text` for people, `json` for machines, `auto` picks by whether stdout is a terminal. */
  log: "auto" | "json" | "text";
}

const fileSchema = z.strictObject({
  root: z.string().min(1).optional(),
  noc: z.url().optional(),
  model: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/).optional(),
  hostname: z.string().min(1).max(253).optional(),
  // A longer path is left out of the beat (agent/health.ts MOUNT_MAX), not refused here: an
  // appliance whose root is deep still beats.
  mounts: z.array(z.string().min(1).max(4096)).max(64).optional(),
  pluginTimeoutS: z.number().int().min(1).max(3600).optional(),
  installTimeoutS: z.number().int().min(1).max(86400).optional(),
  healthTimeoutS: z.number().int().min(1).max(3600).optional(),
  downloadIdleS: z.number().int().min(1).max(3600).optional(),
  wakeWaitS: z.number().int().min(0).max(60).optional(),
  allowHttpFiles: z.boolean().optional(),
  backoffBaseS: z.number().int().min(1).max(86400).optional(),
  startSpreadS: z.number().int().min(0).max(86400).optional(),
  log: z.enum(["auto", "json", "text"]).optional(),
});

/** A usage or configuration error: the message says what to fix (exit 64). */
export class ConfigError extends UsageError {}

/**
 * Every flag of the agent, for `node:util` `parseArgs` (each command takes its own subset: see
 * {@link commandFlags}). `--help`/`-h` is added to all.
 */
export const agentOptions = {
  state: { type: "string" },
  root: { type: "string" },
  noc: { type: "string" },
  log: { type: "string" },
  token: { type: "string" },
  model: { type: "string" },
  hostname: { type: "string" },
  force: { type: "boolean" },
  "wake-wait": { type: "string" },
  "plugin-timeout": { type: "string" },
  "install-timeout": { type: "string" },
  "health-timeout": { type: "string" },
  "download-idle": { type: "string" },
  "backoff-base": { type: "string" },
  "start-spread": { type: "string" },
  mounts: { type: "string" },
  "allow-http-files": { type: "boolean" },
  json: { type: "boolean" },
} as const satisfies ParseArgsOptionsConfig;

type FlagName = keyof typeof agentOptions;

/** The flags every command takes. */
const commonFlags = ["state", "root", "noc", "log"] as const satisfies readonly FlagName[];

/** The flags each command takes. */
export const commandFlags: Record<"enroll" | "run" | "once" | "status", readonly FlagName[]> = {
  enroll: [...commonFlags, "token", "model", "hostname", "force"],
  run: [
    ...commonFlags,
    "wake-wait",
    "plugin-timeout",
    "install-timeout",
    "health-timeout",
    "download-idle",
    "backoff-base",
    "start-spread",
    "mounts",
    "allow-http-files",
    "hostname",
  ],
  once: [
    ...commonFlags,
    "wake-wait",
    "plugin-timeout",
    "install-timeout",
    "health-timeout",
    "download-idle",
    "backoff-base",
    "start-spread",
    "mounts",
    "allow-http-files",
    "hostname",
  ],
  status: [...commonFlags, "json"],
};

/** Parsed command-line flags (a string flag's value, or `true` for a boolean one). */
export type Flags = {
  [K in FlagName]?: (typeof agentOptions)[K]["type"] extends "string" ? string : boolean;
};

/**
 * Splits `args` into positional words (the command first), flags and whether `--help`/`-h` was
 * given; throws {@link UsageError} naming an unknown flag or a missing value.
 */
export function parseAgentArgs(
  args: readonly string[],
): { words: string[]; flags: Flags; help: boolean } {
  const { values, positionals } = parseCommandLine(args, agentOptions, { positionals: true });
  const { help, ...flags } = values;
  return { words: positionals, flags: flags as Flags, help: help === true };
}

function int(name: string, v: string | boolean | undefined, min: number, max: number) {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v === "boolean" || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`"${name}" must be a whole number from ${min} to ${max}, not "${v}"`);
  }
  return n;
}

function bool(name: string, v: string | boolean | undefined) {
  if (v === undefined) return undefined;
  if (v === true || v === "1" || v === "true") return true;
  if (v === false || v === "0" || v === "false") return false;
  throw new ConfigError(`"${name}" must be true or false, not "${v}"`);
}

type Defined<T> = { [K in keyof T]?: Exclude<T[K], undefined> };

function defined<T extends object>(o: T): Defined<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Defined<T>;
}

function fromStrings(
  src: Readonly<Record<string, string | boolean | undefined>>,
  names: {
    [K in keyof Omit<AgentConfig, "state" | "hostnameFrom">]: string;
  },
): Partial<AgentConfig> {
  const s = (k: keyof typeof names) => {
    const v = src[names[k]];
    if (typeof v === "boolean") throw new ConfigError(`"${names[k]}" needs a value`);
    return v;
  };
  const log = s("log");
  if (log !== undefined && !["auto", "json", "text"].includes(log)) {
    throw new ConfigError(`"${names.log}" must be auto, json or text, not "${log}"`);
  }
  const noc = s("noc");
  if (noc !== undefined && (!URL.canParse(noc) || !/^https?:$/.test(new URL(noc).protocol))) {
    throw new ConfigError(`"${names.noc}" must be an http(s) URL, not "${noc}"`);
  }
  return defined({
    root: s("root"),
    noc,
    model: s("model"),
    hostname: s("hostname"),
    mounts: s("mounts")?.split(",").map((m) => m.trim()).filter(Boolean),
    pluginTimeoutS: int(names.pluginTimeoutS, src[names.pluginTimeoutS], 1, 3600),
    installTimeoutS: int(names.installTimeoutS, src[names.installTimeoutS], 1, 86400),
    healthTimeoutS: int(names.healthTimeoutS, src[names.healthTimeoutS], 1, 3600),
    downloadIdleS: int(names.downloadIdleS, src[names.downloadIdleS], 1, 3600),
    wakeWaitS: int(names.wakeWaitS, src[names.wakeWaitS], 0, 60),
    allowHttpFiles: bool(names.allowHttpFiles, src[names.allowHttpFiles]),
    backoffBaseS: int(names.backoffBaseS, src[names.backoffBaseS], 1, 86400),
    startSpreadS: int(names.startSpreadS, src[names.startSpreadS], 0, 86400),
    log: log as AgentConfig["log"] | undefined,
  });
}

const envNames = {
  root: "NOC_AGENT_ROOT",
  noc: "NOC_AGENT_NOC",
  model: "NOC_AGENT_MODEL",
  hostname: "NOC_AGENT_HOSTNAME",
  mounts: "NOC_AGENT_MOUNTS",
  pluginTimeoutS: "NOC_AGENT_PLUGIN_TIMEOUT_S",
  installTimeoutS: "NOC_AGENT_INSTALL_TIMEOUT_S",
  healthTimeoutS: "NOC_AGENT_HEALTH_TIMEOUT_S",
  downloadIdleS: "NOC_AGENT_DOWNLOAD_IDLE_S",
  wakeWaitS: "NOC_AGENT_WAKE_WAIT_S",
  allowHttpFiles: "NOC_AGENT_ALLOW_HTTP_FILES",
  backoffBaseS: "NOC_AGENT_BACKOFF_BASE_S",
  startSpreadS: "NOC_AGENT_START_SPREAD_S",
  log: "NOC_AGENT_LOG",
} as const;

const flagNames = {
  root: "root",
  noc: "noc",
  model: "model",
  hostname: "hostname",
  mounts: "mounts",
  pluginTimeoutS: "plugin-timeout",
  installTimeoutS: "install-timeout",
  healthTimeoutS: "health-timeout",
  downloadIdleS: "download-idle",
  wakeWaitS: "wake-wait",
  allowHttpFiles: "allow-http-files",
  backoffBaseS: "backoff-base",
  startSpreadS: "start-spread",
  log: "log",
} as const;

/** The environment variables the agent reads (its `--allow-env` list). */
export const agentEnvVars = ["NOC_AGENT_STATE", ...Object.values(envNames)];

/** Loads the configuration: defaults < `<state>/agent.json` < environment < flags. */
export async function loadAgentConfig(
  flags: Flags,
  env: Record<string, string | undefined>,
): Promise<AgentConfig> {
  const state = absolute(flags.state ?? env["NOC_AGENT_STATE"] ?? defaultStateDir);
  let file: Partial<AgentConfig> = {};
  const raw = await readJson(`${state}/agent.json`).catch((e) => {
    throw new ConfigError(e instanceof Error ? e.message : String(e));
  });
  if (raw !== null) {
    const parsed = fileSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ConfigError(
        `Configuration file "${state}/agent.json": field "${
          issue.path.join(".")
        }" ${issue.message}`,
      );
    }
    file = defined(parsed.data) as Partial<AgentConfig>;
  }
  const fromEnv = fromStrings(env, envNames);
  const fromFlags = fromStrings(flags, flagNames);
  const hostnameFrom: NonNullable<AgentConfig["hostnameFrom"]> = fromFlags.hostname !== undefined
    ? "flag"
    : fromEnv.hostname !== undefined
    ? "env"
    : file.hostname !== undefined
    ? "file"
    : "system";
  const merged = {
    root: defaultRootDir,
    noc: null,
    model: "generic",
    hostname: safeHostname(),
    pluginTimeoutS: 30,
    installTimeoutS: 600,
    healthTimeoutS: 60,
    downloadIdleS: 60,
    wakeWaitS: 50,
    allowHttpFiles: false,
    backoffBaseS: DEFAULT_BACKOFF_BASE_S,
    startSpreadS: DEFAULT_START_SPREAD_S,
    log: "auto" as const,
    ...file,
    ...fromEnv,
    ...fromFlags,
    state,
    hostnameFrom,
  };
  // Absolute, so install programs (run in their own folder) and plug-ins see the same paths.
  const root = absolute(merged.root);
  return { ...merged, root, mounts: merged.mounts ?? [...new Set([root, state])] };
}

/**
 * The host name an enrolled agent reports in its SecureBeats: one configured for this process
 * (`--hostname`, `NOC_AGENT_HOSTNAME`, `hostname` in `agent.json`; never saved), else the one given
 * explicitly at enrolment (kept in `identity.json`), else the system's, so that a renamed system is
 * followed.
 */
export function reportedHostname(
  config: Pick<AgentConfig, "hostname" | "hostnameFrom">,
  identity: { hostname?: string | undefined } | null | undefined,
): string {
  const configured = config.hostnameFrom !== undefined && config.hostnameFrom !== "system";
  return configured ? config.hostname : identity?.hostname ?? config.hostname;
}

/**
 * Whether the host name was given explicitly to this process (`--hostname`, `NOC_AGENT_HOSTNAME`):
 * `enroll` then keeps it in `identity.json`, for every later beat.
 */
export function hostnameGivenExplicitly(config: Pick<AgentConfig, "hostnameFrom">): boolean {
  return config.hostnameFrom === "flag" || config.hostnameFrom === "env";
}

function absolute(path: string): string {
  const p = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  const parts: string[] = [];
  for (const s of p.split("/")) {
    if (s === "" || s === ".") continue;
    if (s === "..") parts.pop();
    else parts.push(s);
  }
  return `/${parts.join("/")}`;
}

function safeHostname(): string {
  try {
    const h = Deno.hostname().toLowerCase().replace(/[^a-z0-9.-]/g, "-").replace(
      /^[.-]+|[.-]+$/g,
      "",
    );
    return h || "appliance";
  } catch {
    return "appliance";
  }
}
