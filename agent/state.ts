/**
 * The agent's state folder: its identity (private keys, pinned NOC keys), its
 * internal catalog `catalog.cur` (what is installed), and its cycle state.
 * Every file is written atomically and read through a zod schema.
 *
 * @module
 */
import { z } from "zod";
import { readJson, writeJsonAtomic } from "../protocol/util/atomic_file.ts";

const publishedKey = z.object({
  kid: z.string(),
  alg: z.literal("ed25519"),
  use: z.array(z.enum(["catalog", "package"])),
  publicKey: z.string(),
  notAfter: z.string().nullable(),
});

const identitySchema = z.object({
  format: z.literal("noc-agent-identity/1"),
  noc: z.string(),
  uid: z.string(),
  signingSeed: z.string(),
  signingPublic: z.string(),
  encryptionPrivate: z.string(),
  encryptionPublic: z.string(),
  pinnedKeys: z.array(publishedKey).min(1),
  /**
   * The mode pinned at enrolment: true when the NOC's key did not sign packages (release-keys-only
   * mode), or once it stopped. Never set back: in this mode every key with "package" use needs a
   * release key's endorsement. Absent in identities written before it existed (then the pins tell).
   */
  releaseKeysOnly: z.boolean().optional(),
  enrolledAt: z.string(),
  /**
   * The host name given explicitly at enrolment (`--hostname`, `NOC_AGENT_HOSTNAME`), reported in
   * every SecureBeat unless the process is given another. Absent: the system's name is reported
   * (and in identities written before it existed).
   */
  hostname: z.string().min(1).max(253).optional(),
});

/** The appliance's identity: secret keys and the NOC keys pinned at enrolment. */
export type Identity = z.infer<typeof identitySchema>;

const installedSchema = z.object({
  kind: z.enum(["package", "file"]),
  app: z.string(),
  name: z.string(),
  version: z.string(),
  sha256: z.string(),
  installedAt: z.string(),
  /** Files: where it was written, relative to the root. */
  destination: z.string().optional(),
});

/** One installed component, as recorded in `catalog.cur`. */
export type Installed = z.infer<typeof installedSchema>;

const catalogCurSchema = z.object({
  format: z.literal("noc-catalog-cur/1"),
  components: z.array(installedSchema),
});

const problemSchema = z.object({
  code: z.string(),
  message: z.string(),
  kind: z.enum(["package", "file", "catalog", "plugin"]).optional(),
  app: z.string().optional(),
  name: z.string().optional(),
  version: z.string().optional(),
  /** `install_deferred`: when its install window opens next (ISO 8601). */
  opensAt: z.string().optional(),
});

/** Something refused or failed in a cycle, reported in the next SecureBeat. */
export type Problem = z.infer<typeof problemSchema>;

/** An install outcome as sent to the NOC (`POST /v1/installs`), and as journalled. */
export const reportSchema = z.object({
  kind: z.enum(["package", "file"]),
  app: z.string(),
  name: z.string(),
  version: z.string(),
  outcome: z.enum(["installed", "failed", "rolled_back"]),
  message: z.string().optional(),
  /** Its idempotency key (kept across re-sends, so the NOC records it once). */
  reportId: z.uuid().optional(),
});

/** An install outcome waiting to be sent to the NOC. */
export type InstallReport = z.infer<typeof reportSchema>;

const cycleSchema = z.object({
  outcome: z.enum(["none", "ok", "partial", "failed"]),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  message: z.string().optional(),
  problems: z.array(problemSchema).optional(),
  /**
   * How many problems the cycle had when more than `problems` keeps (at most 100 are kept): the
   * next beat names the rest in `dropped`.
   */
  problemsReported: z.number().int().min(0).optional(),
});

/** The summary of a cycle. */
export type CycleSummary = z.infer<typeof cycleSchema>;

