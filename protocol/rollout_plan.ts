/**
 * Phased rollouts (issue 20): the plan an operator gives — phases, each with its size, soak time,
 * advance and stop conditions and gates on reported health — and the bodies and queries of the
 * admin API around it (`/v1/admin/rollouts`). Shared by the NOC (noc/services/phased_rollouts.ts,
 * noc/services/rollout_gates.ts), its admin API and the CLI.
 *
 * A phase's size is a `percent` of the target (0 < x ≤ 100) or a `count` of appliances (exactly
 * one of the two). Sizes never shrink: the NOC takes each phase's limit as the larger of the
 * previous one and what the new size asks for, and a plan whose percentages (or counts) go down
 * is refused. Defaults are filled in by parsing: the stored plan is explicit.
 *
 * @module
 */
import { z } from "zod";
import { componentQuery, nameSchema, targetSchema, text } from "./schemas.ts";

/** Most phases a rollout has. */
export const maxPhases = 10;
/** Longest soak time of a phase, seconds (30 days). */
export const maxSoakS = 30 * 86400;
/** Most appliances in a rollout's control sample. */
export const maxControl = 1000;

/** The states of a rollout. */
export const rolloutStateNames = ["running", "paused", "failed", "cancelled", "completed"] as const;
/** A rollout's state: `running`, `paused`, `failed`, `cancelled` or `completed`. */
export type RolloutStateName = (typeof rolloutStateNames)[number];

/** The kinds of rollout events, in the order they usually happen. */
export const rolloutEventKinds = [
  "created",
  "phase_started",
  "advanced",
  "paused",
  "resumed",
  "cancelled",
  "failed",
  "rolled_back",
  "completed",
] as const;
/** The kind of a rollout event. */
export type RolloutEventKind = (typeof rolloutEventKinds)[number];

const percent = (what: string) =>
  z.number({ message: `${what} must be a number` }).min(0, { message: `${what} must be ≥ 0` })
    .max(100, { message: `${what} must be ≤ 100` });

/**
 * A metric's path into application data: the application, then one or more keys, separated by
 * dots (`vscreen.mailsScanned`, `vscreen.queue.depth`). The first segment names the application
 * (an application whose name holds a dot cannot be addressed); each segment is 1–128 letters,
 * digits, `_` or `-`; 2–9 segments.
 */
export const metricPathSchema = z.string().max(400).regex(
  /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}(\.[A-Za-z0-9_-]{1,128}){1,8}$/,
  {
    message:
      "must be the application then 1-8 keys separated by dots (e.g. vscreen.mailsScanned), " +
      "each of letters, digits, '_' or '-'",
  },
);

/** The segments of a metric path: `[app, key, …]`. */
export function metricPathParts(path: string): string[] {
  return path.split(".");
}

/** A phase's gate on a metric from application data, against the control group. */
export const metricGateSchema = z.strictObject({
  /** Where the number is in the application data: `app.key[.key…]`. */
  path: metricPathSchema,
  /** Fails when the phase's statistic is more than this many percent below control's. */
  maxDropPercent: percent("maxDropPercent").optional(),
  /** Fails when the phase's statistic is more than this many percent above control's. */
  maxRisePercent: z.number().min(0).max(100000).optional(),
  /** Judged only when both groups have at least this many appliances with enough beats. */
  minAppliances: z.number().int().min(1).max(100000).default(5),
  /** An appliance counts when it sent at least this many beats with the metric since phase start. */
  minBeats: z.number().int().min(1).max(10000).default(3),
}).refine((g) => g.maxDropPercent !== undefined || g.maxRisePercent !== undefined, {
  message: "give maxDropPercent, maxRisePercent or both",
});

/** A phase's gates on reported health (each optional). */
export const gatesSchema = z.strictObject({
  /** Fails when more than this share of the phase's appliances report the app unhealthy. */
  pluginHealth: z.strictObject({ maxUnhealthyPercent: percent("maxUnhealthyPercent") })
    .optional(),
  /** A metric compared with the control group (median of per-appliance medians). */
  metric: metricGateSchema.optional(),
  /**
   * Fails when the phase's share of appliances with a missed-heartbeat alert since phase start
   * exceeds control's by more than this many percentage points.
   */
  beatRegularity: z.strictObject({ maxExtraMissedPercent: percent("maxExtraMissedPercent") })
    .optional(),
});

/** One phase of a rollout plan. */
export const phaseSchema = z.strictObject({
  /** Share of the target, 0 < x ≤ 100 (not with `count`). */
  percent: z.number().gt(0, { message: "percent must be > 0" }).max(100, {
    message: "percent must be ≤ 100",
  }).optional(),
  /** Number of appliances, ≥ 1 (not with `percent`). */
  count: z.number().int().min(1).max(10_000_000).optional(),
  /** Seconds the advance condition must hold before the phase advances by itself (≤ 30 days). */
  soakS: z.number().int().min(0).max(maxSoakS, { message: "soakS must be at most 30 days" }),
  /** The success condition: at least this share of the phase's appliances run it, healthy. */
  advance: z.strictObject({ minHealthyPercent: percent("minHealthyPercent").default(95) })
    .default({ minHealthyPercent: 95 }),
  /**
   * The error condition: failed share of those counted, once at least `minSample` are (in a phase
   * of fewer members, once all of them are). `minSample` is the gates' minimum sample too.
   */
  stop: z.strictObject({
    maxFailedPercent: percent("maxFailedPercent").default(20),
    minSample: z.number().int().min(1).max(100000).default(5),
  }).default({ maxFailedPercent: 20, minSample: 5 }),
  /** Gates on reported health. */
  gates: gatesSchema.default({}),
  /** Whether the phase advances by itself after its soak time (false: by hand only). */
  auto: z.boolean().default(true),
}).superRefine((p, ctx) => {
  if ((p.percent === undefined) === (p.count === undefined)) {
    ctx.addIssue({ code: "custom", message: "give exactly one of percent or count" });
  }
  if (p.percent === 100 && p.gates.metric) {
    ctx.addIssue({
      code: "custom",
      path: ["gates", "metric"],
      message: "a 100 % phase has no control group to compare a metric with",
    });
  }
});

