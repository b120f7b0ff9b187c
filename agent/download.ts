/**
 * Downloads with resume: bytes go to a file in the downloads folder named by
 * the catalog's SHA-256 ({@link downloadPath}; packages and files alike); a
 * download cut short (a dropped link, a crash, a full disk) continues from
 * where it stopped with an HTTP `Range` request, in the same run or a later
 * one. The result is accepted only
 * when its size and SHA-256 match what the signed catalog promised.
 *
 * The SHA-256 is computed as the bytes arrive, never by reading the file
 * back: a download resumed in the same run (the next URL carrying on) goes on
 * with the same hash, and one resumed in a later run (after a crash) hashes
 * the part already on disk once, then carries on. A `sink` sees the same
 * bytes in the same order (the package installer picks the package's prefix
 * and ciphertext digest out of them), and starts again whenever the download
 * does.
 *
 * Resuming and giving bytes up are logged, with the component's label and the URL (its query, a
 * grant, left out; none for bytes an earlier run left):
 * `download_resumed` (info: `held`, the bytes kept, and `size`) when a server carries on after
 * bytes already held, and `download_discarded` (warn: `bytes` dropped, `reason`) whenever held
 * bytes are given up — `larger_than_catalog` (a file longer than the catalog's size),
 * `digest_mismatch` (complete, but not the catalog's SHA-256), `range_refused` (the server
 * answered 416), `range_ignored` (the server sent the whole download again), `write_failed` (the
 * disk is full: what was written is given back), `file_changed` (the file is shorter than what
 * was hashed), `not_a_file` (something other than a regular file was at the download's path: a
 * folder is removed with what it holds, a symbolic link itself, never what it points to; the log
 * also gives its `kind`).
 *
 * The download's path is never followed: before anything is read or written there it is
 * `lstat`ed, and the file is opened only when it is new (created exclusively, which no link
 * survives) or after the open handle is checked to be the regular file `lstat` sees (same device
 * and inode); only then is it truncated or written.
 *
 * @module
 */
import { errorText } from "../protocol/http/bounded_body.ts";
import { createHash } from "node:crypto";
import { AgentError } from "./errors.ts";
import type { AgentLog } from "./log.ts";
import { readFileFrom } from "../protocol/package/file.ts";
import { timerMs } from "../protocol/util/timer.ts";
import { cutPoint } from "./cut_points.ts";

/**
 * Where a component's download lives: `<downloads>/<sha256>.pkg`, for a file as for a package. The
 * name depends on the bytes alone, so a download cut short is found again by the next cycle or
 * run; the cycle removes every download whose name the catalog's digests do not give (agent/cycle.ts).
 * `sha256` is the catalog's (64 lower-case hex digits, checked by its schema); throws otherwise.
 */
export function downloadPath(downloads: string, sha256: string): string {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`Not a SHA-256: ${sha256.slice(0, 80)}`);
  return `${downloads}/${sha256}.pkg`;
}

/** What to download and how to check it. */
export interface DownloadSpec {
  /** URLs to try, in order. */
  urls: readonly string[];
  /** Expected size, bytes. */
  size: number;
  /** Expected SHA-256, hex. */
  sha256: string;
  /** Label for the progress bar and log. */
  label: string;
}

/** Watches a download's bytes go by, in order, from its first byte. */
export interface ByteSink {
  /** Takes the next bytes (must not throw). */
  update(bytes: Uint8Array): void;
}

/** A finished download: its bytes matched the catalog. */
export interface Downloaded<S extends ByteSink> {
  /** Its size, bytes. */
  size: number;
  /** Its SHA-256, hex, computed as the bytes arrived. */
  sha256: string;
  /** The sink that saw every byte of it, when one was asked for. */
  sink: S | undefined;
}

