/**
 * `/ui/rollouts`: phased rollouts (issue 20) in the console, through `/v1/admin/rollouts`.
 *
 * - `GET /ui/rollouts`: every rollout, newest first, 50 a page (`?cursor=`), filtered by state
 *   (`?state=running`), each with its release, target, state, phase n of m, who made it and when.
 * - `GET /ui/rollouts/new`: the create form — a published release and a known target (as the
 *   assign form offers them), up to 10 phases (size in percent or appliances, soak time, advance
 *   and stop conditions, optional gates on plug-in health, a metric against control and beat
 *   regularity), rollback, a note; 1 % / 10 % / 50 % / 100 % pre-filled. `?component=` and
 *   `?target=` pre-select (the Releases page's "Roll out in phases…" links). `POST /ui/rollouts`
 *   creates it and shows it; a refusal comes back as the form's error with its values kept.
 * - `GET /ui/rollouts/:id`: state and actions (Pause, Resume, Advance now and Cancel — the last
 *   two asked first — with a note), each phase (size asked, target size, members, start, end), the
 *   gate figures of the last evaluation against control, the appliances of one phase
 *   (`?phase=&state=&after=`, 100 a page, each linking to its page; failures one click from the
 *   figures and the timeline), and the timeline (who did what, with notes and details).
 * - `POST /ui/rollouts/:id/pause|resume|advance|cancel`: the actions (Post/Redirect/Get).
 *
 * @module
 */
import { ifMatch, refusalOf, Versioned } from "../revisions.tsx";
import { Hono } from "hono";
import { z } from "zod";
import { Confirm, Csrf, Layout, type PageContext, State, Time } from "../layout.tsx";
import { type AdminClient, refusal } from "../admin_client.ts";
import type { ConsoleContext, ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, idOf, kept, refused } from "../page.ts";
import {
  ComponentSelect,
  formTarget,
  loadChoices,
  type PublishedComponent,
  TargetPicker,
} from "./rollouts.tsx";
import type {
  RolloutDetail,
  RolloutEvent,
  RolloutMember,
  RolloutPhase,
  RolloutSummary,
} from "../../../services/phased_rollouts.ts";
import type { GateResult, RolloutEvaluation } from "../../../services/rollout_gates.ts";
import {
  maxPhases,
  memberStateNames,
  type Phase,
  type PhaseInput,
  rolloutStateNames,
} from "../../../../protocol/rollout_plan.ts";

/** What the page reads of `GET /components` (the API types a component as a record). */
const componentListSchema = z.object({
  items: z.array(z.object({
    kind: z.string(),
    app: z.string(),
    name: z.string(),
    version: z.string(),
  })),
});

/** Published components, newest first (the newest 200), as the assign form lists them. */
async function loadComponents(api: AdminClient): Promise<PublishedComponent[]> {
  const res = await api.components.$get({ query: { limit: "200" } });
  return res.ok ? componentListSchema.parse(await res.json()).items : [];
}

/** A release in words: `package vscreen/vscreen@4.2.1`. */
const releaseText = (c: { kind: string; app: string; name: string; version: string }) =>
  `${c.kind} ${c.app}/${c.name}@${c.version}`;

/** A rollout's target in words: `all appliances`, `site lab`, `model vs-2000`… */
export function targetText(t: { type: string; value: string | null }): string {
  return t.type === "all" ? "all appliances" : `${t.type} ${t.value ?? ""}`;
}

/** A phase's size in words: `10 %` or `25 appliances`. */
export function sizeText(p: { percent?: number | undefined; count?: number | undefined }): string {
  return p.percent !== undefined
    ? `${p.percent} %`
    : `${p.count} appliance${p.count === 1 ? "" : "s"}`;
}

/** A soak time in words, exactly: `1 h 30 min`, `1 min 30 s`, `45 s`, `0 min`. */
export function soakText(s: number): string {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.round(s % 60);
  const parts = [h > 0 ? `${h} h` : "", m > 0 ? `${m} min` : "", sec > 0 ? `${sec} s` : ""];
  return parts.filter(Boolean).join(" ") || "0 min";
}

/** `n` appliances in words: `1 appliance`, `5 appliances`. */
export function appliancesText(n: number): string {
  return `${n} appliance${n === 1 ? "" : "s"}`;
}

/**
 * Text the services word for any count (a gate's summary, a failure reason) with `1 appliances`
 * said as `1 appliance` (and `1 reporting appliances` as `1 reporting appliance`).
 */
export function singular(text: string): string {
  return text.replace(/(?<![0-9.])1 (reporting )?appliances\b/g, "1 $1appliance");
}

/**
 * A refusal said once: the API's `Field "x": why` is followed by its issue `(x: why)`, the same
 * words again; the repeat is dropped.
 */
export function saidOnce(text: string): string {
  const m = /^Field "([^"]+)": (.*) \(([^()]*(?:\([^()]*\)[^()]*)*)\)$/s.exec(text);
  return m && m[3] === `${m[1]}: ${m[2]}` ? `Field "${m[1]}": ${m[2]}` : text;
}

/** The member states the failure figures and links count as failed (the gate's failures). */
const failedMemberStates = ["failed", "reverted", "other", "missing"] as const;

/** The member filters the detail page offers: label, states. */
const memberFilters: Array<[string, readonly string[]]> = [
  ["all", []],
  ["failed or missing", failedMemberStates],
  ["pending", ["pending"]],
  ["running", ["running", "unconfirmed"]],
  ["not sent yet", ["not_sent"]],
];

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The console path of rollout `id`'s appliances of phase `phase` (0-based) in `states`. */
export function membersHref(id: number, phase: number, states: readonly string[] = []): string {
  return `/ui/rollouts/${id}?phase=${phase}${
    states.length > 0 ? `&state=${states.join(",")}` : ""
  }#appliances`;
}

/** The pre-filled phases of a new rollout: 1 % canary, 10 %, 50 %, 100 %. */
const defaultPhases: Array<Record<string, string>> = [
  { size: "1", unit: "percent", soakH: "1", soakM: "0" },
  { size: "10", unit: "percent", soakH: "4", soakM: "0" },
  { size: "50", unit: "percent", soakH: "12", soakM: "0" },
  { size: "100", unit: "percent", soakH: "0", soakM: "0" },
].map((p) => ({ ...p, healthy: "95", failed: "20", sample: "5", auto: "yes" }));

