/**
 * The CLI's phased rollouts (`noc rollouts …`, issue 20): the body of `POST /v1/admin/rollouts`
 * built from flags (`--phase 1%:soak=1h --phase 100% --metric app.key --max-drop 30 …`) or read
 * from a `--plan` file, checked here against the same schema the NOC takes (a bad one is a usage
 * error naming the flag or field), and the admin API's answers written for people: a list, a
 * rollout with its phases, its gate figures against control and its timeline, its appliances.
 *
 * Phase specs: `<size>[:key[=value]…]`, where size is `N%` (a share of the target, 0 < N ≤ 100)
 * or `N` (a count of appliances); keys `soak=<duration>` (`90s`, `30m`, `6h`, `2d`, or seconds;
 * 0 by default), `min-healthy=P` (advance condition), `max-failed=P` and `min-sample=N` (stop
 * condition) and `manual` (advance by hand only). Phases are numbered from 1 for people; the
 * admin API numbers them from 0.
 *
 * @module
 */
import { z } from "zod";
import {
  type CreateRolloutInput,
  createRolloutSchema,
  maxSoakS,
  type PhaseInput,
} from "../protocol/rollout_plan.ts";
import { UsageError } from "../protocol/util/args.ts";

const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds in a duration `90s`, `30m`, `6h`, `2d` or `120` (seconds); a usage error otherwise. */
export function parseDuration(text: string, what: string): number {
  const m = /^([0-9]{1,7})([smhd]?)$/.exec(text);
  if (!m) {
    throw new UsageError(
      `${what}: "${text.slice(0, 40)}" is not a duration (e.g. 90s, 30m, 6h, 2d, or seconds)`,
    );
  }
  const s = Number(m[1]) * units[m[2] || "s"]!;
  if (s > maxSoakS) throw new UsageError(`${what}: ${text} is longer than 30 days`);
  return s;
}

/** A number from `min` to `max` in `text`, or a usage error naming `what`. */
function numberIn(text: string, what: string, min: number, max: number, whole = false): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`${what} must be a number from ${min} to ${max}, not "${text}"`);
  }
  if (whole && !Number.isInteger(n)) {
    throw new UsageError(`${what} must be a whole number, not "${text}"`);
  }
  return n;
}

/**
 * One `--phase` spec (see the module) as a phase of the API's plan, without gates. `index` is
 * 0-based (messages name `--phase` number index + 1). A usage error names what is wrong.
 */
export function parsePhaseSpec(spec: string, index: number): PhaseInput {
  const what = `--phase ${index + 1} "${spec.slice(0, 80)}"`;
  const [size = "", ...opts] = spec.split(":");
  const phase: PhaseInput = { soakS: 0 };
  const pct = /^([0-9]+(?:\.[0-9]+)?)%$/.exec(size);
  if (pct) {
    const p = Number(pct[1]);
    if (!(p > 0 && p <= 100)) throw new UsageError(`${what}: a share is over 0% and at most 100%`);
    phase.percent = p;
  } else if (/^[0-9]+$/.test(size)) {
    phase.count = numberIn(size, `${what}: a count`, 1, 10_000_000, true);
  } else {
    throw new UsageError(
      `${what}: starts with its size, N% (share of the target) or N (appliances), e.g. 10% or 5`,
    );
  }
  const seen = new Set<string>();
  for (const opt of opts) {
    const [key = "", value, ...extra] = opt.split("=");
    if (seen.has(key)) throw new UsageError(`${what}: ${key} is given twice`);
    seen.add(key);
    const needValue = () => {
      if (value === undefined || value === "" || extra.length > 0) {
        throw new UsageError(`${what}: ${key} needs one value (${key}=…)`);
      }
      return value;
    };
    switch (key) {
      case "soak":
        phase.soakS = parseDuration(needValue(), `${what}: soak`);
        break;
      case "min-healthy":
        phase.advance = {
          minHealthyPercent: numberIn(needValue(), `${what}: min-healthy`, 0, 100),
        };
        break;
      case "max-failed":
        phase.stop = {
          ...phase.stop,
          maxFailedPercent: numberIn(needValue(), `${what}: max-failed`, 0, 100),
        };
        break;
      case "min-sample":
        phase.stop = {
          ...phase.stop,
          minSample: numberIn(needValue(), `${what}: min-sample`, 1, 100000, true),
        };
        break;
      case "manual":
        if (value !== undefined) throw new UsageError(`${what}: manual takes no value`);
        phase.auto = false;
        break;
      default:
        throw new UsageError(
          `${what}: unknown option "${key.slice(0, 40)}" (soak=, min-healthy=, max-failed=, ` +
            "min-sample=, manual)",
        );
    }
  }
  return phase;
}

