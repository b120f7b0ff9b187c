/**
 * `/ui/tokens`: one-time enrolment tokens for appliances and local component servers.
 *
 * Creating one is a Post/Redirect/Get: the POST creates it through the admin API, keeps its secret
 * for this console session (sealed, {@link keepReveal}) and redirects to `/ui/tokens/:id/new`,
 * which shows the secret with a copy button and a ready command line. The secret never travels in
 * a URL; a reload of that page shows it again (for {@link revealTtlS} seconds) and mints nothing.
 */
import { ifMatch, refusalOf, Versioned } from "../revisions.tsx";
import { Hono } from "hono";
import { getCookie } from "hono/cookie";
import { z } from "zod";
import { Confirm, Csrf, Layout, Pager, Time } from "../layout.tsx";
import type { ConsoleContext, ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, idOf, kept, listPage, refused } from "../page.ts";
import { refusal } from "../admin_client.ts";
import { sessionCookie } from "../../../services/console_sessions.ts";
import {
  dropReveal,
  findReveal,
  keepReveal,
  type Reveal,
  revealTtlS,
} from "../../../services/console_reveals.ts";
import type { AppDeps } from "../../../services/deps.ts";

/** What the page reads of an enrolment token (the API types it as a record). */
const tokenSchema = z.object({
  id: z.number(),
  purpose: z.string(),
  label: z.string().nullable(),
  site: z.string().nullable(),
  reenrolment: z.string().nullish(),
  status: z.string(),
  usedBy: z.string().nullable(),
  expiresAt: z.string(),
  revision: z.number().optional(),
});

const createdSchema = z.object({
  id: z.number(),
  token: z.string(),
  purpose: z.string(),
  site: z.string().nullable(),
  expiresAt: z.string(),
});

/** A page of tokens, newest first (`?cursor=`, `?limit=`). */
async function listTokens(c: ConsoleContext) {
  const page = listPage(c);
  const res = await c.var.api["enrollment-tokens"].$get({
    query: { limit: page.limit, ...(page.cursor ? { cursor: page.cursor } : {}) },
  });
  const list = res.ok
    ? z.object({ items: z.array(tokenSchema), nextCursor: z.string().nullable().optional() })
      .parse(await res.json())
    : { items: [], nextCursor: null };
  return { items: list.items, nextCursor: list.nextCursor ?? null, page };
}

function tokensPage(
  c: ConsoleContext,
  list: Awaited<ReturnType<typeof listTokens>>,
  confirm?: Child,
) {
  const items = list.items;
  const ctx = c.var.page;
  const form = kept(c);
  const opt = (name: string, value: string, text: string) => (
    <option value={value} selected={form[name] === value}>{text}</option>
  );
  return (
    <Layout title="Enrolment tokens" ctx={ctx}>
      {confirm}
      <form method="post" action="/ui/tokens" class="panel" id="create-token">
        <Csrf ctx={ctx} />
        <label>
          For
          <select name="purpose">
            {opt("purpose", "appliance", "an appliance")}
            {opt("purpose", "local-server", "a local component server")}
          </select>
        </label>
        <label>
          Label<input name="label" size={14} maxlength={200} value={form["label"]} />
        </label>
        <label>
          Site<input name="site" size={10} maxlength={64} value={form["site"]} />
        </label>
        <label>
          Channel<input name="channel" size={8} maxlength={64} value={form["channel"]} />
        </label>
        <label>
          Tags (comma-separated)
          <input name="tags" size={14} maxlength={2000} value={form["tags"]} />
        </label>
        <label>
          Same host name at the site
          <select name="reenrolment">
            {opt("reenrolment", "", "NOC setting (NOC_REENROLMENT)")}
            {opt("reenrolment", "supersede", "supersede: retire the old record")}
            {opt("reenrolment", "refuse", "refuse (409)")}
          </select>
        </label>
        <label>
          Valid (hours)
          <input name="hours" type="number" min="1" max="720" value={form["hours"] ?? "24"} />
        </label>
        <button type="submit">Create</button>
      </form>
      <table id="tokens">
        <tr>
          <th>id</th>
          <th>for</th>
          <th>label</th>
          <th>site</th>
          <th>re-enrolment</th>
          <th>status</th>
          <th>expires</th>
          <th>action</th>
        </tr>
        {items.map((t) => (
          <tr>
            <td>{t.id}</td>
            <td>{t.purpose}</td>
            <td>{t.label ?? ""}</td>
            <td>{t.site ?? ""}</td>
            <td>{t.reenrolment ?? ""}</td>
            <td>{t.status}{t.usedBy ? ` by ${t.usedBy}` : ""}</td>
            <td>
              <Time at={t.expiresAt} />
            </td>
            <td>
              {t.status === "unused" && (
                <form method="post" action={`/ui/tokens/${t.id}/revoke`} class="inline">
                  <Csrf ctx={ctx} />
                  <Versioned revision={t.revision} />
                  <button type="submit" class="danger">Revoke…</button>
                </form>
              )}
            </td>
          </tr>
        ))}
      </table>
      <Pager
        id="tokens"
        what="tokens"
        shown={items.length}
        next={list.nextCursor}
        first={list.page.first}
        path="/ui/tokens"
        keep={list.page.keep}
      />
    </Layout>
  );
}

