/**
 * The catalog engine (spec, FIGURE 8): which component versions an appliance
 * should run, from the release assignments that match it — the most specific
 * target wins (appliance, tag, site, channel, model, all; then the newest
 * assignment), a staged rollout includes an appliance by a deterministic
 * bucket of its UID, a paused rollout keeps only the appliances already sent
 * it, and a hold pins an appliance to what its latest catalog lists.
 *
 * A phased rollout's assignment (noc/services/phased_rollouts.ts) includes an
 * appliance by its {@link fineBucket} (`< phase_limit`) instead of the percent
 * bucket, and never chooses one whose fine bucket is `>= excluded_from` (a
 * rollback), not even through a delivery record: such an appliance falls
 * through to the next candidate, the previous version's assignment — and no
 * later candidate of the excluded version keeps it by delivery either (a
 * cancelled rollout's paused assignment of the same release).
 *
 * The choice itself is one pure function ({@link catalogChooser}) over
 * candidate rows. Two feeders read those rows: {@link resolveCatalog} for one
 * appliance (2–3 statements), and {@link resolveSiteCatalogs} for every
 * appliance of a site at once (at most 4 statements, whatever the number of
 * appliances), so the two cannot disagree.
 *
 * Delivery records are reports (an appliance's download, a local server's
 * record of one), so they never decide a catalog alone, and never a hold.
 * The rules:
 *
 * - A delivery record counts only for an (appliance, component version) pair
 *   that the appliance's latest catalog lists (`catalog_listings.current`,
 *   written by {@link recordListing}). Such a record keeps the appliance on
 *   that version when its rollout has since been paused or narrowed, but only
 *   while an assignment of that version still targets the appliance. A record
 *   can therefore only keep the version the NOC last listed, never choose an
 *   older one, another application's, a paused one or one outside a bucket.
 * - A hold pins, per component of a held application, the version the
 *   appliance's latest catalog lists (downloaded or not), and only while some
 *   assignment of that component still targets the appliance: a hold freezes
 *   what is assigned and listed now, and never gives back what the appliance
 *   was moved away from. Delivery records play no part in it.
 *
 * @module
 */
import { hash } from "node:crypto";
import type { Sql } from "../db/db.ts";
import {
  BEAT_MAX_COMPONENTS,
  type ComponentVersion,
  componentVersionOf,
} from "../../protocol/schemas.ts";

/**
 * A catalog's component versions, in catalog order, at most {@link BEAT_MAX_COMPONENTS}: as many
 * as a SecureBeat can report back (issue 21). `omitted` says how many more the assignments chose
 * and the cap left out (the last ones in catalog order: files before packages, by application
 * and name); 0 normally, since the assignment API refuses sets that could overflow
 * (noc/http/admin/assignments.ts).
 */
export type ChosenList = Chosen[] & { omitted: number };

/** `chosen` (in catalog order) cut to `max` entries, with how many were left out. */
export function capCatalog(chosen: Chosen[], max = BEAT_MAX_COMPONENTS): ChosenList {
  const omitted = Math.max(0, chosen.length - max);
  const list = (omitted > 0 ? chosen.slice(0, max) : chosen) as ChosenList;
  // Not enumerable: the list compares and serialises as the plain list it is.
  Object.defineProperty(list, "omitted", { value: omitted, enumerable: false });
  return list;
}

/** Target kinds, most specific first: an assignment to an earlier kind beats one to a later kind. */
export const targetOrder = ["appliance", "tag", "site", "channel", "model", "all"] as const;

/** A target kind of an assignment. */
export type TargetType = (typeof targetOrder)[number];

/** The attributes of an appliance that assignment targets match against. */
export interface CatalogSubject {
  /** Matched by `appliance` targets, and seeds the rollout buckets. */
  uid: string;
  /** Matched by `model` targets. */
  model: string;
  /** Matched by `site` targets; an appliance without a site matches none. */
  site: string | null;
  /** Matched by `channel` targets. */
  channel: string;
  /** Matched by `tag` targets (any one of them). */
  tags: readonly string[];
}

