/** Applies the numbered `.sql` files in `migrations/`, in order, exactly once. */
import type { Db } from "./db.ts";

/** One migration file. */
export interface Migration {
  /** Its number, from the file name's leading digits. */
  version: number;
  /** The file name. */
  name: string;
  /** The SQL script. */
  sql: string;
}

const defaultDir = new URL("./migrations/", import.meta.url);

/** Reads the migration files from `dir` (the project's `migrations/` by default), sorted by number. */
export async function readMigrations(dir: URL = defaultDir): Promise<Migration[]> {
  const out: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".sql")) continue;
    const m = /^(\d+)_[\w-]+\.sql$/.exec(entry.name);
    if (!m) throw new Error(`Migration file "${entry.name}" is not named NNN_name.sql`);
    out.push({
      version: Number(m[1]),
      name: entry.name,
      sql: await Deno.readTextFile(new URL(entry.name, dir)),
    });
  }
  out.sort((a, b) => a.version - b.version);
  for (let i = 1; i < out.length; i++) {
    if (out[i]!.version === out[i - 1]!.version) {
      throw new Error(
        `Two migrations share number ${out[i]!.version}: "${out[i - 1]!.name}", "${out[i]!.name}"`,
      );
    }
  }
  return out;
}

/**
 * Applies the migrations not yet recorded, all in one transaction under an
 * advisory lock, so that NOC instances starting together apply each once.
 * Returns the names applied.
 */
export async function migrate(db: Db, migrations?: Migration[]): Promise<string[]> {
  const list = migrations ?? (await readMigrations());
  return await db.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext(current_schema() || ':noc-migrations'))`;
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
  const list = migrations ?? (await readMigrations());
  const rows = await db.sql<{ version: number }>`
    select version from schema_migrations`.catch(() => [] as { version: number }[]);
  const done = new Set(rows.map((r) => r.version));
  return list.filter((m) => !done.has(m.version)).map((m) => m.name);
}
