/**
 * No orphan installs. Every program an install runs (a package's `install`,
 * its `health` check, a rollback, a file's follow-up action) runs in a
 * session of its own (`setsid`), and before it may start — it waits behind a
 * small `/bin/sh` gate for the agent's word — its process group and start
 * time (`/proc/<pid>/stat` field 22, clock ticks since boot) are written
 * durably to `<state>/running.json`. The record is removed when the program
 * ends. A record found at a cycle's start is a program an earlier run started
 * and never saw end (that agent was killed): if its process group is still
 * alive it is stopped (SIGTERM, then SIGKILL), and the component it was
 * installing counts as not installed, so the cycle installs what the catalog
 * wants over whatever that program left. While it cannot be stopped, the
 * cycle installs nothing.
 *
 * The start time guards against a reused process id: a group whose leader
 * is alive with another start time is not the recorded one, and left alone.
 * The agent may not read `/proc/<pid>` itself (Deno asks `--allow-all` for
 * it), so `/bin/cat` reads it (the agent may run programs).
 *
 * @module
 */
import { z } from "zod";
import { readJson, writeJsonAtomic } from "../protocol/util/atomic_file.ts";
import { componentKey, type Problem, statePaths } from "./state.ts";
import type { AgentLog } from "./log.ts";
import type { AgentConfig } from "./config.ts";
import { bootId, settleAttempts } from "./install_attempts.ts";
import { sweepDebris } from "./debris.ts";

const programSchema = z.object({
  /** Its process id; with `group`, also its process group's id. */
  // Never 1 (init; and `kill(-1)` signals every process the agent may signal) nor 0.
  pid: z.number().int().min(2),
  /** True when it leads a process group of its own (setsid worked). */
  group: z.boolean(),
  /** `/proc/<pid>/stat` starttime (clock ticks after boot), as text; null when unreadable. */
  startTicks: z.string().regex(/^\d{1,20}$/).nullable(),
  kind: z.enum(["package", "file"]),
  app: z.string(),
  name: z.string(),
  version: z.string(),
  action: z.enum(["install", "rollback", "health", "action"]),
  startedAt: z.string(),
  /** The boot it started in (install_attempts.ts bootId); absent in older records. */
  bootId: z.string().nullable().optional(),
});

/** A program an install started, as `running.json` records it. */
export type RunningProgram = z.infer<typeof programSchema>;

const runningSchema = z.object({
  format: z.literal("noc-agent-running/1"),
  programs: z.array(programSchema),
});

/** How long a leftover process group has after SIGTERM, then after SIGKILL, milliseconds. */
export const STOP_GRACE_MS = 5_000;

/** One process, from `/proc/<pid>/stat`. */
export interface ProcStat {
  pid: number;
  /** State letter (R, S, D, Z, ...). */
  state: string;
  pgrp: number;
  session: number;
  /** Start time, clock ticks after boot. */
  startTicks: bigint;
}

/**
 * Parses `/proc/<pid>/stat` records, one per file, each ended by a NUL (as {@link procStats}
 * reads them); records that are not one are skipped. The kernel prints the command name raw, and
 * any process may put a newline or a parenthesis in its own: so records are split on NUL (which
 * no name holds), the process id is the record's first field, and the fields after the name
 * follow its last ")".
 */
export function parseProcStats(text: string): ProcStat[] {
  const out: ProcStat[] = [];
  for (const raw of text.split("\0")) {
    const record = raw.endsWith("\n") ? raw.slice(0, -1) : raw;
    const open = record.indexOf(" (");
    const close = record.lastIndexOf(")");
    if (open < 1 || close < open || !/^\d+$/.test(record.slice(0, open))) continue;
    const pid = Number(record.slice(0, open));
    const f = record.slice(close + 2).split(" ");
    // f[0] is field 3 (state), f[2] field 5 (pgrp), f[3] field 6 (session), f[19] field 22.
    if (!Number.isSafeInteger(pid) || f.length < 20 || !/^\d+$/.test(f[19]!)) continue;
    out.push({
      pid,
      state: f[0]!,
      pgrp: Number(f[2]),
      session: Number(f[3]),
      startTicks: BigInt(f[19]!),
    });
  }
  return out;
}

