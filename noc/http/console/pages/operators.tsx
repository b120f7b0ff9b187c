/**
 * `/ui/operators` (admin): named operators — create, change role, disable (asks first) or
 * enable, set a password, issue and revoke (asks first) personal API tokens — through
 * `/v1/admin/operators`.
 *
 * Every form is a Post/Redirect/Get. A new personal token's secret never travels in a URL or a
 * cookie: the POST keeps it sealed for this console session (noc/services/console_reveals.ts
 * `keepPersonalReveal`) and redirects to `/ui/operators/:name/tokens/:id/new`, which shows it to
 * this session alone for {@link revealTtlS} seconds (a reload shows it again and mints nothing).
 *
 * @module
 */
import { ifMatch, refusalOf, touched, Versioned } from "../revisions.tsx";
import { Hono } from "hono";
import { getCookie } from "hono/cookie";
import { z } from "zod";
import { Confirm, Csrf, Layout, Pager, Time } from "../layout.tsx";
import type { ConsoleContext, ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, idOf, kept, listPage, refused } from "../page.ts";
import { refusal } from "../admin_client.ts";
import { sessionCookie } from "../../../services/console_sessions.ts";
import {
  dropPersonalReveal,
  findPersonalReveal,
  keepPersonalReveal,
  type PersonalReveal,
  revealTtlS,
} from "../../../services/console_reveals.ts";

const operatorSchema = z.object({
  name: z.string(),
  role: z.enum(["admin", "operator", "viewer"]),
  hasPassword: z.boolean(),
  disabledAt: z.string().nullable(),
  lastSignInAt: z.string().nullable(),
  tokens: z.array(z.object({
    id: z.number(),
    label: z.string(),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
  })),
  revision: z.number().optional(),
});
type OperatorRow = z.infer<typeof operatorSchema>;

const namePattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const roleNames = ["viewer", "operator", "admin"] as const;

/** The `:name` parameter; null unless it is an operator name. */
function nameParam(c: ConsoleContext): string | null {
  const v = c.req.param("name") ?? "";
  return namePattern.test(v) ? v : null;
}

function RoleSelect(props: { name: string; value?: string | undefined; id?: string }) {
  return (
    <select name={props.name} id={props.id}>
      {roleNames.map((r) => <option value={r} selected={props.value === r}>{r}</option>)}
    </select>
  );
}

type Child = Parameters<typeof Layout>[0]["children"];