/** A phase as given (defaults not yet filled in). */
export type PhaseInput = z.input<typeof phaseSchema>;
/** A phase as stored and read: every default filled in. */
export type Phase = z.output<typeof phaseSchema>;
/** A phase's gates, defaults filled in. */
export type Gates = z.output<typeof gatesSchema>;
/** A metric gate, defaults filled in. */
export type MetricGate = z.output<typeof metricGateSchema>;

/** The phases of a plan: 1–10, percentages and counts that never go down. */
export const phasesSchema = z.array(phaseSchema).min(1, { message: "give at least one phase" })
  .max(maxPhases, { message: `at most ${maxPhases} phases` })
  .superRefine((phases, ctx) => {
    for (let i = 1; i < phases.length; i++) {
      const a = phases[i - 1]!, b = phases[i]!;
      if (a.percent !== undefined && b.percent !== undefined && b.percent < a.percent) {
        ctx.addIssue({
          code: "custom",
          path: [i, "percent"],
          message: `phase ${i + 1} is smaller than phase ${i} (${b.percent} % < ${a.percent} %)`,
        });
      }
      if (a.count !== undefined && b.count !== undefined && b.count < a.count) {
        ctx.addIssue({
          code: "custom",
          path: [i, "count"],
          message: `phase ${i + 1} is smaller than phase ${i} (${b.count} < ${a.count})`,
        });
      }
      if (a.percent === 100) {
        ctx.addIssue({
          code: "custom",
          path: [i],
          message: `phase ${i} takes 100 % already: no phase can follow it`,
        });
      }
    }
  });

/** A version string, as published. */
export const versionSchema = componentQuery.shape.version;

/** The release a rollout takes: a published package or file version. */
export const rolloutComponentSchema = z.strictObject({
  kind: z.enum(["package", "file"]),
  app: nameSchema,
  name: nameSchema,
  version: versionSchema,
});

/** `POST /v1/admin/rollouts`: a new phased rollout (it starts its first phase at once). */
export const createRolloutSchema = z.strictObject({
  /** The release. */
  component: rolloutComponentSchema,
  /** The target, as assignments take it (`{ type: "all" }`, `{ type: "site", value }`, …). */
  target: targetSchema,
  /** The phases, in order. */
  phases: phasesSchema,
  /** On failure, send the failed phase's appliances back to the previous version. */
  rollback: z.boolean().default(false),
  /**
   * What the target runs now (default: the version of the assignment the target's appliances
   * fall back to, if any); must be published.
   */
  previousVersion: versionSchema.optional(),
  /** A note kept with the `created` event. */
  note: text(500).optional(),
});
/** The body of `POST /v1/admin/rollouts`, as given. */
export type CreateRolloutInput = z.input<typeof createRolloutSchema>;
/** The body of `POST /v1/admin/rollouts`, parsed (defaults filled in). */
export type CreateRollout = z.output<typeof createRolloutSchema>;

/** `POST /v1/admin/rollouts/:id/pause|resume|cancel|advance`: an optional note. */
export const rolloutActionSchema = z.strictObject({
  note: text(500).optional(),
});

/** `GET /v1/admin/rollouts`. */
export const rolloutListQuery = z.strictObject({
  /** Only rollouts in these states (one, or several separated by commas). */
  state: z.string().max(100).refine(
    (v) => v.split(",").every((s) => (rolloutStateNames as readonly string[]).includes(s)),
    { message: `must be one or more of ${rolloutStateNames.join(", ")}, separated by commas` },
  ).optional(),
  /** The `nextCursor` of the previous page. */
  cursor: z.string().regex(/^[0-9]{1,18}$/, { message: "must be a cursor from a previous page" })
    .optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

/** Where a rollout member stands: the install states of noc/services/rollouts.ts, or `not_sent`. */
export const memberStateNames = [
  "running",
  "unconfirmed",
  "pending",
  "failed",
  "reverted",
  "other",
  "missing",
  "superseded",
  "not_sent",
] as const;
/** A member's state (see {@link memberStateNames}). */
export type MemberStateName = (typeof memberStateNames)[number];

/** `GET /v1/admin/rollouts/:id/appliances`. */
export const rolloutMembersQuery = z.strictObject({
  /** Only the appliances of this phase (0-based); absent: every phase. */
  phase: z.coerce.number().int().min(0).max(maxPhases - 1).optional(),
  /** Only appliances in these states (one, or several separated by commas). */
  state: z.string().max(200).refine(
    (v) => v.split(",").every((s) => (memberStateNames as readonly string[]).includes(s)),
    { message: `must be one or more of ${memberStateNames.join(", ")}, separated by commas` },
  ).optional(),
  /** The last UID of the previous page. */
  after: z.uuid({ message: "must be a UUID (the last uid of the previous page)" }).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
