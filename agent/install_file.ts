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
 * The agent runs as root and acts by path, so before the fetch and again
 * before the move every folder from `/` down to the destination's must be
 * one nobody but root can change a name in (root's, writable by root alone;
 * above the root also a sticky root-owned folder such as `/tmp`), else
 * `unsafe_destination` — like sshd's StrictModes (docs/agent.md, "Who may
 * own the folders on the way").
 *
 * @module
 */
import { AgentError } from "./errors.ts";
import { download, downloadPath } from "./download.ts";
import { runProgram } from "./proc.ts";
import { programGuard } from "./install_guard.ts";
import { syncDir } from "../protocol/util/atomic_file.ts";
import { forgetTemp, noteTemp } from "./debris.ts";
import { installEnv } from "./install_env.ts";
import { cutPoint } from "./cut_points.ts";
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

/** What a check of the way to a destination learnt about one step: its owner, mode and kind. */
interface Step {
  /** Owner's uid. */
  uid: number;
  /** Permission bits, `0o7777` (setuid, setgid, sticky and rwx). */
  mode: number;
  /** What the name is (links are not followed). */
  kind: "dir" | "link" | "file" | "other";
}

/** A path's folder (`/` for a top-level name). */
const folderOf = (path: string) => path.slice(0, path.lastIndexOf("/")) || "/";

/** `a` joined with one name `b` (`a` being `/` or a path without a trailing `/`). */
const join = (a: string, b: string) => a === "/" ? `/${b}` : `${a}/${b}`;

/** The names of `path`, `.` and empty names dropped. */
const namesOf = (path: string) => path.split("/").filter((n) => n !== "" && n !== ".");

/** Who may own a folder on the way: root, or the agent itself (one not run as root, in tests). */
const trustedOwner = (uid: number) => uid === 0 || uid === Deno.uid();

/**
 * Why `st` lets someone other than root (or the agent) change the names in it, or null when it
 * does not. `above`: the step lies above the base folder (the appliance root or the state folder);
 * there a world-writable folder is accepted when it is sticky and root's (as `/tmp`): others may
 * add names to it, but not rename or remove one they do not own (the sticky bit), and every name
 * the walk passes through must be root's or the agent's — the next step checks that. In the base
 * folder and below, a folder others can write is refused, sticky or not.
 */
function unsafeBecause(st: Step, above: boolean): string | null {
  if (!trustedOwner(st.uid)) return `it belongs to uid ${st.uid}`;
  if (st.kind !== "dir") return null;
  const writable = (st.mode & 0o022) !== 0;
  if (!writable) return null;
  if (above && (st.mode & 0o1000) !== 0) return null;
  const who = (st.mode & 0o002) !== 0 ? "others" : "its group";
  const sticky = (st.mode & 0o1000) !== 0
    ? " (a sticky folder is accepted only above the appliance root and the state folder)"
    : "";
  return `${who} can write to it${sticky}`;
}

/** The `unsafe_destination` refusal for `path`, naming its owner, mode and the fix. */
function unsafeFolder(
  path: string,
  st: Step,
  why: string,
  at: { label: string; fetched: boolean },
): AgentError {
  const fixes = st.kind === "link" ? [`chown -h root "${path}"`] : st.kind !== "dir" ? [] : [
    ...(trustedOwner(st.uid) ? [] : [`chown root "${path}"`]),
    ...((st.mode & 0o022) !== 0 ? [`chmod go-w "${path}"`] : []),
  ];
  const what = st.kind === "link" ? "the link" : st.kind === "dir" ? "the folder" : "the name";
  const mode = st.mode.toString(8).padStart(4, "0");
  return new AgentError(
    "unsafe_destination",
    `${at.label}: ${what} "${path}" (owner uid ${st.uid}, mode ${mode}) on the way to the ` +
      `destination is unsafe: ${why}, so someone other than root could swap names in it while ` +
      `the agent, as root, writes through it. Every folder from / down must be root's and ` +
      `writable by root alone${fixes.length > 0 ? ` (${fixes.join("; ")})` : ""}. ${
        at.fetched
          ? "The download is kept; nothing was moved into place"
          : "Nothing was fetched or written"
      }`,
  );
}

/**
 * `lstat`s `paths` with the system's `stat` program. The agent may read its own two folders only
 * (its `--allow-read`), so the folders above them are looked at from another process. A path
 * that does not exist is left out of the answer.
 */