/** The fields of one phase row, by their name after `p<i>.`. */
const phaseFields = [
  "size",
  "unit",
  "soakH",
  "soakM",
  "healthy",
  "failed",
  "sample",
  "auto",
  "unhealthy",
  "metric",
  "drop",
  "rise",
  "minApp",
  "minBeats",
  "missed",
] as const;
type PhaseField = (typeof phaseFields)[number];

/** The optional gate fields of a phase row (a row with one filled shows its gates unfolded). */
const gateFields: readonly PhaseField[] = [
  "unhealthy",
  "metric",
  "drop",
  "rise",
  "minApp",
  "minBeats",
  "missed",
];

/**
 * The values the create form shows: after a refusal, exactly what was sent (`kept`, its form
 * marked `_form=rollout`); otherwise the defaults, with `?component=` and `?target=` chosen.
 */
function formValues(kept: Record<string, string>, query: Record<string, string>) {
  if (kept["_form"] === "rollout") return kept;
  const v: Record<string, string> = { rollback: "yes" };
  if (query["component"]) v["component"] = query["component"].slice(0, 400);
  if (query["target"]) v["target"] = query["target"].slice(0, 100);
  defaultPhases.forEach((p, i) => {
    for (const [k, x] of Object.entries(p)) v[`p${i}.${k}`] = x;
  });
  return v;
}

/** A number field labelled `label` named `name`, refilled from `v`. */
function NumberField(
  props: {
    label: string;
    name: string;
    v: Record<string, string>;
    min?: string;
    max?: string;
    step?: string;
    size?: number;
  },
) {
  return (
    <label>
      {props.label}
      <input
        name={props.name}
        type="number"
        inputmode="decimal"
        min={props.min ?? "0"}
        max={props.max}
        step={props.step ?? "any"}
        size={props.size ?? 5}
        value={props.v[props.name] ?? ""}
      />
    </label>
  );
}

/** A {@link NumberField} for a whole count, from 1 to `max`. */
function CountField(
  props: { label: string; name: string; v: Record<string, string>; max: string },
) {
  return <NumberField {...props} min="1" step="1" />;
}

/** One phase row of the create form (`i` 0-based). */
function PhaseRow(props: { i: number; v: Record<string, string> }) {
  const { i, v } = props;
  const n = (f: PhaseField) => `p${i}.${f}`;
  const gatesSet = gateFields.some((f) => (v[n(f)] ?? "") !== "");
  return (
    <fieldset class="phase" id={`phase-row-${i + 1}`}>
      <legend>Phase {i + 1}</legend>
      <NumberField label="Size" name={n("size")} v={v} step="any" />
      <label>
        Size in
        <select name={n("unit")}>
          <option value="percent" selected={v[n("unit")] !== "count"}>% of the target</option>
          <option value="count" selected={v[n("unit")] === "count"}>appliances</option>
        </select>
      </label>
      <NumberField label="Soak: hours" name={n("soakH")} v={v} max="720" step="1" size={4} />
      <NumberField label="and minutes" name={n("soakM")} v={v} max="59" step="1" size={3} />
      <NumberField label="Advance at healthy % ≥" name={n("healthy")} v={v} max="100" />
      <NumberField label="Stop at failed % >" name={n("failed")} v={v} max="100" />
      <CountField label="…of at least (appliances)" name={n("sample")} v={v} max="100000" />
      <label>
        Advance
        <select name={n("auto")}>
          <option value="yes" selected={v[n("auto")] !== "no"}>by itself after the soak</option>
          <option value="no" selected={v[n("auto")] === "no"}>by hand only</option>
        </select>
      </label>
      <details class="gates" open={gatesSet}>
        <summary>Gates on reported health (optional)</summary>
        <NumberField label="Plug-in unhealthy % at most" name={n("unhealthy")} v={v} max="100" />
        <label>
          Metric path (app.key)
          <input
            name={n("metric")}
            size={22}
            maxlength={400}
            placeholder="vscreen.mailsScanned"
            value={v[n("metric")] ?? ""}
          />
        </label>
        <NumberField label="…max drop % below control" name={n("drop")} v={v} max="100" />
        <NumberField label="…max rise % above control" name={n("rise")} v={v} max="100000" />
        <CountField label="…min appliances (each group)" name={n("minApp")} v={v} max="100000" />
        <CountField label="…min beats (each appliance)" name={n("minBeats")} v={v} max="10000" />
        <NumberField
          label="Missed beats: extra % at most"
          name={n("missed")}
          v={v}
          max="100"
        />
      </details>
    </fieldset>
  );
}

