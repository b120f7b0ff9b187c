/** `/ui/apps/:app/fileinfo`: where an application's files are installed, and what runs after. */
import { ifMatch, refusalOf, Versioned } from "../revisions.tsx";
import { Hono } from "hono";
import { z } from "zod";
import { Confirm, Csrf, Layout, Pager } from "../layout.tsx";
import type { ConsoleContext, ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, kept, listPage, nameOf, refused } from "../page.ts";
import { refusal } from "../admin_client.ts";

/** What the page reads of `GET /apps/:app/fileinfo` (the API types an entry as a record). */
const fileinfoListSchema = z.object({
  items: z.array(z.object({
    name: z.string(),
    destination: z.string(),
    mode: z.string(),
    action: z.unknown(),
    revision: z.number().optional(),
  })),
});

/**
 * The fileinfo page of application `appName`; `confirm` (a {@link Confirm}) is shown above the
 * list when an irreversible action asks first. The save form is refilled from a refusal's kept
 * fields.
 */
async function fileinfoPage(
  c: ConsoleContext,
  appName: string,
  confirm?: Parameters<typeof Layout>[0]["children"],
) {
  // A page at a time (`?cursor=`, `?limit=`), by file name.
  const page = listPage(c);
  const res = await c.var.api.apps[":app"].fileinfo.$get({
    param: { app: encodeURIComponent(appName) },
    query: { limit: page.limit, ...(page.cursor ? { cursor: page.cursor } : {}) },
  });
  const list = res.ok
    ? fileinfoListSchema.safeExtend({ nextCursor: z.string().nullable().optional() })
      .parse(await res.json())
    : { items: [], nextCursor: null };
  const items = list.items;
  const ctx = c.var.page;
  const form = kept(c);
  return await html(
    c,
    <Layout title={`fileinfo: ${appName}`} ctx={ctx}>
      {!res.ok && <p class="flash error" role="alert">{await refusal(res)}</p>}
      {confirm}
      <table id="fileinfo">
        <tr>
          <th>file</th>
          <th>destination</th>
          <th>mode</th>
          <th>action</th>
          <th></th>
        </tr>
        {items.map((f) => (
          <tr>
            <td>{f.name}</td>
            <td>{f.destination}</td>
            <td>{f.mode}</td>
            <td>
              <code>{f.action ? JSON.stringify(f.action) : ""}</code>
            </td>
            <td>
              <form
                method="post"
                action={`/ui/apps/${appName}/fileinfo/${f.name}/delete`}
                class="inline"
              >
                <Csrf ctx={ctx} />
                <Versioned revision={f.revision} />
                <button type="submit" class="danger">Delete…</button>
              </form>
            </td>
          </tr>
        ))}
      </table>
      <Pager
        id="fileinfo"
        what="files"
        shown={items.length}
        next={list.nextCursor ?? null}
        first={page.first}
        path={`/ui/apps/${encodeURIComponent(appName)}/fileinfo`}
        keep={page.keep}
      />
      <h2>Save</h2>
      <form method="post" action={`/ui/apps/${appName}/fileinfo`} class="panel">
        <Csrf ctx={ctx} />
        <label>
          File name<input name="name" required size={14} maxlength={64} value={form["name"]} />
        </label>
        <label>
          Destination (under the root)
          <input
            name="destination"
            required
            size={24}
            maxlength={1000}
            value={form["destination"]}
          />
        </label>
        <label>
          Mode<input name="mode" value={form["mode"] ?? "0644"} size={5} maxlength={5} />
        </label>
        <label>
          Action (JSON argument list)
          <input
            name="action"
            placeholder='["systemctl","reload","x"]'
            size={30}
            maxlength={4000}
            value={form["action"]}
          />
        </label>
        <button type="submit">Save</button>
      </form>
    </Layout>,
    res.status,
  );
}

/**
 * `GET` and `POST /ui/apps/:app/fileinfo` (save one file's entry), `POST …/:name/delete` (asks
 * first; deletes with `confirmed=yes`).
 */
export function fileinfoPages(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/apps/:app/fileinfo", p.signedIn, (c) => fileinfoPage(c, nameOf(c, "app")))
    .post("/apps/:app/fileinfo", p.signedIn, async (c) => {
      const appName = nameOf(c, "app");
      const to = `/ui/apps/${appName}/fileinfo`;
      const form = await formOf(c);
      const text = field(form, "action");
      let action: string[] | null | undefined = undefined;
      if (text) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          return refused(c, to, `Action "${text.slice(0, 80)}" is not JSON`, form);
        }
        const list = z.array(z.string()).nullable().safeParse(parsed);
        if (!list.success) {
          return refused(c, to, `Action "${text.slice(0, 80)}" is not a list of strings`, form);
        }
        action = list.data;
      }
      const res = await c.var.api.apps[":app"].fileinfo[":name"].$put({
        param: {
          app: encodeURIComponent(appName),
          name: encodeURIComponent(field(form, "name")),
        },
        json: {
          destination: field(form, "destination"),
          mode: field(form, "mode") || "0644",
          ...(action === undefined ? {} : { action }),
        },
      });
      return res.ok ? back(c, to, "Saved") : refused(c, to, await refusal(res), form);
    })
    .post("/apps/:app/fileinfo/:name/delete", p.signedIn, async (c) => {
      const appName = nameOf(c, "app");
      const name = nameOf(c, "name");
      const to = `/ui/apps/${appName}/fileinfo`;
      const form = await formOf(c);
      if (field(form, "confirmed") !== "yes") {
        return await fileinfoPage(
          c,
          appName,
          <Confirm
            ctx={c.var.page}
            what={`Delete the fileinfo of ${name} in ${appName}? It is refused while a file of that name is assigned (delete those assignments first); appliances keep the file they have.`}
            action={`${to}/${name}/delete`}
            button={`Delete ${name}`}
            cancel={to}
            fields={field(form, "revision") ? { revision: field(form, "revision") } : {}}
          />,
        );
      }
      const res = await c.var.api.apps[":app"].fileinfo[":name"].$delete({
        param: { app: encodeURIComponent(appName), name: encodeURIComponent(name) },
      }, ifMatch(form));
      return res.ok ? back(c, to, "Deleted") : refused(
        c,
        to,
        await refusalOf(res, (f) => `destination ${f.destination}, mode ${f.mode}`),
      );
    });
}
