/**
 * Plug-ins (spec, FIGURE 10A/10B): executables in `init.d/` (run before the
 * SecureBeat: watchdogs, collectors) and `post.d/` (run after installing),
 * in name order, each with a time limit. A JSON object on a plug-in's
 * stdout becomes its application's data in the next report; the application
 * is the file name without a leading `NN-` and without an extension
 * (`20-vscreen.sh` reports for `vscreen`). A failing or hanging plug-in is
 * reported and the cycle goes on.
 *
 * @module
 */
import { runProgram } from "./proc.ts";
import { nameSchema } from "../protocol/schemas.ts";
import type { Problem } from "./state.ts";

/** The NOC accepts at most this much data per application in a report. */
const maxDataBytes = 16 * 1024;

/** The application a plug-in reports for. */
export function pluginApp(file: string): string {
  return file.replace(/^\d+[-_]/, "").replace(/\.[A-Za-z0-9]+$/, "");
}

/** What a plug-in phase produced. */
export interface PluginResults {
  /** Application data by application. */
  apps: Record<string, Record<string, unknown>>;
  /** Plug-ins that failed, hung or printed something that is not a JSON object. */
  problems: Problem[];
  /** Plug-ins run, in order. */
  ran: string[];
}

/** Runs every executable in `dir` in name order. */
export async function runPlugins(dir: string, options: {
  timeoutMs: number;
  env: Record<string, string>;
}): Promise<PluginResults> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith(".")) continue;
      const st = await Deno.stat(`${dir}/${e.name}`).catch(() => null);
      if (st?.isFile && ((st.mode ?? 0) & 0o111) !== 0) names.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  names.sort();
  const out: PluginResults = { apps: {}, problems: [], ran: [] };
  for (const name of names) {
    const app = pluginApp(name);
    out.ran.push(name);
    const r = await runProgram([`${dir}/${name}`], {
      cwd: dir,
      env: options.env,
      timeoutMs: options.timeoutMs,
    });
    const problem = (code: string, message: string) =>
      out.problems.push({
        code,
        message,
        kind: "plugin",
        ...(nameSchema.safeParse(app).success ? { app } : {}),
      });
    if (r.spawnError) {
      problem("plugin_failed", `Plug-in "${name}" could not start: ${r.spawnError}`);
      continue;
    }
    if (r.timedOut) {
      problem(
        "plugin_timeout",
        `Plug-in "${name}" ran past ${options.timeoutMs} ms and was killed`,
      );
      continue;
    }
    if (r.code !== 0) {
      problem(
        "plugin_failed",
        `Plug-in "${name}" exited with ${r.code}: ${r.stderr.trim().slice(-500)}`,
      );
    }
    const text = r.stdout.trim();
    if (text === "") continue;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      problem("plugin_output", `Plug-in "${name}" printed something that is not a JSON object`);
      continue;
    }
    if (!nameSchema.safeParse(app).success) {
      problem("plugin_output", `Plug-in "${name}" does not name an application`);
      continue;
    }
    if (text.length > maxDataBytes) {
      problem("plugin_output", `Plug-in "${name}" printed more than ${maxDataBytes} bytes of data`);
      continue;
    }
    out.apps[app] = { ...out.apps[app], ...(data as Record<string, unknown>) };
  }
  return out;
}
