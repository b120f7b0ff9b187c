/**
 * Assignments, rollouts and holds: the Releases page's sections ({@link AssignForm},
 * {@link Assignments}, {@link Holds}) and their actions under `/ui/releases`.
 *
 * An assignment is made from choices: a published component (the newest 200, newest first) and a
 * target among the known sites, models, channels and tags, each with its appliance count
 * (`GET /v1/admin/assignments/targets`), or another target typed in (refused by the API when
 * nothing has it, unless "assign even if no appliance has it yet" is ticked). Every assignment
 * shows its target size ("10 % of 783 vs-2000 ≈ 78"), its gate, its progress against the target
 * size with links to the failed and missing appliances (pages/release_appliances.tsx), and its
 * controls: Save (rollout and gate), Pause rollout / Resume rollout, Delete (confirmed first),
 * Roll out in phases… (its release and target pre-filled). An assignment a phased rollout made
 * names the rollout, its state and phase instead, with no control of its own.
 *
 * @module
 */
import { ifMatch, refusalOf, touched, Versioned } from "../revisions.tsx";
import { Hono } from "hono";
import type { Child } from "hono/jsx";
import { z } from "zod";
import { Confirm, Csrf, Layout, type PageContext, Time } from "../layout.tsx";
import type { AdminClient } from "../admin_client.ts";
import { refusal } from "../admin_client.ts";
import type { ConsoleContext, ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, idOf, refused } from "../page.ts";
import type { targetSchema } from "../../../../protocol/schemas.ts";
import { describeTarget, shareOf, sizeLabel, type TargetRef } from "../../../services/targets.ts";
import type { RolloutSummary } from "../../../services/phased_rollouts.ts";

/** The application, name and version fields of the publish form. */
export function ComponentFields(props: { values?: Record<string, string> }) {
  const v = props.values ?? {};
  return (
    <>
      <label>
        Application<input name="app" required size={12} value={v["app"]} />
      </label>
      <label>
        Name<input name="name" required size={12} value={v["name"]} />
      </label>
      <label>
        Version<input name="version" required size={8} value={v["version"]} />
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
    revision: z.number().optional(),
    /** Installed even outside install windows (absent from an API before install windows). */
    urgent: z.boolean().default(false),
    urgentBy: z.string().nullish(),
    urgentAt: z.string().nullish(),
    targetSize: z.number().default(0),
    progress: z.object({
      installed: z.number(),
      sent: z.number(),
      failed: z.number(),
      states: z.record(z.string(), z.number()),
    }),
  })),
  nextCursor: z.string().nullable().optional(),
});
const assignmentSchema = assignmentListSchema.shape.items.element;

/** What the page reads of `GET /assignments/targets`. */
const choicesSchema = z.object({
  all: z.number(),
  model: z.array(z.object({ value: z.string(), appliances: z.number() })),
  site: z.array(z.object({ value: z.string(), appliances: z.number() })),
  channel: z.array(z.object({ value: z.string(), appliances: z.number() })),
  tag: z.array(z.object({ value: z.string(), appliances: z.number() })),
});

/** The known targets with their appliance counts, as the assign form offers them. */
export type TargetChoices = z.infer<typeof choicesSchema>;

/** A published component as the assign form lists it. */
export interface PublishedComponent {
  kind: string;
  app: string;
  name: string;
  version: string;
}

/**
 * A rollout's appliances by state, as the page words them (only states someone is in): from what
 * each appliance last reported running (noc/services/rollouts.ts).
 */
export function stateSummary(states: Record<string, number>): string {
  return Object.entries(states).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(" · ");
}

/** An assignment as the page shows it. */
export type Assignment = z.infer<typeof assignmentSchema>;

/** The states the page counts as failed (not missing): the gate's failures but `missing`. */
export const failedStates = ["failed", "reverted", "other"] as const;

const targetOf = (a: Assignment): TargetRef => ({
  type: a.target.type,
  value: a.target.value ?? null,
});
const release = (a: { kind: string; app: string; name: string; version: string }) =>
  `${a.kind} ${a.app}/${a.name}@${a.version}`;

/** The health gate in words: `pause at > 20 % failed of ≥ 10 counted`, or `no gate`. */
export function gateText(
  a: { failureThresholdPercent?: number | null | undefined; minSample?: number | null | undefined },
) {
  return a.failureThresholdPercent
    ? `pause at > ${a.failureThresholdPercent} % failed of ≥ ${a.minSample ?? 5} counted`
    : "no gate";
}

