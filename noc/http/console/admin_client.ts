/**
 * The console's typed client for the admin API: Hono's `hc<AdminApp>` over
 * the in-process admin app (as `hono/testing`'s `testClient`), so every read
 * and action the console takes is an admin API request, typed by the API's
 * own routes and validators.
 *
 * @module
 */
import { hc } from "hono/client";
import { z } from "zod";
import type { AdminApp } from "../admin/mod.ts";
import { internalHeaderNames } from "../middleware/admin_auth.ts";
import type { Role } from "../../services/operators.ts";

/** The admin API as one signed-in operator calls it. */
export type AdminClient = ReturnType<typeof hc<AdminApp>>;

/** The origin in-process calls are addressed to; never resolved, never leaves the process. */
const origin = "http://console.internal/";

/**
 * Who the console calls the admin API as: the signed-in operator's name (or admin token label)
 * and current role, and the browser's address and user agent (what the audit log records).
 */
export interface ConsoleCaller {
  /** Operator name or admin token label. */
  label: string;
  /** Their role now; the admin API enforces it as for any caller. */
  role: Role;
  /** The browser's address, if known. */
  address: string | null;
  /** The browser's user agent, if any. */
  userAgent: string | null;
}

/**
 * A client that calls `admin` in process as `who`: the internal key (random, never leaves the
 * process) stands in for a bearer token, and `who` is what the admin API enforces (its role) and
 * records (name, address, user agent).
 */
export function adminClient(admin: AdminApp, internalKey: string, who: ConsoleCaller): AdminClient {
  return hc<AdminApp>(origin, {
    fetch: (input: RequestInfo | URL, init?: RequestInit) => admin.request(input, init),
    headers: internalHeaders(internalKey, who),
  });
}

function internalHeaders(internalKey: string, who: ConsoleCaller): Record<string, string> {
  const h: Record<string, string> = {
    [internalHeaderNames.key]: internalKey,
    [internalHeaderNames.label]: who.label,
    [internalHeaderNames.role]: who.role,
  };
  if (who.address) h[internalHeaderNames.address] = who.address.slice(0, 64);
  // Header values must be printable: anything else in a user agent is dropped.
  const agent = who.userAgent?.replace(/[^\x20-\x7e]/g, "").slice(0, 200);
  if (agent) h[internalHeaderNames.agent] = agent;
  return h;
}

/** A raw admin API call as one operator: `url` (from the typed client's `$url()`) with `query`. */
export type RawAdminCall = (
  url: URL,
  init: Omit<RequestInit, "headers"> & {
    headers?: Record<string, string>;
    query?: Record<string, string>;
  },
) => Promise<Response>;

/**
 * The raw call of {@link adminClient}'s operator, with the same headers. The
 * packages upload needs it: that route reads its query without a validator (a
 * signed package names itself), so `hc` cannot type `app`, `name` and
 * `version`; the URL still comes from the typed client (`api.packages.$url()`).
 */
export function rawAdminCall(
  admin: AdminApp,
  internalKey: string,
  who: ConsoleCaller,
): RawAdminCall {
  return async (url, { query, headers, ...init }) => {
    const target = new URL(url);
    if (query) target.search = new URLSearchParams(query).toString();
    return await admin.request(target, {
      ...init,
      headers: { ...headers, ...internalHeaders(internalKey, who) },
    });
  };
}

/** The admin API's refusal body (`{ error, message, issues? }`), as far as the console shows it. */
const refusalSchema = z.object({
  message: z.string().optional(),
  issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

/**
 * What a refused admin call says, for a flash message: its message and the
 * fields it names, or `Failed (<status>)` when the body says nothing.
 */
export async function refusal(res: { status: number; text(): Promise<string> }): Promise<string> {
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the status says it
  }
  const body = refusalSchema.safeParse(parsed);
  return body.success ? refusedAs(body.data, res.status) : `Failed (${res.status})`;
}

/** A refusal (`{ message, issues }`) as one line: the message, then the fields it names. */
export function refusedAs(
  body: {
    message?: string | undefined;
    issues?: Array<{ path: string; message: string }> | undefined;
  },
  status = 400,
): string {
  const issues = body.issues
    ? ` (${body.issues.map((i) => `${i.path}: ${i.message}`).join("; ")})`
    : "";
  return `${body.message ?? `Failed (${status})`}${issues}`;
}
