// deno-lint-ignore-file no-explicit-any
/**
 * Test harness: every database test runs on PGlite and, when
 * TEST_DATABASE_URL is set, on PostgreSQL too — each in a schema of its own,
 * migrated from `migrations/`, holding exactly what migrating leaves.
 *
 * Migrating costs a few hundred milliseconds a test (hundreds of tests), so a
 * test's schema is kept for the next test of the same file and backend when
 * its tables, columns, constraints, functions and triggers are still the ones
 * migrating made: every table is emptied, the rows migrating inserted are put
 * back and the sequences set back to where migrating left them (see
 * {@link Pristine}). A schema changed otherwise, or grown large, is dropped and
 * the next test migrates a new one.
 *
 * Starting PGlite costs each test file about 4 s of CPU (its initdb), and migrating 0.4 s: the
 * first file to start it saves the migrated cluster to the user's own temporary folder
 * (`noc-test-<uid>/pglite-<hash>-<hash>.tar.gz`, see {@link migratedPglite}), and every later file loads
 * it (about 1 s). The cache is a speed-up only: any doubt about it (unreadable, corrupt, or
 * without the migrated schema) and it is deleted and made again.
 */
import { PGlite } from "@electric-sql/pglite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { type Db, openPglite, openPostgres, type Sql } from "../noc/db/db.ts";
import { bundledMigrations, migrate } from "../noc/db/migrate.ts";
import { ManualClock } from "../noc/clock.ts";
import { defaultSettings, type Settings } from "../noc/config.ts";
import { memoryLogger } from "../protocol/util/log.ts";
import { newSeed } from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { createNotifier, type Notifier } from "../noc/services/notifier.ts";
import { createApp } from "../noc/app.ts";
import { createDeps } from "../noc/deps.ts";
import { ensureAdminToken } from "../noc/services/admin_tokens.ts";
import { newToken } from "../noc/services/tokens.ts";
import type { AppDeps } from "../noc/services/deps.ts";
import { createWakeHub } from "../noc/services/wakeups.ts";
import { createMetrics } from "../noc/services/metrics.ts";
import {
  type ApplianceKeys,
  enroll,
  type Enrollment,
  generateApplianceKeys,
  type Send,
  signedCall,
  signedRequest,
} from "../protocol/client.ts";

const pgUrl = Deno.env.get("TEST_DATABASE_URL");
/** Whether this file has listed the ignored test that says its PostgreSQL variants are skipped. */
let postgresSkipListed = false;
let sharedPglite: Promise<PGlite> | undefined;

/** The migrated schema a cached PGlite cluster holds (the file's first PGlite test takes it). */
const pgliteTemplate = "t_template";

/**
 * The cached cluster's folder and name. The folder is the user's own (`noc-test-<uid>` in the
 * temporary folder, mode 0700; null when another user owns it: no cache then). The name starts
 * with a hash of what makes the cluster: PGlite's version (its module's path), the migrations, and
 * the code that runs them and opens the schema (migrate.ts, db.ts, this file).
 */
async function pgliteCache(): Promise<{ dir: string; key: string } | null> {
  const code = await Promise.all(
    ["../noc/db/migrate.ts", "../noc/db/db.ts", "./_harness.ts"].map((f) =>
      Deno.readTextFile(new URL(f, import.meta.url))
    ),
  );
  const text = JSON.stringify([
    import.meta.resolve("@electric-sql/pglite"),
    bundledMigrations(),
    code,
  ]);
  const uid = Deno.uid();
  const dir = join(tmpdir(), `noc-test-${uid ?? "user"}`);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await Deno.lstat(dir);
  if (!info.isDirectory || (uid !== null && info.uid !== uid)) return null;
  return { dir, key: `pglite-${await hex(new TextEncoder().encode(text))}` };
}

