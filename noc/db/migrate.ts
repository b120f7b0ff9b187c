/**
 * Applies the numbered migrations listed in `migrations/mod.ts`, in order,
 * exactly once. The scripts are bundled as text modules (see that file), so
 * a NOC on Deno Deploy or in a compiled binary migrates without reading the
 * file system.
 *
 * @module
 */
import type { Db } from "./db.ts";
import { type MigrationFile, migrationFiles } from "./migrations/mod.ts";

export type { MigrationFile } from "./migrations/mod.ts";

/** One migration. */
export interface Migration {
  /** Its number, from the file name's leading digits. */
  version: number;
  /** The file name. */
  name: string;
  /** The SQL script. */
  sql: string;
}

/**
 * Numbers `files` from their names and checks them: every name is
 * `NNN_name.sql`, no two share a number, and they are listed in ascending
 * order. Throws naming the first file that breaks a rule.
 */
export function numberMigrations(files: readonly MigrationFile[]): Migration[] {
  const out: Migration[] = [];
  for (const f of files) {
    const m = /^(\d+)_[\w-]+\.sql$/.exec(f.name);
    if (!m) throw new Error(`Migration file "${f.name}" is not named NNN_name.sql`);
    const version = Number(m[1]);
    const prev = out.at(-1);
    if (prev && prev.version === version) {
      throw new Error(`Two migrations share number ${version}: "${prev.name}", "${f.name}"`);
    }
    if (prev && prev.version > version) {
      throw new Error(`Migration "${f.name}" is listed after "${prev.name}": list them in order`);
    }
    out.push({ version, name: f.name, sql: f.sql });
  }
  return out;
}

/** The NOC's own migrations (bundled in `migrations/mod.ts`), numbered and checked. */
export function bundledMigrations(): Migration[] {
  return numberMigrations(migrationFiles);
}

/**
 * The NOC's own migrations, as {@link bundledMigrations}; asynchronous for the
 * callers written when they were read from disk (nothing is read now).
 */
export function readMigrations(): Promise<Migration[]> {
  try {
    return Promise.resolve(bundledMigrations());
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * Applies the migrations not yet recorded, all in one transaction under an
 * advisory lock, so that NOC instances starting together apply each once.
 * Returns the names applied.
 */
export async function migrate(db: Db, migrations?: Migration[]): Promise<string[]> {
  const list = migrations ?? bundledMigrations();
  return await db.begin(async (tx) => {
    // Waited for without the request bound (`NOC_DB_TIMEOUT_S`), on the client and the server:
    // another instance applying a long migration holds it, and this one starts once it is done.
    await tx.script(
      `select pg_advisory_xact_lock(hashtext(current_schema() || ':noc-migrations'))`,
    );
    await tx`create table if not exists schema_migrations (
      version integer primary key, name text not null, applied_at timestamptz not null default now())`;
    const done = new Set(
      (await tx<{ version: number }>`select version from schema_migrations`).map((r) => r.version),
    );
    const applied: string[] = [];
    for (const m of list) {
      if (done.has(m.version)) continue;
      await tx.script(m.sql);
      await tx`insert into schema_migrations (version, name) values (${m.version}, ${m.name})`;
      applied.push(m.name);
    }
    return applied;
  });
}

/** The migrations in `migrations` that `db` has not applied yet (empty when up to date). */
export async function pendingMigrations(db: Db, migrations?: Migration[]): Promise<string[]> {
  const list = migrations ?? bundledMigrations();
  const rows = await db.sql<{ version: number }>`
    select version from schema_migrations`.catch(() => [] as { version: number }[]);
  const done = new Set(rows.map((r) => r.version));
  return list.filter((m) => !done.has(m.version)).map((m) => m.name);
}
