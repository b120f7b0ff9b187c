/**
 * Installing a file (spec, FIGURE 12): fetched over HTTPS only into the
 * state folder's `downloads/<sha256>.pkg` — the name packages download to, so
 * a cut download resumes with `Range` in the next cycle or run, and the cycle
 * drops it once the catalog no longer lists that digest — checked against the
 * digest in the signed catalog, given its mode, moved into place atomically
 * (a rename; across filesystems a flushed copy in the destination folder,
 * renamed), the folder flushed, then its follow-up action is run. The
 * destination comes from the application's fileinfo and is confined to the
 * appliance root.
 *
 * A fileinfo decides where a file is written, with which mode, and what runs
 * after it — each a way to make the appliance execute something — so it is
 * honoured only when signed by a pinned key with "package" use (see
 * protocol/fileinfo.ts), checked before anything is downloaded or written. In
 * release-keys-only mode the NOC's key has no "package" use, so only an
 * offline release key's signature passes; a fileinfo the NOC alone vouches
 * for is refused. A file without fileinfo goes to the state folder's
 * `files/<app>/<name>` with mode 0644 and runs nothing.
 *
 * @module
 */
import { AgentError } from "./errors.ts";
import { download, downloadPath } from "./download.ts";
import { runProgram } from "./proc.ts";
import { syncDir } from "../protocol/util/atomic_file.ts";
import { readFileFrom } from "../protocol/package/file.ts";
import { createHash } from "node:crypto";
import { type Installed, statePaths } from "./state.ts";
import type { InstallContext } from "./install_package.ts";
import type { CatalogEntry } from "../protocol/catalog.ts";
import { safeRelativePath, TarError } from "../protocol/package/tar.ts";
import { FileinfoSignatureError, verifyFileinfo } from "../protocol/fileinfo.ts";

/**
 * Checks that the entry's fileinfo is signed by a pinned, unexpired key with "package" use;
 * throws {@link AgentError} (`fileinfo_unsigned`, `fileinfo_unknown_key`, `fileinfo_expired_key`,
 * `fileinfo_bad_signature`). An entry without fileinfo passes.
 */
export async function checkFileinfo(
  ctx: Pick<InstallContext, "identity" | "now">,
  entry: CatalogEntry,
): Promise<void> {
  const fi = entry.fileinfo;
  if (!fi) return;
  try {
    await verifyFileinfo(
      { app: entry.app, name: entry.name, ...fi },
      ctx.identity.pinnedKeys,
      ctx.now(),
    );
  } catch (e) {
    if (!(e instanceof FileinfoSignatureError)) throw e;
    throw new AgentError(
      `fileinfo_${e.reason}`,
      `${entry.app}/${entry.name}@${entry.version}: ${e.message}; nothing was written or run`,
    );
  }
}

/** Where a file is installed: its absolute path and the path recorded in `catalog.cur`. */
export function fileDestination(
  ctx: Pick<InstallContext, "config">,
  entry: CatalogEntry,
): { path: string; recorded: string } {
  const fi = entry.fileinfo;
  if (!fi) {
    // No install instructions: the file is kept in the state folder, where applications can find it.
    const path = `${statePaths(ctx.config.state).files}/${entry.app}/${entry.name}`;
    return { path, recorded: path };
  }
  let rel: string;
  try {
    rel = safeRelativePath(fi.destination);
  } catch (e) {
    throw new AgentError(
      "path_escapes",
      `File destination "${fi.destination}" is not inside the appliance root: ${
        e instanceof TarError ? e.message : e
      }`,
    );
  }
  const root = ctx.config.root === "/" ? "" : ctx.config.root;
  return { path: `${root}/${rel}`, recorded: rel };
}

/**
 * Creates the folders of `rel` under `root` one at a time, refusing any
 * existing step (a link, say) that resolves outside the root — before
 * anything is created through it.
 */
async function ensureDirInside(root: string, rel: string, label: string): Promise<void> {
  await Deno.mkdir(root, { recursive: true });
  const realRoot = await Deno.realPath(root);
  let at = root === "/" ? "" : root;
  for (const part of rel.split("/").filter(Boolean)) {
    at = `${at}/${part}`;
    const st = await Deno.lstat(at).catch(() => null);
    if (!st) {
      await Deno.mkdir(at);
      continue;
    }
    const real = await Deno.realPath(at);
    const inside = realRoot === "/" || real === realRoot || real.startsWith(`${realRoot}/`);
    if (!inside || !(await Deno.stat(at)).isDirectory) {
      throw new AgentError(
        "path_escapes",
        `${label}: destination folder "${at}" leads outside the appliance root or is not a folder`,
      );
    }
  }
}

/**
 * Moves the checked download `from` (in the state folder) to `to` with `mode`, atomically: a
 * rename, or — when `to` is on another filesystem (`EXDEV`) — a copy to a temporary file in its
 * folder, hashed as it is written (it must still give `expect.sha256`), flushed, given its mode and
 * renamed; then the folder is flushed. Either way `from` is gone afterwards and `to` is never seen
 * half-written. Throws {@link AgentError}: `write_failed` (the copy could not be written; nothing is
 * left in the destination folder, the download is kept) or `digest_mismatch` (the download changed
 * on disk; it is removed).
 */
