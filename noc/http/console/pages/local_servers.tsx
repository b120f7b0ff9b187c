/**
 * `/ui/local-servers`: the sites' local component servers, their health, cache and traffic, and
 * revoking one (asked first: catalogs stop listing it, and it cannot be undone).
 */
import { ifMatch, refusalOf, Versioned } from "../revisions.tsx";
import { Hono } from "hono";
import { z } from "zod";
import { bytes, Confirm, Csrf, Layout, Pager, State, Time } from "../layout.tsx";
import type { ConsoleContext, ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, kept, listPage, refused } from "../page.ts";
import { ApiError } from "../../../../protocol/http/errors.ts";

/** What the page reads of a local server (the API types it as a record). */
const localServerSchema = z.object({
  id: z.string(),
  site: z.string(),
  name: z.string(),
  url: z.string(),
  state: z.string(),
  lastContactAt: z.string().nullable(),
  cache: z.object({ bytes: z.number(), limit: z.number(), entries: z.number() }),
  hitRate: z.number().nullable(),
  pendingRecords: z.number(),
  problems: z.array(z.object({ code: z.unknown(), message: z.unknown() }).partial()),
  revokedReason: z.string().nullish(),
  revision: z.number().optional(),
});

type LocalServer = z.infer<typeof localServerSchema>;

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The `:id` parameter; 404 unless it is a UUID (it goes into an admin API path). */
function serverIdOf(c: ConsoleContext): string {
  const v = c.req.param("id") ?? "";
  if (!uuidPattern.test(v)) {
    throw new ApiError(404, "not_found", `"${v.slice(0, 60)}" is not a local server id`);
  }
  return v;
}

/** A page of local servers, by site then id (`?cursor=`, `?limit=`). */
async function listServers(c: ConsoleContext) {
  const page = listPage(c);
  const res = await c.var.api["local-servers"].$get({
    query: { limit: page.limit, ...(page.cursor ? { cursor: page.cursor } : {}) },
  });
  const list = res.ok
    ? z.object({
      items: z.array(localServerSchema),
      nextCursor: z.string().nullable().optional(),
    }).parse(await res.json())
    : { items: [] as LocalServer[], nextCursor: null };
  return { items: list.items, nextCursor: list.nextCursor ?? null, page };
}

function serversPage(
  c: ConsoleContext,
  list: Awaited<ReturnType<typeof listServers>>,
  confirm?: unknown,
) {
  const items = list.items;
  const ctx = c.var.page;
  // A page asking to confirm is not refreshed under the operator's hands.
  return (
    <Layout title="Local component servers" ctx={ctx} live={!confirm}>
      {confirm as Parameters<typeof Layout>[0]["children"]}
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
          <th>action</th>
        </tr>
        {items.map((s) => (
          <tr>
            <td>{s.site}</td>
            <td>
              {s.name} <span class="muted">{s.url}</span>
            </td>
            <td>
              <State state={s.state === "silent" ? "late" : s.state} /> {s.state}
              {s.revokedReason ? <span class="muted">: {s.revokedReason}</span> : ""}
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
            <td>
              {s.state !== "revoked" && (
                <form method="post" action={`/ui/local-servers/${s.id}/revoke`} class="inline">
                  <Csrf ctx={ctx} />
                  <Versioned revision={s.revision} />
                  <button type="submit" class="danger">Revoke…</button>
                </form>
              )}
            </td>
          </tr>
        ))}
      </table>
      <Pager
        id="local-servers"
        what="local servers"
        shown={items.length}
        next={list.nextCursor}
        first={list.page.first}
        path="/ui/local-servers"
        keep={list.page.keep}
      />
      {items.length === 0 && list.page.first && (
        <p class="muted">
          None yet: create a token “for a local component server” on the Enrolment page.
        </p>
      )}
    </Layout>
  );
}

/** `GET /ui/local-servers`, `POST /ui/local-servers/:id/revoke` (asks first, with a reason). */
export function localServerPage(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/local-servers", p.signedIn, async (c) => {
      return await html(c, serversPage(c, await listServers(c)));
    })
    .post("/local-servers/:id/revoke", p.signedIn, async (c) => {
      const id = serverIdOf(c);
      const form = await formOf(c);
      const reason = field(form, "reason");
      if (field(form, "confirmed") !== "yes" || !reason) {
        const list = await listServers(c);
        // The one asked about, whichever page of the list it is on.
        const one = await c.var.api["local-servers"][":id"].$get({ param: { id } });
        const s = one.ok ? localServerSchema.parse(await one.json()) : undefined;
        if (!s) {
          throw new ApiError(404, "not_found", `Local component server "${id}" does not exist`);
        }
        const again = kept(c);
        return await html(
          c,
          serversPage(
            c,
            list,
            <Confirm
              ctx={c.var.page}
              what={`Revoke local server ${s.name} of site ${s.site}? Catalogs stop listing it at once, its appliances fetch from the NOC instead, and it cannot enrol again with its identity.`}
              action={`/ui/local-servers/${id}/revoke`}
              button="Revoke local server"
              cancel="/ui/local-servers"
              fields={field(form, "revision") ? { revision: field(form, "revision") } : {}}
            >
              <label>
                Reason (kept with the record)
                <input
                  name="reason"
                  required
                  maxlength={500}
                  size={30}
                  value={reason || again["reason"]}
                />
              </label>
            </Confirm>,
          ),
          field(form, "confirmed") === "yes" ? 400 : 200,
        );
      }
      const res = await c.var.api["local-servers"][":id"].revoke.$post({
        param: { id },
        json: { reason },
      }, ifMatch(form));
      if (res.ok) return back(c, "/ui/local-servers", `Local server revoked`);
      const why = await refusalOf(res, (s) => `${s.state}, ${s.url}`);
      return refused(c, "/ui/local-servers", why, res.status === 409 ? {} : form);
    });
}
