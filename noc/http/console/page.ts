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
  /** Route guard: the small body limit, then a session (and, on a POST, its CSRF token). */
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

/** Redirects (303) to console path `to` with `flash` shown there (a success, `role="status"`). */
export function back(c: Context, to: string, flash: string): Response {
  const sep = to.includes("?") ? "&" : "?";
  return c.redirect(`${to}${sep}flash=${encodeURIComponent(flash.slice(0, 300))}`, 303);
}

/** Upper bound of the kept form, in bytes of its encoded query value. */
const keptFormBytes = 4000;

/**
 * Redirects (303) to console path `to` with `message` shown there as an error (its own style,
 * `role="alert"`), and the fields of `form` kept so the page can refill them (see {@link kept}).
 * `_csrf`, files, and fields whose name mentions a password or token are never kept; when the
 * kept fields would exceed 4,000 bytes, none are kept (the message still is).
 */
export function refused(
  c: Context,
  to: string,
  message: string,
  form: Record<string, unknown> = {},
): Response {
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(form)) {
    if (typeof v !== "string" || k === "_csrf" || /password|token|secret/i.test(k)) continue;
    fields[k] = v;
  }
  const value = toBase64Url(utf8(JSON.stringify(fields)));
  const keep = value.length <= keptFormBytes && Object.keys(fields).length > 0
    ? `&kept=${value}`
    : "";
  const sep = to.includes("?") ? "&" : "?";
  return c.redirect(
    `${to}${sep}error=${encodeURIComponent(message.slice(0, 300))}${keep}`,
    303,
  );
}

/**
 * The form fields {@link refused} kept for this page (`?kept=`), as text by name; `{}` when there
 * are none or they cannot be read. Only string values are returned, each at most 2,000 characters.
 */
export function kept(c: Context): Record<string, string> {
  const v = c.req.query("kept");
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