type Child = Parameters<typeof Layout>[0]["children"];

/** Single-quotes `word` for a POSIX shell unless it is plainly safe. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The NOC URL a new token's command line names: `NOC_PUBLIC_URL` when configured; otherwise the
 * origin this browser used, flagged `unsure` unless this NOC accepts signatures made for its host
 * (an agent enrolled at an address the NOC does not answer to as itself would be refused).
 */
export function enrolUrl(deps: AppDeps, requestUrl: string): { url: string; unsure: boolean } {
  if (deps.settings.publicUrl) {
    return { url: deps.settings.publicUrl.replace(/\/$/, ""), unsure: false };
  }
  // The URL parser has checked and normalised the host the browser sent; only http(s) is named.
  const u = new URL(requestUrl);
  const scheme = u.protocol === "https:" ? "https:" : "http:";
  return { url: `${scheme}//${u.host}`, unsure: !deps.authorities.accepts(u.host.toLowerCase()) };
}

/** The command that enrols with `reveal`'s token at NOC `url`. */
export function enrolCommand(reveal: Reveal, url: string): string {
  const token = shellWord(reveal.token);
  return reveal.purpose === "local-server"
    ? `deno task local -- --upstream ${shellWord(url)} --site ${
      shellWord(reveal.site ?? "<site>")
    } --token ${token}`
    : `noc-agent enroll --noc ${shellWord(url)} --token ${token}`;
}

function newTokenPage(c: ConsoleContext, deps: AppDeps, id: string, reveal: Reveal | null) {
  const ctx = c.var.page;
  if (!reveal) {
    return (
      <Layout title={`Enrolment token ${id}`} ctx={ctx}>
        <p id="token-gone">
          The secret of token {id}{" "}
          is no longer shown: it is shown only to the console session that created it, for{" "}
          {revealTtlS / 60}{" "}
          minutes, and is kept nowhere else (the NOC stores a hash). If it was not kept, revoke the
          token and create another.
        </p>
        <p>
          <a href="/ui/tokens">All enrolment tokens</a>
        </p>
      </Layout>
    );
  }
  const { url, unsure } = enrolUrl(deps, c.req.url);
  const command = enrolCommand(reveal, url);
  const forWhat = reveal.purpose === "local-server" ? "a local component server" : "an appliance";
  return (
    <Layout title="New enrolment token" ctx={ctx}>
      <section class="panel" aria-labelledby="new-token-label" id="new-token-panel">
        <p>
          Token {id} for {forWhat}
          {reveal.site ? ` at site ${reveal.site}` : ""}, valid until{" "}
          <Time at={reveal.expiresAt} />. Copy it now: this page shows it to this session only, for
          {" "}
          {revealTtlS / 60} minutes; the NOC keeps only its hash.
        </p>
        <div class="secret">
          <label for="new-token" id="new-token-label">Token</label>
          <input id="new-token" readonly value={reveal.token} size={50} />
          <button type="button" data-copy="#new-token">Copy token</button>
        </div>
        <div class="secret">
          <label for="enroll-command">
            {reveal.purpose === "local-server"
              ? "Start the local server (from a checkout)"
              : "Enrol the appliance"}
          </label>
          <textarea id="enroll-command" readonly rows={3} cols={60}>{command}</textarea>
          <button type="button" data-copy="#enroll-command">Copy command</button>
        </div>
        {unsure && (
          <p class="muted" id="url-note">
            {url}{" "}
            is the address this browser used, and this NOC does not accept appliance signatures for
            it: set NOC_PUBLIC_URL (or NOC_PUBLIC_HOSTS) to the address appliances reach, and use
            that.
          </p>
        )}
      </section>
      <form method="post" action={`/ui/tokens/${id}/hide`} class="inline">
        <Csrf ctx={ctx} />
        <button type="submit" class="secondary">Done: stop showing it</button>
      </form>{" "}
      <a href="/ui/tokens">All enrolment tokens</a>
    </Layout>
  );
}