export async function moveIntoPlace(
  from: string,
  to: string,
  mode: number,
  expect: { sha256: string; label: string },
): Promise<void> {
  const dir = to.slice(0, to.lastIndexOf("/")) || "/";
  await Deno.chmod(from, mode);
  try {
    await Deno.rename(from, to);
  } catch (e) {
    if ((e as { code?: string }).code !== "EXDEV") throw e;
    const tmp = `${dir}/.${to.slice(to.lastIndexOf("/") + 1)}.noc-${
      crypto.randomUUID().slice(0, 8)
    }`;
    try {
      await copyChecked(from, tmp, expect);
      await Deno.chmod(tmp, mode);
      await Deno.rename(tmp, to);
    } finally {
      await Deno.remove(tmp).catch(() => {});
    }
    await Deno.remove(from);
  }
  await syncDir(dir);
}

/** Copies `from` to a new file `to` (0600), hashing what it writes, then flushes it. */
async function copyChecked(
  from: string,
  to: string,
  expect: { sha256: string; label: string },
): Promise<void> {
  const hash = createHash("sha256");
  try {
    using out = await Deno.open(to, { write: true, createNew: true, mode: 0o600 });
    for await (const chunk of readFileFrom(from)) {
      let at = 0;
      while (at < chunk.length) at += await out.write(chunk.subarray(at));
      hash.update(chunk);
    }
    await out.sync();
  } catch (e) {
    throw new AgentError(
      "write_failed",
      `Cannot write ${expect.label} to "${to}": ${e instanceof Error ? e.message : e}`,
    );
  }
  if (hash.digest("hex") !== expect.sha256) {
    await Deno.remove(from).catch(() => {});
    throw new AgentError(
      "digest_mismatch",
      `${expect.label} changed on disk after it was checked; it was dropped`,
    );
  }
}

/** Installs a file component; throws {@link AgentError}. */
export async function installFile(ctx: InstallContext, entry: CatalogEntry): Promise<Installed> {
  const label = `${entry.app}/${entry.name}@${entry.version}`;
  const urls = entry.urls.filter((u) =>
    u.startsWith("https://") || (ctx.config.allowHttpFiles && u.startsWith("http://"))
  );
  if (urls.length === 0) {
    throw new AgentError(
      "https_required",
      `${label}: files are fetched over HTTPS only, and the catalog offers no HTTPS URL`,
    );
  }
  // Before anything is fetched or written: where it goes and what runs after it must be signed.
  await checkFileinfo(ctx, entry);
  const { path, recorded } = fileDestination(ctx, entry);
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  if (entry.fileinfo) {
    // A link inside the root must not carry the file out of it.
    await ensureDirInside(ctx.config.root, recorded.split("/").slice(0, -1).join("/"), label);
  } else {
    await Deno.mkdir(dir, { recursive: true });
  }
  const mode = entry.fileinfo ? parseInt(entry.fileinfo.mode, 8) & 0o7777 : 0o644;
  // A name that depends on the bytes alone: a download cut short resumes in the next cycle or run.
  const downloads = statePaths(ctx.config.state).downloads;
  await Deno.mkdir(downloads, { recursive: true, mode: 0o700 });
  const partial = downloadPath(downloads, entry.sha256);
  await download(partial, { urls, size: entry.size, sha256: entry.sha256, label }, {
    idleMs: ctx.config.downloadIdleS * 1000,
    fetch: ctx.fetch,
    log: ctx.log,
  });
  if (entry.fileinfo) {
    // Checked again: a download may span cycles, and the folders may have changed meanwhile.
    await ensureDirInside(ctx.config.root, recorded.split("/").slice(0, -1).join("/"), label);
  }
  await moveIntoPlace(partial, path, mode, { sha256: entry.sha256, label });
  const action = entry.fileinfo?.action;
  if (action && action.length > 0) {
    const r = await runProgram(action, {
      cwd: ctx.config.root,
      env: {
        NOC_ROOT: ctx.config.root,
        NOC_APP: entry.app,
        NOC_NAME: entry.name,
        NOC_VERSION: entry.version,
        NOC_FILE: path,
      },
      timeoutMs: ctx.config.installTimeoutS * 1000,
    });
    if (r.spawnError || r.timedOut || r.code !== 0) {
      throw new AgentError(
        "action_failed",
        `${label} was written to "${recorded}" but its action ${JSON.stringify(action)} ${
          r.spawnError
            ? `could not start: ${r.spawnError}`
            : r.timedOut
            ? "ran past its time limit"
            : `exited with ${r.code}: ${r.stderr.trim().slice(-500)}`
        }`,
      );
    }
  }
  return {
    kind: "file",
    app: entry.app,
    name: entry.name,
    version: entry.version,
    sha256: entry.sha256,
    installedAt: ctx.now().toISOString(),
    destination: recorded,
  };
}
