/** HTTP `Range` requests (RFC 9110 §14): the single byte range resumable downloads send. */
import { ApiError } from "./errors.ts";

/** Parses a single `bytes=` range against `size`; null to serve it all; throws 416 when unsatisfiable. */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null; // multiple or odd ranges: serve the whole thing
  let start: number, end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) throw unsatisfiable(size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): ApiError {
  return new ApiError(416, "range_not_satisfiable", `Range is outside the ${size} bytes`, {}, {
    "content-range": `bytes */${size}`,
  });
}

/** How to answer a component download: its status, byte range and headers. */
export interface ComponentAnswer {
  /** 206 for a range, 200 for the whole. */
  status: 200 | 206;
  /** First byte sent. */
  start: number;
  /** Last byte sent (inclusive). */
  end: number;
  /** Bytes sent. */
  length: number;
  /** Content type, length, range, ETag and caching headers. */
  headers: Record<string, string>;
}

/**
 * The answer to a download of component `c` with `Range` header `range` (the
 * NOC's component server and a local one answer alike); throws 416 when the
 * range is unsatisfiable.
 */
export function componentAnswer(
  range: string | undefined,
  c: { kind: "package" | "file"; size: number; sha256: string },
): ComponentAnswer {
  const r = parseRange(range, c.size);
  const start = r?.start ?? 0;
  const end = r?.end ?? c.size - 1;
  const length = c.size === 0 ? 0 : end - start + 1;
  const headers: Record<string, string> = {
    "content-type": c.kind === "package"
      ? "application/vnd.noc-package"
      : "application/octet-stream",
    "content-length": String(length),
    "accept-ranges": "bytes",
    "etag": `"${c.sha256}"`,
    "cache-control": "private, no-transform",
  };
  if (r) headers["content-range"] = `bytes ${start}-${end}/${c.size}`;
  return { status: r ? 206 : 200, start, end, length, headers };
}
