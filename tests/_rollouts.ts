/**
 * Shared fixtures of the phased-rollout tests (issue 20): a fleet written straight into the tables
 * (tests/_site.ts) with app/pkg 1 and 2 published and 1 assigned to all (its sites, tags,
 * components and assignments changed by a {@link FleetShape}), metric-gated rollouts of several
 * packages, plan bodies for app/pkg 2, reports stored as the beat route stores them, deliveries,
 * catalog listings and outcomes, members by phase, the catalog engine's answer, one daemon pass a
 * minute later, and refusals.
 *
 * @module
 */
import assert from "node:assert/strict";
import { sampleBeat, type TestNoc, testNoc } from "./_harness.ts";
import { type ScenarioAssignment, type ScenarioComponent, seedScenario } from "./_site.ts";
import type { Db, Sql } from "../noc/db/db.ts";
import { ApiError } from "../protocol/http/errors.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import { resolveCatalog, type TargetType } from "../noc/services/catalog_engine.ts";
import { createRollout } from "../noc/services/phased_rollouts.ts";
import type { CreateRolloutInput, PhaseInput } from "../protocol/rollout_plan.ts";

/** A phase's metric gate as a plan writes it. */
type MetricGateInput = NonNullable<NonNullable<PhaseInput["gates"]>["metric"]>;

/** app/`name` at `version`. */
export const named = (name: string, version: string) => ({
  kind: "package" as const,
  app: "app",
  name,
  version,
});
/** app/pkg at `version`. */
export const ref = (version: string) => named("pkg", version);
/** When the fleet's assignment of version 1 was made. */
export const started = new Date("2026-01-01T00:00:00Z");

/** An assignment of `component` to `targetType`/`targetValue` at 100 %, unpaused, made `started`. */
export function assigned(
  component: ScenarioComponent,
  targetType: TargetType = "all",
  targetValue: string | null = null,
): ScenarioAssignment {
  return {
    ...component,
    targetType,
    targetValue,
    rolloutPercent: 100,
    paused: false,
    createdAt: started,
  };
}

/** What a fleet is other than its size; every field has a default. */
export interface FleetShape {
  /** Appliance `i`'s site (default s0 and s1 alternately). */
  site?: (i: number) => string;
  /** Every appliance's tags (default none). */
  tags?: string[];
  /** The components published (default app/pkg 1 and 2, and app other/o 1). */
  components?: ScenarioComponent[];
  /** The assignments (default app/pkg 1 to all). */
  assignments?: ScenarioAssignment[];
}

/** Seeds `n` vs-2000 stable appliances shaped by `shape`; their UIDs. */
export async function seedFleet(sql: Sql, n: number, shape: FleetShape = {}): Promise<string[]> {
  const appliances = Array.from({ length: n }, (_, i) => ({
    uid: crypto.randomUUID(),
    model: "vs-2000",
    channel: "stable",
    site: shape.site?.(i) ?? `s${i % 2}`,
    tags: shape.tags ?? [],
    revoked: false,
  }));
  await seedScenario(sql, {
    appliances,
    components: shape.components ??
      [ref("1"), ref("2"), { kind: "package", app: "other", name: "o", version: "1" }],
    assignments: shape.assignments ?? [assigned(ref("1"))],
    deliveries: [],
    holds: [],
  });
  return appliances.map((a) => a.uid);
}

/**
 * A NOC and `n` appliances (sites s0/s1 alternately), app/pkg 1 and 2 published, 1 assigned to
 * all, then `extra`; `shape` changes any of that.
 */
export async function fleet(
  db: Db,
  n: number,
  extra: ScenarioAssignment[] = [],
  shape: FleetShape = {},
): Promise<{ noc: TestNoc; uids: string[] }> {
  const noc = await testNoc(db);
  const uids = await seedFleet(db.sql, n, {
    ...shape,
    assignments: [...(shape.assignments ?? [assigned(ref("1"))]), ...extra],
  });
  return { noc, uids };
}

/**
 * `n` appliances and `k` rollouts of version 2 of app/pkg0..pkg{k-1} (1 assigned to all), each a
 * 10-appliance canary soaking an hour with `metric` as its gate, then 100 %.
 */
