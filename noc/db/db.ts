/**
 * One data-access path over two backends: real PostgreSQL through
 * `npm:postgres`, or PGlite (PostgreSQL compiled to WASM) embedded in the
 * process. Both are driven through the same tagged-template {@link Sql}.
 *
 * PGlite is loaded with a dynamic `import()` in {@link openPglite} only: a
 * NOC on PostgreSQL (Deno Deploy included) never loads its WASM build.
 *
 * @module
 */
import postgres from "postgres";
import net from "node:net";
import type { PGlite } from "@electric-sql/pglite";

/** A row as returned by a query. */
export type Row = Record<string, unknown>;

/** A value that may be interpolated into a query. JSON goes in as an object or array. */
export type Param =
  | string
  | number
  | boolean
  | null
  | Date
  | readonly string[]
  | readonly number[]
  | Record<string, unknown>
  | readonly unknown[]
  | Uint8Array;

/** Runs SQL written as a tagged template; interpolated values are always sent as parameters. */
export interface Sql {
  <T = Row>(strings: TemplateStringsArray, ...values: Param[]): Promise<T[]>;
  /** Runs a trusted multi-statement script (migrations only; never built from input). */
  script(text: string): Promise<void>;
}

/** A database handle: queries, transactions, and shutdown. */
export interface Db {
  /** Which backend serves this handle. */
  readonly kind: "postgres" | "pglite";
  /** Runs one statement in its own implicit transaction. */
  readonly sql: Sql;
  /** Runs `fn` in a transaction that commits when it resolves and rolls back when it throws. */
  begin<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /**
   * Calls `fn` with the payload of every notification on `channel` (a plain
   * identifier), from any connection to the database; resolves to a function
   * that stops listening.
   */
  listen(channel: string, fn: (payload: string) => void): Promise<() => Promise<void>>;
  /** Closes the connections this handle owns. */
  close(): Promise<void>;
}

/** Throws unless `name` is a plain lower-case SQL identifier (it is quoted into a statement). */
export function assertSchemaName(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`Schema name "${name}" is not a plain identifier`);
  }
}

/** Options for {@link openPostgres}. */
export interface PostgresOptions {
  /** Schema put first on the search path of every connection (tests use one per test). */
  schema?: string;
  /** Pool size; 10 by default. */
  max?: number;
  /**
   * Seconds a statement may wait for the database, from pool acquisition to its result
   * (`NOC_DB_TIMEOUT_S`); absent: no client-side bound (tests and tools). See {@link DbTimeoutError}.
   */
  timeoutS?: number | undefined;
}

/**
 * A statement that got no answer within the handle's bound (`timeoutS`): the pool had no
 * connection for it in time, the server did not answer (a stalled server: SIGSTOP, a dead
 * network path), or the server cancelled it for running longer (`statement_timeout`). Its code
 * `ETIMEDOUT` is one the app's error handler answers with 503 and `Retry-After`.
 */
export class DbTimeoutError extends Error {
  /** Node's code for a timed-out operation; the app maps it to 503 (database unavailable). */
  readonly code = "ETIMEDOUT";
  /** @param s the bound that was exceeded, seconds */
  constructor(s: number, what = "statement") {
    super(`The database did not answer a ${what} within ${s} s`);
    this.name = "DbTimeoutError";
  }
}

/**
 * A connection's socket as the pool's watchdog sees it: when its oldest write still waiting for
 * any answer was sent (null: nothing outstanding since the last bytes came back).
 */
interface Watched {
  socket: net.Socket;
  waitingSince: number | null;
}

/**
 * Opens sockets for npm:postgres (its `socket` option) and remembers each, so that a connection
 * whose server stopped answering can be destroyed rather than handed out again.
 */
function socketWatchdog(timeoutS: number) {
  const sockets = new Set<Watched>();
  /** How many trusted scripts (migrations) run now: their statements may take any time. */
  let scripts = 0;
  return {
    scriptStarted: () => void scripts++,
    scriptEnded: () => void scripts--,
    // deno-lint-ignore no-explicit-any
    open(options: any): Promise<net.Socket> {
      const socket = options.path
        ? net.connect(options.path)
        : net.connect(Number(options.port[0]), options.host[0]);
      const w: Watched = { socket, waitingSince: null };
      const write = socket.write.bind(socket) as (...a: unknown[]) => boolean;
      // deno-lint-ignore no-explicit-any
      (socket as any).write = (...a: unknown[]) => {
        w.waitingSince ??= performance.now();
        return write(...a);
      };
      socket.on("data", () => w.waitingSince = null);
      socket.once("close", () => sockets.delete(w));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          socket.destroy();
          reject(new DbTimeoutError(timeoutS, "connection"));
        }, timeoutS * 1000);
        socket.once("connect", () => {
          clearTimeout(timer);
          sockets.add(w);
          resolve(socket);
        });
        socket.once("error", (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
    },
    /**
     * Destroys every connection that has waited `timeoutS` or more for an answer to what it
     * sent (the pool reconnects when it next needs one); none while a script runs.
     */
    discardStuck(): number {
      if (scripts > 0) return 0;
      const before = performance.now() - timeoutS * 1000 + 50;
      let n = 0;
      for (const w of sockets) {
        if (w.waitingSince !== null && w.waitingSince <= before) {
          sockets.delete(w);
          w.socket.destroy();
          n++;
        }
      }
      return n;
    },
  };
}