/** Every assignment, newest first. */
export async function loadAssignments(
  api: AdminClient,
  cursor?: string,
): Promise<{ items: Assignment[]; nextCursor: string | null; ok: boolean }> {
  const res = await api.assignments.$get({
    query: { limit: String(consolePageSize), ...(cursor ? { cursor } : {}) },
  });
  if (!res.ok) return { items: [], nextCursor: null, ok: false };
  const page = assignmentListSchema.parse(await res.json());
  return { items: page.items, nextCursor: page.nextCursor ?? null, ok: true };
}

/** How many rows a console list shows a page (the API's default page). */
export const consolePageSize = 100;

/** The known targets (empty lists when the API does not answer). */
export async function loadChoices(api: AdminClient): Promise<TargetChoices> {
  const res = await api.assignments.targets.$get({ query: {} });
  return res.ok
    ? choicesSchema.parse(await res.json())
    : { all: 0, model: [], site: [], channel: [], tag: [] };
}

/** A page of holds, newest first, after `cursor`. */
export async function loadHolds(api: AdminClient, cursor?: string) {
  const res = await api.holds.$get({
    query: { limit: String(consolePageSize), ...(cursor ? { cursor } : {}) },
  });
  if (!res.ok) return { items: [], nextCursor: null, ok: false };
  const page = await res.json();
  return { items: page.items, nextCursor: page.nextCursor, ok: true };
}

/** The value of a published component in the assign form's select: `kind/app/name/version`. */
const componentValue = (c: PublishedComponent) => `${c.kind}/${c.app}/${c.name}/${c.version}`;

const choiceKinds = [
  ["model", "Models"],
  ["site", "Sites"],
  ["channel", "Channels"],
  ["tag", "Tags"],
] as const;
const otherTypes = ["model", "site", "channel", "tag", "appliance"] as const;

/**
 * The published-component select (`name="component"`, value `kind/app/name/version`), `value`
 * selected: the assign form's and the phased rollout form's.
 */
export function ComponentSelect(
  props: { components: PublishedComponent[]; value?: string | undefined },
) {
  return (
    <label>
      Component (published, newest first)
      <select name="component" required>
        <option value="">Choose a published version</option>
        {props.components.map((c) => (
          <option value={componentValue(c)} selected={props.value === componentValue(c)}>
            {c.app}/{c.name}@{c.version} ({c.kind})
          </option>
        ))}
      </select>
    </label>
  );
}

/**
 * The target fields: a select of the known targets with their appliance counts (`target`: `all`
 * or `type:value`), and another target typed in (`otherType`, `otherValue`), used when filled;
 * `children` go in the latter's fieldset. `values` refills them. Read back with {@link formTarget}.
 */
export function TargetPicker(
  props: { choices: TargetChoices; values?: Record<string, string>; children?: Child },
) {
  const v = props.values ?? {};
  const target = v["target"] ?? "all";
  const appliances = (n: number) => `${n} appliance${n === 1 ? "" : "s"}`;
  return (
    <>
      <label>
        Target (appliances it matches)
        <select name="target">
          <option value="all" selected={target === "all"}>
            All appliances ({appliances(props.choices.all)})
          </option>
          {choiceKinds.map(([kind, heading]) =>
            props.choices[kind].length > 0 && (
              <optgroup label={heading}>
                {props.choices[kind].map((ch) => (
                  <option
                    value={`${kind}:${ch.value}`}
                    selected={target === `${kind}:${ch.value}`}
                  >
                    {kind} {ch.value} ({appliances(ch.appliances)})
                  </option>
                ))}
              </optgroup>
            )
          )}
        </select>
      </label>
      <fieldset class="other-target">
        <legend>Or another target (used when filled in)</legend>
        <label>
          Type
          <select name="otherType">
            {otherTypes.map((t) => <option value={t} selected={v["otherType"] === t}>{t}</option>)}
          </select>
        </label>
        <label>
          Value<input name="otherValue" size={14} maxlength={64} value={v["otherValue"]} />
        </label>
        {props.children}
      </fieldset>
    </>
  );
}

/**
 * The assign form: a published component and a target picked from lists with their appliance
 * counts (or another target typed in, used when filled), the rollout percentage and the health
 * gate (`failureThresholdPercent`, 1–100, empty for none; `minSample`, 1–100,000, 5 by default).
 * `values` refills it after a refusal.
 */