/** The first 24 hex digits of `bytes`' SHA-256. */
async function hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(hash.slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The cached cluster (`<key>-<its own hash>.tar.gz`), or null. A file whose bytes do not match
 * its name (cut short, changed) is deleted: PGlite, given a corrupt gzip, fails the whole test
 * file with an error nothing here can catch.
 */
async function readCache(dir: string, key: string): Promise<Blob | null> {
  for await (const e of Deno.readDir(dir)) {
    const m = new RegExp(`^${key}-([0-9a-f]{24})\\.tar\\.gz$`).exec(e.name);
    if (!m) continue;
    const path = join(dir, e.name);
    const bytes = await Deno.readFile(path).catch(() => null);
    if (bytes && await hex(bytes) === m[1]) return new Blob([bytes]);
    await Deno.remove(path).catch(() => {});
  }
  return null;
}

/** Saves `pg`'s cluster to the cache (a whole file or none), and drops any other. */
async function writeCache(pg: PGlite, dir: string, key: string): Promise<void> {
  const partial = join(dir, `partial-${crypto.randomUUID()}`);
  try {
    const bytes = new Uint8Array(await (await pg.dumpDataDir("gzip")).arrayBuffer());
    const name = `${key}-${await hex(bytes)}.tar.gz`;
    await Deno.writeFile(partial, bytes);
    await Deno.rename(partial, join(dir, name));
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith("pglite-") && e.name !== name) {
        await Deno.remove(join(dir, e.name)).catch(() => {});
      }
    }
  } catch {
    // A full or read-only temporary folder: the next file makes its own as well.
    await Deno.remove(partial).catch(() => {});
  }
}

/**
 * A new PGlite holding the migrated schema `t_template` (the harness keeps it for a file's first
 * test): loaded from the cached cluster, else made, migrated and saved there (written to a name
 * of its own, then renamed: files starting at once each write a whole one). A cache that cannot
 * be read or loaded, or lacks the schema, is deleted and made again. Close it when done.
 */
export async function migratedPglite(): Promise<PGlite> {
  const cache = await pgliteCache().catch(() => null);
  const dump = cache && await readCache(cache.dir, cache.key).catch(() => null);
  if (cache && dump) {
    let pg: PGlite | null = null;
    try {
      pg = new PGlite({ loadDataDir: dump });
      await pg.waitReady;
      const found = await pg.query(
        `select 1 from pg_namespace where nspname = '${pgliteTemplate}'`,
      );
      if (found.rows.length === 1) return pg;
    } catch {
      // Not a cluster to trust: made again below.
    }
    await pg?.close().catch(() => {});
  }
  const pg = new PGlite();
  await pg.waitReady;
  await migrate(await openPglite({ instance: pg, schema: pgliteTemplate }));
  await pg.exec(`set search_path to public`);
  if (cache) await writeCache(pg, cache.dir, cache.key);
  return pg;
}

/**
 * A migrated PGlite database of its own (a new instance, loaded as {@link migratedPglite} says),
 * for a test that serves a NOC outside {@link dbTest}; `close()` closes the instance.
 */
export async function migratedDb(): Promise<Db> {
  const instance = await migratedPglite();
  const db = await openPglite({ instance, schema: pgliteTemplate });
  return { ...db, close: () => instance.close() };
}

/**
 * A schema as migrating leaves it: a fingerprint of its objects, and a script that puts its
 * rows and sequences back (run with foreign keys and triggers off: `session_replication_role`).
 */
interface Pristine {
  /** Its tables, columns, constraints, indexes, functions and triggers, hashed. */
  fingerprint: string;
  /** Its size when migrated, bytes. */
  bytes: number;
  /** Empties every table, inserts what migrating inserted, sets the sequences back. */
  restore: string;
}