/** Options for {@link download}. */
export interface DownloadOptions<S extends ByteSink> {
  /** Milliseconds a download may go without a byte. */
  idleMs: number;
  /** Log (progress, failed URLs). */
  log: AgentLog;
  /** The fetch to use (tests pass their own; the global one otherwise). */
  fetch?: typeof fetch;
  /** The slowest average a download may have, bytes per second, after `graceS` (16 KiB/s). */
  minBytesPerS?: number;
  /** Seconds before the average counts (120). */
  graceS?: number;
  /** Makes a fresh sink, whenever the download starts from its first byte. */
  sink?: () => S;
}

/** Why held bytes were given up (the `reason` of a `download_discarded` log event). */
export type DiscardReason =
  | "larger_than_catalog"
  | "digest_mismatch"
  | "range_refused"
  | "range_ignored"
  | "write_failed"
  | "file_changed"
  | "not_a_file";

/** Logs `download_discarded`: `bytes` held bytes of `spec` given up, and why. */
function logDiscard(
  log: AgentLog,
  spec: DownloadSpec,
  bytes: number,
  reason: DiscardReason,
  url: string | null,
): void {
  log.warn("download_discarded", {
    component: spec.label,
    ...(url === null ? {} : { url: redact(url) }),
    bytes,
    reason,
  });
}

/** The bytes in `dest` so far: how many, their running SHA-256, and the sink that saw them. */
class Progress<S extends ByteSink> {
  size = 0;
  #hash = createHash("sha256");
  sink: S | undefined;
  #make: (() => S) | undefined;
  constructor(make: (() => S) | undefined) {
    this.#make = make;
    this.sink = make?.();
  }
  update(bytes: Uint8Array): void {
    this.#hash.update(bytes);
    this.sink?.update(bytes);
    this.size += bytes.length;
  }
  /** The SHA-256 of the bytes so far (the download is then complete: nothing more is added). */
  digest(): string {
    return this.#hash.digest("hex");
  }
  reset(): void {
    this.size = 0;
    this.#hash = createHash("sha256");
    this.sink = this.#make?.();
  }
}

/** What `lstat` says is at `path`, or null when nothing is. */
async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * The size of the regular file at `dest` (never following a link), or null when there is none:
 * anything else there (a folder, a symbolic link, a fifo…) is removed first and logged
 * (`download_discarded`, reason `not_a_file`). Throws {@link AgentError} (`write_failed`) when it
 * cannot be removed.
 */
async function heldSize(dest: string, spec: DownloadSpec, log: AgentLog): Promise<number | null> {
  const info = await lstatOrNull(dest);
  if (info === null) return null;
  if (info.isFile) return info.size;
  const kind = info.isSymlink ? "symlink" : info.isDirectory ? "folder" : "other";
  try {
    // A link is removed itself (remove never follows it); a folder with whatever it holds.
    await Deno.remove(dest, { recursive: info.isDirectory });
  } catch (e) {
    throw new AgentError(
      "write_failed",
      `Cannot remove the ${kind} at "${dest}" where ${spec.label} is downloaded: ${
        e instanceof Error ? e.message : e
      }`,
    );
  }
  log.warn("download_discarded", { component: spec.label, bytes: 0, reason: "not_a_file", kind });
  return null;
}

/**
 * Opens the download file for writing without following a link: a new file is created
 * exclusively (O_EXCL: a link planted there makes it fail); an existing one is opened, then
 * checked to be the regular file `lstat` sees at `dest` (device and inode) before anything is
 * written. Nothing is truncated here: the caller does it through the handle.
 */
async function openUnfollowed(dest: string, exists: boolean): Promise<Deno.FsFile> {
  if (!exists) return await Deno.open(dest, { write: true, createNew: true, mode: 0o600 });
  const file = await Deno.open(dest, { write: true });
  try {
    const [held, there] = await Promise.all([file.stat(), Deno.lstat(dest)]);
    if (!there.isFile || held.dev !== there.dev || held.ino !== there.ino) {
      throw new Error("it is not the regular file that was there a moment ago");
    }
    return file;
  } catch (e) {
    file.close();
    throw e;
  }
}

/**
 * Fetches `spec` into `dest`, trying each URL in turn, resuming a partial
 * file; throws {@link AgentError} (`download_failed`, `size_mismatch`,
 * `digest_mismatch`, `write_failed`).
 */
