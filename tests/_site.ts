/**
 * Sites for the catalog engine's set-based tests and bench: a scenario
 * (appliances, component versions, assignments at every target type with
 * rollouts and pauses, delivery records, holds, revoked appliances) written
 * straight into the tables in one statement per table, a deterministic
 * generator of large sites.
 *
 * @module
 */
import type { Sql } from "../noc/db/db.ts";
import type { TargetType } from "../noc/services/catalog_engine.ts";

/** An appliance of a scenario. */
export interface ScenarioAppliance {
  uid: string;
  model: string;
  channel: string;
  site: string | null;
  tags: string[];
  /** Revoked appliances stay in the table but get no catalog. */
  revoked: boolean;
}

/** A component version, by its natural key. */
export interface ScenarioComponent {
  kind: "package" | "file";
  app: string;
  name: string;
  version: string;
}

/** A release assignment of a scenario. */
export interface ScenarioAssignment extends ScenarioComponent {
  targetType: TargetType;
  /** Null for `all`. */
  targetValue: string | null;
  rolloutPercent: number;
  paused: boolean;
  createdAt: Date;
}

/** A delivery record: `uid` was last sent this component version at `lastSentAt`. */
export interface ScenarioDelivery extends ScenarioComponent {
  uid: string;
  lastSentAt: Date;
}

/** A hold of `uid` on one application, or on everything when `app` is null. */
export interface ScenarioHold {
  uid: string;
  app: string | null;
}

/** Everything the catalog engine reads, as rows to insert. */
export interface Scenario {
  appliances: ScenarioAppliance[];
  components: ScenarioComponent[];
  assignments: ScenarioAssignment[];
  deliveries: ScenarioDelivery[];
  holds: ScenarioHold[];
}

/**
 * Inserts `s` (one statement per table; components already present are kept,
 * duplicate deliveries and holds are dropped). Deliveries and assignments
 * must name components of `s.components` or already stored.
 */
export async function seedScenario(sql: Sql, s: Scenario): Promise<void> {
  const at = new Date("2026-01-01T00:00:00Z").toISOString();
  const json = (rows: unknown[]) => JSON.stringify(rows);
  await sql`
    insert into appliances (uid, model, hostname, site, channel, tags, sign_key, enc_key, interval_s,
      enrolled_at, next_due_at, revoked_at)
    select x.uid, x.model, 'host-' || x.uid, x.site, x.channel, x.tags, 'sign-' || x.uid,
      'enc-' || x.uid, 909, ${at}::timestamptz, ${at}::timestamptz,
      case when x.revoked then ${at}::timestamptz end
    from jsonb_to_recordset(${json(s.appliances)}::text::jsonb)
      as x (uid uuid, model text, site text, channel text, tags text[], revoked boolean)`;
  await sql`
    with blob as (
      insert into blobs (chunk_size, size, sha256, created_at, complete)
      values (65536, 0, 'none', ${at}::timestamptz, true) returning id
    )
    insert into components (kind, app, name, version, blob_id, size, sha256, content_sha256, header,
      signer_kid, sealed_key, created_at)
    select x.kind, x.app, x.name, x.version, (select id from blob),
      length(x.app || x.name || x.version) * 1000, md5(x.kind || x.app || x.name || x.version),
      md5(x.app || x.name || x.version),
      case when x.kind = 'package' then jsonb_build_object('ciphertextSha256', md5(x.name || x.version)) end,
      case when x.kind = 'package' then 'kid-1' end,
      case when x.kind = 'package' then 'sealed-' || x.app || '-' || x.name || '-' || x.version end,
      ${at}::timestamptz
    from jsonb_to_recordset(${json(s.components)}::text::jsonb)
      as x (kind text, app text, name text, version text)
    on conflict (kind, app, name, version) do nothing`;
  await sql`
    insert into assignments (kind, app, name, version, target_type, target_value, rollout_percent,
      paused, created_at, updated_at)
    select x.kind, x.app, x.name, x.version, x."targetType", x."targetValue", x."rolloutPercent",
      x.paused, x."createdAt", x."createdAt"
    from jsonb_to_recordset(${json(s.assignments)}::text::jsonb)
      as x (kind text, app text, name text, version text, "targetType" text, "targetValue" text,
        "rolloutPercent" integer, paused boolean, "createdAt" timestamptz)
    order by x."createdAt"`;
  await sql`
    insert into deliveries (uid, component_id, first_sent_at, last_sent_at)
    select x.uid, c.id, x."lastSentAt", x."lastSentAt"
    from jsonb_to_recordset(${json(s.deliveries)}::text::jsonb)
      as x (uid uuid, kind text, app text, name text, version text, "lastSentAt" timestamptz)
    join components c on c.kind = x.kind and c.app = x.app and c.name = x.name and c.version = x.version
    on conflict (uid, component_id) do nothing`;
  await sql`
    insert into holds (uid, app, reason, created_at)
    select x.uid, x.app, 'test', ${at}::timestamptz
    from jsonb_to_recordset(${json(s.holds)}::text::jsonb) as x (uid uuid, app text)
    on conflict do nothing`;
}