async function statProgram(paths: string[]): Promise<Map<string, Step>> {
  const out = await run("stat", ["-c", "%u %f %n", "--", ...paths]);
  const steps = new Map<string, Step>();
  for (const line of out.split("\n")) {
    const m = /^(\d+) ([0-9a-f]+) (.+)$/.exec(line);
    if (!m) continue;
    const raw = parseInt(m[2]!, 16);
    const type = raw & 0o170000;
    steps.set(m[3]!, {
      uid: Number(m[1]),
      mode: raw & 0o7777,
      kind: type === 0o040000
        ? "dir"
        : type === 0o120000
        ? "link"
        : type === 0o100000
        ? "file"
        : "other",
    });
  }
  return steps;
}

/** Runs `program` (`stat`, `readlink`) with a fixed PATH and locale; its stdout. */
async function run(program: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(program, {
    args,
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin:/usr/sbin:/sbin", LC_ALL: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => null);
  // Not there, or not allowed to run: the callers refuse what they could not check.
  return out ? new TextDecoder().decode(out.stdout) : "";
}

/**
 * Walks from `/` to `base` (an absolute path without `.` or `..`) as the kernel resolves it,
 * following links (their targets' folders are walked too, at most 40 links), and checks every
 * step: the folders above `base` with the rule for ancestors, `base`'s own folder with the strict
 * one (see {@link unsafeBecause}); a link above `base` must be root's or the agent's (in a sticky
 * folder, a link's owner could swap it). Creates `base` (mode 0755) when it is missing. Throws
 * {@link AgentError} `unsafe_destination`.
 */
async function checkAbove(base: string, at: { label: string; fetched: boolean }): Promise<void> {
  const refuse = (path: string, st: Step, why: string) => unsafeFolder(path, st, why, at);
  for (let attempt = 0; attempt < 2; attempt++) {
    const known = new Map<string, Step | null>();
    const lookup = async (path: string, ahead: string[]) => {
      if (!known.has(path)) {
        const batch = [path, ...ahead];
        const got = await statProgram(batch);
        for (const p of batch) known.set(p, got.get(p) ?? null);
      }
      return known.get(path)!;
    };
    let pending = namesOf(base);
    const top = await lookup("/", pending.map((_, i) => `/${pending.slice(0, i + 1).join("/")}`));
    if (!top) {
      throw new AgentError(
        "unsafe_destination",
        `${at.label}: the agent cannot check the folders above "${base}" (is the \`stat\` program installed?)`,
      );
    }
    const topWhy = unsafeBecause(top, pending.length > 0);
    if (topWhy) throw refuse("/", top, topWhy);
    let here = "/";
    let links = 0;
    let missing = false;
    while (pending.length > 0) {
      const name = pending.shift()!;
      if (name === "..") {
        here = folderOf(here);
        continue;
      }
      const path = join(here, name);
      const ahead: string[] = [];
      for (const n of pending) {
        if (n === "..") break;
        ahead.push(join(ahead.at(-1) ?? path, n));
      }
      const st = await lookup(path, ahead);
      if (!st) {
        missing = true;
        break;
      }
      if (st.kind === "link") {
        if (!trustedOwner(st.uid)) throw refuse(path, st, `it belongs to uid ${st.uid}`);
        if (++links > 40) {
          throw refuse(path, st, "more than 40 links are followed on the way");
        }
        const target = (await run("readlink", ["--", path])).replace(/\n$/, "");
        if (target === "") throw refuse(path, st, "its target cannot be read");
        if (target.startsWith("/")) here = "/";
        pending = [...namesOf(target), ...pending];
        continue;
      }
      if (st.kind !== "dir") throw refuse(path, st, "it is not a folder");
      const why = unsafeBecause(st, pending.length > 0);
      if (why) throw refuse(path, st, why);
      here = path;
    }
    if (!missing) return;
    // The base (or a folder above it) does not exist yet: the agent makes it, then checks again.
    await Deno.mkdir(base, { recursive: true, mode: 0o755 }).catch((e) => {
      throw new AgentError(
        "write_failed",
        `${at.label}: cannot make "${base}": ${e instanceof Error ? e.message : e}`,
      );
    });
  }
  throw new AgentError("unsafe_destination", `${at.label}: "${base}" cannot be made`);
}

/**
 * Makes sure the folder `rel` under `base` (the appliance root, or the state folder) exists and
 * that nobody but root — or the agent itself — can change a name on the way to it, so that what
 * the agent then does by path lands where it was checked (like sshd's StrictModes):
 *
 * - every folder from `/` down to `base` is checked ({@link checkAbove});
 * - below `base`, one step at a time: a step that does not exist is made (mode 0755) and checked
 *   like the rest; a step that is a link, or leads outside `base`, or is not a folder, is refused
 *   (`path_escapes`) before anything is made through it; a link that stays inside `base` is
 *   followed by walking its target's folders from `base`; every folder is root's (or the agent's)
 *   and writable by its owner alone, else `unsafe_destination`.
 *
 * Returns the folder's path as walked: `base`, then only names checked to be folders (no link),
 * so that a rename into it goes where the check went — not through a link inside the root whose
 * target passes through a folder outside it. `at.fetched` says whether the file was fetched
 * already (the refusal says what was kept).
 */
async function ensureSafeFolder(
  base: string,
  rel: string,
  at: { label: string; fetched: boolean },
): Promise<string> {
  await checkAbove(base, at);
  const realBase = await Deno.realPath(base);
  const top = base === "/" ? "" : base;
  let pending = namesOf(rel);
  let here = top;
  let turns = 0;
  while (pending.length > 0) {
    if (++turns > 4096) {
      throw new AgentError("path_escapes", `${at.label}: the destination folder "${rel}" loops`);
    }
    const name = pending[0]!;
    const path = `${here}/${name}`;
    const st = await Deno.lstat(path).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    });
    if (!st) {
      // Made by root in a folder only root can write: checked like any other on the next turn.
      await Deno.mkdir(path, { mode: 0o755 }).catch((e) => {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      });
      continue;
    }
    // A link leading nowhere: not a folder either.
    const real = await Deno.realPath(path).catch(() => "");
    const inside = realBase === "/" || real === realBase || real.startsWith(`${realBase}/`);
    if (!real || !inside || !(await Deno.stat(path)).isDirectory) {
      throw new AgentError(
        "path_escapes",
        `${at.label}: destination folder "${path}" leads outside the appliance root or is not a folder`,
      );
    }
    if (st.isSymlink) {
      // Inside the root: walk the folders of where it leads, from the root down, instead.
      pending = [
        ...namesOf(real.slice(realBase === "/" ? 0 : realBase.length)),
        ...pending.slice(1),
      ];
      here = top;
      continue;
    }
    const step: Step = { uid: st.uid ?? -1, mode: (st.mode ?? 0) & 0o7777, kind: "dir" };
    const why = unsafeBecause(step, false);
    if (why) throw unsafeFolder(path, step, why, at);
    here = path;
    pending = pending.slice(1);
  }
  return here || "/";
}

