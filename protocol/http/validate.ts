/** Request parsing at the boundary: bounded body reads, JSON, and zod validation with named errors. */
import type { Context, MiddlewareHandler } from "hono";
import { zValidator } from "@hono/zod-validator";
import { z as zod } from "zod";
import type { z } from "zod";
import { ApiError } from "./errors.ts";
import { badJson } from "../schemas.ts";
import { collectBytes, limitStream } from "../util/bytes.ts";

type Target = "json" | "query" | "param";

/** Turns zod issues into `[{ path, message }]` and a one-line summary naming the first field. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): {
  message: string;
  issues: Array<{ path: string; message: string }>;
} {
  const list = issues.map((i) => ({
    path: i.path.map(String).join(".") || "(root)",
    message: i.message,
  }));
  const first = list[0];
  return {
    message: first ? `Field "${first.path}": ${first.message}` : "Invalid input",
    issues: list,
  };
}

/** Throws a 400 `invalid_<target>` naming the failing fields. */
export function invalid(target: string, issues: readonly z.core.$ZodIssue[]): never {
  const d = describeIssues(issues);
  throw new ApiError(400, `invalid_${target}`, d.message, { issues: d.issues });
}

/**
 * Hono validator middleware for `target` that answers bad input with our JSON
 * 400; JSON bodies are also checked for depth, NUL and unpaired surrogates
 * before the schema sees them.
 */
export function validate<T extends z.ZodType, K extends Target>(target: K, schema: T) {
  const guarded = target === "json"
    ? (zod.unknown().superRefine((v, ctx) => {
      const bad = badJson(v, 32);
      if (bad) ctx.addIssue({ code: "custom", message: `Request body ${bad}`, abort: true });
    }).pipe(schema) as unknown as T)
    : schema;
  return zValidator(target, guarded, (result) => {
    if (!result.success) invalid(target === "json" ? "body" : target, result.error.issues);
  });
}

/**
 * For routes whose JSON body is optional: an empty body (none, or only white space, whatever its
 * Content-Type) is read as `{}`, so `curl -X POST -H 'content-type: application/json' …` with no
 * `-d` works as the docs' examples do. Put it before {@link validate}.
 */
export function emptyBodyAsObject(): MiddlewareHandler {
  return async (c, next) => {
    const raw = c.req.raw;
    const text = raw.body ? await raw.clone().text() : "";
    if (text.trim() === "") {
      const headers = new Headers(raw.headers);
      headers.set("content-type", "application/json");
      headers.delete("content-length");
      c.req.raw = new Request(raw, { body: "{}", headers });
    }
    await next();
  };
}

/**
 * Refuses a body over `maxBytes` (by its Content-Length, or by counting it as
 * it arrives) or one that has not all arrived within `timeoutS`; otherwise
 * buffers it, so handlers read it at once.
 */
export function requestSizeLimit(maxBytes: number, timeoutS = 30): MiddlewareHandler {
  return async (c, next) => {
    const stream = c.req.raw.body;
    if (!stream) return await next();
    const len = c.req.header("content-length");
    if (len !== undefined && Number(len) > maxBytes) tooLarge(maxBytes);
    const body = await readStream(stream, maxBytes, timeoutS);
    c.req.raw = new Request(c.req.raw, { body });
    await next();
  };
}

function tooLargeError(maxBytes: number): ApiError {
  return new ApiError(413, "body_too_large", `Request body is larger than ${maxBytes} bytes`);
}

function tooLarge(maxBytes: number): never {
  throw tooLargeError(maxBytes);
}

/**
 * Reads `stream` whole: at most `maxBytes`, all of it within `timeoutS` (else 413 or 408); a
 * body that breaks off (its client went away mid-upload) is 400 `body_unreadable`, not a server
 * error (review 23a: each made an error-level log line, at an attacker's will).
 */
async function readStream(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
  timeoutS: number,
): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return await collectBytes(limitStream(stream, {
      maxBytes,
      onTooLarge: () => tooLargeError(maxBytes),
      deadlineS: timeoutS,
      onLate: () =>
        new ApiError(408, "request_timeout", `Request body did not arrive within ${timeoutS} s`),
    }));
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(
      400,
      "body_unreadable",
      `The request body broke off before its end: ${
        String(e instanceof Error ? e.message : e).slice(0, 200)
      }`,
    );
  }
}

/**
 * Reads the raw body, refusing more than `maxBytes` whatever Content-Length
 * says, and a body that has not all arrived within `timeoutS` (a slow sender
 * holds nothing for long).
 */
export async function readBody(
  c: Context,
  maxBytes: number,
  timeoutS = 30,
): Promise<Uint8Array<ArrayBuffer>> {
  const len = c.req.header("content-length");
  if (len !== undefined && Number(len) > maxBytes) tooLarge(maxBytes);
  const stream = c.req.raw.body;
  if (!stream) return new Uint8Array();
  return await readStream(stream, maxBytes, timeoutS);
}

/** Parses `bytes` as JSON (requiring a JSON content type) and validates it with `schema`. */
export function parseJsonBody<T extends z.ZodType>(
  c: Context,
  bytes: Uint8Array,
  schema: T,
): z.infer<T> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `Content-Type must be application/json, not "${type}"`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new ApiError(400, "malformed_json", "Request body is not valid JSON");
  }
  const bad = badJson(value, 32);
  if (bad) {
    throw new ApiError(400, "invalid_body", `Request body ${bad}`, {
      issues: [{ path: "(root)", message: bad }],
    });
  }
  const r = schema.safeParse(value);
  if (!r.success) invalid("body", r.error.issues);
  return r.data;
}
