/**
 * `/ui/releases/assignments/:id/appliances`: the appliances an assignment's release was sent to,
 * optionally only those in some states (`?state=failed,reverted,other`, `?state=missing`: the
 * Releases page's failed and missing counts link here), each with its state, the version it runs,
 * its latest outcome and the outcome's message, and a link to its page. Pages of 100 in UID order
 * (`?after=` the last UID of the previous page), from `GET /v1/admin/assignments/:id/appliances`.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { Layout, State, Time } from "../layout.tsx";
import { refusal } from "../admin_client.ts";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { html, idOf, refused } from "../page.ts";
import { rolloutStates } from "../../../services/rollouts.ts";
import { describeTarget } from "../../../services/targets.ts";
import { failedStates, gateText } from "./rollouts.tsx";

const listSchema = z.object({
  items: z.array(z.object({
    uid: z.string(),
    hostname: z.string(),
    site: z.string().nullable(),
    state: z.string(),
    runningVersion: z.string().nullable(),
    outcome: z.object({
      outcome: z.string(),
      message: z.string().nullable(),
      reportedAt: z.string(),
    }).nullable(),
    lastBeatAt: z.string().nullable(),
  })),
  nextAfter: z.string().nullable(),
});

const oneSchema = z.object({
  id: z.number(),
  kind: z.string(),
  app: z.string(),
  name: z.string(),
  version: z.string(),
  target: z.object({ type: z.string(), value: z.string().nullable().optional() }),
  rolloutPercent: z.number(),
  paused: z.boolean(),
  failureThresholdPercent: z.number().nullish(),
  minSample: z.number().nullish(),
  targetSize: z.number().default(0),
  progress: z.object({ sent: z.number(), states: z.record(z.string(), z.number()) }),
});

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The filters the page offers: label, states. */
const filters: Array<[string, readonly string[]]> = [
  ["failed", failedStates],
  ["missing", ["missing"]],
  ["pending", ["pending"]],
  ["running", ["running", "unconfirmed"]],
  ["all sent", []],
];

/** `GET /ui/releases/assignments/:id/appliances`. */
export function releaseAppliancePages(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/releases/assignments/:id/appliances", p.signedIn, async (c) => {
      const id = idOf(c);
      const stateParam = c.req.query("state") ?? "";
      const states = stateParam === "" ? [] : stateParam.split(",");
      if (
        stateParam.length > 200 ||
        !states.every((s) => (rolloutStates as readonly string[]).includes(s))
      ) {
        // The refusal does not repeat the link's text: a link cannot put words in the console.
        return refused(c, "/ui/releases", `That link asks for an unknown rollout state`);
      }
      const after = c.req.query("after");
      const oneRes = await c.var.api.assignments[":id"].$get({ param: { id } });
      if (!oneRes.ok) return refused(c, "/ui/releases", await refusal(oneRes));
      const a = oneSchema.parse(await oneRes.json());
      const res = await c.var.api.assignments[":id"].appliances.$get({
        param: { id },
        query: {
          ...(states.length > 0 ? { state: states.join(",") } : {}),
          ...(after && uuid.test(after) ? { after } : {}),
          limit: "100",
        },
      });
      if (!res.ok) return refused(c, "/ui/releases", await refusal(res));
      const list = listSchema.parse(await res.json());
      const release = `${a.kind} ${a.app}/${a.name}@${a.version}`;
      const here = (s: readonly string[]) =>
        `/ui/releases/assignments/${a.id}/appliances${s.length > 0 ? `?state=${s.join(",")}` : ""}`;
      const countOf = (s: readonly string[]) =>
        s.length === 0 ? a.progress.sent : s.reduce((n, x) => n + (a.progress.states[x] ?? 0), 0);
      const shown = states.length === 0 ? "all sent" : states.join(", ");
      return await html(
        c,
        <Layout title={`${release}: appliances (${shown})`} ctx={c.var.page}>
          <p>
            <a href="/ui/releases">Releases</a> · target: {describeTarget(
              { type: a.target.type, value: a.target.value ?? null },
              a.targetSize,
              a.rolloutPercent,
            )} · {a.paused ? "paused" : "running"} · gate: {gateText(a)}
          </p>
          <p class="filters">
            Show: {filters.map(([label, s]) => (
              <>
                {s.join(",") === states.join(",")
                  ? <strong>{label} ({countOf(s)})</strong>
                  : <a href={here(s)}>{label} ({countOf(s)})</a>}
                {" "}
              </>
            ))}
          </p>
          {list.items.length === 0
            ? <p>No appliance of this release is {shown === "all sent" ? "recorded" : shown}.</p>
            : (
              <table id="rollout-appliances">
                <tr>
                  <th>appliance</th>
                  <th>state</th>
                  <th>outcome</th>
                  <th>message</th>
                  <th>reported</th>
                  <th>runs</th>
                  <th>site</th>
                  <th>last beat</th>
                </tr>
                {list.items.map((x) => (
                  <tr data-uid={x.uid}>
                    <td>
                      <a href={`/ui/appliances/${x.uid}`}>{x.hostname}</a>
                    </td>
                    <td>
                      <State state={x.state} />
                    </td>
                    <td>{x.outcome?.outcome ?? <span class="muted">none</span>}</td>
                    <td data-message>{x.outcome?.message ?? ""}</td>
                    <td>
                      <Time at={x.outcome?.reportedAt} />
                    </td>
                    <td>{x.runningVersion ?? <span class="muted">none</span>}</td>
                    <td>{x.site ?? ""}</td>
                    <td>
                      <Time at={x.lastBeatAt} />
                    </td>
                  </tr>
                ))}
              </table>
            )}
          {list.nextAfter && (
            <p>
              <a
                href={`${here(states)}${states.length > 0 ? "&" : "?"}after=${list.nextAfter}`}
              >
                Next page
              </a>
            </p>
          )}
        </Layout>,
      );
    });
}