/** A schema's objects, hashed, and its size (unqualified: the handle's `search_path`). */
async function fingerprintOf(sql: Sql): Promise<{ fingerprint: string; bytes: number }> {
  const [row] = await sql<{ h: string; bytes: number }>`
    with ns as (select oid from pg_namespace where nspname = current_schema())
    select md5(string_agg(x, ',' order by x)) as h,
      (select coalesce(sum(pg_total_relation_size(c.oid)), 0)::float8 from pg_class c
        where c.relnamespace = (select oid from ns) and c.relkind = 'r') as bytes
    from (
      select 'c:' || c.relname || ':' || c.relkind::text || ':' || coalesce((
        select string_agg(a.attname || ' ' || a.atttypid::regtype::text || ' ' ||
          a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''), ';'
          order by a.attnum)
        from pg_attribute a
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '') as x
      from pg_class c where c.relnamespace = (select oid from ns)
      union all
      select 'k:' || conrelid::regclass::text || ':' || pg_get_constraintdef(oid)
      from pg_constraint where connamespace = (select oid from ns)
      union all
      select 'f:' || proname::text || ':' || md5(prosrc)
      from pg_proc where pronamespace = (select oid from ns)
      union all
      select 't:' || tgrelid::regclass::text || ':' || tgname::text
      from pg_trigger where not tgisinternal
        and tgrelid in (select oid from pg_class where relnamespace = (select oid from ns))
    ) s`;
  return { fingerprint: row!.h, bytes: row!.bytes };
}

/** What a freshly migrated schema (the handle's) holds, to put back later. */
async function pristineOf(sql: Sql): Promise<Pristine> {
  const { fingerprint, bytes } = await fingerprintOf(sql);
  // Each table's rows as JSON (base64, through query_to_xml: a query on every table in one).
  const tables = await sql<{ name: string; columns: string; rows: string | null }>`
    select c.relname as name,
      (select string_agg(quote_ident(a.attname), ', ' order by a.attnum) from pg_attribute a
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
          and a.attgenerated = '') as columns,
      (xpath('/row/j/text()', query_to_xml(format(
        'select encode(convert_to(json_agg(t)::text, ''utf8''), ''base64'') as j from %I t',
        c.relname), false, true, '')))[1]::text as rows
    from pg_class c
    where c.relnamespace = (select oid from pg_namespace where nspname = current_schema())
      and c.relkind = 'r'
    order by c.relname`;
  const lines = ["set local session_replication_role = replica;"];
  const seeds: string[] = [];
  for (const t of tables) {
    lines.push(`delete from ${quoteIdent(t.name)};`);
    if (!t.rows) continue;
    if (!/^[A-Za-z0-9+/=\s]+$/.test(t.rows)) throw new Error(`${t.name}: rows not in base64`);
    seeds.push(
      `insert into ${quoteIdent(t.name)} (${t.columns}) overriding system value ` +
        `select ${t.columns} from json_populate_recordset(null::${quoteIdent(t.name)}, ` +
        `convert_from(decode('${t.rows}', 'base64'), 'utf8')::json);`,
    );
  }
  lines.push(...seeds);
  const sequences = await sql<{ name: string; start: string; last: string | null }>`
    select sequencename as name, start_value::text as start, last_value::text as last
    from pg_sequences where schemaname = current_schema()`;
  for (const q of sequences) {
    const name = quoteIdent(q.name).replaceAll("'", "''");
    lines.push(
      q.last === null
        ? `select setval('${name}', ${q.start}, false);`
        : `select setval('${name}', ${q.last}, true);`,
    );
  }
  return { fingerprint, bytes, restore: lines.join("\n") };
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Puts `db`'s schema back as migrating left it, if its objects are still those of `pristine` and
 * it has not grown past a few MiB; true when done (the schema can serve the next test).
 */
async function restorePristine(db: Db, pristine: Pristine): Promise<boolean> {
  try {
    const now = await fingerprintOf(db.sql);
    if (now.fingerprint !== pristine.fingerprint) return false;
    if (now.bytes > pristine.bytes + 4 * 1024 * 1024) return false;
    await db.begin((tx) => tx.script(pristine.restore));
    return true;
  } catch {
    return false;
  }
}

/**
 * Per backend: what a migrated schema holds (null: it could not be read, and no schema is kept),
 * and a schema kept for the next test.
 */
const pristine: { pglite?: Pristine | null; postgres?: Pristine | null } = {};
const spare: { pglite?: string | undefined; postgres?: string | undefined } = {};
/** PostgreSQL tests registered in this file, and run: the last one drops its schema. */
const postgresTests = { registered: 0, run: 0 };

/** A test's database, and a way to open a second handle on it (a second NOC instance). */
export interface TestDb {
  /** The handle the test uses. */
  db: Db;
  /** Which backend. */
  backend: "pglite" | "postgres";
  /** Another handle on the same database (its own pool on Postgres). */
  another(): Db;
}

/**
 * Registers `fn` as a test on PGlite, and on Postgres when TEST_DATABASE_URL
 * is set. With `instances: 2` the test needs two real connections to one
 * database (PGlite has one), so it runs on Postgres only and is listed as
 * ignored without it.
 */
export function dbTest(
  name: string,
  fn: (t: TestDb) => Promise<void>,
  options: { instances?: 2 } = {},
): void {
  if (options.instances === 2 && !pgUrl) {
    Deno.test({ name: `${name} [postgres: set TEST_DATABASE_URL]`, ignore: true, fn: () => {} });
    return;
  }
  if (options.instances !== 2) registerPglite(name, fn);
  if (pgUrl) registerPostgres(name, fn, pgUrl);
  else if (!postgresSkipListed) {
    // Said once a file, so that "5 passed" does not hide that half the variants did not run
    // (review 23m).
    postgresSkipListed = true;
    Deno.test({
      name: "[postgres] variants of this file's database tests: set TEST_DATABASE_URL to run them",
      ignore: true,
      fn: () => {},
    });
  }
}

function registerPglite(name: string, fn: (t: TestDb) => Promise<void>): void {
  Deno.test({
    name: `${name} [pglite]`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      sharedPglite ??= migratedPglite().then((pg) => {
        spare.pglite = pgliteTemplate;
        return pg;
      });
      const instance = await sharedPglite;
      const kept = spare.pglite;
      spare.pglite = undefined;
      const schema = kept ?? `t_${crypto.randomUUID().replace(/-/g, "")}`;
      const db = await openPglite({ instance, schema });
      let reusable = false;
      try {
        if (!kept) await migrate(db);
        // The first test's schema is as migrating left it, made here or loaded from the cache.
        pristine.pglite ??= await pristineOf(db.sql).catch(() => null);
        await fn({ db, backend: "pglite", another: () => db });
      } finally {
        reusable = !!pristine.pglite && await restorePristine(db, pristine.pglite);
        if (reusable) {
          spare.pglite = schema;
          await instance.exec(`set search_path to public`);
        } else {
          await instance.exec(`drop schema "${schema}" cascade; set search_path to public`);
        }
      }
    },
  });
}

