/**
 * The console as a browser uses it, for tests: sign in with the admin token, then read pages and
 * post forms with the session cookie and its CSRF token. In process through `app.request()` for a
 * test NOC; over real HTTP (`fetch`, redirects not followed) for a NOC served on a port.
 */
import assert from "node:assert/strict";
import type { TestNoc } from "./_harness.ts";
import type { ServedNoc } from "./_agent.ts";

/** A signed-in console session. */
export interface ConsoleSession {
  /** The session cookie, ready for a `cookie` header: `noc_session=…`. */
  session: string;
  /** The session's CSRF token, as every console form carries it in `_csrf`. */
  csrf: string;
  /** GETs a console path such as `/ui/releases` with the session cookie; redirects are returned. */
  get(path: string): Promise<Response>;
  /**
   * Posts a form to a console path with the session cookie and `_csrf` added: URL-encoded, or
   * multipart when a field is a `File` (the publish form). Asserts the console answered 303 (the
   * body is in the message otherwise); returns the `flash` message it redirects with (or its
   * `error`, a refusal), or "".
   */
  post(path: string, fields?: Record<string, string | File>): Promise<string>;
}

const inProcessBase = "http://noc.test";
const csrfField = /name="_csrf" value="([^"]+)"/;

/**
 * Signs in to the console of `noc` with its admin token, as the sign-in page does: reads the page
 * for its cookie and CSRF token, posts the token, keeps the `noc_session` cookie, and reads the
 * session's CSRF token from `/ui`. A `ServedNoc` is reached over HTTP at its `url`; any other test
 * NOC through `app.request()`. Throws (assertion) when sign-in does not answer 303.
 */
export async function signIn(noc: TestNoc | ServedNoc): Promise<ConsoleSession> {
  const base = "url" in noc ? noc.url : inProcessBase;
  const send = (path: string, init: RequestInit = {}): Promise<Response> =>
    "url" in noc
      ? fetch(`${base}${path}`, { redirect: "manual", ...init })
      : Promise.resolve(noc.app.request(`${base}${path}`, init));
  let r = await send("/ui/login");
  const cookie = r.headers.get("set-cookie")!.split(";")[0]!;
  const loginCsrf = (await r.text()).match(csrfField)![1]!;
  r = await send("/ui/login", {
    method: "POST",
    headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ _csrf: loginCsrf, token: noc.adminToken, next: "/ui" }),
  });
  await r.body?.cancel();
  assert.equal(r.status, 303);
  const session = r.headers.getSetCookie().find((h) => h.startsWith("noc_session="))!
    .split(";")[0]!;
  const get = (path: string) => send(path, { headers: { cookie: session } });
  const csrf = (await (await get("/ui")).text()).match(csrfField)![1]!;
  return {
    session,
    csrf,
    get,
    async post(path, fields = {}) {
      const multipart = Object.values(fields).some((v) => v instanceof File);
      let body: FormData | URLSearchParams;
      if (multipart) {
        body = new FormData();
        for (const [k, v] of Object.entries(fields)) body.set(k, v);
        body.set("_csrf", csrf);
      } else {
        body = new URLSearchParams({ ...fields as Record<string, string>, _csrf: csrf });
      }
      const res = await send(path, {
        method: "POST",
        headers: multipart
          ? { cookie: session }
          : { cookie: session, "content-type": "application/x-www-form-urlencoded" },
        body,
      });
      const text = await res.text();
      assert.equal(res.status, 303, `${path}: ${res.status} ${text}`);
      const to = new URL(res.headers.get("location")!, base).searchParams;
      return to.get("flash") ?? to.get("error") ?? "";
    },
  };
}