/** A component version chosen for an appliance: one line of its catalog. */
export interface Chosen extends ComponentVersion {
  /** Packages: the signing key id. */
  signerKid: string | null;
  /** Packages: the content key sealed at rest. */
  sealedKey: string | null;
  /** Packages: the ciphertext digest from the signed header (binds a wrapped key to the package). */
  ciphertextSha256: string | null;
  /** The assignment that chose it; null when a hold pinned it. */
  assignmentId: number | null;
  /** That assignment is urgent: installed even outside the appliance's install window. */
  urgent: boolean;
}

/**
 * The rollout bucket (0–99) of an appliance for a component: the first 4
 * bytes of SHA-256 of `uid\nkind/app/name`, big-endian, modulo 100. Fixed, so
 * widening a rollout never drops anyone.
 */
export function rolloutBucket(uid: string, kind: string, app: string, name: string): number {
  return fineBucket(uid, kind, app, name) % 100;
}

/** One more than the largest {@link fineBucket}: a `phase_limit` that includes every appliance. */
export const fineBucketLimit = 2 ** 32;

/**
 * The fine bucket (0 to 2^32 − 1) of an appliance for a component: the first 4 bytes of SHA-256
 * of `uid\nkind/app/name`, big-endian, unsigned — the number {@link rolloutBucket} takes modulo
 * 100. Phased rollouts include the appliances whose fine bucket is below their phase limit. Its
 * SQL twin is the database function `fine_bucket(uid, kind, app, name)` (migration 021), for
 * set-based selection; `uid` must be the lower-case text form PostgreSQL gives a `uuid`.
 */
export function fineBucket(uid: string, kind: string, app: string, name: string): number {
  // One-shot hex digest: about twice as fast as createHash().digest() per call (a site's sync takes thousands).
  const hex = hash("sha256", `${uid}\n${kind}/${app}/${name}`, "hex");
  return parseInt(hex.slice(0, 8), 16);
}

/** A component version as the engine reads it (the columns a catalog line needs). */
export interface ComponentRow extends ComponentVersion {
  signer_kid: string | null;
  sealed_key: string | null;
  ciphertext_sha256: string | null;
}

/** A release assignment joined with the component version it names: a candidate for the appliances it targets. */
export interface AssignmentRow extends ComponentRow {
  assignment_id: number;
  target_type: TargetType;
  /** Null for `all`. */
  target_value: string | null;
  /** 0–100: the appliances whose bucket is below it are in the rollout. */
  rollout_percent: number;
  /** A paused rollout reaches only appliances already sent its version. */
  paused: boolean;
  /**
   * A phased rollout's limit: when set (not null), the appliances whose {@link fineBucket} is
   * below it are in the rollout, and `rollout_percent` is not read. Absent: null.
   */
  phase_limit?: number | null;
  /**
   * When set, appliances whose {@link fineBucket} is at or above it are never chosen by this
   * assignment, not even through a delivery record (a phased rollout's rollback). Absent: null.
   */
  excluded_from?: number | null;
  /** Urgent: installed even outside install windows (migration 028). Absent: false. */
  urgent?: boolean;
  created_at: Date;
}

/** What the engine must know of one appliance beyond its attributes. */
export interface ApplianceFacts {
  /**
   * Whether the appliance has a delivery record of component version
   * `componentId` and its latest catalog lists that version (a record of any
   * other version must answer false).
   */
  delivered(componentId: number): boolean;
  /** Its holds: application names, null for a hold on everything. */
  holds: readonly (string | null)[];
  /**
   * The component versions its latest catalog lists (`catalog_listings.current`);
   * read only when it holds something, so it may be empty otherwise. Under a
   * hold, those of held applications still assigned to it are pinned.
   */
  pinned: readonly ComponentRow[];
}

/** Whether `a`'s target matches `s` (the same test as the `where` of {@link resolveCatalog}). */
export function targets(a: AssignmentRow, s: CatalogSubject): boolean {
  const v = a.target_value;
  switch (a.target_type) {
    case "all":
      return true;
    case "model":
      return v === s.model;
    case "channel":
      return v === s.channel;
    case "site":
      return v !== null && v === s.site;
    case "tag":
      return v !== null && s.tags.includes(v);
    case "appliance":
      return v === s.uid;
  }
}

const rank = (t: TargetType) => targetOrder.indexOf(t);