/** Empties the tables {@link seedScenario} writes. */
export async function clearScenario(sql: Sql): Promise<void> {
  await sql`truncate holds, deliveries, assignments, wrapped_keys, components, blobs, appliances cascade`;
}

/** A deterministic pseudo-random generator (mulberry32): floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The component versions every {@link siteScenario} uses: 10 applications × 5 names × 3 versions. */
export const siteComponents: ScenarioComponent[] = Array.from(
  { length: 10 },
  (_, a) =>
    Array.from({ length: 5 }, (_, n) =>
      ["1.0.0", "1.1.0", "2.0.0"].map((version) => ({
        kind: n === 4 ? "file" as const : "package" as const,
        app: `app-${a}`,
        name: `part-${n}`,
        version,
      }))),
).flat(2);

/**
 * A site of `appliances` appliances (models m0–m4, channels stable/beta/dev,
 * 0–3 of tags t0–t9, 2% revoked) with `assignments` assignments spread over
 * every target type (the site's own appliances for `appliance` targets),
 * most at 100%, a quarter partial, one in ten paused; about three delivery
 * records per appliance, and holds on 1% of the appliances (at least one).
 * The same arguments give the same site; sites with different names can
 * share a database.
 */
export function siteScenario(
  options: { site: string; appliances: number; assignments: number; seed: number },
): Scenario {
  const rnd = seededRandom(options.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const hex = (n: number) =>
    Array.from({ length: n }, () => Math.floor(rnd() * 16).toString(16)).join("");
  const tags = Array.from({ length: 10 }, (_, i) => `t${i}`);
  const appliances: ScenarioAppliance[] = Array.from({ length: options.appliances }, () => ({
    uid: `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`,
    model: pick(["m0", "m1", "m2", "m3", "m4"]),
    channel: pick(["stable", "stable", "beta", "dev"]),
    site: options.site,
    tags: tags.filter(() => rnd() < 0.15),
    revoked: rnd() < 0.02,
  }));
  const keys = siteComponents.filter((c) => c.version === "1.0.0");
  const start = Date.parse("2026-02-01T00:00:00Z");
  const assignments: ScenarioAssignment[] = Array.from({ length: options.assignments }, (_, i) => {
    const key = keys[Math.floor(rnd() * Math.min(keys.length, 20))]!;
    const r = rnd();
    const targetType: TargetType = r < 0.1
      ? "all"
      : r < 0.3
      ? "model"
      : r < 0.4
      ? "channel"
      : r < 0.55
      ? "site"
      : r < 0.8
      ? "tag"
      : "appliance";
    const targetValue = {
      all: null,
      model: pick(["m0", "m1", "m2", "m3", "m4"]),
      channel: pick(["stable", "beta", "dev"]),
      site: options.site,
      tag: pick(tags),
      appliance: pick(appliances).uid,
    }[targetType];
    const p = rnd();
    return {
      ...key,
      version: pick(["1.0.0", "1.1.0", "2.0.0"]),
      targetType,
      targetValue,
      rolloutPercent: p < 0.65 ? 100 : p < 0.9 ? 1 + Math.floor(rnd() * 99) : 0,
      paused: rnd() < 0.1,
      createdAt: new Date(start + i * 1000),
    };
  });
  const deliveries: ScenarioDelivery[] = appliances.flatMap((a) =>
    Array.from({ length: 3 }, () => ({
      ...pick(assignments.length > 0 ? assignments : siteComponents),
      uid: a.uid,
      lastSentAt: new Date(start + Math.floor(rnd() * 100) * 60_000),
    })).map(({ kind, app, name, version, uid, lastSentAt }) => ({
      kind,
      app,
      name,
      version,
      uid,
      lastSentAt,
    }))
  );
  const holds: ScenarioHold[] = appliances
    .filter((_, i) => i === 0 || rnd() < 0.01)
    .map((a) => ({ uid: a.uid, app: rnd() < 0.5 ? null : pick(keys).app }));
  return { appliances, components: siteComponents, assignments, deliveries, holds };
}

/**
 * Records that catalogs of the NOC's listed these component versions for these appliances
 * (`catalog_listings`, current unless `current` is false); the components must be stored.
 */
export async function seedListings(
  sql: Sql,
  listings: ReadonlyArray<ScenarioComponent & { uid: string; current?: boolean }>,
): Promise<void> {
  const at = new Date("2026-01-01T00:00:00Z").toISOString();
  await sql`
    insert into catalog_listings (uid, component_id, first_listed_at, current)
    select x.uid, c.id, ${at}::timestamptz, coalesce(x.current, true)
    from jsonb_to_recordset(${JSON.stringify(listings)}::text::jsonb)
      as x (uid uuid, kind text, app text, name text, version text, current boolean)
    join components c on c.kind = x.kind and c.app = x.app and c.name = x.name and c.version = x.version
    on conflict (uid, component_id) do nothing`;
}