export function AssignForm(
  props: {
    ctx: PageContext;
    components: PublishedComponent[];
    choices: TargetChoices;
    values?: Record<string, string>;
  },
) {
  const v = props.values ?? {};
  return (
    <form
      method="post"
      action="/ui/releases/assign"
      class="panel"
      id="assign"
      hidden={props.ctx.role === "viewer"}
    >
      <Csrf ctx={props.ctx} />
      <input type="hidden" name="_form" value="assign" />
      <ComponentSelect components={props.components} value={v["component"]} />
      <TargetPicker choices={props.choices} values={v}>
        <label class="check">
          <input
            type="checkbox"
            name="allowUnknownTarget"
            value="yes"
            checked={v["allowUnknownTarget"] === "yes"}
          />{" "}
          Assign even if no appliance has it yet (0 appliances)
        </label>
      </TargetPicker>
      <label>
        Rollout %
        <input
          name="rolloutPercent"
          type="number"
          min="0"
          max="100"
          value={v["rolloutPercent"] ?? "100"}
        />
      </label>
      <label>
        Gate: pause at failed % (empty: no gate)
        <input
          name="failureThresholdPercent"
          type="number"
          min="1"
          max="100"
          size={4}
          value={v["failureThresholdPercent"]}
        />
      </label>
      <label>
        Gate: minimum sample (appliances)
        <input
          name="minSample"
          type="number"
          min="1"
          max="100000"
          size={6}
          value={v["minSample"] ?? "5"}
        />
      </label>
      <label class="check">
        <input type="checkbox" name="urgent" value="yes" checked={v["urgent"] === "yes"} />{" "}
        urgent: installs outside install windows
      </label>
      <button type="submit">Assign</button>
    </form>
  );
}

/** A count linking to the appliances in `states` of assignment `a` (plain text when 0). */
function CountLink(
  props: { a: Assignment; states: readonly string[]; n: number; what: string },
) {
  if (props.n === 0) return <>0</>;
  return (
    <a
      href={`/ui/releases/assignments/${props.a.id}/appliances${
        props.states.length > 0 ? `?state=${props.states.join(",")}` : ""
      }`}
      aria-label={`${props.n} ${props.what}: ${release(props.a)}`}
    >
      {props.n}
    </a>
  );
}

/** The states in which a phased rollout has ended (its assignment only keeps its history). */
const endedRolloutStates: readonly string[] = ["completed", "failed", "cancelled"];

/**
 * The assignments: each row with its target size, gate, progress against the target size (failed
 * and missing linking to those appliances) and its controls. An assignment a phased rollout made
 * (`rollouts`, by assignment id, any state) is the rollout's: its row names the rollout, its
 * state and phase, links to it, and offers no control of its own (the API refuses them). Those of
 * ended rollouts are folded away under "show ended rollouts' assignments".
 */
export function Assignments(
  props: { ctx: PageContext; items: Assignment[]; rollouts?: ReadonlyMap<number, RolloutSummary> },
) {
  const ended = (a: Assignment) => {
    const r = props.rollouts?.get(a.id);
    return r !== undefined && endedRolloutStates.includes(r.state);
  };
  const current = props.items.filter((a) => !ended(a));
  const past = props.items.filter(ended);
  return (
    <>
      <AssignmentTable ctx={props.ctx} items={current} rollouts={props.rollouts} id="assignments" />
      {past.length > 0 && (
        <details class="ended-rollouts">
          <summary>show ended rollouts' assignments ({past.length})</summary>
          <AssignmentTable
            ctx={props.ctx}
            items={past}
            rollouts={props.rollouts}
            id="ended-rollout-assignments"
          />
        </details>
      )}
    </>
  );
}