/** Reads `/proc/<pid>/stat` of `pid`, or of every process; empty when it cannot. */
export async function procStats(pid?: number): Promise<ProcStat[]> {
  // Each file's record, then a NUL: one `cat` per file, so no name can run into the next record.
  const cmd = pid === undefined
    ? [
      "/bin/sh",
      "-c",
      "for f in /proc/[0-9]*/stat; do cat \"$f\" 2>/dev/null; printf '\\0'; done; exit 0",
    ]
    : ["/bin/cat", `/proc/${pid}/stat`];
  try {
    const out = await new Deno.Command(cmd[0]!, {
      args: cmd.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin" },
    }).output();
    return parseProcStats(new TextDecoder().decode(out.stdout));
  } catch {
    return [];
  }
}

/** Reads `running.json`; empty when missing, or damaged (then it is said so in `damaged`). */
async function loadRunning(
  state: string,
): Promise<{ programs: RunningProgram[]; damaged: boolean }> {
  try {
    const raw = await readJson(statePaths(state).running);
    if (raw === null) return { programs: [], damaged: false };
    const parsed = runningSchema.safeParse(raw);
    return parsed.success
      ? { programs: parsed.data.programs, damaged: false }
      : { programs: [], damaged: true };
  } catch {
    return { programs: [], damaged: true };
  }
}

function saveRunning(state: string, programs: RunningProgram[]): Promise<void> {
  return writeJsonAtomic(statePaths(state).running, { format: "noc-agent-running/1", programs });
}

/** The live processes of a recorded program's group (or the program alone, without a group). */
export async function liveMembers(p: RunningProgram): Promise<ProcStat[]> {
  const stats = await procStats();
  const start = p.startTicks === null ? null : BigInt(p.startTicks);
  const leader = stats.find((s) => s.pid === p.pid);
  // A live leader started at another time: the id was reused, and the recorded group is gone
  // (a group's id is not handed out again while any of its members lives).
  if (leader && start !== null && leader.startTicks !== start) return [];
  return stats.filter((s) =>
    (p.group ? s.pgrp === p.pid : s.pid === p.pid) && s.state !== "Z" &&
    (start === null ? (!p.group || s.session === p.pid) : s.startTicks >= start)
  );
}

function signal(p: RunningProgram, sig: Deno.Signal): void {
  try {
    Deno.kill(p.group ? -p.pid : p.pid, sig);
  } catch {
    // Gone already.
  }
}