/**
 * Refuses unless `path` is, by `lstat`, the regular file `st` describes (same device and inode):
 * not a link, not another file put in its place. Throws {@link AgentError} `unsafe_destination`.
 */
async function assertSameFile(path: string, st: Deno.FileInfo, label: string): Promise<void> {
  const now = await Deno.lstat(path).catch(() => null);
  if (now?.isFile && now.dev === st.dev && now.ino === st.ino) return;
  throw new AgentError(
    "unsafe_destination",
    `${label}: "${path}" is no longer the file the agent wrote (${
      now ? (now.isSymlink ? "now a link" : "now another file") : "gone"
    }): someone else can change the names in "${folderOf(path)}"; nothing more was done through it`,
  );
}

/**
 * Gives the open file `file`, named `path`, the permission bits `mode`, when it does not have them
 * already (a file is made with `mode & 0o777` less the umask; setuid, setgid and sticky bits, or
 * bits the umask took, need a `chmod`). The runtime has no `fchmod`: the name is checked to be the
 * open file just before the `chmod`, and the open file checked to have the mode just after.
 * Throws {@link AgentError} `unsafe_destination`.
 */
async function giveMode(file: Deno.FsFile, path: string, mode: number, label: string) {
  const st = await file.stat();
  if (((st.mode ?? 0) & 0o7777) === mode) return;
  await assertSameFile(path, st, label);
  await Deno.chmod(path, mode);
  if ((((await file.stat()).mode ?? 0) & 0o7777) !== mode) {
    throw new AgentError(
      "unsafe_destination",
      `${label}: "${path}" was swapped while it was given mode ${mode.toString(8)}; refused`,
    );
  }
}

/**
 * Moves the checked download `from` (in the state folder) to `to` with `mode`, atomically: a
 * rename, or — when `to` is on another filesystem (`EXDEV`) — a copy to a temporary file in its
 * folder, made with the mode, hashed as it is written (it must still give `expect.sha256`),
 * flushed and renamed; then the folder is flushed. Either way `from` is gone afterwards and `to` is
 * never seen half-written. Each name is checked with `lstat` to be the file the agent holds open
 * before it is given its mode or renamed, and `to` after (defence in depth: {@link installFile}
 * first makes sure nobody but root can change a name on the way). Throws {@link AgentError}:
 * `write_failed` (the copy could not be written; nothing is left in the destination folder, the
 * download is kept), `digest_mismatch` (the download changed on disk; it is removed) or
 * `unsafe_destination` (a name was swapped for a link or another file).
 */
