/**
 * fileinfo (spec, FIGURE 12): per application and file name, where the file
 * is installed on the appliance (relative to its root), its mode, the
 * follow-up action, and the spec's UPLOAD DIR and UPLOAD SERVER.
 *
 * @module
 */
import type { Sql } from "../db/db.ts";
import type { FileInfo } from "../../protocol/catalog.ts";

/** A `fileinfo` row: where one file of an application is installed, and what follows. */
export interface FileinfoRow {
  app: string;
  name: string;
  destination: string;
  mode: string;
  action: string | null;
  upload_dir: string | null;
  upload_server: string | null;
  updated_at: Date;
}

/** The admin API's JSON for a fileinfo row. */
export function fileinfoJson(r: FileinfoRow): Record<string, unknown> {
  return {
    app: r.app,
    name: r.name,
    destination: r.destination,
    mode: r.mode,
    action: r.action ? JSON.parse(r.action) : null,
    uploadDir: r.upload_dir,
    uploadServer: r.upload_server,
    updatedAt: r.updated_at.toISOString(),
  };
}

/** The fileinfo rows of `apps` (as the catalog reads them). */
export async function fileinfoOf(tx: Sql, apps: readonly string[]): Promise<FileinfoRow[]> {
  return await tx<FileinfoRow>`
    select app, name, destination, mode, action, upload_dir, upload_server, updated_at from fileinfo
    where app = any(${[...new Set(apps)]}::text[])`;
}

/** A fileinfo row as a catalog line carries it. */
export function catalogFileInfo(r: FileinfoRow): FileInfo {
  return {
    destination: r.destination,
    mode: r.mode,
    action: r.action ? JSON.parse(r.action) : null,
    uploadDir: r.upload_dir,
    uploadServer: r.upload_server,
  };
}
