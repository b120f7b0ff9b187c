/**
 * The agent's log: one JSON line per event, or short readable lines and a
 * download progress bar when stdout is a terminal.
 *
 * @module
 */
import type { LogFields, Logger } from "../protocol/util/log.ts";

/** A logger that can also draw download progress. */
export interface AgentLog extends Logger {
  /** Reports download progress (drawn as a bar on a terminal, ignored otherwise). */
  progress(label: string, done: number, total: number): void;
}

const encoder = new TextEncoder();

/** Creates the agent's log for `format` (`auto` picks `text` on a terminal). */
export function agentLog(format: "auto" | "json" | "text"): AgentLog {
  const text = format === "text" || (format === "auto" && Deno.stdout.isTerminal());
  let bar = false;
  const clearBar = () => {
    if (bar) Deno.stdout.writeSync(encoder.encode("\r\x1b[K"));
    bar = false;
  };
  const emit = (level: string) => (event: string, fields: LogFields = {}) => {
    if (!text) {
      console.log(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }));
      return;
    }
    clearBar();
    const extra = Object.entries(fields).map(([k, v]) =>
      `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
    ).join(" ");
    const time = new Date().toISOString().slice(11, 19);
    console.log(`${time} ${level === "info" ? "" : `${level.toUpperCase()} `}${event} ${extra}`);
  };
  return {
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    progress(label, done, total) {
      if (!text) return;
      const width = 30;
      const frac = total > 0 ? Math.min(1, done / total) : 1;
      const filled = Math.round(frac * width);
      const mib = (n: number) => (n / 1048576).toFixed(1);
      Deno.stdout.writeSync(encoder.encode(
        `\r\x1b[K${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${
          Math.floor(frac * 100)
        }% ${mib(done)}/${mib(total)} MiB`,
      ));
      bar = true;
      if (done >= total) clearBar();
    },
  };
}

/** A log that keeps nothing (for library callers and tests). */
export const silentLog: AgentLog = {
  info() {},
  warn() {},
  error() {},
  progress() {},
};
