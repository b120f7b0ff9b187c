/**
 * The SecureBeat's shape and size (issue 21): the agent fits its report to the
 * NOC's limits before sending it, and after a refusal of size or shape (400,
 * 413) sends the smallest valid beat. Whatever it leaves out is named in the
 * beat's `dropped` (docs/agent.md, "When the report outgrows the NOC's
 * limits").
 *
 * Also the two fields that say which device beats: `instanceId`, drawn once per
 * agent process (never kept in the state folder, so a copied folder does not
 * copy it), and `hostname`.
 *
 * @module
 */
import { DEFAULT_REPORT_LIMITS, type ReportLimits } from "../protocol/catalog.ts";
import {
  badJson,
  BEAT_MAX_COMPONENTS,
  BEAT_MAX_DROPPED,
  hostnameSchema,
  nameSchema,
} from "../protocol/schemas.ts";
import type { Health } from "./health.ts";

/**
 * This agent process's instance id: a random UUID drawn when the process starts (the module is
 * loaded once per process), sent in every beat. Two devices running one identity (a copied state
 * folder, a cloned VM) beat with two of them, which the NOC notices.
 */
export const INSTANCE_ID: string = crypto.randomUUID();

/** The most applications a beat's `apps` may hold (the NOC's schema). */
export const BEAT_MAX_APPS = 64;

/** One component as a beat lists it. */
export interface BeatComponent {
  kind: "package" | "file";
  app: string;
  name: string;
  version: string;
}

/** One problem as a beat's `lastCycle` carries it. */
export interface BeatProblem {
  code: string;
  message: string;
  kind?: "package" | "file" | "catalog" | "plugin";
  app?: string;
  name?: string;
  version?: string;
}

/** A beat's `lastCycle`. */
export interface BeatCycle {
  outcome: "none" | "ok" | "partial" | "failed";
  startedAt?: string;
  finishedAt?: string;
  message?: string;
  problems?: BeatProblem[];
}

/** `POST /v1/beats`, as the agent builds it. */
export interface BeatBody {
  seq: number;
  sentAt: string;
  agentVersion: string;
  instanceId?: string;
  hostname?: string;
  dropped?: string[];
  health: Health;
  components: BeatComponent[];
  lastCycle: BeatCycle;
  apps: Record<string, Record<string, unknown>>;
}

/** A host name the beat may carry, or undefined (one the NOC's schema would refuse is left out). */
export function beatHostname(hostname: string | undefined): string | undefined {
  return hostname !== undefined && hostnameSchema.safeParse(hostname).success
    ? hostname
    : undefined;
}

/**
 * The limits a report is fitted to: the signed catalog's (sane ones only), else
 * {@link DEFAULT_REPORT_LIMITS}. Never more components than the protocol allows.
 */
export function reportLimits(limits: Partial<ReportLimits> | undefined | null): ReportLimits {
  const ok = (n: unknown, min: number): n is number =>
    typeof n === "number" && Number.isSafeInteger(n) && n >= min;
  const l = limits ?? {};
  return {
    bodyBytes: ok(l.bodyBytes, 1024) ? l.bodyBytes : DEFAULT_REPORT_LIMITS.bodyBytes,
    appDataBytes: ok(l.appDataBytes, 1) ? l.appDataBytes : DEFAULT_REPORT_LIMITS.appDataBytes,
    components: Math.min(
      BEAT_MAX_COMPONENTS,
      ok(l.components, 1) ? l.components : DEFAULT_REPORT_LIMITS.components,
    ),
  };
}

const encoder = new TextEncoder();

/** Bytes of `value`'s JSON (what the request body holds). */
export function jsonBytes(value: unknown): number {
  return encoder.encode(JSON.stringify(value)).length;
}

const count = (n: number) => n.toLocaleString("en-US");

/** The `dropped` line for a component list cut short. */
export function componentsDropped(installed: number, listed: number): string {
  return `components: ${count(installed)} installed, ${count(listed)} listed`;
}

