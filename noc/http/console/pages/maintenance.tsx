/**
 * `/ui/maintenance`: maintenance windows — open one for a site (chosen from the known sites) or an
 * appliance (UID or host name), starting now or at a time, for a duration or until a time, with a
 * reason; the active, upcoming and recently ended windows; ending one now (with a confirmation).
 */
import { ifMatch, refusalOf, Versioned } from "../revisions.tsx";
import { Hono } from "hono";
import { z } from "zod";
import { Confirm, Csrf, Layout, Pager, Time } from "../layout.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, idOf, kept, listPage, refused } from "../page.ts";
import { type AdminClient, refusal } from "../admin_client.ts";

const windowListSchema = z.object({
  items: z.array(z.object({
    id: z.number(),
    uid: z.string().nullable(),
    hostname: z.string().nullable(),
    site: z.string().nullable(),
    startsAt: z.string(),
    endsAt: z.string(),
    reason: z.string(),
    state: z.enum(["active", "upcoming", "ended"]),
    createdBy: z.string().nullable(),
    endedAt: z.string().nullable(),
    endedBy: z.string().nullable(),
    revision: z.number().optional(),
  })),
  nextCursor: z.string().nullable().optional(),
});
type MaintenanceWindow = z.infer<typeof windowListSchema>["items"][number];

/** The duration choices, in minutes. */
const durations: Array<[string, string]> = [
  ["30", "30 minutes"],
  ["60", "1 hour"],
  ["120", "2 hours"],
  ["240", "4 hours"],
  ["480", "8 hours"],
  ["1440", "24 hours"],
  ["4320", "3 days"],
];

/** How far back ended windows are listed. */
const endedWithinMs = 7 * 24 * 3600_000;

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const hostRe = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
/** A `datetime-local` value (read as UTC). */
const localTimeRe = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/;

async function knownSites(api: AdminClient): Promise<string[]> {
  const res = await api.fleet.sites.$get({ query: { limit: "1000" } });
  if (!res.ok) return [];
  return (await res.json()).items.map((s) => s.site).filter((s): s is string => s !== null)
    .sort();
}

/**
 * The UID of the appliance `given` names (a UID, or a host name, any case), or why there is none:
 * a host name several current appliances share is refused (give the UID).
 */
async function applianceOf(
  api: AdminClient,
  given: string,
): Promise<{ uid: string } | { refused: string }> {
  if (uuidRe.test(given)) return { uid: given.toLowerCase() };
  if (!hostRe.test(given)) return { refused: `"${given.slice(0, 60)}" is not a UID or host name` };
  const res = await api.appliances.$get({ query: { q: given, limit: "100" } });
  if (!res.ok) return { refused: await refusal(res) };
  const found = (await res.json()).items as Array<{ uid: string; hostname: string }>;
  const same = found.filter((a) => a.hostname.toLowerCase() === given.toLowerCase());
  if (same.length === 1) return { uid: same[0]!.uid };
  if (same.length === 0) return { refused: `No appliance is named "${given}"` };
  return { refused: `${same.length} appliances are named "${given}": give the UID` };
}