/** One table of {@link Assignments}. */
function AssignmentTable(
  props: {
    ctx: PageContext;
    items: Assignment[];
    rollouts?: ReadonlyMap<number, RolloutSummary> | undefined;
    id: string;
  },
) {
  // A viewer sees the rollouts without the controls the API would refuse them.
  const canAct = props.ctx.role !== "viewer";
  return (
    <table id={props.id}>
      <tr>
        <th>release</th>
        <th>target size</th>
        <th>rollout</th>
        <th class="num">delivered</th>
        <th class="num">installed</th>
        <th class="num">failed</th>
        <th class="num">missing</th>
        <th>what they run</th>
        {canAct && <th>change</th>}
      </tr>
      {props.items.map((a) => {
        const failed = failedStates.reduce((n, s) => n + (a.progress.states[s] ?? 0), 0);
        const missing = a.progress.states["missing"] ?? 0;
        const reach = shareOf(a.targetSize, a.rolloutPercent);
        const name = release(a);
        // Its rollout_percent only describes the rollout's current phase: the rollout says it.
        const r = props.rollouts?.get(a.id);
        const phase = r && `phase ${r.phase + 1} of ${r.phaseCount}`;
        return (
          <tr data-assignment={a.id} data-managed-by={r?.id}>
            <td>{name}</td>
            <td data-target-size={a.targetSize}>
              {r
                ? `${sizeLabel(targetOf(a), a.targetSize)}: ${phase}`
                : describeTarget(targetOf(a), a.targetSize, a.rolloutPercent)}
              {a.targetSize === 0 && <span class="muted">: no appliance has it yet</span>}
            </td>
            <td data-rollout>
              {r
                ? (
                  <>
                    <a href={`/ui/rollouts/${r.id}`}>phased rollout {r.id}</a> ({r.state}) · {phase}
                  </>
                )
                : (
                  <>
                    {a.paused
                      ? a.pausedReason?.startsWith("paused ")
                        ? a.pausedReason
                        : `paused${a.pausedReason ? ` by the gate: ${a.pausedReason}` : ""}`
                      : `running at ${a.rolloutPercent} %`} · gate: {gateText(a)}
                  </>
                )}
              {a.urgent && (
                <>
                  {" "}· <b class="urgent" data-urgent>urgent</b>: installs outside install windows
                  {(a.urgentBy || a.urgentAt) && (
                    <>
                      {" "}(made urgent{a.urgentBy ? ` by ${a.urgentBy}` : ""}
                      {a.urgentAt && (
                        <>
                          {" "}at <Time at={a.urgentAt} />
                        </>
                      )})
                    </>
                  )}
                </>
              )}
            </td>
            <td class="num" data-delivered>
              <CountLink a={a} states={[]} n={a.progress.sent} what="delivered" />
              {r ? "" : ` of ${reach}`}
            </td>
            <td class="num" data-installed>{a.progress.installed}</td>
            <td class="num" data-failed>
              <CountLink a={a} states={failedStates} n={failed} what="failed" />
            </td>
            <td class="num" data-missing>
              <CountLink a={a} states={["missing"]} n={missing} what="missing" />
            </td>
            <td data-states>{stateSummary(a.progress.states)}</td>
            {canAct && r && (
              <td class="controls">
                Managed by <a href={`/ui/rollouts/${r.id}`}>phased rollout {r.id}</a> ({r.state}):
                {" "}
                {endedRolloutStates.includes(r.state)
                  ? "it has ended; the assignment keeps its history"
                  : "pause, resume or cancel it there"}
              </td>
            )}
            {canAct && !r && (
              <td class="controls">
                <a
                  href={`/ui/rollouts/new?component=${
                    encodeURIComponent(`${a.kind}/${a.app}/${a.name}/${a.version}`)
                  }&target=${
                    encodeURIComponent(
                      a.target.type === "all" ? "all" : `${a.target.type}:${a.target.value ?? ""}`,
                    )
                  }`}
                  aria-label={`Roll out in phases… ${a.app}/${a.name}@${a.version} to this target`}
                >
                  Roll out in phases…
                </a>{" "}
                <form method="post" action={`/ui/releases/assignments/${a.id}`} class="inline">
                  <Csrf ctx={props.ctx} />
                  <Versioned revision={a.revision} was={editable(a)} />
                  <label>
                    Rollout %
                    <input
                      name="rolloutPercent"
                      type="number"
                      min="0"
                      max="100"
                      value={String(a.rolloutPercent)}
                    />
                  </label>
                  <label>
                    Gate %
                    <input
                      name="failureThresholdPercent"
                      type="number"
                      min="1"
                      max="100"
                      size={4}
                      value={a.failureThresholdPercent ? String(a.failureThresholdPercent) : ""}
                    />
                  </label>
                  <label>
                    Min. sample
                    <input
                      name="minSample"
                      type="number"
                      min="1"
                      max="100000"
                      size={6}
                      value={String(a.minSample ?? 5)}
                    />
                  </label>
                  <label class="check">
                    <input type="checkbox" name="urgent" value="yes" checked={a.urgent} />{" "}
                    urgent: installs outside install windows
                  </label>
                  <button type="submit" aria-label={`Save rollout of ${name}`}>Save</button>
                </form>
                <form
                  method="post"
                  action={`/ui/releases/assignments/${a.id}/${a.paused ? "resume" : "pause"}`}
                  class="inline"
                >
                  <Csrf ctx={props.ctx} />
                  <Versioned revision={a.revision} />
                  <button
                    type="submit"
                    aria-label={`${a.paused ? "Resume" : "Pause"} rollout of ${name}`}
                  >
                    {a.paused ? "Resume rollout" : "Pause rollout"}
                  </button>
                </form>
                <form
                  method="post"
                  action={`/ui/releases/assignments/${a.id}/delete`}
                  class="inline"
                >
                  <Csrf ctx={props.ctx} />
                  <Versioned revision={a.revision} />
                  <button type="submit" class="danger" aria-label={`Delete assignment of ${name}`}>
                    Delete
                  </button>
                </form>
              </td>
            )}
          </tr>
        );
      })}
    </table>
  );
}

