/**
 * What every console page shares: its Hono environment, its dependencies, and
 * the helpers that render a page, read a form, check a route parameter and
 * redirect back with a message.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ApiError } from "../../../protocol/http/errors.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import type { AdminClient, RawAdminCall } from "./admin_client.ts";
import type { PageContext } from "./layout.tsx";
import { createHmac, timingSafeEqual } from "node:crypto";
import { fromBase64Url, toBase64Url, utf8 } from "../../../protocol/util/encoding.ts";

/** The console's Hono environment: the app's, plus what the session guard sets. */
export type ConsoleEnv = AppEnv & {
  Variables: {
    /** The signed-in operator, CSRF token and flash message, for the page frame. */
    page: PageContext;
    /** The admin API, called in process as the signed-in operator. */
    api: AdminClient;
    /** The same, raw, for the one call `hc` cannot type (see {@link RawAdminCall}). */
    rawApi: RawAdminCall;
    /** Seals a redirect's messages for this session (see {@link sealFlash}, {@link redirectWith}). */
    flashSeal: (parts: FlashParts) => string;
  };
};

/** What a console handler is given: `c.var.page`, `c.var.api` and `c.var.rawApi` are set. */
export type ConsoleContext = Context<ConsoleEnv>;

/** What a page's routes are built from. */
export interface PageDeps {
  /** The NOC's dependencies. */
  deps: AppDeps;
  /** The small body limit on its own (sign-in, static files). */
  small: MiddlewareHandler;
  /**
   * Route guard: a session, then (on a POST) the role its route needs (`consoleWriteRole`, mod.tsx)
   * and a same-origin request, all before any of the body is read; then the small body limit and
   * the form's CSRF token.
   */
  signedIn: MiddlewareHandler<ConsoleEnv>;
  /** As `signedIn`, with the upload body limit instead (the publish form only). */
  signedInUpload: MiddlewareHandler<ConsoleEnv>;
}

/** A page as hono/jsx builds it (rendered to text by {@link html}). */
export type Page = JSX.Element;

/**
 * Answers with `page` as an HTML document (`cache-control: no-store`; the
 * console's secure headers add its CSP). A status outside 200-599 (never
 * expected) is answered as 500.
 */
export async function html(
  c: Context,
  page: Page,
  status = 200,
  headers: Record<string, string> = {},
): Promise<Response> {
  const text = "<!doctype html>" + await page.toString();
  const code = (status >= 200 && status <= 599 ? status : 500) as ContentfulStatusCode;
  return c.html(text, code, { "cache-control": "no-store", ...headers });
}

/** A form field as trimmed text ("" when absent or a file). */
export function field(form: Record<string, unknown>, name: string): string {
  const v = form[name];
  return typeof v === "string" ? v.trim() : "";
}

/**
 * What a redirect carries to the page it lands on: a success message, a refusal, and the fields of
 * the refused form (to refill it).
 */
export interface FlashParts {
  /** A success, shown with `role="status"`. */
  flash?: string | undefined;
  /** A refusal, shown in the error style with `role="alert"`. */
  error?: string | undefined;
  /** The refused form's fields, by name (see {@link refused}). */
  kept?: Record<string, string> | undefined;
}

/** How long a redirect's flash, refusal and kept form can be shown, seconds (5 minutes). */
export const flashTtlS = 5 * 60;

/** Upper bound of the kept form, in bytes of its encoded query value. */
const keptFormBytes = 4000;
/** Longest flash or refusal message, characters. */
const messageChars = 300;
/** Form fields never kept (nor put in a URL): secrets by name. */
const secretField = /pass|token|secret|key|seed|private|cookie|csrf/i;

function flashMac(session: string, exp: number, flash: string, error: string, kept: string) {
  // A key of its own per session, derived from the session's cookie value (never stored as is).
  const key = createHmac("sha256", utf8(session)).update("noc console flash v1").digest();
  return toBase64Url(
    new Uint8Array(
      createHmac("sha256", key).update(JSON.stringify([exp, flash, error, kept])).digest(),
    ),
  );
}

function encodeKept(kept: Record<string, string> | undefined): string {
  if (!kept) return "";
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(kept)) if (!secretField.test(k)) fields[k] = v;
  if (Object.keys(fields).length === 0) return "";
  const value = toBase64Url(utf8(JSON.stringify(fields)));
  return value.length <= keptFormBytes ? value : "";
}

/**
 * The query (no leading `?`) that carries `parts` to the next page of console session `session`
 * (its cookie value): `flash`, `error`, `kept` and `seal` = `<expiry, Unix s>.<HMAC-SHA256>` over
 * them, under a key derived from the session, valid {@link flashTtlS} seconds from `now`. Only
 * that session, before then, is shown them ({@link openFlash}). Messages are cut to 300
 * characters; a kept form over 4,000 bytes (encoded) is dropped, as are secret fields.
 */
export function sealFlash(session: string, now: Date, parts: FlashParts): string {
  const flash = parts.flash?.slice(0, messageChars) ?? "";
  const error = parts.error?.slice(0, messageChars) ?? "";
  const kept = encodeKept(parts.kept);
  const exp = Math.floor(now.getTime() / 1000) + flashTtlS;
  const q: string[] = [];
  if (flash) q.push(`flash=${encodeURIComponent(flash)}`);
  if (error) q.push(`error=${encodeURIComponent(error)}`);
  if (kept) q.push(`kept=${kept}`);
  if (q.length === 0) return "";
  q.push(`seal=${exp}.${flashMac(session, exp, flash, error, kept)}`);
  return q.join("&");
}

