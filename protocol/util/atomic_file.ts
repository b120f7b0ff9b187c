/**
 * Crash-safe file writes: the new content goes to a temporary file in the
 * same folder, is flushed to disk, renamed over the old one, and the folder
 * is flushed — so after a crash a reader sees the old content or the new,
 * never a mix.
 *
 * @module
 */

/** Flushes a folder's entries to disk (where the platform allows it). */
export async function syncDir(dir: string): Promise<void> {
  try {
    using d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch {
    // Some file systems cannot flush a folder; the rename itself is still atomic.
  }
}

/** The folder part of `path`. */
export function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? (i === 0 ? "/" : ".") : path.slice(0, i);
}

/** Writes `data` to `path` atomically, with `mode` (0600 by default). */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  mode = 0o600,
): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    {
      using f = await Deno.open(tmp, { write: true, createNew: true, mode });
      let at = 0;
      while (at < bytes.length) at += await f.write(bytes.subarray(at));
      await f.sync();
    }
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dirOf(path));
}

/** Writes `value` as JSON to `path` atomically. */
export async function writeJsonAtomic(path: string, value: unknown, mode = 0o600): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n", mode);
}

/** Reads JSON from `path`; `null` when the file does not exist. */
export async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`File "${path}" is not valid JSON`);
  }
}

/** True when `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
