/** `/ui/alerts`: open or resolved alerts, acknowledgement, and running the status daemon now. */
import { Hono } from "hono";
import { z } from "zod";
import { Csrf, Layout, Time } from "../layout.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { back, html, idOf } from "../page.ts";
import { refusal } from "../admin_client.ts";

/**
 * `GET /alerts` as the console reads it (the API types an alert as a record;
 * these are the fields the pages show).
 */
export const alertListSchema = z.object({
  items: z.array(z.object({
    id: z.number(),
    kind: z.string(),
    uid: z.string().nullable(),
    hostname: z.string().nullable(),
    openedAt: z.string(),
    resolvedAt: z.string().nullable(),
    acknowledgedAt: z.string().nullable(),
    acknowledgedBy: z.string().nullable(),
  })),
});

/** `GET /ui/alerts` (`?status=resolved`), `POST /ui/alerts/:id/ack`, `POST /ui/sweep`. */
export function alertPages(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/alerts", p.signedIn, async (c) => {
      const status = c.req.query("status") === "resolved" ? "resolved" : "open";
      const res = await c.var.api.alerts.$get({ query: { status, limit: "200" } });
      const ctx = c.var.page;
      const items = res.ok ? alertListSchema.parse(await res.json()).items : [];
      return await html(
        c,
        <Layout title="Alerts" ctx={ctx} live>
          <p>
            <a href="/ui/alerts">open</a> · <a href="/ui/alerts?status=resolved">resolved</a>
          </p>
          <form method="post" action="/ui/sweep" class="inline">
            <Csrf ctx={ctx} />
            <button type="submit">Run the status daemon now</button>
          </form>
          <table id="alerts">
            <tr>
              <th>appliance</th>
              <th>kind</th>
              <th>opened</th>
              <th>{status === "open" ? "acknowledged" : "resolved"}</th>
            </tr>
            {items.map((al) => (
              <tr data-alert={al.id}>
                <td>
                  {al.uid ? <a href={`/ui/appliances/${al.uid}`}>{al.hostname ?? al.uid}</a> : ""}
                </td>
                <td>{al.kind}</td>
                <td>
                  <Time at={al.openedAt} />
                </td>
                <td>
                  {status === "resolved" ? <Time at={al.resolvedAt} /> : al.acknowledgedAt
                    ? (
                      <>
                        <Time at={al.acknowledgedAt} /> by {al.acknowledgedBy}
                      </>
                    )
                    : (
                      <form method="post" action={`/ui/alerts/${al.id}/ack`} class="inline">
                        <Csrf ctx={ctx} />
                        <button type="submit">Acknowledge</button>
                      </form>
                    )}
                </td>
              </tr>
            ))}
          </table>
          {items.length === 0 && <p class="muted">No {status} alerts.</p>}
        </Layout>,
        res.status,
      );
    })
    .post("/alerts/:id/ack", p.signedIn, async (c) => {
      const res = await c.var.api.alerts[":id"].ack.$post({ param: { id: idOf(c) } });
      return back(c, "/ui/alerts", res.ok ? "Acknowledged" : await refusal(res));
    })
    .post("/sweep", p.signedIn, async (c) => {
      const res = await c.var.api.sweep.$post();
      if (!res.ok) return back(c, "/ui/alerts", await refusal(res));
      const r = await res.json();
      return back(
        c,
        "/ui/alerts",
        `Swept: ${r.alerted.length} newly missing, ${r.recovered.length} recovered`,
      );
    });
}