/**
 * The flash, refusal and kept form that `query` (a request's query parameters) carries for console
 * session `session` at `now`: all of them when its `seal` is this session's and has not expired,
 * else nothing at all (a forged link, another session's, an expired or altered one).
 */
export function openFlash(
  session: string | undefined,
  now: Date,
  query: Record<string, string>,
): { flash?: string; error?: string; kept: Record<string, string> } {
  const none = { kept: {} };
  const m = /^([0-9]{1,12})\.([A-Za-z0-9_-]{43})$/.exec(query["seal"] ?? "");
  if (!session || !m) return none;
  const exp = Number(m[1]);
  const nowS = now.getTime() / 1000;
  if (nowS > exp || exp > nowS + flashTtlS + 60) return none;
  const flash = query["flash"] ?? "", error = query["error"] ?? "", kept = query["kept"] ?? "";
  if (flash.length > messageChars || error.length > messageChars) return none;
  const a = utf8(flashMac(session, exp, flash, error, kept)), b = utf8(m[2]!);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return none;
  return {
    ...(flash ? { flash } : {}),
    ...(error ? { error } : {}),
    kept: decodeKept(kept),
  };
}

function decodeKept(v: string): Record<string, string> {
  if (!v || v.length > keptFormBytes || !/^[A-Za-z0-9_-]*$/.test(v)) return {};
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(fromBase64Url(v)));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return {};
    const out: Record<string, string> = {};
    for (const [k, x] of Object.entries(parsed)) {
      if (typeof x === "string" && x.length <= 2000) out[k] = x;
    }
    return out;
  } catch {
    return {};
  }
}

/**
 * The one way a console page redirects (303) with a message: to console path `to` with `parts`
 * sealed for this session ({@link sealFlash}). Without a session (never expected: every route
 * that redirects is signed in) the messages are dropped.
 */
export function redirectWith(c: ConsoleContext, to: string, parts: FlashParts): Response {
  const seal = c.get("flashSeal") as ((p: FlashParts) => string) | undefined;
  const q = seal ? seal(parts) : "";
  if (!q) return c.redirect(to, 303);
  return c.redirect(`${to}${to.includes("?") ? "&" : "?"}${q}`, 303);
}

/** Redirects (303) to console path `to` with `flash` shown there (a success, `role="status"`). */
export function back(c: ConsoleContext, to: string, flash: string): Response {
  return redirectWith(c, to, { flash });
}

/**
 * Redirects (303) to console path `to` with `message` shown there as an error (its own style,
 * `role="alert"`), and the fields of `form` kept so the page can refill them (see {@link kept}).
 * `_csrf`, files, and fields whose name mentions a password, token, key, seed or secret are never
 * kept; when the kept fields would exceed 4,000 bytes, none are kept (the message still is). Both
 * are sealed for this session ({@link sealFlash}).
 */
export function refused(
  c: ConsoleContext,
  to: string,
  message: string,
  form: Record<string, unknown> = {},
): Response {
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(form)) if (typeof v === "string") fields[k] = v;
  return redirectWith(c, to, { error: message, kept: fields });
}

/**
 * The form fields {@link refused} kept for this page, as text by name: only those sealed for this
 * session, not expired ({@link openFlash}); `{}` otherwise. Each value is at most 2,000 characters.
 */
export function kept(c: ConsoleContext): Record<string, string> {
  return c.var.page?.kept ?? {};
}

/** The request's form (urlencoded or multipart); 400 `malformed_form` when it cannot be read. */
export async function formOf(c: Context): Promise<Record<string, string | File>> {
  try {
    return await c.req.parseBody();
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(400, "malformed_form", "The form could not be read");
  }
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// Route parameters are checked before they go anywhere: they end up in admin API paths.

/** The `:uid` parameter; 404 unless it is a UUID. */
export function uidOf(c: Context): string {
  const v = c.req.param("uid") ?? "";
  if (!uuidPattern.test(v)) {
    throw new ApiError(404, "not_found", `"${v.slice(0, 60)}" is not an appliance UID`);
  }
  return v;
}

/** The `:id` parameter; 404 unless it is a positive integer. */
export function idOf(c: Context): string {
  const v = c.req.param("id") ?? "";
  if (!/^[1-9][0-9]{0,14}$/.test(v)) {
    throw new ApiError(404, "not_found", `"${v.slice(0, 60)}" is not an id`);
  }
  return v;
}

/** The parameter `name`; 404 unless it is a name (application, file). */
export function nameOf(c: Context, name: string): string {
  const v = c.req.param(name) ?? "";
  if (!namePattern.test(v)) {
    throw new ApiError(404, "not_found", `"${v.slice(0, 60)}" is not a name`);
  }
  return v;
}

/**
 * A console list's page from the request's query: `cursor` (the API's `nextCursor`, passed on as
 * given: the API refuses one it never gave) and `limit` (1–1,000; `size` otherwise, the API's
 * default page). `keep` is what a next-page link carries besides the cursor (a given `limit`).
 */
export function listPage(
  c: Context,
  size = 100,
  names: { cursor?: string; limit?: string } = {},
): { cursor?: string; limit: string; keep: Record<string, string>; first: boolean } {
  const cursorName = names.cursor ?? "cursor", limitName = names.limit ?? "limit";
  const cursor = c.req.query(cursorName)?.slice(0, 500) || undefined;
  const given = c.req.query(limitName) ?? "";
  const ok = /^[1-9][0-9]{0,3}$/.test(given) && Number(given) <= 1000;
  return {
    ...(cursor ? { cursor } : {}),
    limit: ok ? given : String(size),
    keep: ok ? { [limitName]: given } : {},
    first: cursor === undefined,
  };
}