/**
 * Builds the catalog choice over a set of candidate assignments (any
 * superset of those matching the appliances it is asked about): ranks the
 * candidates of each component once, then, for one appliance, takes per
 * component the first candidate that targets it, does not exclude it
 * (`excluded_from`), and either includes its rollout bucket — its fine bucket
 * below `phase_limit` when that is set — (and is not paused) or was delivered
 * to it and is listed by its latest catalog (`facts.delivered` must answer
 * only for such pairs);
 * held applications get the versions their latest catalog lists instead, for
 * the components some candidate still targets the appliance with. The result
 * is ordered packages first, then by application and name, and cut to
 * {@link BEAT_MAX_COMPONENTS} entries ({@link capCatalog}).
 */
export function catalogChooser(
  candidates: readonly AssignmentRow[],
): (subject: CatalogSubject, facts: ApplianceFacts) => ChosenList {
  const byComponent = new Map<string, AssignmentRow[]>();
  for (const r of candidates) {
    const key = `${r.kind}\n${r.app}\n${r.name}`;
    const list = byComponent.get(key);
    if (list) list.push(r);
    else byComponent.set(key, [r]);
  }
  const groups = [...byComponent.values()];
  for (const g of groups) {
    g.sort((a, b) =>
      rank(a.target_type) - rank(b.target_type) ||
      b.created_at.getTime() - a.created_at.getTime() || b.assignment_id - a.assignment_id
    );
  }
  return (subject, facts) => {
    const held = (app: string) => facts.holds.some((h) => h === null || h === app);
    const chosen: Chosen[] = [];
    for (const group of groups) {
      const first = group[0]!;
      if (held(first.app)) continue;
      let fine: number | undefined;
      const u32 = () => fine ??= fineBucket(subject.uid, first.kind, first.app, first.name);
      const excluded = (c: AssignmentRow) =>
        c.excluded_from !== undefined && c.excluded_from !== null && u32() >= c.excluded_from;
      const inRollout = (c: AssignmentRow) => {
        if (c.paused) return false;
        if (c.phase_limit !== undefined && c.phase_limit !== null) return u32() < c.phase_limit;
        if (c.rollout_percent <= 0) return false;
        if (c.rollout_percent >= 100) return true;
        return u32() % 100 < c.rollout_percent;
      };
      // A version a rollback sent this appliance away from is not kept by its delivery through
      // another assignment of it (a cancelled rollout's paused one, say): only an assignment that
      // includes the appliance now gives it back (newcomer review of issue 20).
      // (Every catalog request runs this: no allocation unless an exclusion is met.)
      let rolledBack: string[] | undefined;
      const pick = group.find((c) => {
        if (!targets(c, subject)) return false;
        if (excluded(c)) {
          (rolledBack ??= []).push(c.version);
          return false;
        }
        if (inRollout(c)) return true;
        return facts.delivered(c.id) && !rolledBack?.includes(c.version);
      });
      if (pick) chosen.push(toChosen(pick, pick.assignment_id, pick.urgent ?? false));
    }
    if (facts.holds.length > 0) {
      // A hold freezes what is assigned and listed now: never what the appliance was moved from.
      const assigned = (p: ComponentRow) =>
        byComponent.get(`${p.kind}\n${p.app}\n${p.name}`)?.some((c) => targets(c, subject)) ??
          false;
      for (const p of facts.pinned) {
        if (held(p.app) && assigned(p)) chosen.push(toChosen(p, null, false));
      }
    }
    return capCatalog(
      chosen.sort((a, b) =>
        (a.kind === b.kind ? 0 : a.kind === "package" ? -1 : 1) || a.app.localeCompare(b.app) ||
        a.name.localeCompare(b.name)
      ),
    );
  };
}

function toChosen(r: ComponentRow, assignmentId: number | null, urgent: boolean): Chosen {
  return {
    ...componentVersionOf(r),
    signerKid: r.signer_kid,
    sealedKey: r.sealed_key,
    ciphertextSha256: r.ciphertext_sha256,
    assignmentId,
    urgent,
  };
}

/**
 * Resolves the component versions `subject` should run now (2 statements, 3 with a hold). A pure
 * read: the catalog builder records what it lists with {@link recordListing}.
 */
