/**
 * Downloads with resume: bytes go to a file in the downloads folder; a
 * download cut short (a dropped link, a crash, a full disk) continues from
 * where it stopped with an HTTP `Range` request. The result is accepted only
 * when its size and SHA-256 match what the signed catalog promised.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { AgentError } from "./errors.ts";
import type { AgentLog } from "./log.ts";
import { readFileFrom } from "../protocol/package/file.ts";

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

async function fileSize(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function digestFile(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of readFileFrom(path)) h.update(chunk);
  return h.digest("hex");
}

/**
 * Fetches `spec` into `dest`, trying each URL in turn, resuming a partial
 * file; throws {@link AgentError} (`download_failed`, `size_mismatch`,
 * `digest_mismatch`, `write_failed`).
 */
export async function download(dest: string, spec: DownloadSpec, options: {
  idleMs: number;
  log: AgentLog;
  fetch?: typeof fetch;
  /** The slowest average a download may have, bytes per second, after `graceS` (16 KiB/s). */
  minBytesPerS?: number;
  /** Seconds before the average counts (120). */
  graceS?: number;
}): Promise<void> {
  const have = await fileSize(dest);
  if (have !== null && have > spec.size) await Deno.remove(dest);
  if (have === spec.size) {
    if (await digestFile(dest) === spec.sha256) return;
    await Deno.remove(dest);
  }
  // Each URL in turn (a site's local component server first, the NOC last); what one serves is
  // checked before the next is tried, so a mirror serving wrong bytes only costs its own attempt.
  let last: AgentError | null = null;
  const attempt = async (url: string) => {
    await fetchInto(url, dest, spec, options);
    const got = await fileSize(dest);
    if (got !== spec.size) {
      throw new AgentError("size_mismatch", `${spec.label} is ${got} bytes, expected ${spec.size}`);
    }
    if (await digestFile(dest) !== spec.sha256) {
      await Deno.remove(dest);
      throw new AgentError(
        "digest_mismatch",
        `${spec.label} does not match the SHA-256 in the catalog; the download was dropped`,
      );
    }
  };
  for (const url of spec.urls) {
    try {
      const resumed = ((await fileSize(dest)) ?? 0) > 0;
      try {
        await attempt(url);
      } catch (e) {
        // Resumed on top of bytes from elsewhere (a mirror that served wrong ones, say): this URL
        // gets a whole attempt of its own before it is judged.
        if (!resumed || !(e instanceof AgentError) || e.code !== "digest_mismatch") throw e;
        await attempt(url);
      }
      return;
    } catch (e) {
      if (e instanceof AgentError && e.code === "write_failed") {
        // A full disk: what was written is given back, so the agent can still record its state.
        await Deno.remove(dest).catch(() => {});
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

async function fetchInto(url: string, dest: string, spec: DownloadSpec, options: {
  idleMs: number;
  log: AgentLog;
  fetch?: typeof fetch;
  /** The slowest average a download may have, bytes per second, after `graceS` (16 KiB/s). */
  minBytesPerS?: number;
  /** Seconds before the average counts (120). */
  graceS?: number;
}): Promise<void> {
  const from = (await fileSize(dest)) ?? 0;
  const abort = new AbortController();
  let idle = setTimeout(() => abort.abort(), options.idleMs);
  const touch = () => {
    clearTimeout(idle);
    idle = setTimeout(() => abort.abort(), options.idleMs);
  };
  // An overall deadline too: a server dripping a byte now and then never trips the idle timeout.
  const deadlineMs = ((options.graceS ?? 120) +
    (spec.size - from) / (options.minBytesPerS ?? 16 * 1024)) * 1000;
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
    } else if (res.status === 416) {
      await res.body?.cancel();
      await Deno.remove(dest).catch(() => {});
      throw new AgentError("download_failed", `Server refused to resume ${spec.label}`);
    } else if (!res.ok) {
      const body = (await res.text()).slice(0, 300);
      throw new AgentError(
        "download_failed",
        `Server answered ${res.status} for ${spec.label}: ${body}`,
      );
    }
    if (!res.body) {
      throw new AgentError("download_failed", `Server sent no body for ${spec.label}`);
    }
    const body = res.body;
    let done = append ? from : 0;
    const file = await Deno.open(dest, {
      write: true,
      create: true,
      append,
      truncate: !append,
      mode: 0o600,
    });
    try {
      for await (const chunk of body) {
        touch();
        if (done + chunk.length > spec.size) {
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
        done += chunk.length;
        options.log.progress(spec.label, done, spec.size);
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
