/** Structured JSON logging: one line per event, with the request id of the request it belongs to. */
import { AsyncLocalStorage } from "node:async_hooks";

/** A log event's fields. */
export type LogFields = Record<string, unknown>;

/** Writes structured log lines. */
export interface Logger {
  /** Routine events. */
  info(event: string, fields?: LogFields): void;
  /** Something an operator should see. */
  warn(event: string, fields?: LogFields): void;
  /** Logs a failure. */
  error(event: string, fields?: LogFields): void;
}

/** The request being handled, for the log lines written while it is (see {@link inRequest}). */
const requestScope = new AsyncLocalStorage<{ requestId: string }>();

/** Runs `fn` as part of request `requestId`: every log line written meanwhile carries it. */
export function inRequest<T>(requestId: string, fn: () => T): T {
  return requestScope.run({ requestId }, fn);
}

function scoped(fields: LogFields): LogFields {
  const requestId = requestScope.getStore()?.requestId;
  return requestId === undefined ? fields : { requestId, ...fields };
}

/** A logger writing one JSON object per line to `write` (stdout by default). */
export function jsonLogger(write: (line: string) => void = (l) => console.log(l)): Logger {
  const emit = (level: string) => (event: string, fields: LogFields = {}) =>
    write(JSON.stringify({ time: new Date().toISOString(), level, event, ...scoped(fields) }));
  return { info: emit("info"), warn: emit("warn"), error: emit("error") };
}

/** A logger that keeps its lines in memory (for tests and quiet tools). */
export function memoryLogger(): Logger & {
  lines: Array<LogFields & { level: string; event: string }>;
} {
  const lines: Array<LogFields & { level: string; event: string }> = [];
  const emit = (level: string) => (event: string, fields: LogFields = {}) => {
    lines.push({ level, event, ...scoped(fields) });
  };
  return { lines, info: emit("info"), warn: emit("warn"), error: emit("error") };
}
