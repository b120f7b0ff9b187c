/** `/ui/apps/:app/fileinfo`: where an application's files are installed, and what runs after. */
import { Hono } from "hono";
import { z } from "zod";
import { Csrf, Layout } from "../layout.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, nameOf } from "../page.ts";
import { refusal } from "../admin_client.ts";

/** What the page reads of `GET /apps/:app/fileinfo` (the API types an entry as a record). */
const fileinfoListSchema = z.object({
  items: z.array(z.object({
    name: z.string(),
    destination: z.string(),
    mode: z.string(),
    action: z.unknown(),
  })),
});

/** `GET` and `POST /ui/apps/:app/fileinfo` (save one file's entry), `POST …/:name/delete`. */
export function fileinfoPages(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/apps/:app/fileinfo", p.signedIn, async (c) => {
      const appName = nameOf(c, "app");
      const res = await c.var.api.apps[":app"].fileinfo.$get({
        param: { app: encodeURIComponent(appName) },
      });
      const items = res.ok ? fileinfoListSchema.parse(await res.json()).items : [];
      const ctx = c.var.page;
      return await html(
        c,
        <Layout title={`fileinfo: ${appName}`} ctx={ctx}>
          {!res.ok && <p class="flash">{await refusal(res)}</p>}
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
                    <button type="submit" class="danger">Delete</button>
                  </form>
                </td>
              </tr>
            ))}
          </table>
          <h2>Save</h2>
          <form method="post" action={`/ui/apps/${appName}/fileinfo`} class="panel">
            <Csrf ctx={ctx} />
            <label>
              File name<input name="name" required size={14} />
            </label>
            <label>
              Destination (under the root)<input name="destination" required size={24} />
            </label>
            <label>
              Mode<input name="mode" value="0644" size={5} />
            </label>
            <label>
              Action (JSON argument list)
              <input name="action" placeholder='["systemctl","reload","x"]' size={30} />
            </label>
            <button type="submit">Save</button>
          </form>
        </Layout>,
        res.status,
      );
    })
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
          return back(c, to, `Action "${text.slice(0, 80)}" is not JSON`);
        }
        const list = z.array(z.string()).nullable().safeParse(parsed);
        if (!list.success) {
          return back(c, to, `Action "${text.slice(0, 80)}" is not a list of strings`);
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
      return back(c, to, res.ok ? "Saved" : await refusal(res));
    })
    .post("/apps/:app/fileinfo/:name/delete", p.signedIn, async (c) => {
      const appName = nameOf(c, "app");
      const res = await c.var.api.apps[":app"].fileinfo[":name"].$delete({
        param: { app: encodeURIComponent(appName), name: encodeURIComponent(nameOf(c, "name")) },
      });
      return back(
        c,
        `/ui/apps/${appName}/fileinfo`,
        res.ok ? "Deleted" : await refusal(res),
      );
    });
}