/** What `rollouts create` takes from flags (strings as given; undefined when not given). */
export interface RolloutFlags {
  kind: string;
  app: string;
  name: string;
  version: string;
  /** `all` or `type=value`. */
  target: string;
  phases: readonly string[];
  rollback: boolean;
  previousVersion?: string | undefined;
  metric?: string | undefined;
  maxDrop?: string | undefined;
  maxRise?: string | undefined;
  minAppliances?: string | undefined;
  minBeats?: string | undefined;
  maxUnhealthy?: string | undefined;
  maxExtraMissed?: string | undefined;
  maxFailed?: string | undefined;
  minSample?: string | undefined;
  minHealthy?: string | undefined;
  note?: string | undefined;
}

/** `--target` as the API takes it: `all` or `<type>=<value>`; a usage error otherwise. */
export function targetOf(target: string): { type: string; value?: string } {
  if (target === "all") return { type: "all" };
  const m = /^(model|site|channel|tag|appliance)=(.+)$/.exec(target);
  if (!m) {
    throw new UsageError(
      `--target must be all or <model|site|channel|tag|appliance>=<value>, not "${target}"`,
    );
  }
  return { type: m[1]!, value: m[2]! };
}

/**
 * The body of `POST /v1/admin/rollouts` from `f`: each `--phase` in order, the stop and advance
 * defaults of `--max-failed`, `--min-sample` and `--min-healthy` (a phase's own keys win),
 * plug-in health on every phase, the metric and beat-regularity gates on every phase with a
 * control group (all but a 100% one). Checked with the NOC's schema; a usage error names the flag.
 */
export function rolloutBodyFromFlags(f: RolloutFlags): CreateRolloutInput {
  if (f.phases.length === 0) {
    throw new UsageError("--phase is required: e.g. --phase 1%:soak=1h --phase 10% --phase 100%");
  }
  const gateFlags = [f.maxDrop, f.maxRise, f.minAppliances, f.minBeats];
  if (f.metric === undefined && gateFlags.some((v) => v !== undefined)) {
    throw new UsageError("--max-drop, --max-rise, --min-appliances and --min-beats need --metric");
  }
  if (f.metric !== undefined && f.maxDrop === undefined && f.maxRise === undefined) {
    throw new UsageError("--metric needs --max-drop, --max-rise or both");
  }
  const metric = f.metric === undefined ? undefined : {
    path: f.metric,
    ...(f.maxDrop === undefined
      ? {}
      : { maxDropPercent: numberIn(f.maxDrop, "--max-drop", 0, 100) }),
    ...(f.maxRise === undefined
      ? {}
      : { maxRisePercent: numberIn(f.maxRise, "--max-rise", 0, 100000) }),
    ...(f.minAppliances === undefined
      ? {}
      : { minAppliances: numberIn(f.minAppliances, "--min-appliances", 1, 100000, true) }),
    ...(f.minBeats === undefined
      ? {}
      : { minBeats: numberIn(f.minBeats, "--min-beats", 1, 10000, true) }),
  };
  const unhealthy = f.maxUnhealthy === undefined
    ? undefined
    : { maxUnhealthyPercent: numberIn(f.maxUnhealthy, "--max-unhealthy", 0, 100) };
  const missed = f.maxExtraMissed === undefined
    ? undefined
    : { maxExtraMissedPercent: numberIn(f.maxExtraMissed, "--max-extra-missed", 0, 100) };
  const maxFailed = f.maxFailed === undefined
    ? undefined
    : numberIn(f.maxFailed, "--max-failed", 0, 100);
  const minSample = f.minSample === undefined
    ? undefined
    : numberIn(f.minSample, "--min-sample", 1, 100000, true);
  const minHealthy = f.minHealthy === undefined
    ? undefined
    : numberIn(f.minHealthy, "--min-healthy", 0, 100);
  const phases = f.phases.map((spec, i) => {
    const p = parsePhaseSpec(spec, i);
    const stop = {
      ...(maxFailed === undefined ? {} : { maxFailedPercent: maxFailed }),
      ...(minSample === undefined ? {} : { minSample }),
      ...p.stop,
    };
    if (Object.keys(stop).length > 0) p.stop = stop;
    if (minHealthy !== undefined && !p.advance) p.advance = { minHealthyPercent: minHealthy };
    const controlled = p.percent !== 100;
    const gates = {
      ...(unhealthy ? { pluginHealth: unhealthy } : {}),
      ...(metric && controlled ? { metric } : {}),
      ...(missed && controlled ? { beatRegularity: missed } : {}),
    };
    if (Object.keys(gates).length > 0) p.gates = gates;
    return p;
  });
  if (metric && !phases.some((p) => p.gates?.metric)) {
    throw new UsageError(
      "--metric: every phase is 100%, so none has a control group to compare with",
    );
  }
  const body = {
    component: { kind: f.kind, app: f.app, name: f.name, version: f.version },
    target: targetOf(f.target),
    phases,
    rollback: f.rollback,
    ...(f.previousVersion === undefined ? {} : { previousVersion: f.previousVersion }),
    ...(f.note === undefined ? {} : { note: f.note }),
  };
  return checkedBody(body, "");
}

