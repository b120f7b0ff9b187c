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