function registerPostgres(name: string, fn: (t: TestDb) => Promise<void>, pgUrl: string): void {
  postgresTests.registered++;
  Deno.test({
    name: `${name} [postgres]`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const kept = spare.postgres;
      spare.postgres = undefined;
      const schema = kept ?? `t_kept_${crypto.randomUUID().replace(/-/g, "")}`;
      const admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
      if (!kept) await admin.unsafe(`create schema "${schema}"`);
      const handles: Db[] = [];
      const open = () => {
        const h = openPostgres(pgUrl, { schema, max: 4 });
        handles.push(h);
        return h;
      };
      const db = open();
      try {
        if (!kept) {
          await migrate(db);
          pristine.postgres ??= await pristineOf(db.sql).catch(() => null);
        }
        await fn({ db, backend: "postgres", another: open });
      } finally {
        // The restore runs on a handle of its own, once every handle of the test is closed.
        for (const h of handles) await h.close();
        const last = openPostgres(pgUrl, { schema, max: 1 });
        // Kept unless this is the file's last PostgreSQL test (then dropped, as every schema
        // is; a run with --filter may leave one kept schema behind, named t_kept_…).
        const reusable = ++postgresTests.run < postgresTests.registered &&
          !!pristine.postgres && await restorePristine(last, pristine.postgres);
        await last.close();
        if (reusable) spare.postgres = schema;
        else await admin.unsafe(`drop schema "${schema}" cascade`);
        await admin.end();
      }
    },
  });
}