/** The `dropped` line for a last cycle's problems cut short: how many there were, how many went. */
export function problemsDropped(reported: number, sent: number): string {
  return `lastCycle.problems: ${count(reported)} reported, ${
    sent === 0 ? "none" : count(sent)
  } kept`;
}

/**
 * `dropped` with a line saying that `kept` of the `listed` problems a beat carried are kept,
 * counting what the cycle reported: the count of an earlier line (the cycle had more than a beat
 * lists), else `listed`.
 */
export function recountProblems(dropped: string[], listed: number, kept: number): string[] {
  const said = Math.max(
    0,
    ...dropped.map((d) =>
      Number(/^lastCycle\.problems: ([\d,]+) reported/.exec(d)?.[1]?.replaceAll(",", "") ?? 0)
    ),
  );
  return [...dropped, problemsDropped(Math.max(said, listed), kept)];
}

/** Lines kept first when `dropped` must be capped: what says how much of the report is missing. */
const counted = (l: string) =>
  l.startsWith("lastCycle") || l.startsWith("components: ") || l.startsWith("the NOC refused");

/**
 * At most {@link BEAT_MAX_DROPPED} lines of at most 200 characters; the last says how many more.
 * When lines must go, the first line and those counting the problems and components left out
 * are kept before the others (the order otherwise kept).
 */
export function cappedDropped(lines: readonly string[]): string[] {
  const cut = lines.map((l) => cutText(l, 200));
  if (cut.length <= BEAT_MAX_DROPPED) return cut;
  const room = BEAT_MAX_DROPPED - 1;
  const first = new Set<number>();
  cut.forEach((l, i) => {
    if ((i === 0 || counted(l)) && first.size < room) first.add(i);
  });
  for (let i = 0; i < cut.length && first.size < room; i++) first.add(i);
  const kept = cut.filter((_, i) => first.has(i));
  return [...kept, `and ${count(cut.length - kept.length)} more`];
}

/** An application's name as a `dropped` line shows it (escaped when the protocol would refuse it). */
function appLabel(app: string): string {
  return nameSchema.safeParse(app).success ? app : JSON.stringify(app).slice(0, 80);
}

/**
 * Why the NOC would refuse application data `data` for its shape (not its size), as a `dropped`
 * line says it, or null: the same rule as the NOC's (protocol/schemas.ts `badJson`, the depth it
 * uses for apps), an application name or top-level key it refuses, data that is not an object.
 */
export function badAppData(app: string, data: unknown): string | null {
  if (!nameSchema.safeParse(app).success) return "name refused by the NOC";
  if (data === null || typeof data !== "object" || Array.isArray(data)) return "not an object";
  for (const k of Object.keys(data)) {
    if (k.length > 128) return "a key longer than 128 characters";
  }
  const bad = badJson(data);
  if (bad === null) return null;
  if (bad.startsWith("keys ")) return "a key contains NUL or unpaired surrogates";
  if (bad.includes("NUL")) {
    return hasNul(data) ? "contains NUL" : "contains unpaired surrogates";
  }
  return bad.replace(/^must not nest/, "nests");
}

/** True when some string in `v` (key or value) holds a NUL character. */
function hasNul(v: unknown): boolean {
  const stack: unknown[] = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x === "string") {
      if (x.includes("\u0000")) return true;
    } else if (x !== null && typeof x === "object") {
      for (const [k, c] of Object.entries(x)) {
        if (k.includes("\u0000")) return true;
        stack.push(c);
      }
    }
  }
  return false;
}

function withDropped(beat: BeatBody, dropped: readonly string[]): BeatBody {
  const { dropped: _, ...rest } = beat;
  return dropped.length === 0 ? rest : { ...rest, dropped: cappedDropped(dropped) };
}

