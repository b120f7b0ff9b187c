/**
 * fileinfo (spec, FIGURE 12): per application and file name, where the file
 * is installed on the appliance (relative to its root), its mode, the
 * follow-up action, and the spec's UPLOAD DIR and UPLOAD SERVER — and the
 * signature that lets an agent honour it (protocol/fileinfo.ts): a trusted
 * release key's, given with the fileinfo, or, when the NOC's key may sign
 * packages (not in release-keys-only mode), the NOC's own, made here.
 *
 * @module
 */
import type { Sql } from "../db/db.ts";
import type { AppDeps } from "./deps.ts";
import type { FileInfo } from "../../protocol/catalog.ts";
import { ApiError } from "../../protocol/http/errors.ts";
import {
  canonicalMode,
  type FileinfoSignature,
  FileinfoSignatureError,
  type FileinfoStatement,
  signFileinfo,
  verifyFileinfo,
} from "../../protocol/fileinfo.ts";
import type { NocKeys } from "./signing_keys.ts";
import { packageSigners } from "./publishing.ts";
import { bumpCatalogEpoch } from "./catalogs.ts";
import { expectRevision, type IfMatch } from "./revisions.ts";

/** One fileinfo row with its revision, or null. */
export async function fileinfoRow(
  sql: Sql,
  app: string,
  name: string,
): Promise<FileinfoRow | null> {
  const [r] = await sql<FileinfoRow>`
    select app, name, destination, mode, action, upload_dir, upload_server, signer, signature, updated_at,
      revision
    from fileinfo where app = ${app} and name = ${name}`;
  return r ?? null;
}

/** A `fileinfo` row: where one file of an application is installed, and what follows. */
export interface FileinfoRow {
  app: string;
  name: string;
  destination: string;
  mode: string;
  action: string | null;
  upload_dir: string | null;
  upload_server: string | null;
  /** Key id of the key that signed it (null: saved before signatures, not yet signed). */
  signer: string | null;
  signature: string | null;
  updated_at: Date;
  /** Its revision (migration 027), when selected. */
  revision?: number;
}

/** The admin API's JSON for a fileinfo row. */
export function fileinfoJson(r: FileinfoRow): Record<string, unknown> {
  return {
    ...statementOf(r),
    signer: r.signer,
    signature: r.signature,
    updatedAt: r.updated_at.toISOString(),
    ...(r.revision !== undefined ? { revision: Number(r.revision) } : {}),
  };
}

/** The fileinfo rows of `apps` (as the catalog reads them). */
export async function fileinfoOf(tx: Sql, apps: readonly string[]): Promise<FileinfoRow[]> {
  return await tx<FileinfoRow>`
    select app, name, destination, mode, action, upload_dir, upload_server, signer, signature, updated_at
    from fileinfo where app = any(${[...new Set(apps)]}::text[])`;
}

/** The rows of one application, by name (the admin API's listing). */
export async function fileinfoOfApp(sql: Sql, app: string): Promise<FileinfoRow[]> {
  return await sql<FileinfoRow>`
    select app, name, destination, mode, action, upload_dir, upload_server, signer, signature, updated_at
    from fileinfo where app = ${app} order by name`;
}

/** One page of `app`'s fileinfo, by name after `after`: at most `limit + 1` rows (the +1 says more). */
export async function fileinfoPage(
  sql: Sql,
  app: string,
  after: string | null,
  limit: number,
): Promise<FileinfoRow[]> {
  return await sql<FileinfoRow>`
    select app, name, destination, mode, action, upload_dir, upload_server, signer, signature, updated_at,
      revision
    from fileinfo where app = ${app} and (${after}::text is null or name > ${after}::text)
    order by name limit ${limit + 1}`;
}

/** A fileinfo row as a catalog line carries it, with its signature (an agent honours no other). */
export function catalogFileInfo(r: FileinfoRow): FileInfo {
  const { app: _app, name: _name, action, ...fields } = statementOf(r);
  return {
    ...fields,
    action: action ? [...action] : null,
    ...(r.signer && r.signature ? { signer: r.signer, signature: r.signature } : {}),
  };
}

/** What a row signs. */
function statementOf(r: FileinfoRow): FileinfoStatement {
  return {
    app: r.app,
    name: r.name,
    destination: r.destination,
    mode: r.mode,
    action: r.action ? JSON.parse(r.action) : null,
    uploadDir: r.upload_dir,
    uploadServer: r.upload_server,
  };
}

/** True when the NOC's own key may sign packages and fileinfo (false in release-keys-only mode). */
export function nocSignsPackages(keys: Pick<NocKeys, "published">): boolean {
  return keys.published[0]?.use.includes("package") ?? false;
}

/** A fileinfo as the admin API takes it: the instruction, and optionally its offline signature. */
export interface FileinfoInput {
  destination: string;
  mode: string;
  action?: string[] | null | undefined;
  uploadDir?: string | null | undefined;
  uploadServer?: string | null | undefined;
  signer?: string | undefined;
  signature?: string | undefined;
}

