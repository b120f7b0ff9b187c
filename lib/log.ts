/** Structured JSON logging: one line per event. */

/** A log event's fields. */
export type LogFields = Record<string, unknown>;

/** Writes structured log lines. */
export interface Logger {
  /** Routine events. */
  info(event: string, fields?: LogFields): void;
  /** Something an operator should see. */
  warn(event: string, fields?: LogFields): void;
  /** Failures. */
  error(event: string, fields?: LogFields): void;
}

/** A logger writing one JSON object per line to `write` (stdout by default). */
export function jsonLogger(write: (line: string) => void = (l) => console.log(l)): Logger {
  const emit = (level: string) => (event: string, fields: LogFields = {}) =>
    write(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }));
  return { info: emit("info"), warn: emit("warn"), error: emit("error") };
}

/** A logger that keeps its lines in memory (for tests and quiet tools). */
export function memoryLogger(): Logger & {
  lines: Array<LogFields & { level: string; event: string }>;
} {
  const lines: Array<LogFields & { level: string; event: string }> = [];
  const emit = (level: string) => (event: string, fields: LogFields = {}) => {
    lines.push({ level, event, ...fields });
  };
  return { lines, info: emit("info"), warn: emit("warn"), error: emit("error") };
}