/** Where each field of the body comes from on the command line, for messages. */
const flagOfField: Array<[RegExp, string]> = [
  [/^component\.kind/, "--kind"],
  [/^component\.app/, "--app"],
  [/^component\.name/, "--name"],
  [/^component\.version/, "--version"],
  [/^target/, "--target"],
  [/^previousVersion/, "--previous-version"],
  [/^note/, "--note"],
  [/^phases\.\d+\.gates\.metric\.path/, "--metric"],
];

/**
 * `body` checked with the NOC's schema (`POST /v1/admin/rollouts`); a usage error names the
 * field (with `from` the file it came from, else the flag that gives it).
 */
export function checkedBody(body: unknown, from: string): CreateRolloutInput {
  const r = createRolloutSchema.safeParse(body);
  if (r.success) return body as CreateRolloutInput;
  const issue = r.error.issues[0]!;
  const path = issue.path.join(".");
  if (from !== "") {
    throw new UsageError(`${from}: ${path ? `"${path}" ` : ""}${issue.message}`);
  }
  const phase = /^phases\.(\d+)/.exec(path);
  const named = flagOfField.find(([re]) => re.test(path))?.[1] ??
    (phase ? `--phase ${Number(phase[1]) + 1}` : path ? `"${path}"` : "the rollout");
  throw new UsageError(`${named}: ${issue.message}`);
}

// What the CLI reads of the admin API's answers (other fields pass through --json untouched).
const nullableText = z.string().nullish();
const summary = z.object({
  id: z.number(),
  component: z.object({ kind: z.string(), app: z.string(), name: z.string(), version: z.string() }),
  target: z.object({ type: z.string(), value: nullableText }),
  state: z.string(),
  phase: z.number(),
  phaseCount: z.number(),
  previousVersion: nullableText,
  rollback: z.boolean(),
  createdBy: z.string(),
  createdAt: z.string(),
  endedAt: nullableText,
});

/** `GET /v1/admin/rollouts`, as the CLI reads it. */
export const rolloutList = z.object({ items: z.array(summary), nextCursor: nullableText });

const gate = z.object({
  gate: z.string(),
  judged: z.boolean(),
  fails: z.boolean(),
  summary: z.string(),
});
const group = z.object({ appliances: z.number(), statistic: z.number().nullable() });

/** `GET /v1/admin/rollouts/:id` (and the actions' answers), as the CLI reads it. */
export const rolloutDetail = summary.extend({
  phaseStartedAt: z.string(),
  heldSince: nullableText,
  assignment: z.object({ paused: z.boolean(), pausedReason: nullableText }),
  phases: z.array(z.object({
    index: z.number(),
    plan: z.object({
      percent: z.number().optional(),
      count: z.number().optional(),
      soakS: z.number(),
      auto: z.boolean().optional(),
      gates: z.record(z.string(), z.unknown()).optional(),
    }),
    started: z.object({
      at: z.string(),
      wanted: z.number(),
      joined: z.number(),
      control: z.number(),
      endedAt: nullableText,
    }).nullable(),
    members: z.number(),
  })),
  control: z.number(),
  evaluation: z.object({
    at: z.string(),
    figures: z.object({
      phase: z.number(),
      evaluated: z.number(),
      healthy: z.number(),
      healthyPercent: z.number(),
      reporting: z.number(),
      unhealthy: z.number(),
      notSent: z.number(),
      install: z.object({ sent: z.number(), installed: z.number(), failed: z.number() }),
      metric: z.object({
        path: z.string(),
        phase: group,
        control: group,
        ratio: z.number().nullable(),
      }).nullable(),
      beats: z.object({
        members: z.number(),
        membersMissed: z.number(),
        control: z.number(),
        controlMissed: z.number(),
      }).nullable(),
    }),
    judgement: z.object({
      gates: z.array(gate),
      failed: gate.nullable(),
      holds: z.boolean(),
      waiting: z.array(z.string()),
    }),
    advanceAt: nullableText,
  }).nullable(),
  evaluatedAt: nullableText,
  events: z.array(z.object({
    at: z.string(),
    actor: z.string(),
    kind: z.string(),
    detail: z.record(z.string(), z.unknown()),
  })),
});

