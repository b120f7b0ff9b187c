/**
 * Installs in progress, kept across kills and boots (`<state>/attempts.json`).
 *
 * Before a package's `install` program runs, its run is counted here, durably (written, flushed,
 * renamed, the folder flushed), with the boot it runs in and its staging folder. The record goes
 * when the agent sees the install end (installed, failed, rolled back). A record found when the
 * same version (same SHA-256) is to be installed again is an install cut short — the agent was
 * killed, or the appliance lost power or rebooted mid-install — and it is run again at most
 * {@link MAX_INSTALL_RUNS} times in all: then the install fails with code `interrupted` and is
 * never run again for that version and digest.
 *
 * The reboot convention: an `install` that needs the appliance to reboot before its work can be
 * judged either exits with {@link REBOOT_EXIT_CODE} (194), or — when it reboots the appliance
 * itself — first creates the file `$NOC_REBOOT_MARKER`. The agent then records the install as
 * awaiting a reboot (phase `awaiting_reboot`, with the boot id it ran in), installs nothing of it
 * again while that boot lasts, and once the boot id has changed runs the package's `health`
 * check, which decides: it passes (or there is none), and the version is installed; it fails,
 * and the previous version is put back, as after any failed health check.
 *
 * The boot id is `/proc/sys/kernel/random/boot_id` (read with `/bin/cat`: the agent may not read
 * `/proc` itself). Tests point `NOC_AGENT_BOOT_ID_FILE` at a file of their own; the agent reads
 * that variable only when its permissions let it (`--allow-env` naming it), which the shipped
 * permissions (agent/permissions.ts) never do.
 *
 * @module
 */
import { testOnlyEnv } from "./cut_points.ts";
import { z } from "zod";
import { exists, readJson, writeJsonAtomic } from "../protocol/util/atomic_file.ts";
import { nameSchema } from "../protocol/schemas.ts";
import { statePaths } from "./state.ts";

/** How many times in all an install program is run for one version and digest, cut short or not. */
export const MAX_INSTALL_RUNS = 3;

/** The exit code by which an install program says "installed; the appliance must reboot". */
export const REBOOT_EXIT_CODE = 194;

/**
 * One record. The fields that form paths (`app`, `name`, `sha256`: the reboot marker, the kept
 * payload's folder; `staging`, checked in {@link loadAttempts}) must have their expected shape: a
 * record that fails is ignored, as if it were not there.
 */
const attemptSchema = z.object({
  kind: z.literal("package"),
  app: nameSchema,
  name: nameSchema,
  version: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** How many times its install program was started. */
  runs: z.number().int().min(0),
  /** `running`: an install started and never seen to end; `awaiting_reboot`: see the module. */
  phase: z.enum(["running", "awaiting_reboot"]),
  /** The boot the install last ran in (null when the boot id cannot be read). */
  bootId: z.string().nullable(),
  /** Its staging folder while it ran (payload moved aside after a reboot it asked for). */
  staging: z.string().nullable(),
  startedAt: z.string(),
  updatedAt: z.string(),
});

/** An install in progress, as `attempts.json` records it. */
export type Attempt = z.infer<typeof attemptSchema>;

const fileSchema = z.object({
  format: z.literal("noc-agent-attempts/1"),
  installs: z.array(z.unknown()),
});

/** A staging folder an install runs in: `<state>/staging/<uuid>`. */
const stagingName = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `attempts.json` in state folder `state`. */
export function attemptsPath(state: string): string {
  return `${state}/attempts.json`;
}

/** The folder reboot markers are made in. */
export function rebootDir(state: string): string {
  return `${state}/reboot`;
}

/** `$NOC_REBOOT_MARKER` for the install of the package with digest `sha256`. */
export function rebootMarker(state: string, sha256: string): string {
  return `${rebootDir(state)}/${sha256}`;
}

/**
 * The installs in progress; empty when none, or when the file is damaged (it is then rewritten).
 * A record whose path-forming fields are not of their shape (a digest other than 64 lowercase hex
 * digits, a name the protocol refuses, a staging folder other than `<state>/staging/<uuid>`) is
 * ignored, and goes when the file is next written.
 */
export async function loadAttempts(state: string): Promise<Attempt[]> {
  try {
    const parsed = fileSchema.safeParse(await readJson(attemptsPath(state)));
    if (!parsed.success) return [];
    const stagingDir = `${statePaths(state).staging}/`;
    const out: Attempt[] = [];
    for (const raw of parsed.data.installs) {
      const a = attemptSchema.safeParse(raw);
      if (!a.success) continue;
      const st = a.data.staging;
      if (
        st !== null &&
        !(st.startsWith(stagingDir) && stagingName.test(st.slice(stagingDir.length)))
      ) continue;
      out.push(a.data);
    }
    return out;
  } catch {
    return [];
  }
}

