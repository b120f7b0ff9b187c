/**
 * Runs a program (a plug-in, an install program, a health check, a file's
 * follow-up action) with a time limit, capturing a bounded amount of its
 * output. A program that outlives its limit is killed; one whose children
 * keep its output open cannot hold the agent.
 *
 * @module
 */

import { timerMs } from "../protocol/util/timer.ts";

/** `setsid` (util-linux), found by trying it on each run: the agent may not read `/usr/bin`. */
const setsidPath = "/usr/bin/setsid";

/**
 * The gate a program waits behind until the agent recorded it (`beforeStart`): a shell that
 * reads one line from its standard input and runs the program (same process, same group) only
 * if that line is "go". An agent that dies first closes the pipe, and the program never runs.
 * The process group exists once setsid(1) has run in the child, which on a busy machine may be
 * just after `beforeStart` is called: a leftover found before then has no group to stop, and its
 * gate, its pipe closed, never runs the program either. The program itself reads `/dev/null`, as
 * one run without the gate does.
 */
const gate = [
  "/bin/sh",
  "-c",
  'IFS= read -r go && [ "$go" = go ] && exec "$@" </dev/null; exit 125',
  "noc-agent-gate",
];

/** How a program run ended. */
export interface RunResult {
  /** Exit code (null when killed). */
  code: number | null;
  /** True when it was killed for running past its limit. */
  timedOut: boolean;
  /** Its standard output (at most `maxOutput` bytes). */
  stdout: string;
  /** The end of its standard error. */
  stderr: string;
  /** Set when it could not be started at all. */
  spawnError?: string;
}

function capture(
  stream: ReadableStream<Uint8Array>,
  max: number,
  keepTail: boolean,
): { text: Promise<string>; cancel(): Promise<void> } {
  const reader = stream.getReader();
  return {
    text: collect(reader, max, keepTail),
    cancel: () => reader.cancel().catch(() => {}),
  };
}

async function collect(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  max: number,
  keepTail: boolean,
): Promise<string> {
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      if (keepTail) {
        parts.push(chunk);
        size += chunk.length;
        while (parts.length > 1 && size - parts[0]!.length >= max) size -= parts.shift()!.length;
      } else if (size < max) {
        // Beyond the limit the output is read and dropped, so the program never blocks on a full pipe.
        parts.push(chunk);
        size += chunk.length;
      }
    }
  } catch {
    // The stream was cancelled.
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const bytes = keepTail ? all.subarray(Math.max(0, all.length - max)) : all.subarray(0, max);
  return new TextDecoder().decode(bytes);
}

/**
 * Runs `argv` in `cwd` with `env` (added to a minimal environment) for at most `timeoutMs`.
 * With `beforeStart`, the program waits behind a gate until `beforeStart` (given its process
 * id, which is also its process group's id when `group` is true) has resolved; if it throws, the
 * program never runs and `spawnError` says why.
 */
export async function runProgram(
  argv: readonly string[],
  options: {
    cwd: string;
    env: Record<string, string>;
    timeoutMs: number;
    maxOutput?: number;
    beforeStart?: (pid: number, group: boolean) => Promise<void>;
  },
): Promise<RunResult> {
  const max = options.maxOutput ?? 64 * 1024;
  let child: Deno.ChildProcess;
  // Whether this run got a session of its own (so a timeout kills its whole process group).
  let setsid = true;
  try {
    // In a session of its own (where setsid exists), so a timeout kills everything it started.
    const spawn = (cmd: readonly string[]) =>
      new Deno.Command(cmd[0]!, {
        args: cmd.slice(1),
        cwd: options.cwd,
        clearEnv: true,
        env: {
          PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          ...options.env,
        },
        stdin: options.beforeStart ? "piped" : "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    const program = options.beforeStart ? [...gate, ...argv] : [...argv];
    try {
      child = spawn([setsidPath, ...program]);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      setsid = false;
      child = spawn(program);
    }
  } catch (e) {
    return {
      code: null,
      timedOut: false,
      stdout: "",
      stderr: "",
      spawnError: e instanceof Error ? e.message : String(e),
    };
  }
  const out = capture(child.stdout, max, false);
  const err = capture(child.stderr, 4000, true);
  if (options.beforeStart) {
    const writer = child.stdin.getWriter();
    let refused: string | null = null;
    try {
      await options.beforeStart(child.pid, setsid);
      await writer.write(new TextEncoder().encode("go\n"));
    } catch (e) {
      refused = e instanceof Error ? e.message : String(e);
    }
    await writer.close().catch(() => {});
    if (refused !== null) {
      await child.status;
      await Promise.all([out.cancel(), err.cancel()]);
      return { code: null, timedOut: false, stdout: "", stderr: "", spawnError: refused };
    }
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      if (setsid) Deno.kill(-child.pid, "SIGKILL");
      else child.kill("SIGKILL");
    } catch {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }, timerMs(options.timeoutMs));
  const status = await child.status;
  clearTimeout(timer);
  // A daemon it started may hold its output open: give the pipes a moment, then let go.
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<"late">((r) => graceTimer = setTimeout(() => r("late"), 1000));
  const settled = await Promise.race([Promise.all([out.text, err.text]), grace]);
  clearTimeout(graceTimer);
  if (settled === "late") await Promise.all([out.cancel(), err.cancel()]);
  const [stdout, stderr] = await Promise.all([out.text, err.text]);
  return { code: timedOut ? null : status.code, timedOut, stdout, stderr };
}
