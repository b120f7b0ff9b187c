/**
 * Assignments, rollouts and holds: the Releases page's sections
 * ({@link AssignForm}, {@link Assignments}, {@link Holds}) and their actions
 * under `/ui/releases`.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { Csrf, type PageContext } from "../layout.tsx";
import type { AdminClient } from "../admin_client.ts";
import { refusal } from "../admin_client.ts";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, idOf } from "../page.ts";

/** The application, name and version fields of the publish and assign forms. */
export function ComponentFields() {
  return (
    <>
      <label>
        Application<input name="app" required size={12} />
      </label>
      <label>
        Name<input name="name" required size={12} />
      </label>
      <label>
        Version<input name="version" required size={8} />
      </label>
    </>
  );
}

/** What the page reads of `GET /assignments` (the API types an assignment as a record). */
const assignmentListSchema = z.object({
  items: z.array(z.object({
    id: z.number(),
    kind: z.string(),
    app: z.string(),
    name: z.string(),
    version: z.string(),
    target: z.object({ type: z.string(), value: z.string().nullable().optional() }),
    rolloutPercent: z.number(),
    paused: z.boolean(),
    pausedReason: z.string().nullable(),
    failureThresholdPercent: z.number().nullish(),
    minSample: z.number().nullish(),
    progress: z.object({
      installed: z.number(),
      sent: z.number(),
      failed: z.number(),
      states: z.record(z.string(), z.number()),
    }),
  })),
});

/**
 * A rollout's appliances by state, as the page words them (only states someone is in): from what
 * each appliance last reported running (noc/services/rollouts.ts).
 */
export function stateSummary(states: Record<string, number>): string {
  return Object.entries(states).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(" · ");
}

/** An assignment as the page shows it. */
export type Assignment = z.infer<typeof assignmentListSchema>["items"][number];

/** Every assignment, newest first. */
export async function loadAssignments(api: AdminClient): Promise<Assignment[]> {
  const res = await api.assignments.$get({ query: {} });
  return res.ok ? assignmentListSchema.parse(await res.json()).items : [];
}

/** Every hold, newest first. */
export async function loadHolds(api: AdminClient) {
  const res = await api.holds.$get({ query: {} });
  return res.ok ? (await res.json()).items : [];
}

/**
 * The assign form: kind, component, target, rollout percentage and, optionally, the health gate
 * (`failureThresholdPercent`, 1–100) and its minimum sample (`minSample`, 1–100,000; 5 when empty).
 */
export function AssignForm(props: { ctx: PageContext }) {
  return (
    <form method="post" action="/ui/releases/assign" class="panel">
      <Csrf ctx={props.ctx} />
      <label>
        Kind
        <select name="kind">
          <option value="package">package</option>
          <option value="file">file</option>
        </select>
      </label>
      <ComponentFields />
      <label>
        Target
        <select name="targetType">
          {["all", "model", "channel", "site", "tag", "appliance"].map((t) => (
            <option value={t}>{t}</option>
          ))}
        </select>
      </label>
      <label>
        Value<input name="targetValue" size={12} />
      </label>
      <label>
        Rollout %<input name="rolloutPercent" type="number" min="0" max="100" value="100" />
      </label>
      <label>
        Gate: pause at failed % (optional)
        <input name="failureThresholdPercent" type="number" min="1" max="100" size={4} />
      </label>
      <label>
        Gate: at least (appliances)
        <input name="minSample" type="number" min="1" max="100000" placeholder="5" size={6} />
      </label>
      <button type="submit">Assign</button>
    </form>
  );
}

/** The assignments table, each row with its rollout form. */
export function Assignments(props: { ctx: PageContext; items: Assignment[] }) {
  return (
    <table id="assignments">
      <tr>
        <th>release</th>
        <th>target</th>
        <th>rollout</th>
        <th class="num">running it</th>
        <th class="num">sent</th>
        <th class="num">failing</th>
        <th>what they run</th>
        <th>change</th>
      </tr>
      {props.items.map((a) => (
        <tr data-assignment={a.id}>
          <td>{a.kind} {a.app}/{a.name}@{a.version}</td>
          <td>{a.target.type}{a.target.value ? ` ${a.target.value}` : ""}</td>
          <td>
            {a.rolloutPercent}%{a.paused
              ? ` · paused${a.pausedReason ? `: ${a.pausedReason}` : ""}`
              : ""}
            {a.failureThresholdPercent
              ? ` · gate ${a.failureThresholdPercent}% of ≥ ${a.minSample ?? "?"}`
              : ""}
          </td>
          <td class="num" data-installed>{a.progress.installed}</td>
          <td class="num">{a.progress.sent}</td>
          <td class="num" data-failed>{a.progress.failed}</td>
          <td data-states>{stateSummary(a.progress.states)}</td>
          <td>
            <form method="post" action={`/ui/releases/assignments/${a.id}`} class="inline">
              <Csrf ctx={props.ctx} />
              <input
                name="rolloutPercent"
                type="number"
                min="0"
                max="100"
                value={String(a.rolloutPercent)}
                aria-label="rollout percent"
              />
              <select name="paused" aria-label="paused">
                <option value="false" selected={!a.paused}>running</option>
                <option value="true" selected={a.paused}>held</option>
              </select>
              <button type="submit">Save</button>
            </form>
          </td>
        </tr>
      ))}
    </table>
  );
}