export async function download<S extends ByteSink = ByteSink>(
  dest: string,
  spec: DownloadSpec,
  options: DownloadOptions<S>,
): Promise<Downloaded<S>> {
  const progress = new Progress(options.sink);
  const have = await heldSize(dest, spec, options.log);
  if (have !== null && have > spec.size) {
    await Deno.remove(dest);
    logDiscard(options.log, spec, have, "larger_than_catalog", null);
  } else if (have !== null && have > 0) {
    // Bytes left by an earlier run: hashed once, here, and the download carries on after them.
    for await (const chunk of readFileFrom(dest)) progress.update(chunk);
  }
  /**
   * Accepts a complete download, or drops it (and throws) when its digest is wrong; `url` is
   * where its last bytes came from (null: an earlier run).
   */
  const accept = async (url: string | null): Promise<Downloaded<S>> => {
    const sha256 = progress.digest();
    if (sha256 !== spec.sha256) {
      await Deno.remove(dest);
      logDiscard(options.log, spec, progress.size, "digest_mismatch", url);
      progress.reset();
      throw new AgentError(
        "digest_mismatch",
        `${spec.label} does not match the SHA-256 in the catalog; the download was dropped`,
      );
    }
    return { size: progress.size, sha256, sink: progress.sink };
  };
  if (progress.size === spec.size) {
    try {
      return await accept(null);
    } catch (e) {
      if (!(e instanceof AgentError)) throw e;
      // Wrong bytes from an earlier run: dropped; downloaded again below.
    }
  }
  // Each URL in turn (a site's local component server first, the NOC last); what one serves is
  // checked before the next is tried, so a mirror serving wrong bytes only costs its own attempt.
  let last: AgentError | null = null;
  const attempt = async (url: string) => {
    await fetchInto(url, dest, spec, options, progress);
    if (progress.size !== spec.size) {
      throw new AgentError(
        "size_mismatch",
        `${spec.label} is ${progress.size} bytes, expected ${spec.size}`,
      );
    }
    return await accept(url);
  };
  for (const url of spec.urls) {
    try {
      const resumed = progress.size > 0;
      try {
        return await attempt(url);
      } catch (e) {
        // Resumed on top of bytes from elsewhere (a mirror that served wrong ones, say): this URL
        // gets a whole attempt of its own before it is judged.
        if (!resumed || !(e instanceof AgentError) || e.code !== "digest_mismatch") throw e;
        return await attempt(url);
      }
    } catch (e) {
      if (e instanceof AgentError && e.code === "write_failed") {
        // A full disk: what was written is given back, so the agent can still record its state.
        const written = (await lstatOrNull(dest).catch(() => null))?.size ?? 0;
        await Deno.remove(dest).catch(() => {});
        if (written > 0) logDiscard(options.log, spec, written, "write_failed", url);
        throw e;
      }
      last = e instanceof AgentError
        ? e
        : new AgentError("download_failed", `Download of ${spec.label} failed: ${String(e)}`);
      options.log.warn("download_failed", {
        component: spec.label,
        url: redact(url),
        reason: last.code,
        error: last.message,
      });
    }
  }
  throw last ?? new AgentError("download_failed", `${spec.label} has no URL to download from`);
}

/** A URL without its query (download grants are bearer tokens). */
export function redact(url: string): string {
  return url.replace(/\?.*$/, "?…");
}

