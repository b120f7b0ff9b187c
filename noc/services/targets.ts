/**
 * Release targets as the fleet has them: how many appliances an assignment's target matches (its
 * **target size**), which sites, models, channels and tags the NOC knows (the choices of the
 * console's assign form, each with its count), and whether a target names anything known at all.
 *
 * A target matches an appliance as the catalog engine decides it ({@link targets} in
 * catalog_engine.ts): `model`, `channel` and `site` by equality (an appliance without a site
 * matches no site), `tag` by any one of its tags, `appliance` by UID, `all` everything. Only
 * appliances that are not revoked (nor retired as re-imaged, which revokes them) count.
 *
 * A target value is **known** when an appliance that is not revoked has it, or, for sites,
 * channels and tags, when a live enrolment token (unused, unrevoked, unexpired) names it, or, for
 * sites, when a local component server serves that site: so a site can be assigned to before its
 * appliances enrol, once a token for it has been issued. Anything else is unknown, and the admin
 * API refuses to assign to it without `allowUnknownTarget` (noc/http/admin/assignments.ts).
 *
 * Every function is one statement, whatever the number of targets or appliances.
 *
 * @module
 */
import type { Sql } from "../db/db.ts";

/** A target kind with a value (every kind but `all`). */
export type ValuedTargetType = "model" | "site" | "channel" | "tag" | "appliance";

/** A release target as assignments store it: `value` is null for `all`. */
export interface TargetRef {
  /** `all`, `model`, `site`, `channel`, `tag` or `appliance`. */
  type: string;
  /** The model, site, channel, tag or UID; null for `all`. */
  value: string | null;
}

/** A known target value and how many appliances have it. */
export interface TargetChoice {
  /** The model, site, channel or tag. */
  value: string;
  /** Appliances (not revoked) it matches; 0 for a value only a token or local server names. */
  appliances: number;
}

/** The targets the console offers, by kind, each list most appliances first (then by name). */
export interface TargetChoices {
  /** Appliances (not revoked) in the fleet: the size of target `all`. */
  all: number;
  /** Models of appliances. */
  model: TargetChoice[];
  /** Sites of appliances, live enrolment tokens and local servers. */
  site: TargetChoice[];
  /** Channels of appliances and live enrolment tokens. */
  channel: TargetChoice[];
  /** Tags of appliances and live enrolment tokens. */
  tag: TargetChoice[];
}

/** The key of a target in the maps below: `type` and `value` joined by a line feed. */
export const targetKey = (t: TargetRef): string => `${t.type}\n${t.value ?? ""}`;

/**
 * The size of each target in `targets` (appliances, not revoked, that it matches now), in one
 * statement. Returns a map by {@link targetKey}; a target nothing matches is 0.
 */
export async function targetSizes(sql: Sql, targets: TargetRef[]): Promise<Map<string, number>> {
  const out = new Map<string, number>(targets.map((t) => [targetKey(t), 0]));
  if (targets.length === 0) return out;
  const of = (type: string) => [
    ...new Set(targets.filter((t) => t.type === type && t.value !== null).map((t) => t.value!)),
  ];
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const rows = await sql<{ type: string; value: string | null; n: number }>`
    select 'all' as type, null::text as value, count(*)::int as n from appliances
      where revoked_at is null and ${targets.some((t) => t.type === "all")}::boolean
    union all
    select 'model', model, count(*)::int from appliances
      where revoked_at is null and model = any(${of("model")}::text[]) group by model
    union all
    select 'site', site, count(*)::int from appliances
      where revoked_at is null and site = any(${of("site")}::text[]) group by site
    union all
    select 'channel', channel, count(*)::int from appliances
      where revoked_at is null and channel = any(${of("channel")}::text[]) group by channel
    union all
    select 'tag', t, count(*)::int from appliances a cross join unnest(a.tags) t
      where a.revoked_at is null and a.tags && ${of("tag")}::text[] and t = any(${
    of("tag")
  }::text[])
      group by t
    union all
    select 'appliance', uid::text, 1 from appliances
      where revoked_at is null and uid = any(${
    of("appliance").filter((u) => uuid.test(u))
  }::uuid[])`;
  for (const r of rows) out.set(targetKey(r), r.n);
  return out;
}

/** The size of one target (as {@link targetSizes}). */
export async function targetSize(sql: Sql, t: TargetRef): Promise<number> {
  return (await targetSizes(sql, [t])).get(targetKey(t))!;
}

/**
 * Whether `t` names something the NOC knows (see the module's definition): `all` always; an
 * appliance when it exists and is not revoked; a model when an appliance has it; a site, channel
 * or tag also when a live enrolment token names it, and a site when a local server serves it.
 * One statement.
 */