async function save(state: string, installs: Attempt[]): Promise<void> {
  await writeJsonAtomic(attemptsPath(state), { format: "noc-agent-attempts/1", installs });
}

const same = (a: Attempt, c: { app: string; name: string }) => a.app === c.app && a.name === c.name;

/** The record of package `c` (any version), or null. */
export async function findAttempt(
  state: string,
  c: { app: string; name: string },
): Promise<Attempt | null> {
  return (await loadAttempts(state)).find((a) => same(a, c)) ?? null;
}

/** Replaces the record of package `a` (one per package: another version's goes). */
export async function putAttempt(state: string, a: Attempt): Promise<void> {
  const all = await loadAttempts(state);
  await save(state, [...all.filter((x) => !same(x, a)), a]);
}

/** Removes the record of package `c`, and its reboot marker. */
export async function clearAttempt(
  state: string,
  c: { app: string; name: string; sha256?: string },
): Promise<void> {
  const all = await loadAttempts(state);
  const gone = all.filter((x) => same(x, c));
  if (gone.length > 0) await save(state, all.filter((x) => !same(x, c)));
  for (const a of gone) await Deno.remove(rebootMarker(state, a.sha256)).catch(() => {});
  if (c.sha256) await Deno.remove(rebootMarker(state, c.sha256)).catch(() => {});
}

/** Where a package's unpacked payload is kept (per content digest). */
export function keptDir(state: string, c: { app: string; name: string; sha256: string }): string {
  return `${statePaths(state).packages}/${c.app}/${c.name}/${c.sha256}`;
}

/**
 * Moves the unpacked payload `staging` to where it is kept for `c` (replacing what was there);
 * returns that folder.
 */
export async function keepPayload(
  state: string,
  c: { app: string; name: string; sha256: string },
  staging: string,
): Promise<string> {
  const kept = keptDir(state, c);
  await Deno.mkdir(kept.slice(0, kept.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  await Deno.remove(kept, { recursive: true }).catch(() => {});
  await Deno.rename(staging, kept);
  return kept;
}

/**
 * At a cycle's start, once the programs an earlier run left are stopped (install_guard.ts): an
 * install cut short after it made its reboot marker asked for the reboot that cut it. It is
 * recorded as awaiting that reboot, its payload moved from its staging folder (which the cycle
 * empties next) to where it is kept. Reboot markers no install in progress owns are removed.
 * Returns the installs now awaiting a reboot.
 */
export async function settleAttempts(state: string, now: Date): Promise<Attempt[]> {
  const all = await loadAttempts(state);
  const rebooting: Attempt[] = [];
  let changed = false;
  const next = await Promise.all(all.map(async (a) => {
    if (a.phase !== "running" || !(await exists(rebootMarker(state, a.sha256)))) return a;
    changed = true;
    if (a.staging && await exists(`${a.staging}/install`)) {
      await keepPayload(state, a, a.staging).catch(() => {});
    }
    const b: Attempt = {
      ...a,
      phase: "awaiting_reboot",
      staging: null,
      updatedAt: now.toISOString(),
    };
    rebooting.push(b);
    return b;
  }));
  if (changed) await save(state, next);
  const owned = new Set(next.filter((a) => a.phase === "running").map((a) => a.sha256));
  try {
    for await (const e of Deno.readDir(rebootDir(state))) {
      if (!owned.has(e.name)) {
        await Deno.remove(`${rebootDir(state)}/${e.name}`, { recursive: true }).catch(() => {});
      }
    }
  } catch {
    // No markers.
  }
  return rebooting;
}

/** The id of the running boot, or null when it cannot be read. */
export async function bootId(): Promise<string | null> {
  // Tests point it at a file; the shipped permissions cannot read the variable.
  const testBootFile = testOnlyEnv("NOC_AGENT_BOOT_ID_FILE");
  try {
    const text = testBootFile ? await Deno.readTextFile(testBootFile) : new TextDecoder().decode(
      (await new Deno.Command("/bin/cat", {
        args: ["/proc/sys/kernel/random/boot_id"],
        stdin: "null",
        stdout: "piped",
        stderr: "null",
        clearEnv: true,
        env: { PATH: "/usr/bin:/bin" },
      }).output()).stdout,
    );
    const id = text.trim();
    return id === "" ? null : id.slice(0, 200);
  } catch {
    return null;
  }
}