/** `GET /ui/maintenance`, `POST /ui/maintenance`, `POST /ui/maintenance/:id/end`. */
export function maintenancePages(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/maintenance", p.signedIn, async (c) => {
      const ctx = c.var.page;
      const now = p.deps.clock.now();
      // A page at a time, newest first (`?cursor=`, `?limit=`): the three sections show it.
      const page = listPage(c);
      const [res, sites] = await Promise.all([
        c.var.api.maintenance.$get({
          query: {
            endedSince: new Date(now.getTime() - endedWithinMs).toISOString(),
            limit: page.limit,
            ...(page.cursor ? { cursor: page.cursor } : {}),
          },
        }),
        knownSites(c.var.api),
      ]);
      const list = res.ok
        ? windowListSchema.parse(await res.json())
        : { items: [] as MaintenanceWindow[], nextCursor: null };
      const windows = list.items;
      const k = kept(c);
      const site = k["site"] ?? c.req.query("site") ?? "";
      const appliance = k["appliance"] ?? c.req.query("appliance") ?? "";
      const duration = k["duration"] ?? "120";
      const of = (s: MaintenanceWindow["state"]) => windows.filter((w) => w.state === s);
      return await html(
        c,
        <Layout title="Maintenance" ctx={ctx}>
          <p class="muted">
            While a window is open, an appliance it covers raises no missed-heartbeat alert. Times
            are UTC.
          </p>
          <form
            method="post"
            action="/ui/maintenance"
            class="panel"
            id="new-window"
            hidden={ctx.role === "viewer"}
          >
            <Csrf ctx={ctx} />
            <label>
              site
              <select name="site">
                <option value="">(an appliance instead)</option>
                {sites.map((s) => <option value={s} selected={s === site}>{s}</option>)}
                {site && !sites.includes(site) && <option value={site} selected>{site}</option>}
              </select>
            </label>
            <label>
              or appliance (UID or host name)
              <input type="text" name="appliance" value={appliance} maxlength={253} />
            </label>
            <label>
              starts (empty: now)
              <input type="datetime-local" name="starts" value={k["starts"] ?? ""} />
            </label>
            <label>
              for
              <select name="duration">
                {durations.map(([v, t]) => (
                  <option value={v} selected={v === duration}>{t}</option>
                ))}
              </select>
            </label>
            <label>
              or until
              <input type="datetime-local" name="until" value={k["until"] ?? ""} />
            </label>
            <label>
              reason
              <input
                type="text"
                name="reason"
                required
                maxlength={500}
                size={30}
                value={k["reason"] ?? ""}
              />
            </label>
            <button type="submit">Start maintenance</button>
          </form>
          <h2 id="active">Active</h2>
          <Windows items={of("active")} ctx={ctx} end={ctx.role !== "viewer"} />
          <h2 id="upcoming">Upcoming</h2>
          <Windows items={of("upcoming")} ctx={ctx} end={ctx.role !== "viewer"} />
          <h2 id="ended">Ended in the last 7 days</h2>
          <Windows items={of("ended")} ctx={ctx} />
          <Pager
            id="windows"
            what="windows"
            shown={windows.length}
            next={list.nextCursor}
            first={page.first}
            path="/ui/maintenance"
            keep={page.keep}
          />
        </Layout>,
        res.status,
      );
    })
    .post("/maintenance", p.signedIn, async (c) => {
      const form = await formOf(c);
      const site = field(form, "site");
      const given = field(form, "appliance");
      const reason = field(form, "reason");
      const no = (message: string) => refused(c, "/ui/maintenance", message, form);
      if ((site === "") === (given === "")) return no("Choose a site or name an appliance (one)");
      if (!reason) return no("Give a reason");
      const now = p.deps.clock.now();
      const starts = field(form, "starts");
      const until = field(form, "until");
      if (starts && !localTimeRe.test(starts)) return no("The start is not a date and time");
      if (until && !localTimeRe.test(until)) return no("The end is not a date and time");
      const startsAt = starts ? new Date(`${starts}Z`) : now;
      const minutes = Number(field(form, "duration"));
      if (!until && !durations.some(([v]) => Number(v) === minutes)) {
        return no("Choose a duration or an end time");
      }
      const endsAt = until
        ? new Date(`${until}Z`)
        : new Date(startsAt.getTime() + minutes * 60_000);
      if (Number.isNaN(startsAt.getTime()) || Number.isNaN(endsAt.getTime())) {
        return no("The start or end is not a valid time");
      }
      let target: { site: string } | { uid: string };
      if (site) target = { site };
      else {
        const a = await applianceOf(c.var.api, given);
        if ("refused" in a) return no(a.refused);
        target = { uid: a.uid };
      }
      const res = await c.var.api.maintenance.$post({
        json: {
          ...target,
          ...(starts ? { startsAt: startsAt.toISOString() } : {}),
          endsAt: endsAt.toISOString(),
          reason,
        },
      });
      if (!res.ok) return no(await refusal(res));
      const w = await res.json() as { endsAt: string; state: string };
      const what = site ? `Site ${site}` : given;
      return back(
        c,
        "/ui/maintenance",
        `${what} in maintenance ${
          w.state === "upcoming"
            ? "from " + startsAt.toISOString().slice(0, 16).replace("T", " ") + " "
            : ""
        }until ${w.endsAt.slice(0, 16).replace("T", " ")} UTC`,
      );
    })
    .post("/maintenance/:id/end", p.signedIn, async (c) => {
      const id = idOf(c);
      const form = await formOf(c);
      if (field(form, "confirmed") !== "yes") {
        return await html(
          c,
          <Layout title="End maintenance" ctx={c.var.page}>
            <Confirm
              ctx={c.var.page}
              what={`End maintenance window ${id} now? Its appliances will raise missed-heartbeat alerts again.`}
              action={`/ui/maintenance/${id}/end`}
              button="End it now"
              cancel="/ui/maintenance"
              fields={field(form, "revision") ? { revision: field(form, "revision") } : {}}
            />
          </Layout>,
        );
      }
      const res = await c.var.api.maintenance[":id"].end.$post({ param: { id } }, ifMatch(form));
      if (!res.ok) {
        return refused(
          c,
          "/ui/maintenance",
          await refusalOf(res, (w) => `${w.state}, ends ${String(w.endsAt).slice(0, 16)} UTC`),
        );
      }
      return back(c, "/ui/maintenance", `Maintenance window ${id} ended`);
    });
}

/** A table of windows; `end`: with an "End now" button each. */
function Windows(
  props: {
    items: MaintenanceWindow[];
    ctx: NonNullable<ConsoleEnv["Variables"]["page"]>;
    end?: boolean;
  },
) {
  if (props.items.length === 0) return <p class="muted">None.</p>;
  return (
    <table class="windows">
      <tr>
        <th>for</th>
        <th>until</th>
        <th>reason</th>
        {props.end ? <th>action</th> : <th>ended by</th>}
        <th>from</th>
        <th>opened by</th>
      </tr>
      {props.items.map((w) => (
        <tr data-window={w.id} id={`window-${w.id}`}>
          <td>
            {w.site
              ? (
                <>
                  site <a href={`/ui/appliances?site=${encodeURIComponent(w.site)}`}>{w.site}</a>
                </>
              )
              : <a href={`/ui/appliances/${w.uid}`}>{w.hostname ?? w.uid}</a>}
          </td>
          <td>
            <Time at={w.endsAt} />
          </td>
          <td>{w.reason}</td>
          <td>
            {props.end
              ? (
                <form method="post" action={`/ui/maintenance/${w.id}/end`} class="inline">
                  <Csrf ctx={props.ctx} />
                  <Versioned revision={w.revision} />
                  <button type="submit" class="danger">End now</button>
                </form>
              )
              : w.endedBy ?? <span class="muted">ran its course</span>}
          </td>
          <td>
            <Time at={w.startsAt} />
          </td>
          <td>{w.createdBy ?? ""}</td>
        </tr>
      ))}
    </table>
  );
}
