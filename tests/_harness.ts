// deno-lint-ignore-file no-explicit-any
/**
 * Test harness: every database test runs on PGlite and, when
 * TEST_DATABASE_URL is set, on PostgreSQL too — each in a fresh schema of its
 * own, migrated from `migrations/`.
 */
import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import { type Db, openPglite, openPostgres, type Sql } from "../noc/db/db.ts";
import { migrate } from "../noc/db/migrate.ts";
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
let sharedPglite: Promise<PGlite> | undefined;

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
}

function registerPglite(name: string, fn: (t: TestDb) => Promise<void>): void {
  Deno.test({
    name: `${name} [pglite]`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      sharedPglite ??= (async () => {
        const pg = new PGlite();
        await pg.waitReady;
        return pg;
      })();
      const instance = await sharedPglite;
      const schema = `t_${crypto.randomUUID().replace(/-/g, "")}`;
      const db = await openPglite({ instance, schema });
      try {
        await migrate(db);
        await fn({ db, backend: "pglite", another: () => db });
      } finally {
        await instance.exec(`drop schema "${schema}" cascade; set search_path to public`);
      }
    },
  });
}

function registerPostgres(name: string, fn: (t: TestDb) => Promise<void>, pgUrl: string): void {
  Deno.test({
    name: `${name} [postgres]`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const schema = `t_${crypto.randomUUID().replace(/-/g, "")}`;
      const admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
      await admin.unsafe(`create schema "${schema}"`);
      const handles: Db[] = [];
      const open = () => {
        const h = openPostgres(pgUrl, { schema, max: 4 });
        handles.push(h);
        return h;
      };
      const db = open();
      try {
        await migrate(db);
        await fn({ db, backend: "postgres", another: open });
      } finally {
        for (const h of handles) await h.close();
        await admin.unsafe(`drop schema "${schema}" cascade`);
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
