/**
 * The local component cache (spec, FIGURE 1: local component database 19):
 * component bytes in a folder, one file per component, each checked before it
 * is kept and again before it is served — whole-file SHA-256 and size, and
 * for packages the NOC's signature over the header and the ciphertext digest
 * the header carries. A size budget is kept with least-recently-used
 * eviction; what the site's current catalogs reference is evicted only when
 * nothing else is left to evict.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { readJson, writeJsonAtomic } from "../protocol/util/atomic_file.ts";
import { readFileFrom, readPackagePrefix } from "../protocol/package/file.ts";
import { expectComponent, PackageError, verifyPackagePrefix } from "../protocol/package/format.ts";
import type { PublishedKey } from "../protocol/keys.ts";
import type { StageItem } from "../protocol/schemas.ts";

/** What the cache knows of a component (the NOC's description of it). */
export type CacheMeta = StageItem;

/** A cached component. */
export interface CacheEntry extends CacheMeta {
  /** When it was last served or stored, ms since the epoch. */
  lastUsed: number;
}

/** A component that cannot be cached or served; `reason` is a stable code. */
export class CacheError extends Error {
  /** Creates an error with a stable reason code. */
  constructor(
    readonly reason:
      | "too_large"
      | "cache_full"
      | "size_mismatch"
      | "digest_mismatch"
      | "bad_signature"
      | "unknown_key"
      | "expired_key"
      | "wrong_component"
      | "malformed",
    message: string,
  ) {
    super(message);
  }
}

/** The local server's cache. */
export interface ComponentCache {
  /** The budget, bytes. */
  readonly limit: number;
  /** Bytes held, entries held. */
  stats(): { bytes: number; entries: number; limit: number };
  /** The entry for component `id`, if held. */
  entry(id: number): CacheEntry | undefined;
  /** Every entry. */
  entries(): CacheEntry[];
  /** Sets what the site's catalogs reference now, then keeps the budget. */
  setReferenced(ids: Iterable<number>): Promise<void>;
  /** True when component `id` is referenced by a current catalog of the site. */
  referenced(id: number): boolean;
  /**
   * Checks and keeps `body` as component `meta`, making room by eviction;
   * throws {@link CacheError} when it does not check out or does not fit.
   */
  store(
    meta: CacheMeta,
    body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    trusted: readonly PublishedKey[],
  ): Promise<CacheEntry>;
  /**
   * Checks the held copy of `id` again (skipped while its file is unchanged
   * since the last check) and opens it: the handle keeps reading even if the
   * entry is evicted meanwhile. A copy that fails is removed and the failure
   * thrown as {@link CacheError}. Undefined when not held.
   */
  open(
    id: number,
    trusted: readonly PublishedKey[],
  ): Promise<{ entry: CacheEntry; file: Deno.FsFile } | undefined>;
  /** Marks `id` used now. */
  touch(id: number): void;
}

const metaSuffix = ".json";
const dataSuffix = ".bin";

/** Checks `path` against `meta`: size, SHA-256, and for packages signature, identity and ciphertext digest. */
export async function verifyCachedFile(
  path: string,
  meta: CacheMeta,
  trusted: readonly PublishedKey[],
  now: Date,
): Promise<void> {
  let cipherFrom = Infinity;
  let cipherHash: ReturnType<typeof createHash> | null = null;
  let header: Awaited<ReturnType<typeof readPackagePrefix>>["header"] | null = null;
  if (meta.kind === "package") {
    try {
      const prefix = await readPackagePrefix(path);
      await verifyPackagePrefix(prefix, trusted.filter((k) => k.use.includes("package")), now);
      expectComponent(prefix.header, meta);
      cipherFrom = prefix.ciphertextOffset;
      cipherHash = createHash("sha256");
      header = prefix.header;
    } catch (e) {
      if (e instanceof PackageError) {
        const reason = (["bad_signature", "unknown_key", "expired_key", "wrong_component"] as const)
          .find((r) => r === e.reason) ?? "malformed";
        throw new CacheError(reason, e.message);
      }
      throw e;
    }
  }
  const whole = createHash("sha256");
  let size = 0;
  for await (const chunk of readFileFrom(path)) {
    whole.update(chunk);
    if (cipherHash && size + chunk.length > cipherFrom) {
      cipherHash.update(chunk.subarray(Math.max(0, cipherFrom - size)));
    }
    size += chunk.length;
  }
  if (size !== meta.size) {
    throw new CacheError(
      "size_mismatch",
      `Component ${meta.id} is ${size} bytes, not ${meta.size}`,
    );
  }
  if (whole.digest("hex") !== meta.sha256) {
    throw new CacheError("digest_mismatch", `Component ${meta.id} does not match its SHA-256`);
  }
  if (cipherHash && header && cipherHash.digest("hex") !== header.ciphertextSha256) {
    throw new CacheError("digest_mismatch", `Package ${meta.id}'s ciphertext digest is wrong`);
  }
}

