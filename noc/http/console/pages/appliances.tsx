/**
 * `/ui/appliances`: the fleet as a list — search, filters chosen from known values, a total,
 * sorts, first/previous/next pages, and bulk actions on a selection or on the whole filter.
 */
import { Hono } from "hono";
import { z } from "zod";
import {
  applianceSorts,
  applianceStates,
  type bulkAppliancesSchema,
  installOutcomeFilters,
} from "../../../../protocol/schemas.ts";
import { listQuery } from "../../admin/appliances.ts";
import { describeIssues } from "../../../../protocol/http/validate.ts";
import { Csrf, Layout, State, Time } from "../layout.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { back, html, kept, refused } from "../page.ts";
import { type AdminClient, refusal, refusedAs } from "../admin_client.ts";

/** What the list and the appliance page read of an appliance (the API types it as a record). */
export const applianceSchema = z.object({
  uid: z.string(),
  hostname: z.string(),
  model: z.string(),
  site: z.string().nullable(),
  channel: z.string(),
  tags: z.array(z.string()),
  state: z.string(),
  intervalS: z.number(),
  agentVersion: z.string().nullable(),
  enrolledAt: z.string(),
  lastBeatAt: z.string().nullable(),
  nextDueAt: z.string(),
  revokedAt: z.string().nullable(),
  revokedReason: z.string().nullable(),
  /** The active maintenance window of the appliance or its site, if any. */
  maintenance: z.object({ id: z.number(), endsAt: z.string(), reason: z.string() }).nullish(),
  /** Retired by a re-enrolment: the UID of the record that replaced it. */
  supersededBy: z.string().nullish(),
  /** The records this one replaced (re-enrolments), oldest first. */
  supersedes: z.array(z.string()).nullish(),
  /** Two devices seen beating under this identity (issue 21): shown as a mark in the list. */
  identityConflict: z.object({ reason: z.string() }).nullish(),
  /** Its revision: the console's forms send it back as If-Match (noc/http/console/revisions.tsx). */
  revision: z.number().optional(),
});

const listSchema = z.object({
  items: z.array(applianceSchema),
  nextCursor: z.string().nullable(),
  prevCursor: z.string().nullish(),
  total: z.number().optional(),
  totalCapped: z.boolean().optional(),
});

const facetsSchema = z.object({
  sites: z.array(z.string()),
  models: z.array(z.string()),
  channels: z.array(z.string()),
  tags: z.array(z.string()),
});

type ListQuery = NonNullable<Parameters<AdminClient["appliances"]["$get"]>[0]>["query"];

/** A page of appliances, or why there is none. */
type Listing = { found: z.infer<typeof listSchema> } | { status: number; refused: string };

async function listing(api: AdminClient, query: ListQuery): Promise<Listing> {
  const res = await api.appliances.$get({ query });
  if (!res.ok) return { status: res.status, refused: await refusal(res) };
  return { found: listSchema.parse(await res.json()) };
}

/** The filters a list URL (and a bulk action by filter) carries, in the order the form shows. */
const filterNames = [
  "q",
  "state",
  "site",
  "model",
  "channel",
  "tag",
  "app",
  "version",
  "outcome",
  "retired",
] as const;

/** The retired filter's choices: records a re-enrolment retired left out, listed too, or alone. */
const retiredChoices = [
  ["", "current records"],
  ["include", "current and retired"],
  ["only", "retired only"],
] as const;

const outcomeText: Record<(typeof installOutcomeFilters)[number], string> = {
  installed: "installed",
  failed: "failed",
  rolled_back: "rolled back",
  interrupted: "interrupted (inconsistent)",
};

const sortText: Record<(typeof applianceSorts)[number], string> = {
  hostname: "host name",
  lastBeat: "last beat",
  state: "state (most overdue first)",
};

/** The bulk actions the form offers. */
const bulkActions = [
  ["wake", "Wake now"],
  ["hold", "Hold (pin to its catalog)"],
  ["release", "Release holds"],
  ["move", "Move (site, channel, tags)"],
  ["maintenance", "Maintenance window"],
] as const;

/** A choice list of known `values`, keeping `current` even when it is not among them. */
function Choices(
  props: { name: string; label: string; values: string[]; current: string },
) {
  const values = props.current && !props.values.includes(props.current)
    ? [props.current, ...props.values]
    : props.values;
  return (
    <label>
      {props.label}
      <select name={props.name}>
        <option value="">any</option>
        {values.map((v) => <option value={v} selected={v === props.current}>{v}</option>)}
      </select>
    </label>
  );
}