async function waitGone(p: RunningProgram, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if ((await liveMembers(p)).length === 0) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What {@link settleLeftovers} found. */
export interface Leftovers {
  /** `kind/app/name` of the components whose install an earlier run left unfinished. */
  dropped: string[];
  /** What to report in the next SecureBeat. */
  problems: Problem[];
  /** True while a leftover program could not be stopped: the cycle must install nothing. */
  blocked: boolean;
}

/**
 * At a cycle's start: stops what an earlier run's installs left running (SIGTERM, after
 * {@link STOP_GRACE_MS} SIGKILL) and names the components concerned, to be treated as not
 * installed. A program that outlives both stays recorded and blocks the cycle's installs.
 */
export async function settleLeftovers(
  ctx: {
    config: Pick<AgentConfig, "state"> & Partial<Pick<AgentConfig, "root">>;
    log: AgentLog;
    now?: () => Date;
  },
  graceMs = STOP_GRACE_MS,
): Promise<Leftovers> {
  const state = ctx.config.state;
  const { programs, damaged } = await loadRunning(state);
  const out: Leftovers = { dropped: [], problems: [], blocked: false };
  if (damaged) {
    out.problems.push({
      code: "state_damaged",
      message: `${statePaths(state).running} is not in the expected shape; ignored`,
    });
  }
  const still: RunningProgram[] = [];
  const ended: Array<{ p: RunningProgram; wasRunning: boolean }> = [];
  // A program recorded in another boot is gone (its process ids mean nothing in this one).
  const boot = programs.length > 0 ? await bootId() : null;
  for (const p of programs) {
    const component = `${p.app}/${p.name}@${p.version}`;
    const otherBoot = p.bootId != null && boot !== null && p.bootId !== boot;
    const alive = otherBoot ? [] : await liveMembers(p);
    if (alive.length > 0) {
      ctx.log.warn("leftover_install_running", {
        component,
        action: p.action,
        pid: p.pid,
        processes: alive.length,
        startedAt: p.startedAt,
      });
      signal(p, "SIGTERM");
      signal(p, "SIGCONT");
      if (!await waitGone(p, graceMs)) {
        signal(p, "SIGKILL");
        if (!await waitGone(p, graceMs)) {
          still.push(p);
          out.blocked = true;
          out.problems.push({
            kind: p.kind,
            app: p.app,
            name: p.name,
            version: p.version,
            code: "leftover_install_running",
            message: `The ${p.action} program of ${component} that an earlier run started ` +
              `(process group ${p.pid}) survives SIGKILL; nothing is installed until it ends`,
          });
          ctx.log.error("leftover_install_unstoppable", { component, pid: p.pid });
          continue;
        }
      }
      ctx.log.warn("leftover_install_stopped", { component, action: p.action, pid: p.pid });
    }
    ended.push({ p, wasRunning: alive.length > 0 });
  }
  // Installs cut short by the reboot they asked for (their marker made): awaiting it, not redone.
  const rebooting = out.blocked
    ? []
    : await settleAttempts(state, ctx.now?.() ?? new Date()).catch((e) => {
      ctx.log.warn("cleanup_failed", { path: state, message: String(e) });
      return [];
    });
  for (const { p, wasRunning } of ended) {
    const component = `${p.app}/${p.name}@${p.version}`;
    const asked = rebooting.find((a) =>
      p.kind === "package" && a.app === p.app && a.name === p.name && a.version === p.version
    );
    if (asked && boot !== null && asked.bootId !== null && boot !== asked.bootId) {
      // The reboot it asked for has happened (`boot` is this boot's id, read above): this cycle's
      // install step judges it (and logs install_rebooted); nothing here claims it still waits.
      continue;
    }
    if (asked) {
      out.problems.push({
        kind: "package",
        app: p.app,
        name: p.name,
        version: p.version,
        code: "awaiting_reboot",
        message: `The install of ${component} made its reboot marker before the agent stopped; ` +
          `its health check decides once the appliance has rebooted`,
      });
      ctx.log.info("install_rebooting", { component, action: p.action });
      continue;
    }
    out.dropped.push(componentKey(p));
    out.problems.push({
      code: "install_interrupted",
      message: `The ${p.action} program of ${component} never finished in an earlier run ` +
        `(the agent stopped mid-install)${wasRunning ? "; it was stopped" : ""}; ` +
        `${p.kind} ${p.app}/${p.name} is installed again`,
    });
    ctx.log.warn("install_interrupted", { component, action: p.action, wasRunning });
  }
  if (programs.length > 0 || damaged) await saveRunning(state, still);
  // Temporary files a cut left (debris.ts).
  const swept = await sweepDebris(state, { root: ctx.config.root, log: ctx.log }).catch(() => []);
  if (swept.length > 0) {
    ctx.log.info("debris_removed", { paths: swept.slice(0, 20), count: swept.length });
  }
  return out;
}

/**
 * The hooks that record one program of an install: `beforeStart` (for `runProgram`) writes the
 * record once the program's process exists and before it may start; `ended` removes it.
 */
export function programGuard(
  state: string,
  what: Pick<RunningProgram, "kind" | "app" | "name" | "version" | "action">,
  now: () => Date,
): { beforeStart(pid: number, group: boolean): Promise<void>; ended(): Promise<void> } {
  let pid: number | null = null;
  return {
    async beforeStart(p, group) {
      const [[stat], boot] = await Promise.all([procStats(p), bootId()]);
      const record: RunningProgram = {
        pid: p,
        group,
        startTicks: stat?.pid === p ? String(stat.startTicks) : null,
        kind: what.kind,
        app: what.app,
        name: what.name,
        version: what.version,
        action: what.action,
        startedAt: now().toISOString(),
        bootId: boot,
      };
      const { programs } = await loadRunning(state);
      await saveRunning(state, [...programs.filter((x) => x.pid !== p), record]);
      pid = p;
    },
    async ended() {
      if (pid === null) return;
      const { programs } = await loadRunning(state);
      await saveRunning(state, programs.filter((x) => x.pid !== pid));
      pid = null;
    },
  };
}