/** `GET /v1/admin/rollouts/:id/appliances`, as the CLI reads it. */
export const rolloutMembers = z.object({
  items: z.array(z.object({
    uid: z.string(),
    hostname: z.string(),
    phase: z.number(),
    state: z.string(),
    runningVersion: nullableText,
    outcome: z.object({ outcome: z.string(), message: nullableText }).nullable(),
    lastBeatAt: nullableText,
  })),
  nextAfter: nullableText,
});

type Summary = z.infer<typeof summary>;
type Detail = z.infer<typeof rolloutDetail>;

/** Aligned columns for people (as the CLI's other tables). */
export function table(head: string[], rows: Array<Array<string | number>>): string {
  if (rows.length === 0) return "(none)";
  const cells = [head, ...rows.map((r) => r.map((v) => String(v)))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells.map((r) => r.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

/** `package app/name@version`. */
export const releaseOf = (r: Summary) =>
  `${r.component.kind} ${r.component.app}/${r.component.name}@${r.component.version}`;

/** `all` or `site=hq`. */
export const targetText = (r: Summary) =>
  r.target.type === "all" ? "all" : `${r.target.type}=${r.target.value ?? ""}`;

/** A duration in the largest unit that divides it (`1h`, `90m`, `0s`). */
export function durationText(s: number): string {
  for (const u of ["d", "h", "m"] as const) {
    if (s > 0 && s % units[u]! === 0) return `${s / units[u]!}${u}`;
  }
  return `${s}s`;
}

/** Control characters (a terminal escape in a note or actor) shown as their pictures. */
export function shown(t: string): string {
  return t.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f]/g,
    (ch) => String.fromCharCode(ch === "\u007f" ? 0x2421 : 0x2400 + ch.charCodeAt(0)),
  );
}

/** The list of rollouts for people. */
export function listText(r: z.infer<typeof rolloutList>): string {
  if (r.items.length === 0) return "No rollouts.";
  return table(
    ["id", "state", "phase", "release", "from", "target", "created", "by"],
    r.items.map((x) => [
      x.id,
      x.state,
      `${x.phase + 1}/${x.phaseCount}`,
      releaseOf(x),
      x.previousVersion ?? "-",
      targetText(x),
      x.createdAt,
      shown(x.createdBy),
    ]),
  ) + (r.nextCursor ? `\n(more: --cursor ${r.nextCursor})` : "");
}

/** A phase's gates, in the order they are judged. */
const gateOrder = ["pluginHealth", "metric", "beatRegularity"] as const;

/** A phase's state, as `show` words it. */
function phaseState(r: Detail, index: number): string {
  if (index < r.phase) return "passed";
  if (index > r.phase) return r.state === "running" || r.state === "paused" ? "waiting" : "-";
  return r.state === "running" ? "current" : r.state;
}

/** A number as people read it (at most 3 decimals). */
const num = (n: number | null) => n === null ? "-" : String(Math.round(n * 1000) / 1000);

/** What an event says beyond its kind: the note, the phase move, the gate, the figures. */
function eventText(e: Detail["events"][number]): string {
  const d = e.detail;
  const parts: string[] = [];
  if (typeof d.from === "number" && typeof d.to === "number") {
    parts.push(`phase ${d.from + 1} → ${d.to + 1}${d.auto === true ? " (soak time held)" : ""}`);
  } else if (e.kind === "phase_started" && typeof d.phase === "number") {
    parts.push(`phase ${d.phase + 1}: ${d.joined ?? "?"} joined, control ${d.control ?? "?"}`);
  }
  if (typeof d.gate === "string") parts.push(`gate ${d.gate}`);
  if (typeof d.reason === "string") parts.push(singular(d.reason));
  if (typeof d.note === "string") parts.push(`"${d.note}"`);
  return shown(parts.join("; ")).slice(0, 300);
}

/** `n` appliances: `1 appliance`, `5 appliances`. */
export const appliancesText = (n: number) => `${n} appliance${n === 1 ? "" : "s"}`;

/**
 * Text the NOC words for any count (a gate's summary, a failure reason) with `1 appliances` said
 * as `1 appliance` (and `1 reporting appliances` as `1 reporting appliance`).
 */
export function singular(text: string): string {
  return text.replace(/(?<![0-9.])1 (reporting )?appliances\b/g, "1 $1appliance");
}

/** A rollout for people: what, phases, gate figures against control, timeline. */
export function detailText(r: Detail): string {
  const lines = [
    `Rollout ${r.id}: ${releaseOf(r)} (from ${r.previousVersion ?? "none"}) to ${
      targetText(r)
    } — ${r.state}, phase ${r.phase + 1} of ${r.phaseCount}`,
    `  created ${r.createdAt} by ${shown(r.createdBy)}; rollback on failure: ${
      r.rollback ? "yes" : "no"
    }${r.endedAt ? `; ended ${r.endedAt}` : ""}`,
    ...(r.assignment.paused && r.assignment.pausedReason
      ? [`  assignment paused: ${shown(singular(r.assignment.pausedReason))}`]
      : []),
    "",
    "Phases:",
    table(
      ["#", "size", "soak", "advance", "gates", "members", "state", "started"],
      r.phases.map((p) => [
        p.index + 1,
        p.plan.percent !== undefined ? `${p.plan.percent}%` : `${p.plan.count}`,
        durationText(p.plan.soakS),
        p.plan.auto === false ? "by hand" : "auto",
        gateOrder.filter((g) => p.plan.gates?.[g] !== undefined).join(",") || "-",
        p.members,
        phaseState(r, p.index),
        p.started?.at ?? "",
      ]),
    ),
    `Control sample: ${appliancesText(r.control)}`,
    "",
  ];
  const ev = r.evaluation;
  if (!ev) {
    lines.push("Gates: not evaluated yet in this phase.");
  } else {
    const f = ev.figures;
    // An ended rollout waits for nothing; a failed gate is said once, not as "waiting".
    const active = r.state === "running" || r.state === "paused";
    const failedGate = ev.judgement.failed?.gate;
    const waiting = active ? ev.judgement.waiting.filter((w) => w !== `${failedGate} fails`) : [];
    lines.push(
      `Gates (evaluated ${ev.at}, phase ${f.phase + 1}; ${
        failedGate
          ? `FAILED: ${failedGate}`
          : !active
          ? `${r.state}, nothing waiting`
          : ev.judgement.holds
          ? `holds${ev.advanceAt ? `, advances at ${ev.advanceAt}` : ""}`
          : "waiting"
      }):`,
      `  healthy ${f.healthy} of ${f.evaluated} (${f.healthyPercent}%); sent ${f.install.sent}, ` +
        `installed ${f.install.installed}, failed ${f.install.failed}, not sent ${f.notSent}`,
    );
    if (f.metric) {
      const m = f.metric;
      lines.push(
        `  metric ${m.path}: phase ${num(m.phase.statistic)} (${
          appliancesText(m.phase.appliances)
        }) ` +
          `vs control ${num(m.control.statistic)} (${m.control.appliances}); ratio ${
            m.ratio === null
              ? "-"
              : `${num(m.ratio)} (${m.ratio >= 1 ? "+" : ""}${num((m.ratio - 1) * 100)}%)`
          }`,
      );
    }
    if (f.beats) {
      const b = f.beats;
      lines.push(
        `  missed beats: phase ${b.membersMissed} of ${b.members} vs control ${b.controlMissed} ` +
          `of ${b.control}`,
      );
    }
    lines.push(
      `  plug-in health: ${f.unhealthy} of ${f.reporting} reporting say unhealthy`,
      ...ev.judgement.gates.map((g) =>
        `  ${g.fails ? "FAIL" : g.judged ? "ok  " : active ? "wait" : "-   "} ${g.gate}: ${
          shown(singular(g.summary))
        }`
      ),
      ...waiting.map((w) => `  waiting: ${shown(singular(w))}`),
    );
  }
  lines.push(
    "",
    "Timeline:",
    table(
      ["at", "actor", "kind", "note"],
      r.events.map((e) => [e.at, shown(e.actor), e.kind, eventText(e)]),
    ),
  );
  return lines.join("\n");
}

/** A rollout's appliances for people. */
export function membersText(r: z.infer<typeof rolloutMembers>): string {
  return table(
    ["uid", "host name", "phase", "state", "running", "outcome", "last beat"],
    r.items.map((m) => [
      m.uid,
      shown(m.hostname),
      m.phase + 1,
      m.state,
      m.runningVersion ?? "-",
      m.outcome
        ? shown(`${m.outcome.outcome}${m.outcome.message ? `: ${m.outcome.message}` : ""}`)
          .slice(0, 80)
        : "",
      m.lastBeatAt ?? "never",
    ]),
  ) + (r.nextAfter ? `\n(more: --after ${r.nextAfter})` : "");
}