export async function targetKnown(sql: Sql, t: TargetRef, now: Date): Promise<boolean> {
  if (t.type === "all") return true;
  if (t.value === null) return false;
  const v = t.value;
  const [row] = await sql<{ known: boolean }>`
    select case ${t.type}::text
      when 'model' then exists (select 1 from appliances where model = ${v} and revoked_at is null)
      when 'site' then exists (select 1 from appliances where site = ${v} and revoked_at is null)
        or exists (select 1 from enrollment_tokens where site = ${v} and used_at is null
          and revoked_at is null and expires_at > ${now})
        or exists (select 1 from local_servers where site = ${v})
      when 'channel' then exists (
          select 1 from appliances where channel = ${v} and revoked_at is null)
        or exists (select 1 from enrollment_tokens where channel = ${v} and used_at is null
          and revoked_at is null and expires_at > ${now})
      when 'tag' then exists (
          select 1 from appliance_facet_hosts f join appliances a on a.uid = f.uid
          where f.facet = ${`t:${v}`} and a.revoked_at is null)
        or exists (select 1 from enrollment_tokens where ${v} = any(tags) and used_at is null
          and revoked_at is null and expires_at > ${now})
      when 'appliance' then exists (
          select 1 from appliances where uid::text = ${v} and revoked_at is null)
      else false end as known`;
  return row!.known;
}

/**
 * The known sites, models, channels and tags (see the module), each with the appliances it
 * matches, at most `limit` of each kind (most appliances first, then by name), and the fleet's
 * size. One statement; at 100,000 appliances it reads the table about four times over.
 */
export async function targetChoices(sql: Sql, now: Date, limit = 200): Promise<TargetChoices> {
  const rows = await sql<{ type: string; value: string; n: number }>`
    with live_tokens as (
      select site, channel, tags from enrollment_tokens
      where used_at is null and revoked_at is null and expires_at > ${now}
    ),
    counted as (
      select 'model' as type, model as value, count(*)::int as n from appliances
        where revoked_at is null group by model
      union all
      select 'site', site, count(*)::int from appliances
        where revoked_at is null and site is not null group by site
      union all
      select 'channel', channel, count(*)::int from appliances
        where revoked_at is null group by channel
      union all
      select 'tag', t, count(*)::int from appliances a cross join unnest(a.tags) t
        where a.revoked_at is null group by t
      union all
      select 'site', site, 0 from live_tokens where site is not null
      union all
      select 'site', site, 0 from local_servers
      union all
      select 'channel', channel, 0 from live_tokens where channel is not null
      union all
      select 'tag', t, 0 from live_tokens cross join unnest(tags) t
    ),
    summed as (
      select type, value, max(n) as n,
        row_number() over (partition by type order by max(n) desc, value) as rank
      from counted group by type, value
    )
    select type, value, n from summed where rank <= ${limit}
    union all
    select 'all', '', count(*)::int from appliances where revoked_at is null
    order by type, n desc, value`;
  const out: TargetChoices = { all: 0, model: [], site: [], channel: [], tag: [] };
  for (const r of rows) {
    if (r.type === "all") out.all = r.n;
    else if (r.type in out) {
      out[r.type as "model" | "site" | "channel" | "tag"].push({
        value: r.value,
        appliances: r.n,
      });
    }
  }
  return out;
}

/**
 * How an assignment's target reads with its size and rollout share, e.g.
 * `10 % of 783 vs-2000 ≈ 78` (`≈`: the share of the matched appliances; their UID buckets decide
 * exactly which ones, so the count in the rollout is near it, not always equal).
 */
export function describeTarget(t: TargetRef, size: number, percent: number): string {
  const share = Math.round((size * percent) / 100);
  const exact = percent === 0 || percent === 100 || size === 0;
  return `${percent} % of ${sizeLabel(t, size)} ${exact ? "=" : "≈"} ${share}`;
}

/** `783 vs-2000`, `60 at site sin-pop`, `1 appliance`…: a target with its size. */
export function sizeLabel(t: TargetRef, size: number): string {
  switch (t.type) {
    case "model":
      return `${size} ${t.value}`;
    case "site":
      return `${size} at site ${t.value}`;
    case "channel":
      return `${size} on channel ${t.value}`;
    case "tag":
      return `${size} tagged ${t.value}`;
    case "appliance":
      return `${size} appliance ${t.value}`;
    default:
      return `${size} appliance${size === 1 ? "" : "s"}`;
  }
}

/** The appliances a rollout share of a target reaches, rounded: `size × percent / 100`. */
export function shareOf(size: number, percent: number): number {
  return Math.round((size * percent) / 100);
}