export async function resolveCatalog(tx: Sql, subject: CatalogSubject): Promise<ChosenList> {
  const rows = await tx<AssignmentRow & { delivered: boolean }>`
    select a.id as assignment_id, a.target_type, a.target_value, a.rollout_percent, a.paused,
      a.phase_limit, a.excluded_from, a.urgent,
      a.created_at, c.id, c.kind, c.app, c.name, c.version, c.size, c.sha256, c.signer_kid,
      c.sealed_key, c.header->>'ciphertextSha256' as ciphertext_sha256,
      (a.paused or a.rollout_percent < 100 or a.phase_limit is not null) and exists (
        select 1 from deliveries d join catalog_listings l
          on l.uid = d.uid and l.component_id = d.component_id and l.current
        where d.uid = ${subject.uid} and d.component_id = c.id) as delivered
    from assignments a
    join components c on c.kind = a.kind and c.app = a.app and c.name = a.name and c.version = a.version
    where a.target_type = 'all'
      or (a.target_type = 'model' and a.target_value = ${subject.model})
      or (a.target_type = 'channel' and a.target_value = ${subject.channel})
      or (a.target_type = 'site' and a.target_value = ${subject.site})
      or (a.target_type = 'tag' and a.target_value = any(${subject.tags}::text[]))
      or (a.target_type = 'appliance' and a.target_value = ${subject.uid})`;
  const delivered = new Set(rows.filter((r) => r.delivered).map((r) => r.id));
  const holds = (await tx<{ app: string | null }>`select app from holds where uid = ${subject.uid}`)
    .map((h) => h.app);
  const pinned = holds.length === 0 ? [] : await tx<ComponentRow>`
    select c.id, c.kind, c.app, c.name, c.version, c.size, c.sha256, c.signer_kid, c.sealed_key,
      c.header->>'ciphertextSha256' as ciphertext_sha256
    from catalog_listings l join components c on c.id = l.component_id
    where l.uid = ${subject.uid} and l.current`;
  return catalogChooser(rows)(subject, {
    delivered: (id) => delivered.has(id),
    holds,
    pinned,
  });
}

/**
 * Resolves the catalogs of every appliance of `site` that is not revoked, as
 * {@link resolveCatalog} would one by one, in at most 4 statements whatever
 * the number of appliances: the appliances with their holds; the assignments
 * whose target matches any of them; the delivery records that can decide a
 * choice (only for versions under a partial or paused rollout, and only
 * those the appliance's latest catalog lists); and, when some appliance
 * holds something, what each held appliance's latest catalog lists.
 * Returns each appliance's catalog by UID, in UID order.
 */