export async function gatedRollouts(noc: TestNoc, n: number, k: number, metric: MetricGateInput) {
  const names = Array.from({ length: k }, (_, i) => `pkg${i}`);
  const uids = await seedFleet(noc.deps.db.sql, n, {
    components: names.flatMap((name) => [named(name, "1"), named(name, "2")]),
    assignments: names.map((name) => assigned(named(name, "1"))),
  });
  const ids: number[] = [];
  for (const name of names) {
    const r = await createRollout(noc.deps, {
      component: named(name, "2"),
      target: { type: "all" },
      phases: [{ count: 10, soakS: 3600, gates: { metric } }, { percent: 100, soakS: 0 }],
    }, "alice");
    ids.push(r.id);
  }
  return { uids, ids };
}

/** A plan body for app/pkg 2 to every appliance. */
export function plan(
  phases: PhaseInput[],
  extra: Partial<CreateRolloutInput> = {},
): CreateRolloutInput {
  return { component: ref("2"), target: { type: "all" }, phases, ...extra };
}

/** `uids` report (as their latest beat, now) running app/pkg `version`, with `apps` data. */
export async function report(
  noc: TestNoc,
  uids: readonly string[],
  version: string | null,
  apps: Record<string, Record<string, unknown>> = {},
): Promise<void> {
  if (uids.length === 0) return;
  const now = noc.clock.now();
  const beat = sampleBeat(1, now, {
    components: version === null ? [] : [ref(version)],
    apps,
  });
  await noc.deps.db.sql`
    update appliances set last_report = ${beat}, last_beat_at = ${now}
    where uid = any(${[...uids]}::uuid[])`;
}

/** The release (app/pkg `version`) was sent to `uids` now. */
export async function deliver(
  noc: TestNoc,
  uids: readonly string[],
  version: string,
): Promise<void> {
  const now = noc.clock.now();
  await noc.deps.db.sql`
    insert into deliveries (uid, component_id, first_sent_at, last_sent_at)
    select u, c.id, ${now}, ${now} from unnest(${[...uids]}::uuid[]) u
    join components c on c.kind = 'package' and c.app = 'app' and c.name = 'pkg'
      and c.version = ${version}
    on conflict do nothing`;
}

/** The catalogs of `uids` list app/pkg `version` from now on. */
export async function listed(
  noc: TestNoc,
  uids: readonly string[],
  version: string,
): Promise<void> {
  await noc.deps.db.sql`
    insert into catalog_listings (uid, component_id, first_listed_at, current)
    select u, c.id, ${noc.clock.now()}, true from unnest(${[...uids]}::uuid[]) u
    join components c on c.kind = 'package' and c.app = 'app' and c.name = 'pkg'
      and c.version = ${version}`;
}

/** `uids` report an install outcome for app/pkg `version` now. */
export async function outcome(
  noc: TestNoc,
  uids: readonly string[],
  version: string,
  result: "installed" | "failed",
): Promise<void> {
  await noc.deps.db.sql`
    insert into install_outcomes (uid, kind, app, name, version, outcome, message, reported_at)
    select u, 'package', 'app', 'pkg', ${version}, ${result}, 'install exited 1', ${noc.clock.now()}
    from unnest(${[...uids]}::uuid[]) u`;
}

/** The members of rollout `id`, by phase (UIDs sorted). */
export async function membersByPhase(noc: TestNoc, id: number): Promise<string[][]> {
  const rows = await noc.deps.db.sql<{ uid: string; phase: number }>`
    select uid, phase from rollout_members where rollout_id = ${id} order by uid`;
  const out: string[][] = [];
  for (const r of rows) (out[r.phase] ??= []).push(r.uid);
  return out;
}

/** The version of app/pkg the catalog engine gives `uid` now (null: none). */
export async function catalogVersion(noc: TestNoc, uid: string): Promise<string | null> {
  const [a] = await noc.deps.db.sql<
    { uid: string; model: string; site: string | null; channel: string; tags: string[] }
  >`select uid, model, site, channel, tags from appliances where uid = ${uid}`;
  const chosen = await resolveCatalog(noc.deps.db.sql, a!);
  return chosen.find((c) => c.app === "app" && c.name === "pkg")?.version ?? null;
}

/** One daemon pass a minute later. */
export async function pass(noc: TestNoc) {
  noc.clock.advance(60);
  return await rolloutPass(noc.deps);
}

/** The `rollout_failed` notices, oldest first. */
export async function notices(noc: TestNoc): Promise<Array<{ kind: string; text: string }>> {
  return await noc.deps.db.sql<{ kind: string; text: string }>`
    select kind, text from notices where kind = 'rollout_failed' order by id`;
}

/** Asserts `p` rejects with an ApiError of `status` and `code`. */
export async function refused(
  p: Promise<unknown>,
  status: number,
  code: string,
): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ApiError, String(e));
    assert.equal(e.status, status, e.message);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${status} ${code}`);
}