function fingerprint(s: Deno.FileInfo): string {
  return `${s.ino}:${s.size}:${s.mtime?.getTime()}:${s.ctime?.getTime()}`;
}

/** Opens (creating) the cache in `dir` with a budget of `limit` bytes. */
export async function openCache(options: {
  dir: string;
  limit: number;
  now: () => Date;
  /** What the site's catalogs referenced when last known (spared by the start-up trim). */
  referenced?: Iterable<number>;
  log?: (event: string, fields: Record<string, unknown>) => void;
}): Promise<ComponentCache> {
  const { dir, limit } = options;
  const tmpDir = `${dir}/tmp`;
  await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmpDir, { recursive: true, mode: 0o700 });
  const index = new Map<number, CacheEntry>();
  const checked = new Map<number, string>();
  let referenced = new Set<number>(options.referenced ?? []);
  let total = 0;
  let reserved = 0;
  const dataPath = (id: number) => `${dir}/${id}${dataSuffix}`;
  const metaPath = (id: number) => `${dir}/${id}${metaSuffix}`;

  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(metaSuffix)) continue;
    const id = Number(e.name.slice(0, -metaSuffix.length));
    try {
      const meta = await readJson(metaPath(id)) as CacheMeta | null;
      const data = await Deno.stat(dataPath(id));
      const m = await Deno.stat(metaPath(id));
      if (!meta || meta.id !== id || data.size !== meta.size) throw new Error("damaged");
      index.set(id, { ...meta, lastUsed: m.mtime?.getTime() ?? 0 });
      total += meta.size;
    } catch {
      await Deno.remove(metaPath(id)).catch(() => {});
      await Deno.remove(dataPath(id)).catch(() => {});
    }
  }

  const remove = async (id: number, why: string) => {
    const e = index.get(id);
    if (!e) return;
    index.delete(id);
    checked.delete(id);
    total -= e.size;
    // The metadata goes first: a crash in between leaves a data file that is swept, never a bad entry.
    await Deno.remove(metaPath(id)).catch(() => {});
    await Deno.remove(dataPath(id)).catch(() => {});
    options.log?.("cache_evicted", { id, app: e.app, name: e.name, version: e.version, why });
  };
  const lru = (pred: (e: CacheEntry) => boolean) =>
    [...index.values()].filter(pred).sort((a, b) => a.lastUsed - b.lastUsed);

  /**
   * Evicts until `size` more bytes fit (only unreferenced entries unless
   * `any`) and reserves them in the same step as the final check, so stores
   * running together never overshoot the budget.
   */
  const makeRoom = async (size: number, any: boolean): Promise<boolean> => {
    const victims = [
      ...lru((e) => !referenced.has(e.id)),
      ...(any ? lru((e) => referenced.has(e.id)) : []),
    ];
    for (const v of victims) {
      if (total + reserved + size <= limit) break;
      if (index.get(v.id) === v) await remove(v.id, "budget");
    }
    if (total + reserved + size > limit) return false;
    reserved += size;
    return true;
  };

  // A budget lowered since the last run is kept from the start.
  await makeRoom(0, true);
  // Data files without metadata (a crash while storing) are swept.
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(dataSuffix)) {
      const id = Number(e.name.slice(0, -dataSuffix.length));
      if (!index.has(id)) await Deno.remove(`${dir}/${e.name}`).catch(() => {});
    }
  }

  return {
    limit,
    stats: () => ({ bytes: total, entries: index.size, limit }),
    entry: (id) => index.get(id),
    entries: () => [...index.values()],
    referenced: (id) => referenced.has(id),
    async setReferenced(ids) {
      referenced = new Set(ids);
      await makeRoom(0, true);
    },
    async store(meta, body, trusted) {
      if (meta.size > limit) {
        throw new CacheError(
          "too_large",
          `Component ${meta.id} (${meta.size} bytes) is larger than the cache budget of ${limit} bytes`,
        );
      }
      // Room is made among unreferenced entries only: staging never pushes out what the site runs.
      if (!(await makeRoom(meta.size, false))) {
        throw new CacheError(
          "cache_full",
          `No room for component ${meta.id} (${meta.size} bytes): the cache budget of ${limit} bytes is held by components the site's catalogs reference`,
        );
      }
      const tmp = `${tmpDir}/${meta.id}-${crypto.randomUUID().slice(0, 8)}`;
      try {
        {
          using f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
          let n = 0;
          for await (const chunk of body) {
            n += chunk.length;
            if (n > meta.size) {
              throw new CacheError(
                "size_mismatch",
                `Component ${meta.id} is longer than ${meta.size} bytes`,
              );
            }
            let at = 0;
            while (at < chunk.length) at += await f.write(chunk.subarray(at));
          }
          await f.sync();
        }
        await verifyCachedFile(tmp, meta, trusted, options.now());
        await remove(meta.id, "replaced");
        await Deno.rename(tmp, dataPath(meta.id));
        const m: CacheMeta = {
          id: meta.id,
          kind: meta.kind,
          app: meta.app,
          name: meta.name,
          version: meta.version,
          size: meta.size,
          sha256: meta.sha256,
        };
        await writeJsonAtomic(metaPath(meta.id), m);
        const entry: CacheEntry = { ...m, lastUsed: options.now().getTime() };
        index.set(meta.id, entry);
        total += meta.size;
        checked.set(meta.id, fingerprint(await Deno.stat(dataPath(meta.id))));
        return entry;
      } finally {
        reserved -= meta.size;
        await Deno.remove(tmp).catch(() => {});
      }
    },
    async open(id, trusted) {
      const e = index.get(id);
      if (!e) return undefined;
      let file: Deno.FsFile;
      try {
        file = await Deno.open(dataPath(id), { read: true });
      } catch {
        if (index.get(id) === e) await remove(id, "missing");
        return undefined;
      }
      try {
        const seen = fingerprint(await file.stat());
        if (checked.get(id) !== seen) {
          try {
            await verifyCachedFile(dataPath(id), e, trusted, options.now());
            // What was checked must be the very file the handle serves, unchanged meanwhile.
            const after = await Deno.stat(dataPath(id)).catch(() => null);
            if (after === null || fingerprint(after) !== seen) {
              throw new CacheError(
                "digest_mismatch",
                `Component ${id} changed while it was checked`,
              );
            }
          } catch (err) {
            if (!(err instanceof CacheError)) throw err;
            if (index.get(id) === e) await remove(id, "failed_check");
            throw err;
          }
          checked.set(id, seen);
        }
        return { entry: { ...e }, file };
      } catch (err) {
        file.close();
        // Evicted by a store running alongside: simply not held any more.
        if (err instanceof Deno.errors.NotFound) return undefined;
        throw err;
      }
    },
    touch(id) {
      const e = index.get(id);
      if (!e) return;
      e.lastUsed = options.now().getTime();
      const t = new Date(e.lastUsed);
      Deno.utime(metaPath(id), t, t).catch(() => {});
    },
  };
}