/**
 * Saves a fileinfo and marks catalogs stale. A signature given with it must verify under a
 * trusted package-signing key (a registered release key, or the NOC's key when it may sign
 * packages); without one, the NOC signs it itself — except in release-keys-only mode, where a
 * fileinfo without a release key's signature is refused (400) and nothing is written.
 */
export async function saveFileinfo(
  deps: Pick<AppDeps, "db" | "keys" | "clock">,
  app: string,
  name: string,
  f: FileinfoInput,
  expect: IfMatch | null = null,
): Promise<FileinfoRow> {
  const now = deps.clock.now();
  const statement: FileinfoStatement = {
    app,
    name,
    destination: f.destination,
    mode: canonicalMode(f.mode),
    action: f.action ?? null,
    uploadDir: f.uploadDir ?? null,
    uploadServer: f.uploadServer ?? null,
  };
  let sig: FileinfoSignature;
  if (f.signer !== undefined && f.signature !== undefined) {
    try {
      await verifyFileinfo(
        { ...statement, signer: f.signer, signature: f.signature },
        await packageSigners(deps),
        now,
      );
    } catch (e) {
      if (!(e instanceof FileinfoSignatureError)) throw e;
      throw new ApiError(400, "bad_fileinfo_signature", e.message, {
        issues: [{ path: "signature", message: e.message }],
      });
    }
    sig = { signer: f.signer, signature: f.signature };
  } else if (nocSignsPackages(deps.keys)) {
    sig = await signFileinfo(statement, deps.keys);
  } else {
    throw new ApiError(
      400,
      "release_key_required",
      `This NOC accepts only fileinfo signed with a release key (it says where a file goes and what ` +
        `runs after it): sign it offline with \`deno task noc fileinfo put ${app} ${name} --key <release key>\``,
      { issues: [{ path: "signature", message: "required in release-keys-only mode" }] },
    );
  }
  return await deps.db.begin(async (tx) => {
    if (expect !== null) {
      const [cur] = await tx<{ revision: number }>`
        select revision from fileinfo where app = ${app} and name = ${name} for update`;
      expectRevision(expect, cur?.revision ?? null);
    }
    const [r] = await tx<FileinfoRow>`
      insert into fileinfo (app, name, destination, mode, action, upload_dir, upload_server, signer, signature,
        updated_at)
      values (${app}, ${name}, ${statement.destination}, ${statement.mode},
        ${statement.action ? JSON.stringify(statement.action) : null}, ${statement.uploadDir},
        ${statement.uploadServer}, ${sig.signer}, ${sig.signature}, ${now})
      on conflict (app, name) do update set destination = excluded.destination, mode = excluded.mode,
        action = excluded.action, upload_dir = excluded.upload_dir, upload_server = excluded.upload_server,
        signer = excluded.signer, signature = excluded.signature, updated_at = excluded.updated_at
      returning app, name, destination, mode, action, upload_dir, upload_server, signer, signature, updated_at,
        revision`;
    await bumpCatalogEpoch(tx);
    return r!;
  });
}

/**
 * Signs, with the NOC's key, every fileinfo no trusted key's signature covers (saved before
 * signatures existed) or that a retired NOC key signed (a rotation moves it to the current key at
 * once, before the retired key's end date makes appliances refuse it) — only when the NOC's key may sign
 * packages: in release-keys-only mode nothing is signed and such fileinfo stays unusable until a
 * release key signs it. Run at start-up; returns how many rows it signed.
 */
export async function resignFileinfo(
  deps: Pick<AppDeps, "db" | "keys" | "clock">,
): Promise<number> {
  if (!nocSignsPackages(deps.keys)) return 0;
  const now = deps.clock.now();
  const trusted = await packageSigners(deps);
  const rows = await deps.db.sql<FileinfoRow>`
    select app, name, destination, mode, action, upload_dir, upload_server, signer, signature, updated_at
    from fileinfo order by app, name`;
  // Retired NOC keys: what they signed is signed again with the current key now, not when their end
  // date has passed and appliances refuse it (a rotation keeps fileinfo working, as it keeps packages).
  const retiredNocKids = new Set(
    deps.keys.published.filter((k) => k.kid !== deps.keys.kid).map((k) => k.kid),
  );
  let signed = 0;
  for (const r of rows) {
    const s = statementOf(r);
    const ok = !(r.signer !== null && retiredNocKids.has(r.signer)) && await verifyFileinfo(
      { ...s, signer: r.signer, signature: r.signature },
      trusted,
      now,
    )
      .then(() => true, () => false);
    if (ok) continue;
    const sig = await signFileinfo(s, deps.keys);
    await deps.db.begin(async (tx) => {
      const u = await tx`
        update fileinfo set signer = ${sig.signer}, signature = ${sig.signature}
        where app = ${r.app} and name = ${r.name} and destination = ${r.destination} and mode = ${r.mode}
          and action is not distinct from ${r.action} and upload_dir is not distinct from ${r.upload_dir}
          and upload_server is not distinct from ${r.upload_server}
        returning app`;
      if (u.length > 0) await bumpCatalogEpoch(tx);
    });
    signed++;
  }
  return signed;
}