const int8AsNumber = {
  to: 20,
  from: [20],
  serialize: (x: number) => String(x),
  parse: (x: string) => Number(x),
};

/**
 * Splits a Unix socket folder given as libpq's `host` parameter (`?host=/var/run/postgresql`)
 * off a PostgreSQL URL: npm:postgres would otherwise send it to the server as a setting. On the
 * same machine, a socket costs less CPU per statement than loopback TCP.
 */
export function postgresTarget(url: string): { url: string; socketDir: string | null } {
  const parsed = URL.canParse(url) ? new URL(url) : null;
  const host = parsed?.searchParams.get("host");
  if (!parsed || !host?.startsWith("/")) return { url, socketDir: null };
  parsed.searchParams.delete("host");
  return { url: parsed.href, socketDir: host };
}

/**
 * Opens a pooled connection to a PostgreSQL server. With `timeoutS`, every statement is bounded
 * on the client (a server that stops answering is not closed, so nothing else would end the
 * wait) and on the server (`statement_timeout`, for runaway statements): past it the statement
 * fails with {@link DbTimeoutError}, a queued one leaves the queue, and a connection that has had
 * no answer for that long is destroyed, never handed out again; the pool opens fresh ones (each
 * bounded by the same `connect_timeout`) once the server answers again. Trusted scripts
 * (`sql.script`, migrations) are not bounded. The `listen` connection waits for notifications
 * without a bound (it sends nothing while it waits).
 */
export function openPostgres(url: string, options: PostgresOptions = {}): Db {
  if (options.schema) assertSchemaName(options.schema);
  const target = postgresTarget(url);
  url = target.url;
  const socketDir = target.socketDir;
  const timeoutS = options.timeoutS;
  const watchdog = timeoutS === undefined ? null : socketWatchdog(timeoutS);
  const connection: Record<string, string> = {};
  if (options.schema) connection["search_path"] = options.schema;
  // The server cancels a runaway statement a little before the client gives up on it, so that
  // on a live server the connection stays in the pool; the client's bound is for a silent one.
  if (timeoutS !== undefined) {
    connection["statement_timeout"] = String(Math.max(100, timeoutS * 1000 - 200));
  }
  const native = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    types: { int8: int8AsNumber },
    connect_timeout: timeoutS ?? 10,
    ...(socketDir ? { host: socketDir } : {}),
    ...(watchdog ? { socket: watchdog.open } : {}),
    ...(Object.keys(connection).length > 0 ? { connection } : {}),
    // deno-lint-ignore no-explicit-any
  } as any);
  /** `query` (a pending npm:postgres query), failing with DbTimeoutError past the bound. */
  // deno-lint-ignore no-explicit-any
  const bounded = (query: any): Promise<Row[]> => {
    if (timeoutS === undefined) return query.then((rows: Row[]) => rows);
    return new Promise<Row[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Still queued for a connection: it leaves the queue. Sent: its connection is stuck.
        if (!query.state) query.cancel?.();
        watchdog?.discardStuck();
        reject(new DbTimeoutError(timeoutS));
      }, timeoutS * 1000);
      query.then(
        (rows: Row[]) => {
          clearTimeout(timer);
          resolve(rows);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(serverTimeout(e) ? new DbTimeoutError(timeoutS) : e);
        },
      );
    });
  };
  // deno-lint-ignore no-explicit-any
  const wrap = (s: any, inTransaction: boolean): Sql => {
    const fn =
      ((strings: TemplateStringsArray, ...values: Param[]) =>
        bounded(s(strings, ...values))) as Sql;
    fn.script = async (text: string) => {
      watchdog?.scriptStarted();
      try {
        if (inTransaction) {
          // Migrations may run longer than a request's bound, on the server too.
          if (timeoutS !== undefined) await s.unsafe("set local statement_timeout = 0");
          await s.unsafe(text);
        } else {
          await s.unsafe(text);
        }
      } finally {
        watchdog?.scriptEnded();
      }
    };
    return fn;
  };
  const begin = <T>(fn: (tx: Sql) => Promise<T>): Promise<T> => {
    if (timeoutS === undefined) {
      // deno-lint-ignore no-explicit-any
      return native.begin((tx: any) => fn(wrap(tx, true))) as Promise<T>;
    }
    // Bounded until the transaction has its connection; each statement in it is bounded too.
    let state: "waiting" | "started" | "abandoned" = "waiting";
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (state !== "waiting") return;
        state = "abandoned";
        watchdog?.discardStuck();
        reject(new DbTimeoutError(timeoutS, "transaction"));
      }, timeoutS * 1000);
      // What the transaction's own code threw (a statement's DbTimeoutError), rather than what
      // rolling back on a connection discarded meanwhile says.
      let thrown: unknown = null;
      // deno-lint-ignore no-explicit-any
      (native.begin(async (tx: any) => {
        if (state === "abandoned") throw new DbTimeoutError(timeoutS, "transaction");
        state = "started";
        clearTimeout(timer);
        try {
          return await fn(wrap(tx, true));
        } catch (e) {
          thrown = e;
          throw e;
        }
      }) as Promise<T>).then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          const err = thrown ?? e;
          reject(serverTimeout(err) ? new DbTimeoutError(timeoutS) : err);
        },
      );
    });
  };
  return {
    kind: "postgres",
    sql: wrap(native, false),
    begin,
    listen: async (channel, fn) => {
      assertSchemaName(channel);
      const sub = await native.listen(channel, (payload: string) => fn(payload));
      return () => sub.unlisten();
    },
    close: () => native.end({ timeout: 5 }),
  };
}

