/**
 * No debris after a power cut. What a cut (a SIGKILL, a power loss) can leave, and who takes it:
 *
 * - `staging/<uuid>/` (a package unpacked, half unpacked, or its install cut short): emptied at
 *   every cycle's start (agent/cycle.ts), after a payload whose install asked for the reboot that
 *   cut it is moved to where it is kept (install_attempts.ts);
 * - `downloads/<sha256>.pkg` (a download cut short): kept and resumed while the catalog lists that
 *   digest, removed at the first cycle whose catalog does not (agent/cycle.ts);
 * - `packages/<app>/<name>/<sha256>/` (a payload kept for a version whose install never finished):
 *   replaced when that version installs, pruned when another does (install_package.ts);
 * - `<name>.tmp-<8 hex>` beside a state file written atomically (state.json, catalog.cur,
 *   catalog.json, identity.json, running.json, attempts.json, temps.json, outcomes/*.json): removed
 *   at every cycle's start ({@link sweepDebris});
 * - `.<file>.noc-<8 hex>` beside a file's destination in the appliance root (a copy across
 *   filesystems cut short): its path is recorded in `temps.json` before it is made, and a recorded
 *   path is removed at the next cycle's start ({@link sweepDebris}) — only when it lies inside the
 *   state folder or the appliance root (its folder resolved, symbolic links included) and its name
 *   is one of the agent's own temporary names (`.<name>.noc-<8 hex>`, `<name>.tmp-<8 hex>`); any
 *   other path listed there (a damaged or planted `temps.json`) is left alone and logged;
 * - `reboot/<sha256>` markers that no install in progress owns (install_attempts.ts).
 *
 * @module
 */
import { readJson, writeJsonAtomic } from "../protocol/util/atomic_file.ts";
import type { AgentLog } from "./log.ts";
import { statePaths } from "./state.ts";

/** `temps.json`: temporary files made outside the state folder, until they are renamed or gone. */
export function tempsPath(state: string): string {
  return `${state}/temps.json`;
}

async function loadTemps(state: string): Promise<string[]> {
  try {
    const raw = await readJson(tempsPath(state)) as { paths?: unknown } | null;
    return Array.isArray(raw?.paths)
      ? raw.paths.filter((p): p is string => typeof p === "string" && p.startsWith("/"))
      : [];
  } catch {
    return [];
  }
}

async function saveTemps(state: string, paths: string[]): Promise<void> {
  await writeJsonAtomic(tempsPath(state), { format: "noc-agent-temps/1", paths });
}

/** Records, durably, that temporary file `path` is about to be made. */
export async function noteTemp(state: string, path: string): Promise<void> {
  const held = await loadTemps(state);
  await saveTemps(state, [...held.filter((p) => p !== path), path]);
}

/** Forgets temporary file `path` (renamed into place, or removed). */
export async function forgetTemp(state: string, path: string): Promise<void> {
  const held = await loadTemps(state);
  if (held.includes(path)) await saveTemps(state, held.filter((p) => p !== path));
}

/** An atomic write's temporary file (protocol/util/atomic_file.ts). */
const atomicTemp =
  /^(state\.json|catalog\.cur|catalog\.json|identity\.json|running\.json|attempts\.json|temps\.json|wake\.json|\d{12}\.json)\.tmp-[0-9a-f]{8}$/;

/** The base names of the agent's own temporary files: a copy's and an atomic write's. */
const ownTemp = /^(\..+\.noc-[0-9a-f]{8}|.+\.tmp-[0-9a-f]{8})$/;

/** `path` with `.` and `..` resolved (lexically; `path` is absolute). */
function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `/${out.join("/")}`;
}

const inside = (path: string, dir: string) =>
  dir === "/" ? path.startsWith("/") : path === dir || path.startsWith(`${dir}/`);

/**
 * Why recorded temporary file `path` must not be removed, or null when it may: its base name must
 * be one of the agent's temporary names, and its folder — `..` resolved and every symbolic link
 * followed — must be inside the state folder or the appliance root (as those resolve). The file
 * itself is never followed: a link is removed as a link.
 */
export async function refusedTemp(
  path: string,
  dirs: readonly string[],
): Promise<string | null> {
  if (!path.startsWith("/")) return "not an absolute path";
  const norm = normalize(path);
  const base = norm.slice(norm.lastIndexOf("/") + 1);
  if (!ownTemp.test(base)) return "not a name the agent gives its temporary files";
  let folder: string;
  try {
    folder = await Deno.realPath(norm.slice(0, norm.lastIndexOf("/")) || "/");
  } catch {
    return "its folder cannot be resolved";
  }
  for (const d of dirs) {
    const real = await Deno.realPath(d).catch(() => null);
    if (real !== null && inside(folder, real)) return null;
  }
  return "outside the state folder and the appliance root";
}

/**
 * Removes what a cut left (see the module): atomic writes' temporary files in the state folder
 * and its `outcomes/`, and the recorded temporary files beside destinations — only those inside
 * `state` or `opts.root` with one of the agent's temporary names ({@link refusedTemp}); others
 * listed are ignored, and logged (`debris_refused`). Returns the paths removed.
 */
export async function sweepDebris(
  state: string,
  opts: { root?: string | undefined; log?: AgentLog } = {},
): Promise<string[]> {
  const removed: string[] = [];
  for (const dir of [state, statePaths(state).outcomes]) {
    try {
      for await (const e of Deno.readDir(dir)) {
        if (!e.isFile || !atomicTemp.test(e.name)) continue;
        const path = `${dir}/${e.name}`;
        if (await Deno.remove(path).then(() => true, () => false)) removed.push(path);
      }
    } catch {
      // No such folder.
    }
  }
  const temps = await loadTemps(state);
  if (temps.length > 0) {
    const dirs = opts.root ? [state, opts.root] : [state];
    for (const path of temps) {
      const why = await refusedTemp(path, dirs);
      if (why !== null) {
        opts.log?.warn("debris_refused", { path: path.slice(0, 500), reason: why });
        continue;
      }
      const norm = normalize(path);
      const gone = await Deno.remove(norm).then(
        () => true,
        (e) => e instanceof Deno.errors.NotFound ? null : false,
      );
      if (gone) removed.push(norm);
    }
    await saveTemps(state, []).catch(() => {});
  }
  return removed;
}
