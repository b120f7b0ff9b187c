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

/** Opens a pooled connection to a PostgreSQL server. */
export function openPostgres(url: string, options: PostgresOptions = {}): Db {
  if (options.schema) assertSchemaName(options.schema);
  const target = postgresTarget(url);
  url = target.url;
  const socketDir = target.socketDir;
  const native = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    types: { int8: int8AsNumber },
    connect_timeout: 10,
    ...(socketDir ? { host: socketDir } : {}),
    ...(options.schema ? { connection: { search_path: options.schema } } : {}),
    // deno-lint-ignore no-explicit-any
  } as any);
  // deno-lint-ignore no-explicit-any
  const wrap = (s: any): Sql => {
    const fn =
      ((strings: TemplateStringsArray, ...values: Param[]) =>
        s(strings, ...values).then((rows: Row[]) => rows)) as Sql;
    fn.script = async (text: string) => {
      await s.unsafe(text);
    };
    return fn;
  };
  return {
    kind: "postgres",
    sql: wrap(native),
    begin: <T>(fn: (tx: Sql) => Promise<T>) =>
      // deno-lint-ignore no-explicit-any
      native.begin((tx: any) => fn(wrap(tx))) as Promise<T>,
    listen: async (channel, fn) => {
      assertSchemaName(channel);
      const sub = await native.listen(channel, (payload: string) => fn(payload));
      return () => sub.unlisten();
    },
    close: () => native.end({ timeout: 5 }),
  };
}

interface PgliteQueryable {
  query<T>(text: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(text: string): Promise<unknown>;
}

function pgliteSql(q: PgliteQueryable): Sql {
  const fn = (async (strings: TemplateStringsArray, ...values: Param[]) => {
    let text = strings[0] ?? "";
    for (let i = 0; i < values.length; i++) text += `$${i + 1}${strings[i + 1] ?? ""}`;
    return (await q.query<Row>(text, values)).rows;
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
  return {
    kind: "pglite",
    sql: pgliteSql(pg),
    begin: <T>(fn: (tx: Sql) => Promise<T>) => pg.transaction((tx) => fn(pgliteSql(tx))),
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

/** Opens Postgres when `databaseUrl` is set, PGlite persisted under `dataDir` otherwise. */
export function openDb(config: { databaseUrl?: string | undefined; dataDir: string }): Promise<Db> {
  if (config.databaseUrl) return Promise.resolve(openPostgres(config.databaseUrl));
  return openPglite({ dataDir: `${config.dataDir}/pglite` });
}