/**
 * `GET` and `POST /ui/tokens` (create, then redirect to the new token), `GET /ui/tokens/:id/new`
 * (the new token, shown to its session for a few minutes), `POST /ui/tokens/:id/hide`,
 * `POST /ui/tokens/:id/revoke` (asks first; revokes with `confirmed=yes`).
 */
export function tokenPages(p: PageDeps) {
  const { deps } = p;
  return new Hono<ConsoleEnv>()
    .get("/tokens", p.signedIn, async (c) => await html(c, tokensPage(c, await listTokens(c))))
    .post("/tokens", p.signedIn, async (c) => {
      const form = await formOf(c);
      const opt = (n: string) => field(form, n) || undefined;
      const tags = field(form, "tags").split(",").map((t) => t.trim()).filter(Boolean);
      const label = opt("label"), site = opt("site"), channel = opt("channel");
      const hours = field(form, "hours") || "24";
      if (!/^[0-9]{1,3}$/.test(hours) || Number(hours) < 1 || Number(hours) > 720) {
        return refused(c, "/ui/tokens", "Valid (hours) must be a whole number from 1 to 720", form);
      }
      const reenrolment = (["supersede", "refuse"] as const).find((m) =>
        m === field(form, "reenrolment")
      );
      const res = await c.var.api["enrollment-tokens"].$post({
        json: {
          purpose: field(form, "purpose") === "local-server" ? "local-server" : "appliance",
          ttlS: Number(hours) * 3600,
          ...(label ? { label } : {}),
          ...(site ? { site } : {}),
          ...(channel ? { channel } : {}),
          ...(reenrolment ? { reenrolment } : {}),
          ...(tags.length ? { tags } : {}),
        },
      });
      if (!res.ok) return refused(c, "/ui/tokens", await refusal(res), form);
      const made = createdSchema.parse(await res.json());
      const session = getCookie(c, sessionCookie);
      if (session) {
        await keepReveal(deps.db, session, made.id, {
          token: made.token,
          purpose: made.purpose,
          site: made.site,
          expiresAt: made.expiresAt,
        }, deps.clock.now());
      }
      return c.redirect(`/ui/tokens/${made.id}/new`, 303);
    })
    .get("/tokens/:id/new", p.signedIn, async (c) => {
      const id = idOf(c);
      const reveal = await findReveal(
        deps.db,
        getCookie(c, sessionCookie),
        Number(id),
        deps.clock.now(),
      );
      return await html(c, newTokenPage(c, deps, id, reveal));
    })
    .post("/tokens/:id/hide", p.signedIn, async (c) => {
      const id = idOf(c);
      const session = getCookie(c, sessionCookie);
      if (session) await dropReveal(deps.db, session, Number(id));
      return back(c, "/ui/tokens", `Token ${id} is no longer shown`);
    })
    .post("/tokens/:id/revoke", p.signedIn, async (c) => {
      const id = idOf(c);
      const form = await formOf(c);
      if (field(form, "confirmed") !== "yes") {
        const list = await listTokens(c);
        const t = list.items.find((x) => String(x.id) === id);
        const what = `Revoke enrolment token ${id}${t?.label ? ` (${t.label})` : ""}${
          t?.site ? ` for site ${t.site}` : ""
        }? Nothing can enrol with it afterwards; this cannot be undone.`;
        return await html(
          c,
          tokensPage(
            c,
            list,
            <Confirm
              ctx={c.var.page}
              what={what}
              action={`/ui/tokens/${id}/revoke`}
              button="Revoke token"
              cancel="/ui/tokens"
              fields={field(form, "revision") ? { revision: field(form, "revision") } : {}}
            />,
          ),
        );
      }
      const res = await c.var.api["enrollment-tokens"][":id"].$delete(
        { param: { id } },
        ifMatch(form),
      );
      return res.ok
        ? back(c, "/ui/tokens", "Token revoked")
        : refused(c, "/ui/tokens", await refusalOf(res, (t) => String(t.status)));
    });
}