/** The hold form (refilled from `values` after a refusal) and the holds table. */
export function Holds(
  props: {
    ctx: PageContext;
    items: Array<
      { id: number; uid: string; app: string | null; reason: string; revision?: number }
    >;
    values?: Record<string, string>;
  },
) {
  const v = props.values ?? {};
  const canAct = props.ctx.role !== "viewer";
  return (
    <>
      <form method="post" action="/ui/releases/holds" class="panel" hidden={!canAct}>
        <Csrf ctx={props.ctx} />
        <input type="hidden" name="_form" value="hold" />
        <label>
          Appliance UID<input name="uid" required size={36} value={v["uid"]} />
        </label>
        <label>
          Application (all if empty)<input name="app" size={12} value={v["app"]} />
        </label>
        <label>
          Reason<input name="reason" required size={24} value={v["reason"]} />
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
              {canAct && (
                <form method="post" action={`/ui/releases/holds/${h.id}/delete`} class="inline">
                  <Csrf ctx={props.ctx} />
                  <Versioned revision={h.revision} />
                  <button type="submit">Release</button>
                </form>
              )}
            </td>
          </tr>
        ))}
      </table>
    </>
  );
}

const kinds = ["package", "file"] as const;

/** The assignment `id` through the API, or null (with the refusal) when it cannot be read. */
async function getAssignment(
  c: ConsoleContext,
  id: string,
): Promise<{ a: Assignment } | { refusal: string }> {
  const res = await c.var.api.assignments[":id"].$get({ param: { id } });
  if (!res.ok) return { refusal: await refusal(res) };
  return { a: assignmentSchema.parse(await res.json()) };
}

/** A whole number field: undefined when empty, NaN when not a number. */
function wholeNumber(form: Record<string, unknown>, name: string): number | undefined {
  const text = field(form, name);
  if (text === "") return undefined;
  return /^[0-9]{1,9}$/.test(text) ? Number(text) : NaN;
}

/**
 * The target {@link TargetPicker} names: typed in when `otherValue` is filled, else the choice;
 * a refusal (text naming the field) when neither is one.
 */
export function formTarget(form: Record<string, unknown>): z.infer<typeof targetSchema> | string {
  const other = field(form, "otherValue");
  if (other !== "") {
    const type = otherTypes.find((t) => t === field(form, "otherType"));
    return type ? { type, value: other } : 'Field "otherType": choose a target type';
  }
  const choice = field(form, "target");
  if (choice === "all") return { type: "all" };
  const m = /^(model|site|channel|tag):(.{1,64})$/.exec(choice);
  const type = choiceKinds.find(([k]) => k === m?.[1])?.[0];
  return type ? { type, value: m![2]! } : 'Field "target": choose a target';
}

/**
 * `POST /ui/releases/assign`; `POST …/assignments/:id` (rollout and gate), `…/:id/pause`,
 * `…/:id/resume`, `…/:id/delete` (a confirmation first, then the deletion with `confirmed=yes`);
 * `POST …/holds`, `POST …/holds/:id/delete`.
 */