/** A NOC app on a test database with a manual clock, a quiet log and an admin token. */
export interface TestNoc {
  /** The app. */
  app: ReturnType<typeof createApp>;
  /** Its dependencies. */
  deps: AppDeps;
  /** The manual clock. */
  clock: ManualClock;
  /** An admin token. */
  adminToken: string;
  /** Sends a request to the app (no server). */
  send: Send;
  /** Calls the admin API; returns status and JSON. */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Creates an enrolment token through the admin API. */
  enrollmentToken(extra?: Record<string, unknown>): Promise<string>;
  /** Enrols a new appliance. */
  enrollAppliance(
    opts?: { hostname?: string; model?: string; token?: string },
  ): Promise<TestAppliance>;
}

/** An enrolled appliance that can sign requests. */
export interface TestAppliance {
  /** Its UID. */
  uid: string;
  /** Its keys. */
  keys: ApplianceKeys;
  /** The enrolment answer. */
  enrollment: Enrollment;
  /** A signed request (not sent). */
  request(
    method: string,
    path: string,
    body?: unknown,
    opts?: { now?: Date; nonce?: string },
  ): Promise<Request>;
  /** Sends a valid SecureBeat; returns the NOC's answer. */
  beat(overrides?: Record<string, unknown>): Promise<any>;
}

/** A SecureBeat body with plausible values. */
export function sampleBeat(
  seq: number,
  now: Date,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    seq,
    sentAt: now.toISOString(),
    health: {
      load: [0.12, 0.2, 0.18],
      memory: { totalBytes: 4294967296, availableBytes: 2147483648 },
      disks: [{ mount: "/", totalBytes: 64000000000, freeBytes: 32000000000 }],
      uptimeS: 86400,
    },
    components: [{ kind: "package", app: "vscreen", name: "vscreen", version: "1.0.0" }],
    lastCycle: { outcome: "ok" },
    apps: { vscreen: { mailsScanned: 1234 } },
    ...overrides,
  };
}