/** The most components of `beat` that fit `bodyBytes` along with the rest (0 when none do). */
function componentsThatFit(beat: BeatBody, dropped: readonly string[], bodyBytes: number): number {
  const total = beat.components.length;
  const size = (n: number) =>
    jsonBytes(withDropped({ ...beat, components: beat.components.slice(0, n) }, [
      ...dropped,
      componentsDropped(total, n),
    ]));
  let lo = 0;
  let hi = total;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (size(mid) <= bodyBytes) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * `text` cut to at most `max` UTF-16 units, still well-formed: a surrogate pair split by the cut
 * becomes U+FFFD, which the NOC accepts (an unpaired surrogate it refuses, with the whole beat).
 */
export function cutText(text: string, max: number): string {
  return text.slice(0, max).toWellFormed();
}

/**
 * Fits `beat` to `limits`, in this order, naming each cut in `dropped`:
 *
 * 0. an application whose data the NOC would refuse for its shape — a NUL or an unpaired surrogate
 *    in a key or string, nesting deeper than the NOC allows (the NOC's own `badJson` rule) — is
 *    dropped alone (`apps.<name> (contains NUL)`), so that one plug-in cannot make the NOC refuse
 *    the whole beat;
 * 1. components past `limits.components` (`components: N installed, M listed`);
 * 2. an application's data over `limits.appDataBytes` (`apps.<name> (N bytes, over M)`), and
 *    applications past the 64th (by name);
 * 3. while the JSON body is over `limits.bodyBytes`: the largest application's data, one by one;
 * 4. then the last cycle's problem messages (cut to 200 characters), its message, all problems
 *    but the first 10;
 * 5. then components from the end of the list;
 * 6. last, those 10 problems: the reasons go after everything else.
 *
 * The result fits the NOC's size limits (its JSON is at most `limits.bodyBytes` unless even the
 * bare beat is larger). Should the NOC still refuse it (400, 413), the agent sends
 * {@link smallestBeat}. Whenever problems are cut, a line says how many there were and how many
 * were sent (`lastCycle.problems: 21 reported, 10 kept`).
 */
export function fitBeat(
  input: BeatBody,
  limits: ReportLimits,
): { beat: BeatBody; dropped: string[] } {
  const dropped = [...input.dropped ?? []];
  let beat: BeatBody = { ...input, apps: { ...input.apps } };
  delete beat.dropped;

  for (const [app, data] of Object.entries(beat.apps)) {
    const bad = badAppData(app, data);
    if (bad !== null) {
      delete beat.apps[app];
      dropped.push(`apps.${appLabel(app)} (${bad})`);
    }
  }

  const installed = beat.components.length;
  if (installed > limits.components) {
    beat.components = beat.components.slice(0, limits.components);
    dropped.push(componentsDropped(installed, limits.components));
  }

  const sizes = new Map<string, number>();
  for (const [app, data] of Object.entries(beat.apps)) {
    const bytes = jsonBytes(data);
    if (bytes > limits.appDataBytes) {
      delete beat.apps[app];
      dropped.push(`apps.${app} (${count(bytes)} bytes, over ${count(limits.appDataBytes)})`);
    } else {
      sizes.set(app, bytes);
    }
  }
  const names = [...sizes.keys()].sort();
  for (const app of names.slice(BEAT_MAX_APPS)) {
    delete beat.apps[app];
    sizes.delete(app);
    dropped.push(`apps.${app} (${count(jsonBytes(input.apps[app]))} bytes; over 64 applications)`);
  }

  const fits = () => jsonBytes(withDropped(beat, dropped)) <= limits.bodyBytes;
  // Largest first; equal sizes by name, so the same input always drops the same applications.
  const bySize = [...sizes.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  for (const [app, bytes] of bySize) {
    if (fits()) break;
    delete beat.apps[app];
    dropped.push(`apps.${app} (${count(bytes)} bytes)`);
  }

  const problems = beat.lastCycle.problems ?? [];
  if (!fits() && problems.some((p) => p.message.length > 200)) {
    beat = {
      ...beat,
      lastCycle: {
        ...beat.lastCycle,
        problems: problems.map((p) => ({ ...p, message: cutText(p.message, 200) })),
      },
    };
    dropped.push("lastCycle.problems: messages cut to 200 characters");
  }
  if (!fits() && beat.lastCycle.message !== undefined) {
    const { message: _, ...rest } = beat.lastCycle;
    beat = { ...beat, lastCycle: rest };
    dropped.push("lastCycle.message");
  }
  if (!fits() && problems.length > 10) {
    beat = {
      ...beat,
      lastCycle: { ...beat.lastCycle, problems: beat.lastCycle.problems!.slice(0, 10) },
    };
    dropped.splice(0, dropped.length, ...recountProblems(dropped, problems.length, 10));
  }
  // The first 10 reasons go before components: whatever goes wrong, the beat says why.
  if (!fits() && beat.components.length > 0) {
    const without = dropped.filter((d) => !d.startsWith("components: "));
    const n = componentsThatFit(beat, without, limits.bodyBytes);
    beat = { ...beat, components: beat.components.slice(0, n) };
    dropped.splice(0, dropped.length, ...without, componentsDropped(installed, n));
  }
  if (!fits() && problems.length > 0) {
    const { problems: _, ...rest } = beat.lastCycle;
    beat = { ...beat, lastCycle: rest };
    dropped.splice(0, dropped.length, ...recountProblems(dropped, problems.length, 0));
  }
  const capped = cappedDropped(dropped);
  return { beat: withDropped(beat, capped), dropped: capped };
}

/**
 * The steps of {@link smallestBeat}, smallest last: `reasons` keeps the last cycle's outcome, times
 * and first 10 problems (messages cut to 200 characters) so the reason still reaches the NOC;
 * `outcome` keeps its outcome alone; `bare` lists no components either.
 */
export const SMALLEST_STEPS = ["reasons", "outcome", "bare"] as const;

/**
 * A small valid beat after a refusal of size or shape (400, 413): no application data, and the
 * last cycle cut down as `step` says. `dropped` names everything left out, and why, first.
 */
export function smallestBeat(
  fitted: BeatBody,
  why: string,
  options: { step: (typeof SMALLEST_STEPS)[number]; installed: number },
): BeatBody {
  let dropped = [why, ...fitted.dropped ?? []];
  const apps = Object.keys(fitted.apps);
  if (apps.length > 0) {
    dropped.push(cutText(`apps: all ${count(apps.length)} (${apps.join(", ")})`, 200));
  }
  const c = fitted.lastCycle;
  const problems = c.problems ?? [];
  let lastCycle: BeatCycle;
  if (options.step === "reasons") {
    lastCycle = {
      outcome: c.outcome,
      ...(c.startedAt ? { startedAt: c.startedAt } : {}),
      ...(c.finishedAt ? { finishedAt: c.finishedAt } : {}),
      ...(c.message !== undefined ? { message: cutText(c.message, 200) } : {}),
      ...(problems.length > 0
        ? {
          problems: problems.slice(0, 10).map((p) => ({ ...p, message: cutText(p.message, 200) })),
        }
        : {}),
    };
    if (problems.length > 10) dropped = recountProblems(dropped, problems.length, 10);
    if (
      problems.some((p) => p.message.length > 200) ||
      (c.message !== undefined && c.message.length > 200)
    ) {
      dropped.push("lastCycle: messages cut to 200 characters");
    }
  } else {
    lastCycle = { outcome: c.outcome };
    if (c.message !== undefined || problems.length > 0 || c.startedAt || c.finishedAt) {
      dropped.push(`lastCycle: all but its outcome (${count(problems.length)} problems)`);
    }
  }
  let components = fitted.components;
  if (options.step === "bare" && components.length > 0) {
    const without = dropped.filter((d) => !d.startsWith("components: "));
    dropped.splice(0, dropped.length, ...without, componentsDropped(options.installed, 0));
    components = [];
  }
  return { ...fitted, apps: {}, components, lastCycle, dropped: cappedDropped(dropped) };
}
