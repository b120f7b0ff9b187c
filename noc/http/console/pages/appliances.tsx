/** `/ui/appliances`: the fleet as a list — search, filters, pages of 50. */
import { Hono } from "hono";
import { z } from "zod";
import { applianceStates } from "../../../../protocol/schemas.ts";
import { listQuery } from "../../admin/appliances.ts";
import { describeIssues } from "../../../../protocol/http/validate.ts";
import { Layout, State, Time } from "../layout.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { html } from "../page.ts";
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
  /** Retired by a re-enrolment: the UID of the record that replaced it. */
  supersededBy: z.string().nullish(),
  /** The records this one replaced (re-enrolments), oldest first. */
  supersedes: z.array(z.string()).nullish(),
});

const listSchema = z.object({
  items: z.array(applianceSchema),
  nextCursor: z.string().nullable(),
});

type ListQuery = NonNullable<Parameters<AdminClient["appliances"]["$get"]>[0]>["query"];

/** A page of appliances, or why there is none. */
type Listing = { found: z.infer<typeof listSchema> } | { status: number; refused: string };

async function listing(api: AdminClient, query: ListQuery): Promise<Listing> {
  const res = await api.appliances.$get({ query });
  if (!res.ok) return { status: res.status, refused: await refusal(res) };
  return { found: listSchema.parse(await res.json()) };
}

const filters = ["model", "site", "channel", "tag", "app", "version"] as const;

/** The retired filter's choices: records a re-enrolment retired left out, listed too, or alone. */
const retiredChoices = [
  ["", "current records"],
  ["include", "current and retired"],
  ["only", "retired only"],
] as const;

/**
 * `GET /ui/appliances`: filters in the query (`retired=include|only` lists records retired by a
 * re-enrolment too, or alone), `cursor` for the next page.
 */
export function applianceListPage(p: PageDeps) {
  return new Hono<ConsoleEnv>().get("/appliances", p.signedIn, async (c) => {
    const v = (f: string) => c.req.query(f) ?? "";
    const given = (f: string) => v(f) || undefined;
    // The typed client sends only a known state and retired choice: any other is refused here, by
    // the API's schema.
    const checked = listQuery.pick({ state: true, retired: true }).safeParse({
      state: given("state"),
      retired: given("retired"),
    });
    const state = checked.success ? checked.data.state : undefined;
    const retired = checked.success ? checked.data.retired : undefined;
    const r: Listing = !checked.success
      ? { status: 400, refused: refusedAs(describeIssues(checked.error.issues)) }
      : await listing(c.var.api, {
        q: given("q"),
        state,
        model: given("model"),
        site: given("site"),
        channel: given("channel"),
        tag: given("tag"),
        app: given("app"),
        version: given("version"),
        retired,
        cursor: given("cursor"),
        limit: "50",
      });
    const list = "found" in r ? r.found : null;
    const nextQ = new URLSearchParams();
    for (const f of ["q", "state", ...filters, "retired"] as const) if (v(f)) nextQ.set(f, v(f));
    if (list?.nextCursor) nextQ.set("cursor", list.nextCursor);
    return await html(
      c,
      <Layout title="Appliances" ctx={c.var.page}>
        <form method="get" action="/ui/appliances" class="panel" role="search">
          <label>
            Search
            <input name="q" value={v("q")} placeholder="part of host name; whole UID or address" />
          </label>
          <label>
            State
            <select name="state">
              {["", ...applianceStates].map((s) => (
                <option value={s} selected={v("state") === s}>{s || "any"}</option>
              ))}
            </select>
          </label>
          {filters.map((f) => (
            <label>
              {f}
              <input name={f} value={v(f)} size={10} />
            </label>
          ))}
          <label>
            Re-enrolled
            <select name="retired">
              {retiredChoices.map(([value, text]) => (
                <option value={value} selected={v("retired") === value}>{text}</option>
              ))}
            </select>
          </label>
          <button type="submit">Filter</button>
        </form>
        {list === null ? <p class="flash">{"refused" in r && r.refused}</p> : (
          <>
            <table id="appliances">
              <tr>
                <th>host name</th>
                <th>state</th>
                <th>model</th>
                <th>site</th>
                <th>channel</th>
                <th>last beat</th>
                <th>agent</th>
              </tr>
              {list.items.map((a) => (
                <tr>
                  <td>
                    <a href={`/ui/appliances/${a.uid}`}>{a.hostname}</a>
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
                  <td>{a.model}</td>
                  <td>{a.site ?? ""}</td>
                  <td>{a.channel}</td>
                  <td>
                    <Time at={a.lastBeatAt} />
                  </td>
                  <td>{a.agentVersion ?? ""}</td>
                </tr>
              ))}
            </table>
            {list.items.length === 0 && <p class="muted">No appliance matches.</p>}
            {list.nextCursor && (
              <p>
                <a href={`/ui/appliances?${nextQ}`} rel="next">Next page</a>
              </p>
            )}
          </>
        )}
      </Layout>,
      "status" in r ? r.status : 200,
    );
  });
}