export function rolloutActions(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .post("/releases/assign", p.signedIn, async (c) => {
      const form = await formOf(c);
      const to = "/ui/releases";
      const m = /^([a-z]+)\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(field(form, "component"));
      const kind = kinds.find((k) => k === m?.[1]);
      if (!m || !kind) return refused(c, to, 'Field "component": choose a published version', form);
      const target = formTarget(form);
      if (typeof target === "string") return refused(c, to, target, form);
      const gate: { failureThresholdPercent?: number; minSample?: number } = {};
      for (const f of ["failureThresholdPercent", "minSample"] as const) {
        const n = wholeNumber(form, f);
        if (Number.isNaN(n)) return refused(c, to, `Field "${f}": must be a whole number`, form);
        if (n !== undefined) gate[f] = n;
      }
      const percent = wholeNumber(form, "rolloutPercent") ?? 100;
      if (Number.isNaN(percent)) {
        return refused(c, to, 'Field "rolloutPercent": must be a whole number', form);
      }
      const res = await c.var.api.assignments.$post({
        json: {
          kind,
          app: m[2]!,
          name: m[3]!,
          version: m[4]!,
          target,
          rolloutPercent: percent,
          ...gate,
          ...(field(form, "allowUnknownTarget") === "yes" ? { allowUnknownTarget: true } : {}),
          ...(field(form, "urgent") === "yes" ? { urgent: true } : {}),
        },
      });
      if (!res.ok) {
        const why = (await refusal(res)).replace(
          "set allowUnknownTarget to assign it before its appliances enrol",
          'tick "Assign even if no appliance has it yet"',
        );
        return refused(c, to, why, form);
      }
      const a = assignmentSchema.parse(await res.json());
      const size = describeTarget(targetOf(a), a.targetSize, a.rolloutPercent);
      return back(
        c,
        to,
        `Assigned ${release(a)} to ${size} appliances; gate: ${gateText(a)}${
          a.urgent ? "; urgent: installs outside install windows" : ""
        }${a.targetSize === 0 ? ". No appliance has this target yet" : ""}`,
      );
    })
    .post("/releases/assignments/:id", p.signedIn, async (c) => {
      const id = idOf(c);
      const form = await formOf(c);
      const to = "/ui/releases";
      const got = await getAssignment(c, id);
      if ("refusal" in got) return refused(c, to, got.refusal);
      const before = got.a;
      const percent = wholeNumber(form, "rolloutPercent");
      const threshold = wholeNumber(form, "failureThresholdPercent");
      const minSample = wholeNumber(form, "minSample");
      for (const [f, n] of Object.entries({ percent, threshold, minSample })) {
        if (Number.isNaN(n)) return refused(c, to, `Field "${f}": must be a whole number`, form);
      }
      // Only what the operator changed: a field left as loaded never undoes another's change.
      const json = {
        ...(touched(form, "rolloutPercent") && percent !== undefined
          ? { rolloutPercent: percent }
          : {}),
        ...(touched(form, "failureThresholdPercent")
          ? { failureThresholdPercent: threshold ?? null }
          : {}),
        ...(touched(form, "minSample") && minSample !== undefined ? { minSample } : {}),
        // A form rendered before the checkbox existed (no `was.urgent`) leaves urgency alone.
        ...("was.urgent" in form && touched(form, "urgent")
          ? { urgent: field(form, "urgent") === "yes" }
          : {}),
      };
      if (Object.keys(json).length === 0) {
        return back(c, to, `Rollout of ${release(before)}: nothing changed`);
      }
      const res = await c.var.api.assignments[":id"].$patch({ param: { id }, json }, ifMatch(form));
      if (!res.ok) {
        return res.status === 409
          ? refusedStale(c, to, res, form)
          : refused(c, to, await refusal(res), form);
      }
      const after = assignmentSchema.parse(await res.json());
      return back(c, to, changeText(before, after));
    })
    .post("/releases/assignments/:id/pause", p.signedIn, async (c) => {
      const form = await formOf(c);
      const res = await c.var.api.assignments[":id"].$patch({
        param: { id: idOf(c) },
        json: { paused: true },
      }, ifMatch(form));
      if (!res.ok) return await refusedStale(c, "/ui/releases", res);
      const a = assignmentSchema.parse(await res.json());
      return back(
        c,
        "/ui/releases",
        `Rollout of ${release(a)} paused: appliances already sent it keep it; no other gets it`,
      );
    })
    .post("/releases/assignments/:id/resume", p.signedIn, async (c) => {
      const form = await formOf(c);
      const res = await c.var.api.assignments[":id"].$patch({
        param: { id: idOf(c) },
        json: { paused: false },
      }, ifMatch(form));
      if (!res.ok) return await refusedStale(c, "/ui/releases", res);
      const a = assignmentSchema.parse(await res.json());
      return back(
        c,
        "/ui/releases",
        `Rollout of ${release(a)} resumed: ${
          describeTarget(targetOf(a), a.targetSize, a.rolloutPercent)
        } appliances`,
      );
    })
    .post("/releases/assignments/:id/delete", p.signedIn, async (c) => {
      const id = idOf(c);
      const form = await formOf(c);
      const got = await getAssignment(c, id);
      if ("refusal" in got) return refused(c, "/ui/releases", got.refusal);
      const a = got.a;
      if (field(form, "confirmed") !== "yes") {
        return await html(c, await DeletePage({ ctx: c.var.page, a, api: c.var.api }));
      }
      const res = await c.var.api.assignments[":id"].$delete({ param: { id } }, ifMatch(form));
      if (!res.ok) return await refusedStale(c, "/ui/releases", res);
      return back(
        c,
        "/ui/releases",
        `Assignment of ${release(a)} to ${
          sizeLabel(targetOf(a), a.targetSize)
        } deleted; appliances keep what they installed`,
      );
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
      return res.ok
        ? back(c, "/ui/releases", "Held")
        : refused(c, "/ui/releases", await refusal(res), form);
    })
    .post("/releases/holds/:id/delete", p.signedIn, async (c) => {
      const form = await formOf(c);
      const res = await c.var.api.holds[":id"].$delete({ param: { id: idOf(c) } }, ifMatch(form));
      return res.ok ? back(c, "/ui/releases", "Hold released") : refused(
        c,
        "/ui/releases",
        await refusalOf(res, (h) => `held: ${h.reason}`),
      );
    });
}

