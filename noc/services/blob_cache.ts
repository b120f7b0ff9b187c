/**
 * The component server's disk cache: the served bytes of each component
 * (package prefix and blob), kept as one file named by its SHA-256 so that
 * repeated downloads stream from the local disk instead of the database.
 * Components never change once published, so an entry never goes stale. An
 * entry is written to a temporary file, checked against the component's size
 * and digest, then renamed into place; a file whose size is wrong is ignored
 * and replaced. Least recently used entries are removed beyond the budget.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Logger } from "../../protocol/util/log.ts";

/** What the cache needs to know of a component. */
export interface CachedComponent {
  /** SHA-256 of the served bytes, hex. */
  sha256: string;
  /** Size of the served bytes. */
  size: number;
}

/** A disk cache of served component bytes. */
export interface BlobCache {
  /** The folder it keeps its files in. */
  readonly dir: string;
  /**
   * An open file holding `c`'s bytes, or null when it is not cached yet (a
   * fill from `source` then starts in the background, once however many ask).
   */
  open(c: CachedComponent, source: () => AsyncIterable<Uint8Array>): Promise<Deno.FsFile | null>;
  /** Waits for the fills under way (tests and benchmarks). */
  settled(): Promise<void>;
  /** Bytes held now. */
  bytes(): number;
}

/** Options of {@link openBlobCache}. */
export interface BlobCacheOptions {
  /** Folder for the cache files (created if missing). */
  dir: string;
  /** Most bytes kept. */
  budgetBytes: number;
  /** Where fill failures are logged. */
  log: Logger;
}

const digestPattern = /^[0-9a-f]{64}$/;

/** Opens (creating it if needed) a component cache in `options.dir`. */
export async function openBlobCache(options: BlobCacheOptions): Promise<BlobCache> {
  const { dir, budgetBytes, log } = options;
  await Deno.mkdir(dir, { recursive: true });
  // What is on disk from an earlier run, oldest use first.
  const entries = new Map<string, { size: number; used: number }>();
  const found: Array<{ name: string; size: number; used: number }> = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (!e.isFile) continue;
    if (!digestPattern.test(e.name)) {
      await Deno.remove(path).catch(() => {}); // a fill cut short
      continue;
    }
    const st = await Deno.stat(path);
    found.push({ name: e.name, size: st.size, used: st.mtime?.getTime() ?? 0 });
  }
  found.sort((a, b) => a.used - b.used);
  for (const f of found) entries.set(f.name, { size: f.size, used: f.used });
  let total = found.reduce((s, f) => s + f.size, 0);
  const fills = new Map<string, Promise<void>>();

  const evict = async (keep: string) => {
    for (const [name, e] of entries) {
      if (total <= budgetBytes) break;
      if (name === keep) continue;
      entries.delete(name);
      total -= e.size;
      // An open handle keeps serving the unlinked file.
      await Deno.remove(`${dir}/${name}`).catch(() => {});
    }
  };

  const fill = async (c: CachedComponent, source: () => AsyncIterable<Uint8Array>) => {
    const tmp = `${dir}/.fill-${c.sha256}-${crypto.randomUUID()}`;
    try {
      await Deno.mkdir(dir, { recursive: true }); // the folder may have been deleted meanwhile
      const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
      const hash = createHash("sha256");
      let size = 0;
      try {
        for await (const chunk of source()) {
          hash.update(chunk);
          size += chunk.length;
          for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
        }
      } finally {
        file.close();
      }
      const digest = hash.digest("hex");
      if (size !== c.size || digest !== c.sha256) {
        throw new Error(
          `Stored bytes of component "${c.sha256}" do not match it (${size} bytes, SHA-256 "${digest}")`,
        );
      }
      await Deno.rename(tmp, `${dir}/${c.sha256}`);
      const before = entries.get(c.sha256);
      if (before) total -= before.size;
      entries.delete(c.sha256);
      entries.set(c.sha256, { size, used: Date.now() });
      total += size;
      await evict(c.sha256);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      log.warn("blob_cache_fill_failed", { sha256: c.sha256, message: String(e) });
    }
  };

  return {
    dir,
    bytes: () => total,
    async open(c, source) {
      if (!digestPattern.test(c.sha256) || c.size > budgetBytes) return null;
      const entry = entries.get(c.sha256);
      if (entry) {
        let file: Deno.FsFile | null = null;
        try {
          file = await Deno.open(`${dir}/${c.sha256}`, { read: true });
          if ((await file.stat()).size === c.size) {
            // Unless it was evicted meanwhile (the open handle still reads the unlinked file).
            if (entries.get(c.sha256) === entry) {
              const now = Date.now();
              entries.delete(c.sha256);
              entries.set(c.sha256, { ...entry, used: now });
              // The file's time records the last use, for the order after a restart.
              Deno.utime(`${dir}/${c.sha256}`, now / 1000, now / 1000).catch(() => {});
            }
            return file;
          }
        } catch {
          // removed behind our back: fill again below
        }
        file?.close();
        // Forget it only if nothing replaced or evicted it while we looked.
        if (entries.get(c.sha256) === entry) {
          entries.delete(c.sha256);
          total -= entry.size;
          await Deno.remove(`${dir}/${c.sha256}`).catch(() => {});
        }
      }
      if (!fills.has(c.sha256)) {
        const p = fill(c, source).finally(() => fills.delete(c.sha256));
        fills.set(c.sha256, p);
      }
      return null;
    },
    async settled() {
      while (fills.size > 0) await Promise.all(fills.values());
    },
  };
}

/** Streams `length` bytes of `file` from `start`, then closes it. */
export function fileRange(file: Deno.FsFile, start: number, length: number): ReadableStream<
  Uint8Array
> {
  let left = length;
  let positioned = false;
  return new ReadableStream<Uint8Array>({
    type: "bytes",
    async pull(controller) {
      let n: number | null;
      const buf = new Uint8Array(Math.min(left, 256 * 1024));
      try {
        if (!positioned) {
          await file.seek(start, Deno.SeekMode.Start);
          positioned = true;
        }
        n = await file.read(buf);
      } catch (e) {
        file.close();
        controller.error(e);
        return;
      }
      if (n === null || n === 0) {
        file.close();
        controller.error(new Error(`Cached component file ended ${left} bytes early`));
        return;
      }
      left -= n;
      controller.enqueue(buf.subarray(0, n));
      if (left === 0) {
        file.close();
        controller.close();
      }
    },
    cancel() {
      try {
        file.close();
      } catch {
        // already closed
      }
    },
  });
}
