/**
 * `/ui/login` and `/ui/logout`: signing in — an operator's name and password, or a token (an
 * operator's personal token or an admin token) — opens a session (HttpOnly cookie); the sign-in
 * form has its own CSRF token, double-submitted in a cookie, as there is no session yet. Every
 * sign-in, failed sign-in and sign-out is written to the audit log.
 *
 * @module
 */
import { Hono } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { timingSafeEqual } from "node:crypto";
import { bearerActor } from "../../../services/admin_tokens.ts";
import {
  type Actor,
  getOperator,
  operatorByPassword,
  operatorName,
  touchSignIn,
} from "../../../services/operators.ts";
import { writeAudit } from "../../../services/audit.ts";
import {
  closeSession,
  findSession,
  openSession,
  sessionCookie,
  sessionTtlS,
} from "../../../services/console_sessions.ts";
import { isHttps } from "../../v1/components.ts";
import { clientAddress } from "../../middleware/appliance_auth.ts";
import { Layout } from "../layout.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { type ConsoleContext, field, formOf, html } from "../page.ts";

/** Where to go after signing in: a console path, or `/ui` when `n` is anything else. */
export const safeNext = (n: string | undefined): string =>
  n && /^\/ui(\/[A-Za-z0-9/_.-]*)?(\?[A-Za-z0-9_.=&%+,:@~-]*)?$/.test(n) ? n : "/ui";

/** `GET` and `POST /ui/login` (rate-limited per client address), `POST /ui/logout`. */
export function loginPages(p: PageDeps) {
  const { deps } = p;
  const secure = (c: Parameters<typeof isHttps>[0]) => isHttps(c, deps.settings.trustProxy);
  /**
   * Writes a sign-in, failed sign-in or sign-out to the audit log, retried once without the
   * summary; false (logged and counted) when both fail.
   */
  const record = async (
    c: ConsoleContext,
    e: {
      actor: string;
      role: Actor["role"] | null;
      route: string;
      status: number;
      /** The audit record's error code: a failed sign-in's. */
      refused: string | null;
      summary: Record<string, unknown> | null;
    },
  ): Promise<boolean> => {
    const { refused, ...rest } = e;
    const entry = {
      ...rest,
      error: refused,
      via: "console" as const,
      method: "POST",
      path: e.route,
      targets: {},
      address: clientAddress(c, deps.settings.trustProxy),
      userAgent: c.req.header("user-agent")?.slice(0, 200) ?? null,
    };
    const opts = { clock: deps.clock, prune: deps.checkins.instance.clockSkewS === null };
    for (const attempt of [entry, { ...entry, summary: null }]) {
      try {
        await writeAudit(deps.db, attempt, opts);
        return true;
      } catch (err) {
        deps.metrics.inc("noc_audit_failures_total", { stage: "console" });
        deps.log.error("audit_write_failed", {
          path: e.route,
          stage: "console",
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
    return false;
  };
  /**
   * The actor of a failed sign-in: the name typed only when an operator of that name exists (a
   * password typed into the name field is never recorded), else `(unknown name)`.
   */
  const triedName = async (name: string): Promise<string> => {
    if (name === "") return "(none)";
    if (!operatorName.safeParse(name).success) return "(unknown name)";
    return (await getOperator(deps.db, name)) ? name : "(unknown name)";
  };
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
          {failed && (
            <p class="flash error" role="alert">
              Not signed in: that name and password, or that token, is not valid.
            </p>
          )}
          <form method="post" action="/ui/login" class="panel">
            <input type="hidden" name="_csrf" value={token} />
            <input type="hidden" name="next" value={next} />
            <fieldset>
              <legend>Your name and password</legend>
              <label>
                Name
                <input type="text" name="name" autocomplete="username" maxlength={64} />
              </label>
              <label>
                Password
                <input
                  type="password"
                  name="password"
                  autocomplete="current-password"
                  maxlength={256}
                />
              </label>
            </fieldset>
            <fieldset>
              <legend>Or a token</legend>
              <label>
                Personal or admin token
                <input type="password" name="token" autocomplete="off" size={50} maxlength={200} />
              </label>
            </fieldset>
            <button type="submit">Sign in</button>
          </form>
          <p class="muted">
            An administrator creates operators (<code>noc operator add</code>, or the Operators
            page). The admin token printed by{" "}
            <code>deno task dev</code>, or set with NOC_ADMIN_TOKEN, signs in as admin.
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
      const next = safeNext(field(form, "next"));
      const token = field(form, "token");
      const name = field(form, "name").toLowerCase();
      // Bounded before anything is hashed or looked up.
      const password = typeof form["password"] === "string" ? form["password"] : "";
      let actor: Actor | null = null;
      if (token !== "") {
        if (token.length <= 200) actor = await bearerActor(deps.db, token);
      } else if (name !== "" && password !== "" && name.length <= 64 && password.length <= 256) {
        actor = await operatorByPassword(deps.db, name, password);
      }
      const how = token !== "" ? "token" : "password";
      if (actor === null) {
        await record(c, {
          actor: token !== "" ? "(token)" : await triedName(name),
          role: null,
          route: "/ui/login",
          status: 303,
          refused: "sign_in_failed",
          summary: { how },
        });
        deps.log.warn("console_sign_in_failed", { how });
        return c.redirect(`/ui/login?failed=1&next=${encodeURIComponent(next)}`, 303);
      }
      // A new session every sign-in: one from before (anyone's) is ended, never reused.
      const previous = getCookie(c, sessionCookie);
      if (previous) await closeSession(deps.db, previous);
      const now = deps.clock.now();
      const s = await openSession(
        deps.db,
        actor.operatorId === null ? { kind: "admin-token", token, label: actor.name } : {
          kind: "operator",
          operatorId: actor.operatorId,
          name: actor.name,
          tokenId: actor.tokenId,
        },
        now,
      );
      if (actor.operatorId !== null) await touchSignIn(deps.db, actor.operatorId, now);
      const recorded = await record(c, {
        actor: actor.name,
        role: actor.role,
        route: "/ui/login",
        status: 303,
        refused: null,
        summary: { how },
      });
      if (!recorded) {
        // No session without its record: the sign-in is undone.
        await closeSession(deps.db, s.id);
        return await html(
          c,
          <Layout title="Not signed in" ctx={null}>
            <p class="flash error" role="alert">
              Not signed in: the audit log cannot be written now. Try again shortly.
            </p>
          </Layout>,
          503,
        );
      }
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
      deps.log.info("console_signed_in", { label: actor.name, role: actor.role, how });
      return c.redirect(next, 303);
    })
    .post("/logout", p.signedIn, async (c) => {
      const id = getCookie(c, sessionCookie);
      const who = await findSession(deps.db, id, deps.clock.now());
      if (id) await closeSession(deps.db, id);
      if (who) {
        await record(c, {
          actor: who.label,
          role: who.role,
          route: "/ui/logout",
          status: 303,
          refused: null,
          summary: null,
        });
      }
      setCookie(c, sessionCookie, "", { path: "/", maxAge: 0 });
      return c.redirect("/ui/login", 303);
    });
}