/** Builds a NOC app on `db` for a test. */
export async function testNoc(
  db: Db,
  opts: {
    settings?: Partial<Settings>;
    webhooks?: string[];
    clock?: ManualClock;
    notifier?: Notifier;
  } = {},
): Promise<TestNoc> {
  const clock = opts.clock ?? new ManualClock();
  const log = memoryLogger();
  const notifier = opts.notifier ??
    await createNotifier({ db, clock, log, webhooks: opts.webhooks ?? [], autoDeliver: false });
  const deps: AppDeps = createDeps({
    db,
    clock,
    keys: await nocKeysFromSeed(newSeed()),
    notifier,
    settings: { ...defaultSettings, ...opts.settings },
    log,
    wakeups: createWakeHub({ db, clock, log }),
    metrics: createMetrics(),
  });
  // The in-process app is served at http://noc.test (the signed @authority of its requests).
  deps.authorities.listening({ hostname: "noc.test", port: 80 });
  const app = createApp(deps);
  const adminToken = newToken("admin");
  await ensureAdminToken(db, adminToken, "test", clock.now());
  const send: Send = async (req) => await app.request(req);
  const base = "http://noc.test";
  let seq = 0;
  const noc: TestNoc = {
    app,
    deps,
    clock,
    adminToken,
    send,
    async admin(method, path, body) {
      const res = await app.request(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${adminToken}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    async enrollmentToken(extra = {}) {
      const r = await noc.admin("POST", "/v1/admin/enrollment-tokens", extra);
      if (r.status !== 201) throw new Error(`token creation failed: ${JSON.stringify(r.body)}`);
      return r.body.token;
    },
    async enrollAppliance(o = {}) {
      const keys = await generateApplianceKeys();
      const enrollment = await enroll(send, base, {
        token: o.token ?? await noc.enrollmentToken(),
        model: o.model ?? "vs-2000",
        hostname: o.hostname ?? `gw-${crypto.randomUUID().slice(0, 8)}`,
        keys,
      });
      const uid = enrollment.uid;
      return {
        uid,
        keys,
        enrollment,
        request: (method, path, body, ro = {}) =>
          signedRequest({
            baseUrl: base,
            uid,
            key: keys.signing,
            method,
            path,
            body,
            now: ro.now ?? clock.now(),
            ...(ro.nonce ? { nonce: ro.nonce } : {}),
          }),
        beat: (overrides = {}) =>
          signedCall(send, {
            baseUrl: base,
            uid,
            key: keys.signing,
            method: "POST",
            path: "/v1/beats",
            body: sampleBeat(++seq, clock.now(), overrides),
            now: clock.now(),
          }),
      };
    },
  };
  return noc;
}

/** Counts rows of `table` in the test schema (only names from this list). */
export async function count(
  db: Db,
  table:
    | "beats"
    | "alerts"
    | "appliances"
    | "notices"
    | "auth_failures"
    | "enrollment_tokens"
    | "maintenance_windows",
): Promise<number> {
  const queries = {
    beats: () => db.sql<{ n: number }>`select count(*)::int as n from beats`,
    alerts: () => db.sql<{ n: number }>`select count(*)::int as n from alerts`,
    appliances: () => db.sql<{ n: number }>`select count(*)::int as n from appliances`,
    notices: () => db.sql<{ n: number }>`select count(*)::int as n from notices`,
    auth_failures: () => db.sql<{ n: number }>`select count(*)::int as n from auth_failures`,
    enrollment_tokens: () =>
      db.sql<{ n: number }>`select count(*)::int as n from enrollment_tokens`,
    maintenance_windows: () =>
      db.sql<{ n: number }>`select count(*)::int as n from maintenance_windows`,
  };
  return (await queries[table]())[0]!.n;
}

/**
 * Wraps `sql` (a handle or a transaction) so the statements it runs are counted: all of them, or
 * those whose text (the template's parts joined by `?`) `match` accepts.
 */
export function countingSql(
  sql: Sql,
  match: (text: string) => boolean = () => true,
): { sql: Sql; statements(): number } {
  let n = 0;
  const counted = ((strings: TemplateStringsArray, ...values: never[]) => {
    if (match(strings.join("?"))) n++;
    return sql(strings, ...values);
  }) as Sql;
  counted.script = (text: string) => {
    if (match(text)) n++;
    return sql.script(text);
  };
  return { sql: counted, statements: () => n };
}

/** {@link countingSql} for a whole database handle. */
export function countingDb(
  db: Db,
  match: (text: string) => boolean = () => true,
): { db: Db; count(): number } {
  const c = countingSql(db.sql, match);
  return { db: { ...db, sql: c.sql }, count: c.statements };
}

/**
 * A database of its own on the PostgreSQL server at `pgUrl`, for tests that run real NOC processes
 * against it; `drop()` removes it (forcing out connections, retrying while the server restarts).
 */
export async function scratchDatabase(
  pgUrl: string,
  prefix: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(pgUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      try {
        for (let i = 0; i < 50; i++) {
          try {
            await admin.unsafe(`drop database if exists ${name} with (force)`);
            return;
          } catch {
            await new Promise((res) => setTimeout(res, 100));
          }
        }
      } finally {
        await admin.end();
      }
    },
  };
}

/**
 * Holds one check-in admission slot: `holder` sends a beat (`seq`) to `path` whose body waits
 * until `release()` is called, so the slot stays taken meanwhile. `answer` is that beat's answer,
 * once released.
 */
export async function holdCheckinSlot(
  noc: TestNoc,
  holder: TestAppliance,
  path: "/v1/beats" | "/v1/checkin",
  seq: number,
): Promise<{ answer: Promise<Response>; release: () => void }> {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const req = await holder.request("POST", path, sampleBeat(seq, noc.clock.now()));
  const bytes = new Uint8Array(await req.arrayBuffer());
  const answer = Promise.resolve(noc.app.request(
    new Request(req.url, {
      method: "POST",
      headers: req.headers,
      body: new ReadableStream<Uint8Array>({
        async start(c) {
          await gate;
          c.enqueue(bytes);
          c.close();
        },
      }),
    }),
  ));
  await new Promise((r) => setTimeout(r, 0));
  return { answer, release };
}