/** The create form; `values` from {@link formValues}. */
function CreateForm(
  props: {
    ctx: PageContext;
    components: PublishedComponent[];
    choices: Awaited<ReturnType<typeof loadChoices>>;
    values: Record<string, string>;
  },
) {
  const v = props.values;
  const rows = Array.from({ length: maxPhases }, (_, i) => i);
  // Rows 5-10 are folded away unless one of them is filled in.
  const extraUsed = rows.slice(4).some((i) => (v[`p${i}.size`] ?? "") !== "");
  return (
    <form method="post" action="/ui/rollouts" class="panel rollout-form" id="new-rollout">
      <Csrf ctx={props.ctx} />
      <input type="hidden" name="_form" value="rollout" />
      <ComponentSelect components={props.components} value={v["component"]} />
      <TargetPicker choices={props.choices} values={v} />
      <label>
        Previous version (empty: what the target's assignment gives now)
        <input name="previousVersion" size={12} maxlength={64} value={v["previousVersion"] ?? ""} />
      </label>
      <p class="muted hint">
        Phases run in order; a phase with no size is left out. Sizes never go down. A phase advances
        when at least its healthy share runs the release through its soak time (or by hand), and
        stops the rollout when more than its failed share of at least so many appliances failed or
        went missing, or a gate fails. A metric is compared with control (the target's appliances
        still on the previous version): median of per-appliance medians.
      </p>
      {rows.slice(0, 4).map((i) => <PhaseRow i={i} v={v} />)}
      <details class="more-phases" open={extraUsed}>
        <summary>More phases (up to {maxPhases})</summary>
        {rows.slice(4).map((i) => <PhaseRow i={i} v={v} />)}
      </details>
      <label class="check">
        <span>
          <input type="checkbox" name="rollback" value="yes" checked={v["rollback"] === "yes"} />
          {" "}
          On failure, send the failed phase's appliances back to the previous version
        </span>
      </label>
      <label>
        Note (kept with the rollout's first event)
        <input name="note" size={40} maxlength={500} value={v["note"] ?? ""} />
      </label>
      <button type="submit">Start rollout</button>
    </form>
  );
}

/** A number from a form field: undefined when empty, NaN when not a number. */
function numberOf(form: Record<string, unknown>, name: string): number | undefined {
  const t = field(form, name);
  if (t === "") return undefined;
  return /^[0-9]{1,9}(\.[0-9]{1,6})?$/.test(t) ? Number(t) : NaN;
}

/** The plan's phases the form gives, or a refusal naming the field. */
function phasesOf(form: Record<string, unknown>): PhaseInput[] | string {
  const phases: PhaseInput[] = [];
  for (let i = 0; i < maxPhases; i++) {
    const name = (f: PhaseField) => `p${i}.${f}`;
    if (field(form, name("size")) === "") continue;
    const nums: Partial<Record<PhaseField, number>> = {};
    for (const f of phaseFields) {
      if (f === "unit" || f === "auto" || f === "metric") continue;
      const x = numberOf(form, name(f));
      if (Number.isNaN(x)) return `Phase ${i + 1}: "${f}" must be a number`;
      if (x !== undefined) nums[f] = x;
    }
    const size = nums.size!;
    const soakS = Math.round((nums.soakH ?? 0) * 3600 + (nums.soakM ?? 0) * 60);
    const gates: NonNullable<PhaseInput["gates"]> = {};
    if (nums.unhealthy !== undefined) {
      gates.pluginHealth = { maxUnhealthyPercent: nums.unhealthy };
    }
    const path = field(form, name("metric"));
    if (path !== "") {
      gates.metric = {
        path,
        ...(nums.drop !== undefined ? { maxDropPercent: nums.drop } : {}),
        ...(nums.rise !== undefined ? { maxRisePercent: nums.rise } : {}),
        ...(nums.minApp !== undefined ? { minAppliances: nums.minApp } : {}),
        ...(nums.minBeats !== undefined ? { minBeats: nums.minBeats } : {}),
      };
    } else if (nums.drop !== undefined || nums.rise !== undefined) {
      return `Phase ${i + 1}: a metric's drop or rise needs its path (app.key)`;
    }
    if (nums.missed !== undefined) {
      gates.beatRegularity = { maxExtraMissedPercent: nums.missed };
    }
    phases.push({
      ...(field(form, name("unit")) === "count" ? { count: size } : { percent: size }),
      soakS,
      advance: { minHealthyPercent: nums.healthy ?? 95 },
      stop: { maxFailedPercent: nums.failed ?? 20, minSample: nums.sample ?? 5 },
      gates,
      auto: field(form, name("auto")) !== "no",
    });
  }
  return phases.length > 0 ? phases : "Give at least one phase a size";
}

/** An API refusal with `phases.2.soakS` said as `phase 3 soakS`. */
function phaseWords(message: string): string {
  return message.replace(/phases\.([0-9]+)\.?/g, (_, n) => `phase ${Number(n) + 1} `);
}

/** The list's state filter choices: value, label. */
const stateChoices: Array<[string, string]> = [
  ["", "any state"],
  ["running,paused", "active (running or paused)"],
  ...rolloutStateNames.map((s): [string, string] => [s, s]),
];

/** A rollout's phase in words: `phase 2 of 4 (10 %)`, or `completed` after the last. */
function phaseOfText(r: RolloutSummary): string {
  return `phase ${r.phase + 1} of ${r.phaseCount}`;
}

/**
 * The table of rollouts (`items`): id, release, target, state, phase, created by and at. Also
 * the Releases page's list of active rollouts.
 */
export function RolloutTable(props: { items: RolloutSummary[]; id?: string }) {
  return (
    <table id={props.id ?? "rollouts"}>
      <tr>
        <th>rollout</th>
        <th>release</th>
        <th>target</th>
        <th>state</th>
        <th>phase</th>
        <th>created by</th>
        <th>created</th>
      </tr>
      {props.items.map((r) => (
        <tr data-rollout={r.id}>
          <td>
            <a href={`/ui/rollouts/${r.id}`}>Rollout {r.id}</a>
          </td>
          <td>{releaseText(r.component)}</td>
          <td>{targetText(r.target)}</td>
          <td>
            <State state={r.state} />
          </td>
          <td>{phaseOfText(r)}</td>
          <td>{r.createdBy}</td>
          <td>
            <Time at={r.createdAt} />
          </td>
        </tr>
      ))}
    </table>
  );
}

/** The active (running or paused) rollouts, newest first, at most 50; [] when unreadable. */
export async function loadActiveRollouts(api: AdminClient): Promise<RolloutSummary[]> {
  const res = await api.rollouts.$get({ query: { state: "running,paused", limit: "50" } });
  return res.ok ? (await res.json()).items as RolloutSummary[] : [];
}

// Read by the Releases page too; kept beside the assignment pages (no import cycle).
export { loadRolloutsOf } from "./rollouts.tsx";

/** Rollout `id` through the API, or the refusal. */
async function getRollout(
  c: ConsoleContext,
  id: string,
): Promise<{ r: RolloutDetail } | { refusal: string }> {
  const res = await c.var.api.rollouts[":id"].$get({ param: { id } });
  if (!res.ok) return { refusal: await refusal(res) };
  return { r: await res.json() as unknown as RolloutDetail };
}

/**
 * The sample a phase is judged from: `stop.minSample`, or every evaluated member when the phase
 * has fewer (as noc/services/rollout_gates.ts `judgePhase` does), at least 1.
 */
const minSampleOf = (minSample: number, evaluated: number) =>
  Math.max(1, Math.min(minSample, evaluated));

/** A verdict in words and style: fails, passes, or not judged yet. */
function Verdict(props: { g: GateResult | undefined }) {
  const g = props.g;
  if (!g) return <span class="muted">no verdict</span>;
  if (!g.judged) return <span class="state late">not judged yet</span>;
  return g.fails ? <span class="state missing">fails</span> : <span class="state ok">passes</span>;
}

const pct = (n: number, of: number) => of === 0 ? 0 : Math.round((n * 1000) / of) / 10;
const num = (x: number | null | undefined) =>
  x === null || x === undefined ? "–" : String(Math.round(x * 1000) / 1000);

/**
 * The gate figures of the last evaluation against control: one row per condition (install
 * errors, healthy share, plug-in health, metric, beat regularity), with the phase's value, the
 * control's, their ratio, the threshold, the verdict and the sample sizes.
 */
function Evaluation(props: { r: RolloutDetail; e: RolloutEvaluation }) {
  const { r, e } = props;
  const f = e.figures;
  const plan: Phase | undefined = r.phases[f.phase]?.plan;
  const gate = (name: string) => e.judgement.gates.find((g) => g.gate === name);
  const counted = f.install.installed + f.install.failed;
  const failedLink = f.install.failed > 0
    ? (
      <a
        href={membersHref(r.id, f.phase, failedMemberStates)}
        aria-label={`${f.install.failed} failed or missing appliance${
          f.install.failed === 1 ? "" : "s"
        } of phase ${f.phase + 1}`}
      >
        {f.install.failed} failed or missing
      </a>
    )
    : <>0 failed or missing</>;
  const m = f.metric;
  const mg = plan?.gates.metric;
  const b = f.beats;
  const extra = b
    ? Math.round((pct(b.membersMissed, b.members) - pct(b.controlMissed, b.control)) * 10) / 10
    : 0;
  // An ended rollout waits for nothing; a failed gate is said once, not as "waiting".
  const active = r.state === "running" || r.state === "paused";
  const failedGate = e.judgement.failed?.gate;
  const waiting = active
    ? e.judgement.waiting.filter((w) => w !== `${failedGate} fails`).map(singular)
    : [];
  return (
    <>
      <p>
        Phase {f.phase + 1}, evaluated <Time at={e.at} />: figures read from {f.evaluated} of{" "}
        {f.members} members
        {f.evaluated < f.members ? " (a uniform sample)" : ""}; control sample{" "}
        {appliancesText(r.control)}. {failedGate
          ? `${active ? "It fails" : "It failed"} on ${failedGate}.`
          : !active
          ? `It ended (${r.state}): nothing is waiting.`
          : e.judgement.holds
          ? (
            <>
              The advance condition holds since <Time at={e.heldSince} />
              {e.advanceAt
                ? (
                  <>
                    ; it advances by itself at <Time at={e.advanceAt} seconds />
                  </>
                )
                : "; this phase advances only by hand (Advance now)"}.
            </>
          )
          : "The advance condition does not hold yet."}
      </p>
      {waiting.length > 0 && <ul class="waiting">{waiting.map((w) => <li>{w}</li>)}</ul>}
      <table id="gate-figures">
        <tr>
          <th>condition</th>
          <th>phase</th>
          <th>control</th>
          <th>ratio or difference</th>
          <th>threshold</th>
          <th>verdict</th>
          <th>sample</th>
        </tr>
        <tr data-gate="stop">
          <td>install errors (stop)</td>
          <td>
            {failedLink} of {counted} counted ({pct(f.install.failed, counted)} %)
          </td>
          <td class="muted">–</td>
          <td class="muted">–</td>
          <td>stop at &gt; {plan?.stop.maxFailedPercent ?? "?"} % failed</td>
          <td>
            <Verdict g={gate("stop")} />
          </td>
          <td>
            {counted} counted, judged from{" "}
            {plan ? minSampleOf(plan.stop.minSample, f.evaluated) : "?"}; {f.notSent} not sent yet
          </td>
        </tr>
        <tr data-gate="advance">
          <td>healthy on the release (advance)</td>
          <td>
            {f.healthy} of {f.evaluated} ({f.healthyPercent} %)
          </td>
          <td class="muted">–</td>
          <td class="muted">–</td>
          <td>advance at ≥ {plan?.advance.minHealthyPercent ?? "?"} %</td>
          <td>
            {f.evaluated === 0 || f.healthy * 100 >= (plan?.advance.minHealthyPercent ?? 0) *
                  f.evaluated
              ? <span class="state ok">met</span>
              : <span class="state late">not yet</span>}
          </td>
          <td>{f.evaluated} evaluated</td>
        </tr>
        {plan?.gates.pluginHealth && (
          <tr data-gate="pluginHealth">
            <td>plug-in health</td>
            <td>
              {f.unhealthy} of {f.reporting} reporting unhealthy ({pct(f.unhealthy, f.reporting)} %)
            </td>
            <td class="muted">–</td>
            <td class="muted">–</td>
            <td>at most {plan.gates.pluginHealth.maxUnhealthyPercent} % unhealthy</td>
            <td>
              <Verdict g={gate("pluginHealth")} />
            </td>
            <td>
              {gate("pluginHealth")?.judged === false
                ? `not judged yet: ${f.reporting} reporting (${
                  minSampleOf(plan.stop.minSample, f.evaluated)
                } needed)`
                : `${f.reporting} reporting`}
            </td>
          </tr>
        )}
        {mg && (
          <tr data-gate="metric">
            <td>
              metric <code>{mg.path}</code> (median of per-appliance medians)
            </td>
            <td data-phase-value>{num(m?.phase.statistic)}</td>
            <td data-control-value>{num(m?.control.statistic)}</td>
            <td data-ratio>
              {m?.ratio === null || m?.ratio === undefined
                ? "–"
                : `${num(m.ratio)} (${Math.round((m.ratio - 1) * 1000) / 10 >= 0 ? "+" : ""}${
                  Math.round((m.ratio - 1) * 1000) / 10
                } %)`}
            </td>
            <td>
              {[
                mg.maxDropPercent !== undefined ? `at most ${mg.maxDropPercent} % below` : "",
                mg.maxRisePercent !== undefined ? `at most ${mg.maxRisePercent} % above` : "",
              ].filter(Boolean).join(", ")}
            </td>
            <td>
              <Verdict g={gate("metric")} />
            </td>
            <td data-metric-sample>
              {gate("metric")?.judged === false
                ? `not judged yet: ${m?.phase.appliances ?? 0} of ${appliancesText(f.evaluated)} ${
                  f.evaluated === 1 ? "has" : "have"
                } ` +
                  `enough beats (${mg.minBeats} each; ${
                    Math.max(1, Math.min(mg.minAppliances, m?.phase.size ?? mg.minAppliances))
                  } needed), control ` +
                  `${m?.control.appliances ?? 0} of ${r.control}`
                : `${appliancesText(m?.phase.appliances ?? 0)} vs control ${
                  m?.control.appliances ?? 0
                } (≥ ${mg.minBeats} beats each)`}
            </td>
          </tr>
        )}
        {plan?.gates.beatRegularity && (
          <tr data-gate="beatRegularity">
            <td>beat regularity (missed-heartbeat alerts)</td>
            <td>
              {b?.membersMissed ?? 0} of {b?.members ?? 0}{" "}
              ({pct(b?.membersMissed ?? 0, b?.members ?? 0)} %)
            </td>
            <td>
              {b?.controlMissed ?? 0} of {b?.control ?? 0}{" "}
              ({pct(b?.controlMissed ?? 0, b?.control ?? 0)} %)
            </td>
            <td>{extra >= 0 ? "+" : ""}{extra} points</td>
            <td>at most {plan.gates.beatRegularity.maxExtraMissedPercent} points more</td>
            <td>
              <Verdict g={gate("beatRegularity")} />
            </td>
            <td>
              {gate("beatRegularity")?.judged === false
                ? `not judged yet: ${appliancesText(b?.members ?? 0)} (${
                  minSampleOf(plan.stop.minSample, f.evaluated)
                } needed)`
                : `${b?.members ?? 0} vs ${b?.control ?? 0}`}
            </td>
          </tr>
        )}
      </table>
      <details class="gate-summaries">
        <summary>The verdict in the daemon's words</summary>
        <ul>
          {e.judgement.gates.map((g) => (
            <li data-gate-summary={g.gate}>
              {g.gate}: {singular(g.summary)}
            </li>
          ))}
        </ul>
      </details>
    </>
  );
}

/** Each phase: size asked, target size then, members, started (at, by), ended. */
function Phases(props: { r: RolloutDetail }) {
  const { r } = props;
  return (
    <table id="phases">
      <tr>
        <th>phase</th>
        <th>size asked</th>
        <th>soak</th>
        <th>advance · stop</th>
        <th>gates</th>
        <th class="num">target size</th>
        <th class="num">wanted</th>
        <th class="num">members</th>
        <th>started</th>
        <th>ended</th>
      </tr>
      {r.phases.map((p: RolloutPhase) => (
        <tr data-phase={p.index} aria-current={p.index === r.phase ? "step" : undefined}>
          <td>
            {p.index + 1}
            {p.index === r.phase && <strong>{r.endedAt ? " (last)" : " (current)"}</strong>}
          </td>
          <td>{sizeText(p.plan)}</td>
          <td>
            {soakText(p.plan.soakS)}
            {p.plan.auto ? "" : ", by hand"}
          </td>
          <td>
            ≥ {p.plan.advance.minHealthyPercent} % healthy · &gt; {p.plan.stop.maxFailedPercent}
            {" "}
            % failed of ≥ {p.plan.stop.minSample}
          </td>
          <td>{gatesText(p.plan)}</td>
          <td class="num">{p.started ? p.started.targetSize : "–"}</td>
          <td class="num">{p.started ? p.started.wanted : "–"}</td>
          <td class="num">
            {p.members > 0
              ? (
                <a
                  href={membersHref(r.id, p.index)}
                  aria-label={`${appliancesText(p.members)} of phase ${p.index + 1}`}
                >
                  {p.members}
                </a>
              )
              : "0"}
          </td>
          <td>
            {p.started
              ? (
                <>
                  <Time at={p.started.at} /> by {p.started.by}
                </>
              )
              : <span class="muted">not yet</span>}
          </td>
          <td>
            {p.started?.endedAt ? <Time at={p.started.endedAt} /> : <span class="muted">–</span>}
          </td>
        </tr>
      ))}
    </table>
  );
}

/** A phase's gates in words, or `none`. */
function gatesText(plan: Phase): string {
  const g = plan.gates;
  const parts: string[] = [];
  if (g.pluginHealth) parts.push(`plug-in unhealthy ≤ ${g.pluginHealth.maxUnhealthyPercent} %`);
  if (g.metric) {
    const lim = [
      g.metric.maxDropPercent !== undefined ? `≤ ${g.metric.maxDropPercent} % below` : "",
      g.metric.maxRisePercent !== undefined ? `≤ ${g.metric.maxRisePercent} % above` : "",
    ].filter(Boolean).join(", ");
    parts.push(
      `${g.metric.path} ${lim} control (${appliancesText(g.metric.minAppliances)}, ` +
        `${g.metric.minBeats} ${g.metric.minBeats === 1 ? "beat" : "beats"})`,
    );
  }
  if (g.beatRegularity) {
    parts.push(`missed beats ≤ ${g.beatRegularity.maxExtraMissedPercent} points over control`);
  }
  return parts.length > 0 ? parts.join("; ") : "none";
}

/** The detail keys the timeline says in words (not repeated in its details column). */
const saidKeys = new Set(["note", "figures", "judgement", "phase"]);

/**
 * An event's details as `key: value` text (figures, notes and the phase apart); an advance's
 * `from` and `to` as phases numbered from 1.
 */
function detailText(e: RolloutEvent): string {
  return Object.entries(e.detail).filter(([k]) => !saidKeys.has(k)).map(([k, v]) => {
    if (e.kind === "advanced" && (k === "from" || k === "to") && typeof v === "number") {
      return `${k}: phase ${v + 1}`;
    }
    const text = typeof v === "string" ? singular(v) : JSON.stringify(v);
    return `${k}: ${(text ?? "").slice(0, 300)}`;
  }).join(" · ");
}

/** The timeline: at, actor, kind, note, details; a failure links to the failed appliances. */
function Timeline(props: { r: RolloutDetail }) {
  const { r } = props;
  const phaseOf = (e: RolloutEvent) =>
    typeof e.detail["phase"] === "number" ? e.detail["phase"] : null;
  return (
    <table id="timeline">
      <tr>
        <th>at</th>
        <th>by</th>
        <th>what</th>
        <th>note</th>
        <th>details</th>
      </tr>
      {[...r.events].reverse().map((e) => {
        const phase = phaseOf(e);
        return (
          <tr data-event={e.kind}>
            <td>
              <Time at={e.at} />
            </td>
            <td>{e.actor}</td>
            <td>
              {e.kind === "failed" ? <strong class="error-text">{e.kind}</strong> : e.kind}
              {phase !== null && ` (phase ${phase + 1})`}
            </td>
            <td>{typeof e.detail["note"] === "string" ? e.detail["note"] : ""}</td>
            <td>
              {detailText(e)}
              {phase !== null && (e.kind === "failed" || e.kind === "rolled_back") && (
                <>
                  {" "}·{" "}
                  <a href={membersHref(r.id, phase, e.kind === "failed" ? failedMemberStates : [])}>
                    {e.kind === "failed"
                      ? `failed appliances of phase ${phase + 1}`
                      : `appliances of phase ${phase + 1}`}
                  </a>
                </>
              )}
              {e.detail["figures"] !== undefined && (
                <details>
                  <summary>figures</summary>
                  <pre>{JSON.stringify(e.detail["figures"], null, 1).slice(0, 4000)}</pre>
                </details>
              )}
            </td>
          </tr>
        );
      })}
    </table>
  );
}

/** One phase's appliances, filtered by state, with the next page's link. */
function Members(
  props: {
    r: RolloutDetail;
    phase: number;
    states: string[];
    items: RolloutMember[];
    nextAfter: string | null;
    after?: string | undefined;
  },
) {
  const { r, phase, states, items } = props;
  const shown = memberFilters.find(([, s]) => s.join(",") === states.join(","))?.[0] ??
    states.join(", ");
  return (
    <>
      <p class="filters">
        Phase: {r.phases.map((p) => (
          <>
            {p.index === phase
              ? <strong>{p.index + 1} ({p.members})</strong>
              : (
                <a href={membersHref(r.id, p.index, states)}>
                  {p.index + 1} ({p.members})
                </a>
              )}
            {" "}
          </>
        ))}
      </p>
      <p class="filters">
        Show: {memberFilters.map(([label, s]) => (
          <>
            {s.join(",") === states.join(",")
              ? <strong>{label}</strong>
              : <a href={membersHref(r.id, phase, s)}>{label}</a>}
            {" "}
          </>
        ))}
      </p>
      {items.length === 0
        ? <p>No appliance of phase {phase + 1} is {shown === "all" ? "a member yet" : shown}.</p>
        : (
          <table id="members">
            <tr>
              <th>appliance</th>
              <th>state</th>
              <th>runs</th>
              <th>outcome</th>
              <th>message</th>
              <th>sent</th>
              <th>last beat</th>
              <th>site</th>
            </tr>
            {items.map((x) => (
              <tr data-uid={x.uid}>
                <td>
                  <a href={`/ui/appliances/${x.uid}`}>{x.hostname}</a>
                </td>
                <td>
                  <State state={x.state} />
                </td>
                <td>{x.runningVersion ?? <span class="muted">none</span>}</td>
                <td>{x.outcome?.outcome ?? <span class="muted">none</span>}</td>
                <td>{x.outcome?.message ?? ""}</td>
                <td>
                  <Time at={x.sentAt} />
                </td>
                <td>
                  <Time at={x.lastBeatAt} />
                </td>
                <td>{x.site ?? ""}</td>
              </tr>
            ))}
          </table>
        )}
      {props.after && (
        <p>
          <a href={membersHref(r.id, phase, states)}>First page of appliances</a>
        </p>
      )}
      {props.nextAfter && (
        <p>
          <a
            href={`/ui/rollouts/${r.id}?phase=${phase}${
              states.length > 0 ? `&state=${states.join(",")}` : ""
            }&after=${props.nextAfter}#appliances`}
          >
            Next page of appliances
          </a>
        </p>
      )}
    </>
  );
}

/** The actions a rollout in state `state` offers: pause, resume, advance, cancel. */
function actionsOf(state: string): Array<"pause" | "resume" | "advance" | "cancel"> {
  if (state === "running") return ["pause", "advance", "cancel"];
  if (state === "paused") return ["resume", "cancel"];
  return [];
}

const actionLabel = {
  pause: "Pause",
  resume: "Resume",
  advance: "Advance now…",
  cancel: "Cancel rollout…",
} as const;

/** The actions form: a note, and one button per action the state allows. */
function Actions(props: { ctx: PageContext; r: RolloutDetail; note: string }) {
  const { ctx, r } = props;
  const actions = actionsOf(r.state);
  if (actions.length === 0) return <p class="muted">It has ended: nothing more can be done.</p>;
  return (
    <form method="post" action={`/ui/rollouts/${r.id}/${actions[0]}`} class="panel" id="actions">
      <Csrf ctx={ctx} />
      <Versioned revision={r.revision} />
      <label>
        Note (kept in the timeline)
        <input name="note" size={40} maxlength={500} value={props.note} />
      </label>
      {actions.map((a) => (
        <button
          type="submit"
          formaction={`/ui/rollouts/${r.id}/${a}`}
          class={a === "cancel" ? "danger" : a === "advance" ? "secondary" : undefined}
        >
          {actionLabel[a]}
        </button>
      ))}
    </form>
  );
}

/** What advancing rollout `r` now does, in words. */
function advanceWhat(r: RolloutDetail): string {
  const next = r.phases[r.phase + 1];
  if (!next) {
    return `Complete rollout ${r.id} (${releaseText(r.component)}) now, ending its last phase ` +
      `whatever its figures and soak time?`;
  }
  return `Advance rollout ${r.id} (${releaseText(r.component)}) to phase ${r.phase + 2} of ` +
    `${r.phaseCount} (${sizeText(next.plan)} of ${targetText(r.target)}) now, whatever the ` +
    `figures and soak time of phase ${r.phase + 1}? More appliances are sent the release; ` +
    `they are not taken back.`;
}

/** The words of a done action, for the flash. */
function doneText(action: string, r: RolloutDetail): string {
  switch (action) {
    case "pause":
      return `Rollout ${r.id} paused: appliances already sent ${r.component.version} keep it; ` +
        `no other gets it`;
    case "resume":
      return `Rollout ${r.id} resumed at phase ${r.phase + 1} of ${r.phaseCount}; its soak ` +
        `time starts again`;
    case "advance": {
      if (r.state === "completed") return `Rollout ${r.id} completed`;
      const joined = r.phases[r.phase]?.members ?? 0;
      const all = r.phases.slice(0, r.phase + 1).reduce((n, p) => n + p.members, 0);
      return `Rollout ${r.id} advanced to phase ${r.phase + 1} of ${r.phaseCount} (${
        sizeText(r.phases[r.phase]?.plan ?? {})
      }): ${joined} more appliance${joined === 1 ? "" : "s"}, ${all} in all`;
    }
    default:
      return `Rollout ${r.id} cancelled: appliances already sent ${r.component.version} keep it`;
  }
}

/** `/ui/rollouts…`: the list, the create form, a rollout, and its actions. */
export function phasedRolloutPages(p: PageDeps) {
  const app = new Hono<ConsoleEnv>()
    .get("/rollouts", p.signedIn, async (c) => {
      const ctx = c.var.page;
      const state = c.req.query("state") ?? "";
      const cursor = c.req.query("cursor") ?? "";
      const okState = stateChoices.some(([v]) => v === state);
      const okCursor = cursor === "" || /^[0-9]{1,18}$/.test(cursor);
      if (!okState || !okCursor) {
        return refused(c, "/ui/rollouts", "That link asks for an unknown state or page");
      }
      const res = await c.var.api.rollouts.$get({
        query: { ...(state ? { state } : {}), ...(cursor ? { cursor } : {}), limit: "50" },
      });
      if (!res.ok) return refused(c, "/ui", await refusal(res));
      const list = await res.json() as { items: RolloutSummary[]; nextCursor: string | null };
      const q = (more: string) => {
        const parts = [state ? `state=${encodeURIComponent(state)}` : "", more].filter(Boolean);
        return `/ui/rollouts${parts.length > 0 ? `?${parts.join("&")}` : ""}`;
      };
      return await html(
        c,
        <Layout title="Phased rollouts" ctx={ctx}>
          <p>
            A phased rollout takes a release to a target in phases (1 % canary, 10 %, 50 %, 100 %),
            each advancing when its appliances run it healthy through a soak time, and stopping on
            install errors or a gate on what they report against control.{" "}
            {ctx.role !== "viewer" && <a href="/ui/rollouts/new">Start a phased rollout</a>}
          </p>
          <form method="get" action="/ui/rollouts" class="panel" id="rollout-filter">
            <label>
              State
              <select name="state">
                {stateChoices.map(([v, t]) => (
                  <option value={v} selected={v === state}>{t}</option>
                ))}
              </select>
            </label>
            <button type="submit">Show</button>
          </form>
          {list.items.length === 0
            ? <p>No phased rollout{state ? ` is ${state.replace(",", " or ")}` : " yet"}.</p>
            : <RolloutTable items={list.items} />}
          <p>
            {cursor && <a href={q("")}>First page</a>}
            {cursor && list.nextCursor && " · "}
            {list.nextCursor && (
              <a href={q(`cursor=${list.nextCursor}`)}>Next page (older rollouts)</a>
            )}
          </p>
        </Layout>,
      );
    })
    .get("/rollouts/new", p.signedIn, async (c) => {
      const ctx = c.var.page;
      if (ctx.role === "viewer") {
        return await html(
          c,
          <Layout title="Start a phased rollout" ctx={ctx}>
            <p>
              Starting a rollout needs the operator role; {ctx.label} has the viewer role.{" "}
              <a href="/ui/rollouts">Phased rollouts</a>
            </p>
          </Layout>,
        );
      }
      const [components, choices] = await Promise.all([
        loadComponents(c.var.api),
        loadChoices(c.var.api),
      ]);
      return await html(
        c,
        <Layout title="Start a phased rollout" ctx={ctx}>
          <p>
            <a href="/ui/rollouts">Phased rollouts</a> · <a href="/ui/releases">Releases</a>
          </p>
          <CreateForm
            ctx={ctx}
            components={components}
            choices={choices}
            values={formValues(kept(c), c.req.query())}
          />
        </Layout>,
      );
    })
    .post("/rollouts", p.signedIn, async (c) => {
      const form = await formOf(c);
      const to = "/ui/rollouts/new";
      // Rows without a size are not kept (they would crowd the kept form out of its bound).
      const keep: Record<string, string> = {};
      for (const [k, x] of Object.entries(form)) {
        const row = /^p([0-9])\./.exec(k);
        if (typeof x !== "string") continue;
        if (row && field(form, `p${row[1]}.size`) === "") continue;
        if (x !== "") keep[k] = x;
      }
      keep["_form"] = "rollout";
      const no = (message: string) => refused(c, to, message, keep);
      const m = /^(package|file)\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(field(form, "component"));
      if (!m) return no('Field "component": choose a published version');
      const target = formTarget(form);
      if (typeof target === "string") return no(target);
      const phases = phasesOf(form);
      if (typeof phases === "string") return no(phases);
      const previous = field(form, "previousVersion");
      const note = field(form, "note");
      const res = await c.var.api.rollouts.$post({
        json: {
          component: {
            kind: m[1] as "package" | "file",
            app: m[2]!,
            name: m[3]!,
            version: m[4]!,
          },
          target,
          phases,
          rollback: field(form, "rollback") === "yes",
          ...(previous ? { previousVersion: previous } : {}),
          ...(note ? { note } : {}),
        },
      });
      if (!res.ok) return no(saidOnce(phaseWords(await refusal(res))));
      const r = await res.json() as unknown as RolloutDetail;
      const first = r.phases[0];
      return back(
        c,
        `/ui/rollouts/${r.id}`,
        `Rollout ${r.id} of ${releaseText(r.component)} to ${
          targetText(r.target)
        } started: phase 1 of ${r.phaseCount} (${first ? sizeText(first.plan) : ""}) has ${
          first?.members ?? 0
        } of ${appliancesText(first?.started?.targetSize ?? 0)}`,
      );
    })
    .get("/rollouts/:id", p.signedIn, async (c) => {
      const id = idOf(c);
      const got = await getRollout(c, id);
      if ("refusal" in got) return refused(c, "/ui/rollouts", got.refusal);
      const r = got.r;
      const ctx = c.var.page;
      const phaseQ = c.req.query("phase");
      const stateQ = c.req.query("state") ?? "";
      const after = c.req.query("after");
      const phase = phaseQ !== undefined && /^[0-9]$/.test(phaseQ) && Number(phaseQ) < r.phaseCount
        ? Number(phaseQ)
        : r.phase;
      const states = stateQ === "" ? [] : stateQ.split(",");
      if (
        stateQ.length > 200 ||
        !states.every((s) => (memberStateNames as readonly string[]).includes(s))
      ) {
        return refused(c, `/ui/rollouts/${id}`, "That link asks for an unknown appliance state");
      }
      const membersRes = await c.var.api.rollouts[":id"].appliances.$get({
        param: { id },
        query: {
          phase: String(phase),
          ...(states.length > 0 ? { state: states.join(",") } : {}),
          ...(after && uuid.test(after) ? { after } : {}),
          limit: "100",
        },
      });
      const members = membersRes.ok
        ? await membersRes.json() as { items: RolloutMember[]; nextAfter: string | null }
        : { items: [], nextAfter: null };
      const k = kept(c);
      return await html(
        c,
        <Layout
          title={`Rollout ${r.id}: ${releaseText(r.component)}`}
          ctx={ctx}
          live={r.state === "running"}
        >
          <p>
            <a href="/ui/rollouts">Phased rollouts</a> · to {targetText(r.target)} ·{" "}
            <State state={r.state} /> · {phaseOfText(r)} · from{" "}
            {r.previousVersion ?? <span class="muted">no previous version</span>} ·{" "}
            {r.rollback ? "rolls back on failure" : "no rollback"} · created by {r.createdBy}{" "}
            <Time at={r.createdAt} />
            {r.endedAt && (
              <>
                {" "}· ended <Time at={r.endedAt} />
              </>
            )}
          </p>
          {r.assignment.pausedReason && r.state !== "running" && (
            <p data-paused-reason>{singular(r.assignment.pausedReason)}</p>
          )}
          {ctx.role !== "viewer" && <Actions ctx={ctx} r={r} note={k["note"] ?? ""} />}
          <h2 id="phases-heading">Phases</h2>
          <Phases r={r} />
          <h2 id="figures">Gate figures against control</h2>
          {r.evaluation ? <Evaluation r={r} e={r.evaluation} /> : (
            <p class="muted">
              Not evaluated yet in this phase: the rollout daemon evaluates running rollouts once a
              period.
            </p>
          )}
          <h2 id="appliances">Appliances of phase {phase + 1}</h2>
          {membersRes.ok
            ? <Members r={r} phase={phase} states={states} after={after} {...members} />
            : (
              <p class="flash error" role="alert">
                The appliances could not be read: {await refusal(membersRes)}
              </p>
            )}
          <h2 id="timeline-heading">Timeline</h2>
          <Timeline r={r} />
        </Layout>,
      );
    });
  for (const action of ["pause", "resume", "advance", "cancel"] as const) {
    app.post(`/rollouts/:id/${action}`, p.signedIn, async (c) => {
      const id = idOf(c);
      const form = await formOf(c);
      const to = `/ui/rollouts/${id}`;
      const note = field(form, "note");
      if ((action === "advance" || action === "cancel") && field(form, "confirmed") !== "yes") {
        const got = await getRollout(c, id);
        if ("refusal" in got) return refused(c, to, got.refusal, form);
        const r = got.r;
        return await html(
          c,
          <Layout
            title={action === "cancel" ? "Cancel a rollout?" : "Advance now?"}
            ctx={c.var.page}
          >
            <Confirm
              ctx={c.var.page}
              what={action === "cancel"
                ? `Cancel rollout ${r.id} (${releaseText(r.component)} to ${
                  targetText(r.target)
                }, ${phaseOfText(r)})? It cannot be resumed; appliances already sent the release ` +
                  `keep it, and no other gets it.`
                : advanceWhat(r)}
              action={`/ui/rollouts/${r.id}/${action}`}
              button={action === "cancel" ? "Cancel rollout" : "Advance now"}
              cancel={to}
              fields={{ note, revision: String(r.revision) }}
            />
          </Layout>,
        );
      }
      const json = note ? { note } : {};
      const param = { param: { id }, json };
      const one = c.var.api.rollouts[":id"];
      const at = ifMatch(form);
      const res = action === "pause"
        ? await one.pause.$post(param, at)
        : action === "resume"
        ? await one.resume.$post(param, at)
        : action === "advance"
        ? await one.advance.$post(param, at)
        : await one.cancel.$post(param, at);
      if (!res.ok) {
        const why = await refusalOf(res, (now) => `${now.state}, ${phaseOfText(now)}`);
        return refused(c, to, why, res.status === 409 && why.startsWith("Changed by") ? {} : form);
      }
      return back(c, to, doneText(action, await res.json() as unknown as RolloutDetail));
    });
  }
  return app;
}
