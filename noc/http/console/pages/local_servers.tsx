/** `/ui/local-servers`: the sites' local component servers, their health, cache and traffic. */
import { Hono } from "hono";
import { z } from "zod";
import { bytes, Layout, State, Time } from "../layout.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { html } from "../page.ts";

/** What the page reads of a local server (the API types it as a record). */
const localServerSchema = z.object({
  site: z.string(),
  name: z.string(),
  url: z.string(),
  state: z.string(),
  lastContactAt: z.string().nullable(),
  cache: z.object({ bytes: z.number(), limit: z.number(), entries: z.number() }),
  hitRate: z.number().nullable(),
  pendingRecords: z.number(),
  problems: z.array(z.object({ code: z.unknown(), message: z.unknown() }).partial()),
});

/** `GET /ui/local-servers`. */
export function localServerPage(p: PageDeps) {
  return new Hono<ConsoleEnv>().get("/local-servers", p.signedIn, async (c) => {
    const res = await c.var.api["local-servers"].$get({ query: {} });
    const items = res.ok
      ? z.object({ items: z.array(localServerSchema) }).parse(await res.json()).items
      : [];
    return await html(
      c,
      <Layout title="Local component servers" ctx={c.var.page} live>
        <table id="local-servers">
          <tr>
            <th>site</th>
            <th>name</th>
            <th>state</th>
            <th>last contact</th>
            <th class="num">cache</th>
            <th class="num">hit rate</th>
            <th class="num">records pending</th>
            <th>problems</th>
          </tr>
          {items.map((s) => (
            <tr>
              <td>{s.site}</td>
              <td>
                {s.name} <span class="muted">{s.url}</span>
              </td>
              <td>
                <State state={s.state === "silent" ? "late" : s.state} /> {s.state}
              </td>
              <td>
                <Time at={s.lastContactAt} />
              </td>
              <td class="num">
                {bytes(s.cache.bytes)} / {bytes(s.cache.limit)} ({s.cache.entries})
              </td>
              <td class="num">{s.hitRate === null ? "-" : `${Math.round(s.hitRate * 100)}%`}</td>
              <td class="num">{s.pendingRecords}</td>
              <td>
                {s.problems.slice(0, 3).map((pr) => `${pr.code}: ${pr.message}`).join("; ")}
              </td>
            </tr>
          ))}
        </table>
        {items.length === 0 && (
          <p class="muted">
            None yet: create a token “for a local component server” on the Enrolment page.
          </p>
        )}
      </Layout>,
    );
  });
}
