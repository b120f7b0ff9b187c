/**
 * The two databases a bench section measures on: PGlite (in process, the
 * embedded default) and PostgreSQL (TEST_DATABASE_URL), each in a fresh
 * schema dropped on close, and {@link onEachBackend} to run one measurement
 * on both.
 *
 * @module
 */
import postgres from "postgres";
import { PGlite } from "@electric-sql/pglite";
import { type Db, openPglite, openPostgres } from "../noc/db/db.ts";
import type { Figure } from "./figure.ts";

/** A database to measure on. */
export interface Backend {
  /** Shown in each figure's name. */
  name: "PGlite" | "PostgreSQL";
  /** The handle, in a schema of its own. */
  db: Db;
  /** Drops the schema and closes the handle. */
  close(): Promise<void>;
}

const schemaName = () => `bench_${crypto.randomUUID().replace(/-/g, "").slice(0, 16)}`;

/** A fresh in-memory PGlite, in a schema of its own. */
export async function openPgliteBackend(): Promise<Backend> {
  const pg = new PGlite();
  await pg.waitReady;
  const schema = schemaName();
  const db = await openPglite({ instance: pg, schema });
  return {
    name: "PGlite",
    db,
    close: async () => {
      try {
        await pg.exec(`drop schema "${schema}" cascade; set search_path to public`);
      } finally {
        await pg.close();
      }
    },
  };
}

/** A fresh schema on the PostgreSQL at `url`, with a pool of `max` connections. */
export async function openPostgresBackend(url: string, max = 4): Promise<Backend> {
  const schema = schemaName();
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create schema "${schema}"`);
  } catch (e) {
    await admin.end();
    throw e;
  }
  const db = openPostgres(url, { schema, max });
  return {
    name: "PostgreSQL",
    db,
    close: async () => {
      try {
        await db.close();
      } finally {
        await admin.unsafe(`drop schema "${schema}" cascade`);
        await admin.end();
      }
    },
  };
}

/**
 * Runs `measure` on PGlite, then on PostgreSQL when TEST_DATABASE_URL is set
 * (a figure named `skipped` says so otherwise), closing each backend after.
 */
export async function onEachBackend(
  skipped: Figure,
  measure: (b: Backend) => Promise<Figure[]>,
): Promise<Figure[]> {
  const figures: Figure[] = [];
  const url = Deno.env.get("TEST_DATABASE_URL");
  for (const open of [openPgliteBackend, url ? () => openPostgresBackend(url) : null]) {
    if (!open) {
      figures.push(skipped);
      continue;
    }
    const b = await open();
    try {
      figures.push(...await measure(b));
    } finally {
      await b.close();
    }
  }
  return figures;
}