async function fetchInto<S extends ByteSink>(
  url: string,
  dest: string,
  spec: DownloadSpec,
  options: DownloadOptions<S>,
  progress: Progress<S>,
): Promise<void> {
  // The file holds the bytes hashed so far; a write cut short may have left more (cut off once
  // the file is open, below).
  const held = await heldSize(dest, spec, options.log);
  if ((held ?? 0) < progress.size) {
    logDiscard(options.log, spec, progress.size, "file_changed", url);
    progress.reset();
  }
  const from = progress.size;
  const abort = new AbortController();
  let idle = setTimeout(() => abort.abort(), timerMs(options.idleMs));
  const touch = () => {
    clearTimeout(idle);
    idle = setTimeout(() => abort.abort(), timerMs(options.idleMs));
  };
  // An overall deadline too: a server dripping a byte now and then never trips the idle timeout.
  // From the catalog's size, so bounded: a delay past 2^31 ms would fire at once.
  const deadlineMs = timerMs(
    ((options.graceS ?? 120) + (spec.size - from) / (options.minBytesPerS ?? 16 * 1024)) * 1000,
  );
  let late = false;
  const overall = setTimeout(() => {
    late = true;
    abort.abort();
  }, deadlineMs);
  try {
    const headers: Record<string, string> = {};
    if (from > 0 && from < spec.size) headers["range"] = `bytes=${from}-`;
    // No redirects: an HTTPS file URL must not end up served over plain HTTP.
    const res = await (options.fetch ?? fetch)(url, {
      headers,
      signal: abort.signal,
      redirect: "manual",
    });
    let append = false;
    if (res.status === 206 && from > 0) {
      const m = res.headers.get("content-range")?.match(/^bytes (\d+)-/);
      if (!m || Number(m[1]) !== from) {
        await res.body?.cancel();
        throw new AgentError("download_failed", `Server resumed ${spec.label} at the wrong offset`);
      }
      append = true;
      options.log.info("download_resumed", {
        component: spec.label,
        url: redact(url),
        held: from,
        size: spec.size,
      });
    } else if (res.status === 416) {
      await res.body?.cancel();
      await Deno.remove(dest).catch(() => {});
      if (progress.size > 0) logDiscard(options.log, spec, progress.size, "range_refused", url);
      progress.reset();
      throw new AgentError("download_failed", `Server refused to resume ${spec.label}`);
    } else if (!res.ok) {
      const body = await errorText(res);
      throw new AgentError(
        "download_failed",
        `Server answered ${res.status} for ${spec.label}: ${body}`,
      );
    }
    if (!res.body) {
      throw new AgentError("download_failed", `Server sent no body for ${spec.label}`);
    }
    const body = res.body;
    if (!append) {
      // The server starts from the first byte: whatever was held goes.
      if (progress.size > 0) logDiscard(options.log, spec, progress.size, "range_ignored", url);
      progress.reset();
    }
    let file: Deno.FsFile;
    try {
      file = await openUnfollowed(dest, held !== null);
    } catch (e) {
      throw new AgentError(
        "write_failed",
        `Cannot open "${dest}" to write ${spec.label}: ${e instanceof Error ? e.message : e}`,
      );
    }
    try {
      // Through the handle, never the path: from the bytes hashed so far, or from the start.
      await file.truncate(append ? from : 0);
      await file.seek(append ? from : 0, Deno.SeekMode.Start);
      for await (const chunk of body) {
        touch();
        if (progress.size + chunk.length > spec.size) {
          throw new AgentError(
            "size_mismatch",
            `${spec.label} is longer than the ${spec.size} bytes the catalog says`,
          );
        }
        try {
          let at = 0;
          while (at < chunk.length) at += await file.write(chunk.subarray(at));
        } catch (e) {
          throw new AgentError(
            "write_failed",
            `Cannot write ${spec.label} to "${dest}": ${e instanceof Error ? e.message : e}`,
          );
        }
        progress.update(chunk); // hashed as it arrives, once it is on disk
        cutPoint("download");
        options.log.progress(spec.label, progress.size, spec.size);
      }
      await file.sync().catch(() => {});
    } finally {
      file.close();
    }
  } catch (e) {
    if (abort.signal.aborted && !(e instanceof AgentError)) {
      throw new AgentError(
        "download_failed",
        late
          ? `${spec.label}: too slow, not done within ${Math.round(deadlineMs / 1000)} s`
          : `${spec.label}: no data for ${options.idleMs} ms`,
      );
    }
    throw e;
  } finally {
    clearTimeout(idle);
    clearTimeout(overall);
  }
}