/** True for the server's own statement timeout (SQLSTATE 57014 with "statement timeout"). */
function serverTimeout(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  return err?.code === "57014" && /statement timeout/.test(String(err.message));
}

interface PgliteQueryable {
  query<T>(text: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(text: string): Promise<unknown>;
}

/**
 * Lets the event loop turn during a long run of PGlite statements. PGlite runs each statement in
 * this thread and settles its promise without any I/O, so a loop of statements (a blob's chunks,
 * a sweep's batches) never yields to timers or the network: review 23i saw every request, health
 * checks included, wait 2–3.4 s while a 40 MB component was read, and a 40 MB blob's reads here
 * never let a 10 ms timer fire in 6 s. `after()` is awaited after each statement: when the loop
 * has not turned for {@link maxHoldMs}, it waits for the next macrotask, once. Cheap otherwise: a
 * zero-delay timer marks each turn.
 */
function loopTurns(): { after(): Promise<void> } {
  let turnedAt = performance.now();
  let pending = false;
  const mark = () => {
    pending = false;
    turnedAt = performance.now();
  };
  return {
    async after() {
      if (!pending) {
        pending = true;
        setTimeout(mark, 0);
      }
      if (performance.now() - turnedAt > maxHoldMs) {
        await new Promise<void>((resolve) => setTimeout(resolve, 0));
      }
    },
  };
}

/** Longest PGlite holds the event loop across statements, ms (see {@link loopTurns}). */
const maxHoldMs = 20;

function pgliteSql(q: PgliteQueryable, turns: { after(): Promise<void> }): Sql {
  const fn = (async (strings: TemplateStringsArray, ...values: Param[]) => {
    let text = strings[0] ?? "";
    for (let i = 0; i < values.length; i++) text += `$${i + 1}${strings[i + 1] ?? ""}`;
    const rows = (await q.query<Row>(text, values)).rows;
    await turns.after();
    return rows;
  }) as Sql;
  fn.script = async (text: string) => {
    await q.exec(text);
  };
  return fn;
}

/** Options for {@link openPglite}. */
export interface PgliteOptions {
  /** Folder to persist to; in memory when absent. */
  dataDir?: string;
  /** An already open instance to share (it is then not closed by `close()`). */
  instance?: PGlite;
  /** Schema to create and put first on the search path. */
  schema?: string;
}

/**
 * Opens (or wraps) an embedded PGlite database. The PGlite module is imported
 * here, on first use, not when this file is loaded.
 */
export async function openPglite(options: PgliteOptions = {}): Promise<Db> {
  const owned = !options.instance;
  const pg = options.instance ?? new (await import("@electric-sql/pglite")).PGlite(options.dataDir);
  await pg.waitReady;
  if (options.schema) {
    assertSchemaName(options.schema);
    await pg.exec(
      `create schema if not exists "${options.schema}"; set search_path to "${options.schema}"`,
    );
  }
  const turns = loopTurns();
  return {
    kind: "pglite",
    sql: pgliteSql(pg, turns),
    begin: <T>(fn: (tx: Sql) => Promise<T>) => pg.transaction((tx) => fn(pgliteSql(tx, turns))),
    listen: async (channel, fn) => {
      assertSchemaName(channel);
      const stop = await pg.listen(channel, fn);
      return () => stop();
    },
    close: async () => {
      if (owned) await pg.close();
    },
  };
}

/**
 * Opens Postgres when `databaseUrl` is set (each statement bounded by `dbTimeoutS`, see
 * {@link openPostgres}), PGlite persisted under `dataDir` otherwise.
 */
export function openDb(
  config: { databaseUrl?: string | undefined; dataDir: string; dbTimeoutS?: number | undefined },
): Promise<Db> {
  if (config.databaseUrl) {
    return Promise.resolve(openPostgres(config.databaseUrl, { timeoutS: config.dbTimeoutS }));
  }
  return openPglite({ dataDir: `${config.dataDir}/pglite` });
}