function operatorsPage(
  c: ConsoleContext,
  list:
    | { items: OperatorRow[]; nextCursor: string | null; page: ReturnType<typeof listPage> }
    | null,
  confirm?: Child,
) {
  const ctx = c.var.page;
  const form = kept(c);
  if (list === null) {
    return (
      <Layout title="Operators" ctx={ctx}>
        <p id="operators-forbidden">
          Operator accounts are managed by admins; you are signed in as {ctx.label}{" "}
          ({ctx.role ?? "viewer"}).
        </p>
      </Layout>
    );
  }
  const items = list.items;
  return (
    <Layout title="Operators" ctx={ctx}>
      {confirm}
      <form method="post" action="/ui/operators" class="panel" id="create-operator">
        <Csrf ctx={ctx} />
        <label>
          Name
          <input
            name="name"
            required
            maxlength={64}
            pattern="[a-z0-9][a-z0-9._\-]{0,63}"
            value={form["name"]}
            autocomplete="off"
          />
        </label>
        <label>
          Role
          <RoleSelect name="role" value={form["role"] ?? "operator"} />
        </label>
        <label>
          Password (12+ characters, optional)
          <input
            name="password"
            type="password"
            minlength={12}
            maxlength={256}
            autocomplete="new-password"
          />
        </label>
        <button type="submit">Create operator</button>
      </form>
      <p class="muted">
        admin: everything. operator: runs the fleet (appliances, alerts, maintenance, releases,
        rollouts, holds, fileinfo, enrolment tokens), reads the audit log; no release keys or
        accounts. viewer: reads only. The admin token (NOC_ADMIN_TOKEN) signs in as admin.
      </p>
      <table id="operators">
        <tr>
          <th>name</th>
          <th>role</th>
          <th>state</th>
          <th>last sign-in</th>
          <th>password</th>
          <th>personal tokens</th>
          <th>actions</th>
        </tr>
        {items.map((o) => (
          <tr>
            <td>{o.name}</td>
            <td>
              <form method="post" action={`/ui/operators/${o.name}/role`} class="inline">
                <Csrf ctx={ctx} />
                <Versioned revision={o.revision} was={{ role: o.role }} />
                <label class="sr-only" for={`role-${o.name}`}>Role of {o.name}</label>
                <RoleSelect name="role" value={o.role} id={`role-${o.name}`} />
                <button type="submit" class="secondary">Save role</button>
              </form>
            </td>
            <td>{o.disabledAt ? <span class="state revoked">disabled</span> : "enabled"}</td>
            <td>
              <Time at={o.lastSignInAt} />
            </td>
            <td>
              <form method="post" action={`/ui/operators/${o.name}/password`} class="inline">
                <Csrf ctx={ctx} />
                <Versioned revision={o.revision} />
                <label class="sr-only" for={`password-${o.name}`}>New password of {o.name}</label>
                <input
                  id={`password-${o.name}`}
                  name="password"
                  type="password"
                  minlength={12}
                  maxlength={256}
                  required
                  autocomplete="new-password"
                  placeholder={o.hasPassword ? "set (change)" : "none (set)"}
                  size={12}
                />
                <button type="submit" class="secondary">Set password</button>
              </form>
            </td>
            <td>
              {o.tokens.filter((t) => t.revokedAt === null).map((t) => (
                <form
                  method="post"
                  action={`/ui/operators/${o.name}/tokens/${t.id}/revoke`}
                  class="inline"
                >
                  <Csrf ctx={ctx} />
                  {t.label} (<Time at={t.createdAt} />){" "}
                  <button type="submit" class="danger">Revoke token {t.id}…</button>
                </form>
              ))}
              <form method="post" action={`/ui/operators/${o.name}/tokens`} class="inline">
                <Csrf ctx={ctx} />
                <label class="sr-only" for={`token-label-${o.name}`}>Label of a new token</label>
                <input
                  id={`token-label-${o.name}`}
                  name="label"
                  maxlength={100}
                  size={8}
                  value="console"
                />
                <button type="submit" class="secondary">Issue token</button>
              </form>
            </td>
            <td>
              <form
                method="post"
                action={`/ui/operators/${o.name}/${o.disabledAt ? "enable" : "disable"}`}
                class="inline"
              >
                <Csrf ctx={ctx} />
                <Versioned revision={o.revision} />
                <button type="submit" class={o.disabledAt ? "secondary" : "danger"}>
                  {o.disabledAt ? "Enable" : "Disable…"}
                </button>
              </form>
            </td>
          </tr>
        ))}
      </table>
      <Pager
        id="operators"
        what="operators"
        shown={items.length}
        next={list.nextCursor}
        first={list.page.first}
        path="/ui/operators"
        keep={list.page.keep}
      />
    </Layout>
  );
}

/** The new personal token `id` of `name`, shown to the session that issued it (or why not). */
function newTokenPage(
  c: ConsoleContext,
  name: string,
  id: string,
  reveal: PersonalReveal | null,
) {
  const ctx = c.var.page;
  if (!reveal) {
    return (
      <Layout title={`Personal token ${id}`} ctx={ctx}>
        <p id="token-gone">
          The secret of personal token {id}{" "}
          is no longer shown: it is shown only to the console session that issued it, for{" "}
          {revealTtlS / 60}{" "}
          minutes, and is kept nowhere else (the NOC stores a hash). If it was not kept, revoke the
          token and issue another.
        </p>
        <p>
          <a href="/ui/operators">All operators</a>
        </p>
      </Layout>
    );
  }
  return (
    <Layout title="New personal token" ctx={ctx}>
      <section class="panel" id="new-operator-token" aria-labelledby="operator-token-label">
        <p>
          Personal token {id} ({reveal.label}) of{" "}
          {name}: copy it now. This page shows it to this session only, for {revealTtlS / 60}{" "}
          minutes; the NOC keeps only its hash. Use it as <code>--token</code> (or NOC_TOKEN) with
          {" "}
          <code>noc</code>, or to sign in here.
        </p>
        <div class="secret">
          <label for="operator-token" id="operator-token-label">Token</label>
          <input id="operator-token" readonly value={reveal.token} size={50} />
          <button type="button" data-copy="#operator-token">Copy token</button>
        </div>
      </section>
      <form method="post" action={`/ui/operators/${name}/tokens/${id}/hide`} class="inline">
        <Csrf ctx={ctx} />
        <button type="submit" class="secondary">Done: stop showing it</button>
      </form>{" "}
      <a href="/ui/operators">All operators</a>
    </Layout>
  );
}