export async function moveIntoPlace(
  from: string,
  to: string,
  mode: number,
  expect: { sha256: string; label: string },
  temps?: { made(path: string): Promise<void>; gone(path: string): Promise<void> },
): Promise<void> {
  const dir = folderOf(to);
  using src = await Deno.open(from, { read: true });
  const downloaded = await src.stat();
  await assertSameFile(from, downloaded, expect.label);
  await giveMode(src, from, mode, expect.label);
  try {
    await Deno.rename(from, to);
    await assertSameFile(to, downloaded, expect.label);
  } catch (e) {
    if ((e as { code?: string }).code !== "EXDEV") throw e;
    const tmp = `${dir}/.${to.slice(to.lastIndexOf("/") + 1)}.noc-${
      crypto.randomUUID().slice(0, 8)
    }`;
    let renamed = false;
    // Recorded before it is made: a cut leaves nothing the next cycle does not remove (debris.ts).
    await temps?.made(tmp);
    try {
      using out = await copyChecked(src, from, tmp, mode, expect);
      cutPoint("file_copy");
      const written = await out.stat();
      await assertSameFile(tmp, written, expect.label);
      await giveMode(out, tmp, mode, expect.label);
      await assertSameFile(tmp, written, expect.label);
      await Deno.rename(tmp, to);
      renamed = true;
      await assertSameFile(to, written, expect.label);
    } finally {
      if (!renamed) await Deno.remove(tmp).catch(() => {});
      await temps?.gone(tmp).catch(() => {});
    }
    await Deno.remove(from);
  }
  await syncDir(dir);
}

/**
 * Copies the open file `src` (named `from`) to a new file `to`, made with `mode & 0o777`,
 * hashing what it writes, then flushes it; returns the new file, still open.
 */
async function copyChecked(
  src: Deno.FsFile,
  from: string,
  to: string,
  mode: number,
  expect: { sha256: string; label: string },
): Promise<Deno.FsFile> {
  const hash = createHash("sha256");
  const failed = (e: unknown) =>
    new AgentError(
      "write_failed",
      `Cannot write ${expect.label} to "${to}": ${e instanceof Error ? e.message : e}`,
    );
  let out: Deno.FsFile;
  try {
    out = await Deno.open(to, { write: true, createNew: true, mode: mode & 0o777 });
  } catch (e) {
    throw failed(e);
  }
  try {
    await src.seek(0, Deno.SeekMode.Start);
    const buf = new Uint8Array(256 * 1024);
    for (;;) {
      const n = await src.read(buf);
      if (n === null) break;
      const chunk = buf.subarray(0, n);
      let at = 0;
      while (at < chunk.length) at += await out.write(chunk.subarray(at));
      hash.update(chunk);
    }
    await out.sync();
  } catch (e) {
    out.close();
    throw failed(e);
  }
  if (hash.digest("hex") !== expect.sha256) {
    out.close();
    await Deno.remove(from).catch(() => {});
    throw new AgentError(
      "digest_mismatch",
      `${expect.label} changed on disk after it was checked; it was dropped`,
    );
  }
  return out;
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
  // Where the folder is checked from: the appliance root, or — without fileinfo — the state folder.
  const [base, rel] = entry.fileinfo
    ? [ctx.config.root, recorded.split("/").slice(0, -1).join("/")]
    : [ctx.config.state, `files/${entry.app}`];
  const fileName = path.slice(path.lastIndexOf("/") + 1);
  // Before anything is fetched: no link may carry the file out of the root, and nobody but root
  // may be able to swap a name on the way while the agent (root) works through it.
  await ensureSafeFolder(base, rel, { label, fetched: false });
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
  // Checked again: a download may span cycles, and the folders may have changed meanwhile.
  const folder = await ensureSafeFolder(base, rel, { label, fetched: true });
  await moveIntoPlace(partial, `${folder === "/" ? "" : folder}/${fileName}`, mode, {
    sha256: entry.sha256,
    label,
  }, {
    made: (tmp) => noteTemp(ctx.config.state, tmp),
    gone: (tmp) => forgetTemp(ctx.config.state, tmp),
  });
  const action = entry.fileinfo?.action;
  if (action && action.length > 0) {
    // Recorded while it runs, as an install program is (install_guard.ts).
    const guard = programGuard(
      ctx.config.state,
      { kind: "file", app: entry.app, name: entry.name, version: entry.version, action: "action" },
      () => ctx.now(),
    );
    const r = await runProgram(action, {
      cwd: ctx.config.root,
      env: {
        ...await installEnv(ctx.config.state),
        NOC_ROOT: ctx.config.root,
        NOC_APP: entry.app,
        NOC_NAME: entry.name,
        NOC_VERSION: entry.version,
        NOC_FILE: path,
      },
      timeoutMs: ctx.config.installTimeoutS * 1000,
      beforeStart: guard.beforeStart,
    }).finally(() => guard.ended());
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
