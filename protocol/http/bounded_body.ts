/**
 * Reading a response body up to a bound. A server (a NOC, a mirror, a local
 * component server, or a man in the middle) decides how long a body is; a
 * client that calls `res.text()` or `res.json()` on it holds all of it in
 * memory, and an endless body never ends. Every body a program here reads
 * whole goes through these functions instead (security.md, "Endless data").
 *
 * @module
 */
import { concatBytes } from "../util/bytes.ts";

/** A body longer than its bound. */
export class BodyTooLargeError extends Error {
  /** `limit` is the bound in bytes. */
  constructor(readonly limit: number) {
    super(`Response body is longer than ${limit} bytes`);
  }
}

/** The bound for an error answer's body: enough for any JSON error the NOC sends. */
export const ERROR_BODY_LIMIT = 64 * 1024;

/**
 * Reads `res`'s body as bytes, at most `limit` bytes. With `truncate`, a
 * longer body is cut at `limit`; otherwise it throws {@link BodyTooLargeError}.
 * Either way the rest of the body is cancelled, never read.
 */
export async function readBytesBounded(
  res: Response,
  limit: number,
  options: { truncate?: boolean } = {},
): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array();
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0; // bytes kept so far
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size + value.length > limit) {
        if (!options.truncate) throw new BodyTooLargeError(limit);
        parts.push(value.subarray(0, limit - size));
        size = limit;
        break;
      }
      parts.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  return concatBytes(parts);
}

/**
 * Reads `res`'s body as UTF-8 text, at most `limit` bytes (throws
 * {@link BodyTooLargeError} beyond it, unless `truncate`).
 */
export async function readTextBounded(
  res: Response,
  limit: number,
  options: { truncate?: boolean } = {},
): Promise<string> {
  return new TextDecoder().decode(await readBytesBounded(res, limit, options));
}

/**
 * The start of an error answer, for a log line or a message: at most
 * `chars` characters of its first {@link ERROR_BODY_LIMIT} bytes. Never throws.
 */
export async function errorText(res: Response, chars = 300): Promise<string> {
  try {
    return (await readTextBounded(res, ERROR_BODY_LIMIT, { truncate: true })).slice(0, chars);
  } catch {
    return "";
  }
}

/** A JSON error answer as read by {@link errorJson}: `error` and `message` are strings when present. */
export interface ErrorBody {
  /** The stable error code. */
  error?: string | undefined;
  /** The human-readable message. */
  message?: string | undefined;
  /** Any other field. */
  [field: string]: unknown;
}

/**
 * An error answer's JSON body (read up to {@link ERROR_BODY_LIMIT} bytes), or
 * `{}` when it is longer, not JSON or not an object. Never throws.
 */
export async function errorJson(res: Response): Promise<ErrorBody> {
  try {
    const v: unknown = JSON.parse(await readTextBounded(res, ERROR_BODY_LIMIT));
    if (v === null || typeof v !== "object" || Array.isArray(v)) return {};
    const o = v as Record<string, unknown>;
    return {
      ...o,
      error: typeof o.error === "string" ? o.error : undefined,
      message: typeof o.message === "string" ? o.message : undefined,
    };
  } catch {
    return {};
  }
}