/** `list` as a comma- or space-separated text field's values. */
function words(v: string): string[] {
  return v.split(/[\s,]+/).filter((w) => w !== "");
}

/** The list's own URL for query `q` (only the list's parameters). */
function listUrl(q: URLSearchParams): string {
  const s = q.toString();
  return s ? `/ui/appliances?${s}` : "/ui/appliances";
}

/**
 * `GET /ui/appliances`: filters in the query (`retired=include|only` lists records retired by a
 * re-enrolment too, or alone; `outcome` the last install outcome), `sort` and `order`, `cursor`
 * for the next page and `before` for the previous one. `POST /ui/appliances/bulk`: a bulk action
 * on the checked appliances (`scope=selected`) or on the filter's (`scope=filter`).
 */
export function applianceListPage(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/appliances", p.signedIn, async (c) => {
      const v = (f: string) => c.req.query(f) ?? "";
      const given = (f: string) => v(f) || undefined;
      const ctx = c.var.page;
      const form = kept(c);
      // The typed client sends only known choices: any other is refused here, by the API's schema.
      const checked = listQuery.pick({
        state: true,
        retired: true,
        outcome: true,
        sort: true,
        order: true,
      }).safeParse({
        state: given("state"),
        retired: given("retired"),
        outcome: given("outcome"),
        sort: given("sort"),
        order: given("order"),
      });
      const ok = checked.success ? checked.data : undefined;
      const [r, facetsRes] = await Promise.all([
        !checked.success
          ? { status: 400, refused: refusedAs(describeIssues(checked.error.issues)) } as Listing
          : listing(c.var.api, {
            q: given("q"),
            state: ok?.state,
            model: given("model"),
            site: given("site"),
            channel: given("channel"),
            tag: given("tag"),
            app: given("app"),
            version: given("version"),
            outcome: ok?.outcome,
            retired: ok?.retired,
            sort: ok?.sort,
            order: ok?.order,
            cursor: given("cursor"),
            before: given("before"),
            count: "true",
            limit: "50",
          }),
        c.var.api.appliances.facets.$get(),
      ]);
      const facets = facetsRes.ok
        ? facetsSchema.parse(await facetsRes.json())
        : { sites: [], models: [], channels: [], tags: [] };
      const list = "found" in r ? r.found : null;
      // The filter and order, without a page: what every page link and the bulk form keep.
      const filterQ = new URLSearchParams();
      for (const f of [...filterNames, "sort", "order"]) if (v(f)) filterQ.set(f, v(f));
      const pageQ = (k: "cursor" | "before", at: string) => {
        const q = new URLSearchParams(filterQ);
        q.set(k, at);
        return listUrl(q);
      };
      const here = (() => {
        const q = new URLSearchParams(filterQ);
        if (v("cursor")) q.set("cursor", v("cursor"));
        if (v("before")) q.set("before", v("before"));
        return listUrl(q);
      })();
      const total = list?.total;
      const totalText = total === undefined
        ? ""
        : list?.totalCapped
        ? `More than ${total.toLocaleString("en")} appliances match`
        : `${total.toLocaleString("en")} appliance${total === 1 ? "" : "s"} match`;
      const kv = (k: string) => form[k] ?? "";
      return await html(
        c,
        <Layout title="Appliances" ctx={ctx}>
          <form method="get" action="/ui/appliances" class="panel" role="search">
            <label>
              Search
              <input
                name="q"
                value={v("q")}
                placeholder="part of host name; whole UID or address"
              />
            </label>
            <label>
              State
              <select name="state">
                {["", ...applianceStates].map((s) => (
                  <option value={s} selected={v("state") === s}>{s || "any"}</option>
                ))}
              </select>
            </label>
            <Choices name="site" label="Site" values={facets.sites} current={v("site")} />
            <Choices name="model" label="Model" values={facets.models} current={v("model")} />
            <Choices
              name="channel"
              label="Channel"
              values={facets.channels}
              current={v("channel")}
            />
            <Choices name="tag" label="Tag" values={facets.tags} current={v("tag")} />
            <label>
              Application
              <input name="app" value={v("app")} size={10} />
            </label>
            <label>
              Version
              <input name="version" value={v("version")} size={8} />
            </label>
            <label>
              Last install
              <select name="outcome">
                <option value="">any</option>
                {installOutcomeFilters.map((o) => (
                  <option value={o} selected={v("outcome") === o}>{outcomeText[o]}</option>
                ))}
              </select>
            </label>
            <label>
              Re-enrolled
              <select name="retired">
                {retiredChoices.map(([value, text]) => (
                  <option value={value} selected={v("retired") === value}>{text}</option>
                ))}
              </select>
            </label>
            <label>
              Sort by
              <select name="sort">
                {applianceSorts.map((s) => (
                  <option value={s} selected={(v("sort") || "hostname") === s}>
                    {sortText[s]}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Order
              <select name="order">
                <option value="asc" selected={v("order") !== "desc"}>ascending</option>
                <option value="desc" selected={v("order") === "desc"}>descending</option>
              </select>
            </label>
            <button type="submit">Filter</button>
          </form>
          {list === null
            ? <p class="flash error" role="alert">{"refused" in r && r.refused}</p>
            : (
              <>
                <p id="total" aria-live="polite">{totalText}</p>
                <form method="post" action="/ui/appliances/bulk" class="panel" id="bulk">
                  <Csrf ctx={ctx} />
                  <input type="hidden" name="back" value={here} />
                  {filterNames.map((f) =>
                    v(f) ? <input type="hidden" name={`f_${f}`} value={v(f)} /> : ""
                  )}
                  <label>
                    Bulk action
                    <select name="action">
                      {bulkActions.map(([value, text]) => (
                        <option value={value} selected={kv("action") === value}>{text}</option>
                      ))}
                    </select>
                  </label>
                  <label>
                    Reason (hold, maintenance)
                    <input name="reason" value={kv("reason")} maxlength={500} />
                  </label>
                  <label>
                    Hours (maintenance)
                    <input
                      name="hours"
                      type="number"
                      min={1}
                      max={720}
                      value={kv("hours") || "2"}
                    />
                  </label>
                  <label>
                    Move to site
                    <input name="site" value={kv("site")} list="known-sites" size={10} />
                  </label>
                  <label>
                    Channel
                    <input name="channel" value={kv("channel")} list="known-channels" size={8} />
                  </label>
                  <label>
                    Add tags
                    <input name="addTags" value={kv("addTags")} list="known-tags" size={10} />
                  </label>
                  <label>
                    Remove tags
                    <input name="removeTags" value={kv("removeTags")} list="known-tags" size={10} />
                  </label>
                  <datalist id="known-sites">
                    {facets.sites.map((s) => <option value={s} />)}
                  </datalist>
                  <datalist id="known-channels">
                    {facets.channels.map((s) => <option value={s} />)}
                  </datalist>
                  <datalist id="known-tags">
                    {facets.tags.map((s) => <option value={s} />)}
                  </datalist>
                  <button type="submit" name="scope" value="selected">Apply to selected</button>
                  <button
                    type="submit"
                    name="scope"
                    value="filter"
                    class="secondary"
                    disabled={list.items.length === 0}
                  >
                    Apply to all {total !== undefined && !list.totalCapped ? total : ""} matching
                  </button>
                </form>
                <table id="appliances">
                  <tr>
                    <th>
                      <span class="sr-only">select</span>
                    </th>
                    <th>host name</th>
                    <th>state</th>
                    <th>last beat</th>
                    <th>maintenance</th>
                    <th>site</th>
                    <th>model</th>
                    <th>channel</th>
                    <th>agent</th>
                  </tr>
                  {list.items.map((a) => (
                    <tr>
                      <td>
                        <input
                          type="checkbox"
                          name="uid"
                          value={a.uid}
                          form="bulk"
                          aria-label={`select ${a.hostname}`}
                        />
                      </td>
                      <td>
                        <a href={`/ui/appliances/${a.uid}`}>{a.hostname}</a>
                        {a.identityConflict && (
                          <>
                            {" "}
                            <span
                              class="state missing"
                              data-identity-conflict
                              title="Two devices beat under this identity: see its page"
                            >
                              clone?
                            </span>
                          </>
                        )}
                      </td>
                      <td>
                        <State state={a.state} />
                        {a.supersededBy && (
                          <>
                            {" "}retired, superseded by{" "}
                            <a href={`/ui/appliances/${a.supersededBy}`} data-superseded-by>
                              {a.supersededBy.slice(0, 8)}
                            </a>
                          </>
                        )}
                      </td>
                      <td>
                        <Time at={a.lastBeatAt} />
                      </td>
                      <td data-maintenance>
                        {a.maintenance
                          ? (
                            <>
                              until <Time at={a.maintenance.endsAt} />: {a.maintenance.reason}
                            </>
                          )
                          : ""}
                      </td>
                      <td>{a.site ?? ""}</td>
                      <td>{a.model}</td>
                      <td>{a.channel}</td>
                      <td>{a.agentVersion ?? ""}</td>
                    </tr>
                  ))}
                </table>
                {list.items.length === 0 && <p class="muted">No appliance matches.</p>}
                <nav aria-label="pages" class="pages">
                  {(v("cursor") || v("before")) && (
                    <a href={listUrl(filterQ)} rel="first">First page</a>
                  )}{" "}
                  {list.prevCursor && (
                    <a href={pageQ("before", list.prevCursor)} rel="prev">Previous page</a>
                  )}{" "}
                  {list.nextCursor && (
                    <a href={pageQ("cursor", list.nextCursor)} rel="next">Next page</a>
                  )}
                </nav>
              </>
            )}
        </Layout>,
        "status" in r ? r.status : 200,
      );
    })
    .post("/appliances/bulk", p.signedIn, async (c) => {
      let body: Record<string, string | File | (string | File)[]>;
      try {
        body = await c.req.parseBody({ all: true });
      } catch {
        return refused(c, "/ui/appliances", "The form could not be read");
      }
      const one = (k: string): string => {
        const x = body[k];
        const s = Array.isArray(x) ? x[0] : x;
        return typeof s === "string" ? s.trim() : "";
      };
      const backTo = one("back");
      const to = /^\/ui\/appliances(\?[A-Za-z0-9%=&._~+-]*)?$/.test(backTo) && backTo.length <= 2000
        ? backTo
        : "/ui/appliances";
      // What the page refills after a refusal: the action's fields (not the selection).
      const form: Record<string, string> = {};
      for (const k of ["action", "reason", "hours", "site", "channel", "addTags", "removeTags"]) {
        if (one(k)) form[k] = one(k);
      }
      const uids = ([] as (string | File)[]).concat(body["uid"] ?? [])
        .filter((u): u is string => typeof u === "string");
      const scope = one("scope");
      if (scope === "selected" && uids.length === 0) {
        return refused(c, to, "Select at least one appliance, or apply to all matching", form);
      }
      const filter: Record<string, string> = {};
      for (const f of filterNames) if (one(`f_${f}`)) filter[f] = one(`f_${f}`);
      let action: Record<string, unknown>;
      switch (one("action")) {
        case "wake":
          action = { type: "wake" };
          break;
        case "hold":
          action = { type: "hold", reason: one("reason") };
          break;
        case "release":
          action = { type: "release" };
          break;
        case "move":
          action = {
            type: "move",
            ...(one("site") ? { site: one("site") } : {}),
            ...(one("channel") ? { channel: one("channel") } : {}),
            ...(one("addTags") ? { addTags: words(one("addTags")) } : {}),
            ...(one("removeTags") ? { removeTags: words(one("removeTags")) } : {}),
          };
          break;
        case "maintenance": {
          const hours = Number(one("hours"));
          if (!Number.isInteger(hours) || hours < 1 || hours > 720) {
            return refused(c, to, "Hours: a whole number from 1 to 720", form);
          }
          action = {
            type: "maintenance",
            reason: one("reason"),
            endsAt: new Date(p.deps.clock.now().getTime() + hours * 3600_000).toISOString(),
          };
          break;
        }
        default:
          return refused(c, to, "Choose a bulk action", form);
      }
      const json =
        (scope === "filter" ? { filter, action } : { uids, action }) as unknown as z.input<
          typeof bulkAppliancesSchema
        >;
      const res = await c.var.api.appliances.bulk.$post({ json });
      if (!res.ok) return refused(c, to, await refusal(res), form);
      const done = z.object({
        matched: z.number(),
        done: z.number(),
        skipped: z.number(),
        skippedWhy: z.string().nullable(),
      }).parse(await res.json());
      const verb = bulkActions.find(([a]) => a === one("action"))?.[1] ?? one("action");
      return back(
        c,
        to,
        `${verb}: ${done.done} of ${done.matched} appliance${done.matched === 1 ? "" : "s"}` +
          (done.skipped > 0 ? `; ${done.skipped} skipped (${done.skippedWhy})` : ""),
      );
    });
}