/** A page of operators, by name (`?cursor=`, `?limit=`); null when the caller may not read them. */
async function listOperators(c: ConsoleContext) {
  const page = listPage(c);
  const res = await c.var.api.operators.$get({
    query: { limit: page.limit, ...(page.cursor ? { cursor: page.cursor } : {}) },
  });
  if (res.status === 403) return null;
  if (!res.ok) throw new Error(`operators: ${res.status}`);
  const list = z.object({
    items: z.array(operatorSchema),
    nextCursor: z.string().nullable().optional(),
  }).parse(await res.json());
  return { items: list.items, nextCursor: list.nextCursor ?? null, page };
}

/**
 * `GET` and `POST /ui/operators` (create), `POST /ui/operators/:name/role`, `/password`,
 * `/disable` (asks first; disables with `confirmed=yes`), `/enable`, `/tokens` (issue, then
 * redirect to the new token), `GET /ui/operators/:name/tokens/:id/new` (the new token, shown to its
 * session for a few minutes), `POST /ui/operators/:name/tokens/:id/hide` and `/tokens/:id/revoke`
 * (asks first, as disabling).
 */
export function operatorPages(p: PageDeps) {
  const { deps } = p;
  const to = "/ui/operators";
  return new Hono<ConsoleEnv>()
    .get("/operators", p.signedIn, async (c) => {
      return await html(c, operatorsPage(c, await listOperators(c)));
    })
    .get("/operators/:name/tokens/:id/new", p.signedIn, async (c) => {
      const name = nameParam(c);
      const id = idOf(c);
      const reveal = name && c.var.page.role === "admin"
        ? await findPersonalReveal(
          deps.db,
          getCookie(c, sessionCookie),
          name,
          Number(id),
          deps.clock.now(),
        )
        : null;
      return await html(c, newTokenPage(c, name ?? "?", id, reveal));
    })
    .post("/operators/:name/tokens/:id/hide", p.signedIn, async (c) => {
      const id = idOf(c);
      const session = getCookie(c, sessionCookie);
      if (session) await dropPersonalReveal(deps.db, session, Number(id));
      return back(c, to, `Personal token ${id} is no longer shown`);
    })
    .post("/operators", p.signedIn, async (c) => {
      const form = await formOf(c);
      const role = roleNames.find((r) => r === field(form, "role")) ?? "operator";
      const password = typeof form["password"] === "string" ? form["password"] : "";
      const res = await c.var.api.operators.$post({
        json: {
          name: field(form, "name"),
          role,
          ...(password !== "" ? { password } : {}),
        },
      });
      if (!res.ok) return refused(c, to, await refusal(res), form);
      return back(c, to, `Operator ${field(form, "name")} (${role}) created`);
    })
    .post("/operators/:name/role", p.signedIn, async (c) => {
      const name = nameParam(c);
      const form = await formOf(c);
      const role = roleNames.find((r) => r === field(form, "role"));
      if (!name || !role) return refused(c, to, "No such operator or role");
      if (!touched(form, "role")) return back(c, to, `${name}: nothing changed`);
      const res = await c.var.api.operators[":name"].$patch(
        { param: { name }, json: { role } },
        ifMatch(form),
      );
      if (!res.ok) {
        return refused(
          c,
          to,
          await refusalOf(res, (o) => `${o.role}${o.disabledAt ? ", disabled" : ""}`),
        );
      }
      return back(c, to, `${name} is now ${role}; their console sessions have ended`);
    })
    .post("/operators/:name/password", p.signedIn, async (c) => {
      const name = nameParam(c);
      const form = await formOf(c);
      const password = typeof form["password"] === "string" ? form["password"] : "";
      if (!name) return refused(c, to, "No such operator");
      const res = await c.var.api.operators[":name"].password.$post({
        param: { name },
        json: { password },
      }, ifMatch(form));
      if (!res.ok) {
        return refused(
          c,
          to,
          await refusalOf(res, (o) => `${o.role}${o.disabledAt ? ", disabled" : ""}`),
        );
      }
      return back(c, to, `Password of ${name} set; their console sessions have ended`);
    })
    .post("/operators/:name/disable", p.signedIn, async (c) => {
      const name = nameParam(c);
      if (!name) return refused(c, to, "No such operator");
      const form = await formOf(c);
      if (field(form, "confirmed") !== "yes") {
        return await html(
          c,
          operatorsPage(
            c,
            await listOperators(c),
            <Confirm
              ctx={c.var.page}
              what={`Disable ${name}? Their console sessions end and their personal tokens stop working at once; enable them again to undo.`}
              action={`/ui/operators/${name}/disable`}
              button={`Disable ${name}`}
              cancel={to}
              fields={field(form, "revision") ? { revision: field(form, "revision") } : {}}
            />,
          ),
        );
      }
      const res = await c.var.api.operators[":name"].$patch({
        param: { name },
        json: { disabled: true },
      }, ifMatch(form));
      if (!res.ok) {
        return refused(
          c,
          to,
          await refusalOf(res, (o) => `${o.role}${o.disabledAt ? ", disabled" : ""}`),
        );
      }
      return back(c, to, `${name} disabled`);
    })
    .post("/operators/:name/enable", p.signedIn, async (c) => {
      const name = nameParam(c);
      if (!name) return refused(c, to, "No such operator");
      const form = await formOf(c);
      const res = await c.var.api.operators[":name"].$patch({
        param: { name },
        json: { disabled: false },
      }, ifMatch(form));
      if (!res.ok) {
        return refused(
          c,
          to,
          await refusalOf(res, (o) => `${o.role}${o.disabledAt ? ", disabled" : ""}`),
        );
      }
      return back(c, to, `${name} enabled`);
    })
    .post("/operators/:name/tokens", p.signedIn, async (c) => {
      const name = nameParam(c);
      if (!name) return refused(c, to, "No such operator");
      const form = await formOf(c);
      const res = await c.var.api.operators[":name"].tokens.$post({
        param: { name },
        json: { label: field(form, "label") || "console" },
      });
      if (!res.ok) return refused(c, to, await refusal(res));
      const t = z.object({ id: z.number(), label: z.string(), token: z.string() })
        .parse(await res.json());
      const session = getCookie(c, sessionCookie);
      if (session) {
        await keepPersonalReveal(deps.db, session, t.id, {
          name,
          label: t.label,
          token: t.token,
        }, deps.clock.now());
      }
      return c.redirect(`${to}/${name}/tokens/${t.id}/new`, 303);
    })
    .post("/operators/:name/tokens/:id/revoke", p.signedIn, async (c) => {
      const name = nameParam(c);
      const id = c.req.param("id") ?? "";
      if (!name || !/^[1-9][0-9]{0,14}$/.test(id)) return refused(c, to, "No such token");
      if (field(await formOf(c), "confirmed") !== "yes") {
        return await html(
          c,
          operatorsPage(
            c,
            await listOperators(c),
            <Confirm
              ctx={c.var.page}
              what={`Revoke token ${id} of ${name}? Whatever uses it (a script, the CLI, a console session opened with it) stops at once; a revoked token cannot be restored.`}
              action={`/ui/operators/${name}/tokens/${id}/revoke`}
              button={`Revoke token ${id}`}
              cancel={to}
            />,
          ),
        );
      }
      const res = await c.var.api.operators[":name"].tokens[":id"].$delete({
        param: { name, id },
      });
      if (!res.ok) return refused(c, to, await refusal(res));
      return back(c, to, `Token ${id} of ${name} revoked`);
    });
}