export async function resolveSiteCatalogs(tx: Sql, site: string): Promise<Map<string, Chosen[]>> {
  const appliances = await tx<{
    uid: string;
    model: string;
    channel: string;
    tags: string[];
    hold_all: boolean;
    hold_apps: string[];
  }>`
    select a.uid, a.model, a.channel, a.tags,
      bool_or(h.id is not null and h.app is null) as hold_all,
      array_remove(array_agg(h.app order by h.app), null) as hold_apps
    from appliances a left join holds h on h.uid = a.uid
    where a.site = ${site} and a.revoked_at is null
    group by a.uid
    order by a.uid`;
  const out = new Map<string, Chosen[]>();
  if (appliances.length === 0) return out;
  const uids = appliances.map((a) => a.uid);
  const distinct = <T>(xs: Iterable<T>) => [...new Set(xs)];
  const candidates = await tx<AssignmentRow>`
    select a.id as assignment_id, a.target_type, a.target_value, a.rollout_percent, a.paused,
      a.phase_limit, a.excluded_from, a.urgent,
      a.created_at, c.id, c.kind, c.app, c.name, c.version, c.size, c.sha256, c.signer_kid,
      c.sealed_key, c.header->>'ciphertextSha256' as ciphertext_sha256
    from assignments a
    join components c on c.kind = a.kind and c.app = a.app and c.name = a.name and c.version = a.version
    where a.target_type = 'all'
      or (a.target_type = 'model' and a.target_value = any(${
    distinct(appliances.map((a) => a.model))
  }::text[]))
      or (a.target_type = 'channel' and a.target_value = any(${
    distinct(appliances.map((a) => a.channel))
  }::text[]))
      or (a.target_type = 'site' and a.target_value = ${site})
      or (a.target_type = 'tag' and a.target_value = any(${
    distinct(appliances.flatMap((a) => a.tags))
  }::text[]))
      or (a.target_type = 'appliance' and a.target_value = any(${uids}::text[]))`;
  // A delivery record decides a choice only where the rollout does not include everyone.
  const undecided = distinct(
    candidates.filter((c) => c.paused || c.rollout_percent < 100 || c.phase_limit !== null)
      .map((c) => c.id),
  );
  const delivered = new Set<string>();
  if (undecided.length > 0) {
    const rows = await tx<{ uid: string; component_id: number }>`
      select d.uid, d.component_id from deliveries d
      join catalog_listings l on l.uid = d.uid and l.component_id = d.component_id and l.current
      where d.uid = any(${uids}::uuid[]) and d.component_id = any(${undecided}::bigint[])`;
    for (const r of rows) delivered.add(`${r.uid} ${r.component_id}`);
  }
  const heldUids = appliances.filter((a) => a.hold_all || a.hold_apps.length > 0).map((a) => a.uid);
  const pinned = new Map<string, ComponentRow[]>();
  if (heldUids.length > 0) {
    const rows = await tx<ComponentRow & { uid: string }>`
      select l.uid, c.id, c.kind, c.app, c.name, c.version, c.size, c.sha256, c.signer_kid,
        c.sealed_key, c.header->>'ciphertextSha256' as ciphertext_sha256
      from catalog_listings l join components c on c.id = l.component_id
      where l.uid = any(${heldUids}::uuid[]) and l.current`;
    for (const { uid, ...row } of rows) {
      const list = pinned.get(uid);
      if (list) list.push(row);
      else pinned.set(uid, [row]);
    }
  }
  const choose = catalogChooser(candidates);
  for (const a of appliances) {
    out.set(
      a.uid,
      choose({ uid: a.uid, model: a.model, site, channel: a.channel, tags: a.tags }, {
        delivered: (id) => delivered.has(`${a.uid} ${id}`),
        holds: a.hold_all ? [null, ...a.hold_apps] : a.hold_apps,
        pinned: pinned.get(a.uid) ?? [],
      }),
    );
  }
  return out;
}

/**
 * Records what a catalog the NOC is issuing to appliance `uid` lists
 * (`componentIds`), in the transaction that builds it: new pairs are added,
 * and the `current` mark moves to exactly this list. The NOC's own record of
 * an appliance's entitlements: every download from the NOC (by grant or by
 * signature) and the engine's use of deliveries and holds need a current
 * listing, local-server download records a current or just-unlisted one
 * (`unlisted_at`). No listing row is written when the list is unchanged. The
 * same statement takes the catalog's serial: returns the appliance's new
 * `catalog_serial`.
 */
export async function recordListing(
  tx: Sql,
  uid: string,
  componentIds: readonly number[],
  now: Date,
): Promise<number> {
  const ids = [...new Set(componentIds)];
  // One statement with the serial's update: on PGlite a statement costs about as much as the rest
  // of a catalog build's JavaScript, and builds hold the database while their transaction is open.
  const [row] = await tx<{ catalog_serial: number }>`
    with flipped as (
      update catalog_listings set current = not current,
        unlisted_at = case when current then ${now}::timestamptz end
      where uid = ${uid} and current <> (component_id = any(${ids}::bigint[]))
      returning 1
    ), added as (
      insert into catalog_listings (uid, component_id, first_listed_at, current)
      select ${uid}, t.id, ${now}, true from unnest(${ids}::bigint[]) as t (id)
      where not exists (
        select 1 from catalog_listings l where l.uid = ${uid} and l.component_id = t.id)
      on conflict do nothing
      returning 1
    )
    update appliances set catalog_serial = catalog_serial + 1 where uid = ${uid}
    returning catalog_serial`;
  if (!row) throw new Error(`Appliance "${uid}" vanished while its catalog was built`);
  return row.catalog_serial;
}