/** The assignment form's editable fields as rendered (its `was.` originals). */
function editable(a: Assignment): Record<string, string> {
  return {
    rolloutPercent: String(a.rolloutPercent),
    failureThresholdPercent: a.failureThresholdPercent ? String(a.failureThresholdPercent) : "",
    minSample: String(a.minSample ?? 5),
    urgent: a.urgent ? "yes" : "",
  };
}

/** An assignment now, in words, for a refusal as stale: `paused at 10 % (paused by ann)`. */
export function assignmentNow(
  a: {
    paused: boolean;
    pausedReason?: string | null;
    rolloutPercent: number;
    failureThresholdPercent?: number | null;
    minSample?: number | null;
  },
): string {
  return `${
    a.paused
      ? `paused at ${a.rolloutPercent} %${a.pausedReason ? ` (${a.pausedReason})` : ""}`
      : `running at ${a.rolloutPercent} %`
  }; gate: ${gateText(a)}`;
}

/**
 * A refused change of an assignment: stale (409 `stale_revision`) comes back to the page, which
 * shows the current state, with {@link staleText} and nothing refilled; any other refusal keeps
 * `form`.
 */
async function refusedStale(
  c: ConsoleContext,
  to: string,
  res: { status: number; text(): Promise<string> },
  form: Record<string, unknown> = {},
): Promise<Response> {
  const text = await refusalOf(res, assignmentNow);
  return refused(c, to, text, text.startsWith("Changed by someone else") ? {} : form);
}

/** What a Save changed, in words: `10 % → 100 %: ≈ 78 → 783 appliances`, the gate's change. */
export function changeText(before: Assignment, after: Assignment): string {
  const parts: string[] = [];
  if (before.rolloutPercent !== after.rolloutPercent) {
    const verb = after.rolloutPercent > before.rolloutPercent ? "widened" : "narrowed";
    const from = shareOf(before.targetSize, before.rolloutPercent);
    const to = shareOf(after.targetSize, after.rolloutPercent);
    const approx = (pct: number) => pct === 0 || pct === 100 ? "" : "≈ ";
    parts.push(
      `${verb}: ${before.rolloutPercent} % → ${after.rolloutPercent} %: ${
        approx(before.rolloutPercent)
      }${from} → ${approx(after.rolloutPercent)}${to} appliances`,
    );
  }
  if (gateText(before) !== gateText(after)) {
    parts.push(`gate: ${gateText(before)} → ${gateText(after)}`);
  }
  if (before.urgent !== after.urgent) {
    parts.push(
      after.urgent
        ? "now urgent: installs outside install windows"
        : "no longer urgent: installs inside install windows",
    );
  }
  return parts.length === 0
    ? `Rollout of ${release(after)}: nothing changed`
    : `Rollout of ${release(after)} ${parts.join("; ")}`;
}