const stateSchema = z.object({
  format: z.literal("noc-agent-state/1"),
  seq: z.number().int().min(0),
  intervalS: z.number().int().min(1),
  lastSerial: z.number().int().min(0),
  etag: z.string().nullable(),
  lastCycle: cycleSchema,
  nextDueAt: z.string().nullable(),
  /** Failed installs by `kind/app/name`: retried with backoff, never in a hot loop. */
  failures: z.record(
    z.string(),
    z.object({
      version: z.string(),
      sha256: z.string(),
      attempts: z.number().int().min(1),
      retryAt: z.string(),
      message: z.string(),
    }),
  ),
  /**
   * Outcomes written before the outcome journal (`outcomes/`), or when it could not be written (a
   * full disk): moved into the journal at the next cycle's start.
   */
  pendingReports: z.array(reportSchema),
  /**
   * The catalog server (not the NOC) that last answered with a catalog bound to the request: asked
   * when the server a beat answer names (unsigned) fails. Null or absent: the NOC.
   */
  catalogUrl: z.string().nullable().optional(),
  /**
   * Cycles in a row that failed (the NOC unreachable or refusing, a `Retry-After`): the back-off's
   * exponent (agent/back_pressure.ts). Reset by a beat the NOC accepts. Absent: 0.
   */
  failedCycles: z.number().int().min(0).optional(),
  /**
   * No cycle before this time: a `Retry-After` the NOC answered (bounded by the interval), honoured
   * by `run` after a restart too. Absent or null: none.
   */
  notBefore: z.string().nullable().optional(),
  /** Application data from the last post plug-ins, sent with the next SecureBeat. */
  apps: z.record(z.string(), z.record(z.string(), z.unknown())),
});

/** The agent's cycle state (`state.json`). */
export type AgentState = z.infer<typeof stateSchema>;

/** The report interval until the NOC says otherwise (the spec's 15 min 9 s). */
export const defaultIntervalS = 909;

/** Paths inside the state folder. */
export function statePaths(state: string) {
  return {
    identity: `${state}/identity.json`,
    catalogCur: `${state}/catalog.cur`,
    state: `${state}/state.json`,
    catalog: `${state}/catalog.json`,
    downloads: `${state}/downloads`,
    packages: `${state}/packages`,
    staging: `${state}/staging`,
    files: `${state}/files`,
    initD: `${state}/init.d`,
    postD: `${state}/post.d`,
    lock: `${state}/cycle.lock`,
    wakeCursor: `${state}/wake.json`,
    /** Install outcomes not yet acknowledged by the NOC, one file each (outcome_journal.ts). */
    outcomes: `${state}/outcomes`,
    /** Programs an install started and that may still run (install_guard.ts). */
    running: `${state}/running.json`,
  };
}

async function load<T>(path: string, schema: z.ZodType<T>): Promise<T | null> {
  const raw = await readJson(path);
  if (raw === null) return null;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`State file "${path}" is not in the expected shape`);
  }
  return parsed.data;
}

/** Reads the identity; null when the agent has not enrolled. */
export function loadIdentity(state: string): Promise<Identity | null> {
  return load(statePaths(state).identity, identitySchema);
}

/** Writes the identity (readable by the agent alone). */
export function saveIdentity(state: string, identity: Identity): Promise<void> {
  return writeJsonAtomic(statePaths(state).identity, identity, 0o600);
}

/** Reads `catalog.cur`; empty when missing (a new or wiped appliance). */
export async function loadInstalled(state: string): Promise<Installed[]> {
  return (await load(statePaths(state).catalogCur, catalogCurSchema))?.components ?? [];
}

/** Writes `catalog.cur`. */
export function saveInstalled(state: string, components: Installed[]): Promise<void> {
  const order = (c: Installed) => `${c.kind === "package" ? 0 : 1}\n${c.app}\n${c.name}`;
  return writeJsonAtomic(statePaths(state).catalogCur, {
    format: "noc-catalog-cur/1",
    components: [...components].sort((a, b) => order(a) < order(b) ? -1 : 1),
  });
}

/** Reads the cycle state, or a fresh one. */
export async function loadState(state: string): Promise<AgentState> {
  return (await load(statePaths(state).state, stateSchema)) ?? freshState();
}

/** The cycle state of an agent that has run no cycle. */
export function freshState(): AgentState {
  return {
    format: "noc-agent-state/1",
    seq: 0,
    intervalS: defaultIntervalS,
    lastSerial: 0,
    etag: null,
    lastCycle: { outcome: "none" },
    nextDueAt: null,
    failures: {},
    pendingReports: [],
    apps: {},
  };
}

/** Writes the cycle state. */
export function saveState(state: string, s: AgentState): Promise<void> {
  return writeJsonAtomic(statePaths(state).state, s);
}

/** The `kind/app/name` key of a component. */
export function componentKey(c: { kind: string; app: string; name: string }): string {
  return `${c.kind}/${c.app}/${c.name}`;
}
