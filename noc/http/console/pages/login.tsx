/**
 * `/ui/login` and `/ui/logout`: signing in with an admin token opens a
 * session (HttpOnly cookie); the sign-in form has its own CSRF token,
 * double-submitted in a cookie, as there is no session yet.
 *
 * @module
 */
import { Hono } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { timingSafeEqual } from "node:crypto";
import { adminTokenLabel } from "../../../services/admin_tokens.ts";
import {
  closeSession,
  openSession,
  sessionCookie,
  sessionTtlS,
} from "../../../services/console_sessions.ts";
import { isHttps } from "../../v1/components.ts";
import { clientAddress } from "../../middleware/appliance_auth.ts";
import { Layout } from "../layout.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { field, formOf, html } from "../page.ts";

/** Where to go after signing in: a console path, or `/ui` when `n` is anything else. */
export const safeNext = (n: string | undefined): string =>
  n && /^\/ui(\/[A-Za-z0-9/_.-]*)?(\?[A-Za-z0-9_.=&%+,:@~-]*)?$/.test(n) ? n : "/ui";

/** `GET` and `POST /ui/login` (rate-limited per client address), `POST /ui/logout`. */
export function loginPages(p: PageDeps) {
  const { deps } = p;
  const secure = (c: Parameters<typeof isHttps>[0]) => isHttps(c, deps.settings.trustProxy);
  return new Hono<ConsoleEnv>()
    .get("/login", p.small, async (c) => {
      const token = crypto.randomUUID();
      setCookie(c, "noc_login", token, {
        httpOnly: true,
        sameSite: "Strict",
        secure: secure(c),
        path: "/ui/login",
        maxAge: 1800,
      });
      const next = safeNext(c.req.query("next"));
      const failed = c.req.query("failed") !== undefined;
      return await html(
        c,
        <Layout title="Sign in" ctx={null}>
          {failed && <p class="flash">That admin token is not valid.</p>}
          <form method="post" action="/ui/login" class="panel">
            <input type="hidden" name="_csrf" value={token} />
            <input type="hidden" name="next" value={next} />
            <label>
              Admin token
              <input
                type="password"
                name="token"
                required
                autocomplete="current-password"
                size={60}
              />
            </label>
            <button type="submit">Sign in</button>
          </form>
          <p class="muted">
            The token printed by <code>deno task dev</code>, or one set with NOC_ADMIN_TOKEN.
          </p>
        </Layout>,
      );
    })
    .post("/login", p.small, async (c) => {
      const address = clientAddress(c, deps.settings.trustProxy) ?? "unknown";
      deps.limits.login.take(address, `address ${address}`);
      const form = await formOf(c);
      const cookie = getCookie(c, "noc_login");
      const given = new TextEncoder().encode(field(form, "_csrf"));
      const expected = new TextEncoder().encode(cookie ?? "");
      if (!cookie || given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return await html(
          c,
          <Layout title="Refused" ctx={null}>
            <p>
              The sign-in form is out of date. <a href="/ui/login">Sign in again</a>.
            </p>
          </Layout>,
          403,
        );
      }
      const token = field(form, "token");
      const label = await adminTokenLabel(deps.db, token);
      const next = safeNext(field(form, "next"));
      if (label === null) {
        return c.redirect(`/ui/login?failed=1&next=${encodeURIComponent(next)}`, 303);
      }
      // A new session every sign-in: one from before (anyone's) is ended, never reused.
      const previous = getCookie(c, sessionCookie);
      if (previous) await closeSession(deps.db, previous);
      const s = await openSession(deps.db, token, label, deps.clock.now());
      setCookie(c, "noc_login", "", { path: "/ui/login", maxAge: 0 });
      // Lax: a link to a console page from mail or chat opens signed in; every change is a POST
      // that also needs the CSRF token.
      setCookie(c, sessionCookie, s.id, {
        httpOnly: true,
        sameSite: "Lax",
        secure: secure(c),
        path: "/",
        maxAge: sessionTtlS,
      });
      deps.log.info("console_signed_in", { label });
      return c.redirect(next, 303);
    })
    .post("/logout", p.signedIn, async (c) => {
      const id = getCookie(c, sessionCookie);
      if (id) await closeSession(deps.db, id);
      setCookie(c, sessionCookie, "", { path: "/", maxAge: 0 });
      return c.redirect("/ui/login", 303);
    });
}