/**
 * The rollout (any state) of each of the assignments `assignmentIds`, by assignment id: rollouts
 * are read newest first, 200 a page, until every assignment is matched or the rollouts left are
 * older than the oldest assignment (a rollout and its assignment are made together), at most
 * 2,000; an unreadable page ends the reading.
 */
export async function loadRolloutsOf(
  api: AdminClient,
  assignmentIds: readonly number[],
): Promise<Map<number, RolloutSummary>> {
  const found = new Map<number, RolloutSummary>();
  if (assignmentIds.length === 0) return found;
  const wanted = new Set(assignmentIds);
  const oldest = Math.min(...assignmentIds);
  let cursor: string | null = null;
  for (let page = 0; page < 10; page++) {
    const res = await api.rollouts.$get({
      query: { limit: "200", ...(cursor ? { cursor } : {}) },
    });
    if (!res.ok) break;
    const list = await res.json() as { items: RolloutSummary[]; nextCursor: string | null };
    for (const r of list.items) if (wanted.has(r.assignmentId)) found.set(r.assignmentId, r);
    const last = list.items[list.items.length - 1];
    cursor = list.nextCursor;
    if (!cursor || !last || last.assignmentId < oldest || found.size === wanted.size) break;
  }
  return found;
}

/**
 * The confirmation of a deletion: what the assignment is, what its appliances will be given once
 * it is gone (the other assignments of the component), and the Confirm form. An assignment a
 * phased rollout made is the rollout's: the page names the rollout (its percentage only describes
 * the current phase) and says the deletion is refused (409 `managed_by_rollout`), with no Confirm.
 */
async function DeletePage(props: { ctx: PageContext; a: Assignment; api: AdminClient }) {
  const { a } = props;
  const r = (await loadRolloutsOf(props.api, [a.id])).get(a.id);
  if (r) {
    const active = !endedRolloutStates.includes(r.state);
    return (
      <Layout title="Delete an assignment?" ctx={props.ctx}>
        <div class="panel confirm" data-managed-by={r.id}>
          <p>
            The assignment of {release(a)} to {sizeLabel(targetOf(a), a.targetSize)} is managed by
            {" "}
            <a href={`/ui/rollouts/${r.id}`}>phased rollout {r.id}</a> ({r.state}).
          </p>
          <p>
            {active
              ? "Deleting it is refused while the rollout runs: pause, resume or cancel the rollout instead."
              : "Deleting it is refused: it keeps the rollout's history (pause it instead)."}
          </p>
          <a href="/ui/releases">Back to Releases</a>
        </div>
      </Layout>
    );
  }
  const res = await props.api.assignments.$get({ query: { app: a.app, name: a.name } });
  const others = res.ok
    ? assignmentListSchema.parse(await res.json()).items.filter((o) =>
      o.id !== a.id && o.kind === a.kind
    )
    : [];
  return (
    <Layout title="Delete an assignment?" ctx={props.ctx}>
      <Confirm
        ctx={props.ctx}
        what={`Delete the assignment of ${release(a)} to ${
          describeTarget(targetOf(a), a.targetSize, a.rolloutPercent)
        } appliances (${a.progress.sent} delivered, ${a.progress.installed} installed)?`}
        action={`/ui/releases/assignments/${a.id}/delete`}
        button="Delete assignment"
        cancel="/ui/releases"
        fields={a.revision === undefined ? {} : { revision: String(a.revision) }}
      >
        <p>
          Appliances that installed it keep it (the agent never uninstalls), and what they were sent
          stays in their history. From their next catalog on, the assignments that remain decide:
        </p>
        {others.length === 0
          ? (
            <p>
              No other assignment of {a.app}/{a.name}{" "}
              remains: no appliance is given it any more, and a download not finished by then is
              dropped.
            </p>
          )
          : (
            <ul>
              {others.map((o) => (
                <li>
                  {o.version} to {describeTarget(targetOf(o), o.targetSize, o.rolloutPercent)}{" "}
                  appliances
                  {o.paused ? " (paused)" : ""}
                </li>
              ))}
            </ul>
          )}
      </Confirm>
    </Layout>
  );
}