/** The hold form and the holds table. */
export function Holds(
  props: {
    ctx: PageContext;
    items: Array<{ id: number; uid: string; app: string | null; reason: string }>;
  },
) {
  return (
    <>
      <form method="post" action="/ui/releases/holds" class="panel">
        <Csrf ctx={props.ctx} />
        <label>
          Appliance UID<input name="uid" required size={36} />
        </label>
        <label>
          Application (all if empty)<input name="app" size={12} />
        </label>
        <label>
          Reason<input name="reason" required size={24} />
        </label>
        <button type="submit">Hold</button>
      </form>
      <table>
        <tr>
          <th>appliance</th>
          <th>application</th>
          <th>reason</th>
          <th></th>
        </tr>
        {props.items.map((h) => (
          <tr>
            <td>
              <a href={`/ui/appliances/${h.uid}`}>{h.uid}</a>
            </td>
            <td>{h.app ?? "all"}</td>
            <td>{h.reason}</td>
            <td>
              <form method="post" action={`/ui/releases/holds/${h.id}/delete`} class="inline">
                <Csrf ctx={props.ctx} />
                <button type="submit">Release</button>
              </form>
            </td>
          </tr>
        ))}
      </table>
    </>
  );
}

const targetTypes = ["all", "model", "channel", "site", "tag", "appliance"] as const;
const kinds = ["package", "file"] as const;

/**
 * `POST /ui/releases/assign`, `POST …/assignments/:id` (rollout percent, paused),
 * `POST …/holds`, `POST …/holds/:id/delete`.
 */
export function rolloutActions(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .post("/releases/assign", p.signedIn, async (c) => {
      const form = await formOf(c);
      const type = targetTypes.find((t) => t === field(form, "targetType"));
      const kind = kinds.find((k) => k === field(form, "kind"));
      if (!type) return back(c, "/ui/releases", 'Field "target.type": choose a target');
      if (!kind) return back(c, "/ui/releases", 'Field "kind": choose package or file');
      // The gate's two fields are optional: empty leaves them to the API (no gate; 5).
      const gate: { failureThresholdPercent?: number; minSample?: number } = {};
      for (const f of ["failureThresholdPercent", "minSample"] as const) {
        const text = field(form, f);
        if (text === "") continue;
        if (!/^[0-9]{1,9}$/.test(text)) {
          return back(c, "/ui/releases", `Field "${f}": must be a whole number`);
        }
        gate[f] = Number(text);
      }
      const res = await c.var.api.assignments.$post({
        json: {
          kind,
          app: field(form, "app"),
          name: field(form, "name"),
          version: field(form, "version"),
          target: type === "all" ? { type } : { type, value: field(form, "targetValue") },
          rolloutPercent: Number(field(form, "rolloutPercent") || "100"),
          ...gate,
        },
      });
      return back(c, "/ui/releases", res.ok ? "Assigned" : await refusal(res));
    })
    .post("/releases/assignments/:id", p.signedIn, async (c) => {
      const id = idOf(c);
      const form = await formOf(c);
      const res = await c.var.api.assignments[":id"].$patch({
        param: { id },
        json: {
          rolloutPercent: Number(field(form, "rolloutPercent")),
          paused: field(form, "paused") === "true",
        },
      });
      return back(c, "/ui/releases", res.ok ? "Rollout saved" : await refusal(res));
    })
    .post("/releases/holds", p.signedIn, async (c) => {
      const form = await formOf(c);
      const app = field(form, "app");
      const res = await c.var.api.holds.$post({
        json: {
          uid: field(form, "uid"),
          reason: field(form, "reason"),
          ...(app ? { app } : {}),
        },
      });
      return back(c, "/ui/releases", res.ok ? "Held" : await refusal(res));
    })
    .post("/releases/holds/:id/delete", p.signedIn, async (c) => {
      const res = await c.var.api.holds[":id"].$delete({ param: { id: idOf(c) } });
      return back(c, "/ui/releases", res.ok ? "Hold released" : await refusal(res));
    });
}
