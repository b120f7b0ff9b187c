/** `/ui/tokens`: one-time enrolment tokens for appliances and local component servers. */
import { Hono } from "hono";
import { z } from "zod";
import { Csrf, Layout, Time } from "../layout.tsx";
import type { ConsoleContext, ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, idOf } from "../page.ts";
import { refusal } from "../admin_client.ts";

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
});

const createdSchema = z.object({ token: z.string(), purpose: z.string() });

async function tokensPage(c: ConsoleContext, created?: z.infer<typeof createdSchema>) {
  const res = await c.var.api["enrollment-tokens"].$get({ query: { limit: "100" } });
  const items = res.ok
    ? z.object({ items: z.array(tokenSchema) }).parse(await res.json()).items
    : [];
  const ctx = c.var.page;
  return await html(
    c,
    <Layout title="Enrolment tokens" ctx={ctx}>
      {created && (
        <p class="flash" id="new-token">
          New {created.purpose} token (shown once): <code>{created.token}</code>
        </p>
      )}
      <form method="post" action="/ui/tokens" class="panel">
        <Csrf ctx={ctx} />
        <label>
          For
          <select name="purpose">
            <option value="appliance">an appliance</option>
            <option value="local-server">a local component server</option>
          </select>
        </label>
        <label>
          Label<input name="label" size={14} />
        </label>
        <label>
          Site<input name="site" size={10} />
        </label>
        <label>
          Channel<input name="channel" size={8} />
        </label>
        <label>
          Tags (comma-separated)<input name="tags" size={14} />
        </label>
        <label>
          Same host name at the site
          <select name="reenrolment">
            <option value="">NOC setting (NOC_REENROLMENT)</option>
            <option value="supersede">supersede: retire the old record</option>
            <option value="refuse">refuse (409)</option>
          </select>
        </label>
        <label>
          Valid (hours)<input name="hours" type="number" min="1" max="720" value="24" />
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
          <th></th>
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
                  <button type="submit" class="danger">Revoke</button>
                </form>
              )}
            </td>
          </tr>
        ))}
      </table>
    </Layout>,
  );
}

/** `GET` and `POST /ui/tokens` (the new token is shown once), `POST /ui/tokens/:id/revoke`. */
export function tokenPages(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/tokens", p.signedIn, (c) => tokensPage(c))
    .post("/tokens", p.signedIn, async (c) => {
      const form = await formOf(c);
      const opt = (n: string) => field(form, n) || undefined;
      const tags = field(form, "tags").split(",").map((t) => t.trim()).filter(Boolean);
      const label = opt("label"), site = opt("site"), channel = opt("channel");
      const reenrolment = (["supersede", "refuse"] as const).find((m) =>
        m === field(form, "reenrolment")
      );
      const res = await c.var.api["enrollment-tokens"].$post({
        json: {
          purpose: field(form, "purpose") === "local-server" ? "local-server" : "appliance",
          ttlS: Number(field(form, "hours") || "24") * 3600,
          ...(label ? { label } : {}),
          ...(site ? { site } : {}),
          ...(channel ? { channel } : {}),
          ...(reenrolment ? { reenrolment } : {}),
          ...(tags.length ? { tags } : {}),
        },
      });
      if (!res.ok) return back(c, "/ui/tokens", await refusal(res));
      return await tokensPage(c, createdSchema.parse(await res.json()));
    })
    .post("/tokens/:id/revoke", p.signedIn, async (c) => {
      const res = await c.var.api["enrollment-tokens"][":id"].$delete({ param: { id: idOf(c) } });
      return back(c, "/ui/tokens", res.ok ? "Token revoked" : await refusal(res));
    });
}
