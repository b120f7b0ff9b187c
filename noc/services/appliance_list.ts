/**
 * The fleet list (`GET /v1/admin/appliances`, and the console's appliances
 * page through it): filters, search, keyset pages.
 *
 * @module
 */
import { ApiError } from "../../protocol/http/errors.ts";
import { fromBase64Url, toBase64Url, utf8 } from "../../protocol/util/encoding.ts";
import { isCleanText, listAppliancesQuery } from "../../protocol/schemas.ts";
import type { Db, Param, Sql } from "../db/db.ts";
import type { ApplianceRow } from "./appliances.ts";
import type { z } from "zod";

/**
 * The list's filters, as `listAppliancesQuery` parses them, and `retired`: records retired by a
 * re-enrolment are left out (`exclude`, the default), listed too (`include`) or alone (`only`).
 */
export type ApplianceListFilter = z.infer<typeof listAppliancesQuery> & {
  retired?: "exclude" | "include" | "only";
};

/**
 * A page of the list: its rows (at most `limit`), the cursor of the next page (`cursor=`) and of
 * the previous one (`before=`), if any, and — when asked — how many match the filter
 * ({@link countCap} at most: `capped` says there are more).
 */
export interface ApplianceListPage {
  rows: ApplianceRow[];
  nextCursor: string | null;
  prevCursor: string | null;
  total?: { count: number; capped: boolean };
}

/** The list's total is counted exactly up to this many matches; beyond, "more than 10,000". */
export const countCap = 10_000;

/** A list order (see `applianceSorts`). */
export type ApplianceSort = "hostname" | "lastBeat" | "state";

/** A row as the sorted statement reads it: the appliance and its sort key (`k1`, `k2`). */
type KeyedRow = ApplianceRow & { k1?: string | boolean; k2?: string };

const keyTime = /^(-infinity|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)$/;
const uidText = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The cursor of row `r` in order `sort`: host name order keeps issue 18's `[hostname, uid]`. */
function encodeSorted(sort: ApplianceSort, r: KeyedRow): string {
  const v = sort === "hostname"
    ? [r.hostname, r.uid]
    : sort === "lastBeat"
    ? ["lastBeat", r.k1, r.uid]
    : ["state", r.k1, r.k2, r.uid];
  return toBase64Url(utf8(JSON.stringify(v)));
}

/** A cursor's sort key, checked against `sort`; 400 `invalid_query` for any other. */
function decodeSorted(
  sort: ApplianceSort,
  cursor: string,
  field: "cursor" | "before",
): Array<string | boolean> {
  if (sort === "hostname") {
    try {
      return decodeCursor(cursor);
    } catch {
      throw new ApiError(
        400,
        "invalid_query",
        `Field "${field}": "${cursor.slice(0, 40)}" is not a cursor of this order`,
      );
    }
  }
  try {
    const v = JSON.parse(new TextDecoder().decode(fromBase64Url(cursor)));
    if (Array.isArray(v) && v[0] === sort) {
      if (
        sort === "lastBeat" && v.length === 3 && typeof v[1] === "string" && keyTime.test(v[1]) &&
        typeof v[2] === "string" && uidText.test(v[2])
      ) return [v[1], v[2]];
      if (
        sort === "state" && v.length === 4 && typeof v[1] === "boolean" &&
        typeof v[2] === "string" && keyTime.test(v[2]) && typeof v[3] === "string" &&
        uidText.test(v[3])
      ) return [v[1], v[2], v[3]];
    }
  } catch {
    // fall through
  }
  throw new ApiError(
    400,
    "invalid_query",
    `Field "${field}": "${cursor.slice(0, 40)}" is not a cursor of this order`,
  );
}

function encodeCursor(r: ApplianceRow): string {
  return toBase64Url(utf8(JSON.stringify([r.hostname, r.uid])));
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const v = JSON.parse(new TextDecoder().decode(fromBase64Url(cursor)));
    if (
      Array.isArray(v) && v.length === 2 && typeof v[0] === "string" &&
      typeof v[1] === "string" && isCleanText(v[0]) &&
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v[1])
    ) {
      return [v[0], v[1]];
    }
  } catch {
    // fall through
  }
  throw new ApiError(
    400,
    "invalid_query",
    `Field "cursor": "${cursor.slice(0, 40)}" is not a cursor from this API`,
  );
}

type Tag = <T>(strings: TemplateStringsArray, ...values: Param[]) => Promise<T[]>;

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The facets (rows of `appliance_facet_hosts`, migration 014) an appliance must hold to pass the
 * `app`, `version` and `tag` filters: none, one or two.
 */
function facetsOf(f: ApplianceListFilter): string[] {
  const facets: string[] = [];
  if (f.app !== undefined && f.version !== undefined) facets.push(`av:${f.app}:${f.version}`);
  else if (f.app !== undefined) facets.push(`a:${f.app}`);
  else if (f.version !== undefined) facets.push(`v:${f.version}`);
  if (f.tag !== undefined) facets.push(`t:${f.tag}`);
  return facets;
}

/** A piece of a statement: constant SQL text around parameters (never text from input). */
interface Fragment {
  strings: readonly string[];
  values: Param[];
}

function frag(strings: TemplateStringsArray, ...values: Param[]): Fragment {
  return { strings: [...strings], values };
}

/** `parts` joined with `sep` (constant SQL) into one fragment. */
function joined(parts: readonly Fragment[], sep: string): Fragment {
  const strings: string[] = [""];
  const values: Param[] = [];
  parts.forEach((p, i) => {
    strings[strings.length - 1] += (i > 0 ? sep : "") + p.strings[0];
    strings.push(...p.strings.slice(1));
    values.push(...p.values);
  });
  return { strings, values };
}

function run<T>(tag: Tag, f: Fragment): Promise<T[]> {
  const strings = Object.assign([...f.strings], { raw: [...f.strings] });
  return tag<T>(strings as unknown as TemplateStringsArray, ...f.values);
}

/**
 * The table whose host-name order the list's statement follows: `s` (appliance_names) for a
 * search, `f0` (appliance_facet_hosts, the first facet) for a facet filter, else `a`.
 */
function driver(f: ApplianceListFilter): "s" | "f0" | "a" {
  return f.q !== undefined ? "s" : facetsOf(f).length > 0 ? "f0" : "a";
}

/** Whether the statement joins two ordered side tables on (host name, UID). */
function joinsOrdered(f: ApplianceListFilter): boolean {
  return facetsOf(f).length + (f.q !== undefined ? 1 : 0) >= 2;
}

/**
 * The conditions on the appliance's own row (`a`): retired, model, site, channel, state. Model,
 * site, channel: indexes on (column, hostname, uid); states: the due-time, missing and revoked
 * indexes. With no `or … is null` around them, the planner reads either the matches (sparse
 * filters) or a host-name order until the page is full (dense ones).
 */
function rowConditions(f: ApplianceListFilter, now: Date, graceS: number): Fragment[] {
  const cutoff = new Date(now.getTime() - graceS * 1000);
  const where: Fragment[] = [];
  const retired = f.retired ?? "exclude";
  if (retired === "exclude") where.push(frag`a.superseded_by is null`);
  if (retired === "only") where.push(frag`a.superseded_by is not null`);
  if (f.model !== undefined) where.push(frag`a.model = ${f.model}`);
  if (f.site !== undefined) where.push(frag`a.site = ${f.site}`);
  if (f.channel !== undefined) where.push(frag`a.channel = ${f.channel}`);
  switch (f.state) {
    case "revoked":
      where.push(frag`a.revoked_at is not null`);
      break;
    case "missing":
      // Both arms spelt out, so that each is served by its partial index (appliances_due's
      // predicate is "missing_since is null and revoked_at is null").
      where.push(frag`a.revoked_at is null and (a.missing_since is not null
        or (a.missing_since is null and a.next_due_at <= ${cutoff}))`);
      break;
    case "late":
      where.push(frag`a.revoked_at is null and a.missing_since is null
        and a.next_due_at > ${cutoff} and a.next_due_at <= ${now}`);
      break;
    case "ok":
      where.push(frag`a.revoked_at is null and a.missing_since is null and a.next_due_at > ${now}`);
      break;
  }
  return where;
}

/**
 * The search's condition on `s` (a row of appliance_names): host name in part (trigram index),
 * address whole (address index), UID (primary key). None without a search.
 */
function searchCondition(f: ApplianceListFilter): Fragment[] {
  if (f.q === undefined) return [];
  const like = `%${f.q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
  const byUid = uuidPattern.test(f.q) ? frag` or s.uid = ${f.q.toLowerCase()}::uuid` : frag``;
  return [joined([
    frag`(s.search like lower(${like}) or s.address = ${f.q}`,
    byUid,
    frag`)`,
  ], "")];
}

/** The page's cursor as a condition on table `t`'s (hostname, uid); none on the first page. */
function cursorCondition(f: ApplianceListFilter, t: "s" | "f0" | "a"): Fragment[] {
  if (!f.cursor) return [];
  const [afterHost, afterUid] = decodeCursor(f.cursor);
  return [
    t === "s"
      ? frag`(s.hostname, s.uid) > (${afterHost}, ${afterUid}::uuid)`
      : t === "f0"
      ? frag`(f0.hostname, f0.uid) > (${afterHost}, ${afterUid}::uuid)`
      : frag`(a.hostname, a.uid) > (${afterHost}, ${afterUid}::uuid)`,
  ];
}

/**
 * The conditions of the walk statement: the row's, the search's (appliance_names is joined as
 * `s`, see walkQuery()) and the cursor, on the table whose order the statement follows.
 */
function conditions(f: ApplianceListFilter, now: Date, graceS: number): Fragment[] {
  return [
    ...rowConditions(f, now, graceS),
    ...searchCondition(f),
    ...cursorCondition(f, driver(f)),
  ];
}

/**
 * Rows of the driving table a bounded walk examines (see listAppliances()) before the list
 * switches to gathering the matches of the other conditions.
 */
export const defaultWalkCap = 3000;

/**
 * Whether the walk of `f`'s driving index (a facet's rows, or the search's) is bounded: when a
 * condition the walk cannot check in its index (a state other than ok, model, site, channel,
 * retired only, or a facet with a search) may match few of the walked rows. Facets alone, and
 * two facets (merged in order, see plannerSettings()), are walked unbounded.
 */
function boundedWalk(f: ApplianceListFilter): boolean {
  if (driver(f) === "a") return false;
  return f.model !== undefined || f.site !== undefined || f.channel !== undefined ||
    (f.state !== undefined && f.state !== "ok") || f.retired === "only" ||
    (f.q !== undefined && facetsOf(f).length > 0);
}

/** The columns of a listed appliance, selected from `a`, up to the `from` of the statement. */
function head(now: Date, extra: Fragment = frag``): Fragment {
  return joined([
    frag`
    select `,
    extra,
    frag`a.uid, a.hostname, a.model, a.site, a.channel, a.tags, a.interval_s, a.agent_version,
      a.enrolled_at, a.last_beat_at, a.last_seq, a.last_address, a.next_due_at, a.missing_since,
      a.revoked_at, a.revoked_reason, a.superseded_by, a.supersedes, a.identity_conflict,
      a.revision,
      (select jsonb_build_object('id', m.id, 'endsAt', m.ends_at, 'reason', m.reason)
         from maintenance_windows m
         where (m.uid = a.uid or m.site = a.site) and m.starts_at <= ${now} and m.ends_at > ${now}
         order by m.ends_at desc limit 1) as maintenance
    from `,
  ], "");
}

/**
 * The walk statement for `f`: a page (one more row than `f.limit`) in host-name order, read in
 * the order of one index. With `cap`, only the first `cap` rows of the driving table past the
 * cursor are examined (those matching the search, for a search): a page with fewer rows than
 * `f.limit + 1` then says nothing about the rows after them (see listAppliances()).
 */
function walkQuery(tag: Tag, f: ApplianceListFilter, now: Date, graceS: number, cap?: number) {
  // The statement follows the host-name order of one table (driver()): a search reads
  // appliance_names, a facet filter appliance_facet_hosts (each holds the host names in the same
  // order, kept by migration 014's triggers), anything else appliances. A facet's rows, read in
  // order from the cursor, stop when the page is full however the facet's holders are spread
  // over host-name order; a second facet (app or version, and tag) or a search with a facet is
  // joined on (host name, UID) — a merge of two ordered index scans, see listAppliances().
  const facets = facetsOf(f);
  const t = driver(f);
  const capped = (inner: Fragment) =>
    joined([
      frag`(`,
      inner,
      frag`
      limit ${cap ?? 0})`,
    ], "");
  const joins: Fragment[] = t === "s"
    ? cap === undefined ? [frag`appliance_names s join appliances a on a.uid = s.uid`] : [
      capped(joined([
        frag`select s.uid, s.hostname, s.search, s.address from appliance_names s where `,
        joined([...searchCondition(f), ...cursorCondition(f, "s")], " and "),
        frag` order by s.hostname, s.uid`,
      ], "")),
      frag` s join appliances a on a.uid = s.uid`,
    ]
    : t === "f0"
    ? cap === undefined
      ? [
        frag`appliance_facet_hosts f0 join appliances a on a.uid = f0.uid and f0.facet = ${facets[
          0
        ]!}`,
      ]
      : [
        capped(joined([
          frag`select f0.hostname, f0.uid from appliance_facet_hosts f0 where `,
          joined([frag`f0.facet = ${facets[0]!}`, ...cursorCondition(f, "f0")], " and "),
          frag` order by f0.hostname, f0.uid`,
        ], "")),
        frag` f0 join appliances a on a.uid = f0.uid`,
      ]
    : [frag`appliances a`];
  const on = t === "s" ? "s" : "f0";
  facets.forEach((facet, i) => {
    if (t === "f0" && i === 0) return;
    const name = i === 0 ? "f0" : "f1";
    joins.push({
      strings: [
        `\n    join appliance_facet_hosts ${name} on ${name}.facet = `,
        ` and ${name}.hostname = ${on}.hostname and ${name}.uid = ${on}.uid`,
      ],
      values: [facet],
    });
  });
  const from = joined([
    joined(joins, ""),
    frag`
    where `,
  ], "");
  const tail = t === "s"
    ? frag`
    order by s.hostname, s.uid
    limit ${f.limit + 1}`
    : t === "f0"
    ? frag`
    order by f0.hostname, f0.uid
    limit ${f.limit + 1}`
    : frag`
    order by a.hostname, a.uid
    limit ${f.limit + 1}`;
  const where = joined([frag`true`, ...conditions(f, now, graceS)], "\n      and ");
  return run<ApplianceRow>(tag, joined([head(now), from, where, tail], ""));
}

/**
 * The gather statement for `f`: every match past the cursor, found without following any
 * index's order, then sorted by (host name, UID) — a page (one more row than `f.limit`). The
 * matches are gathered in one materialized step planned for all of them (no page limit to
 * tempt the planner into an ordered walk), so it starts from the most selective condition's
 * index — late appliances from the due-time index, missing ones from the missing and due-time
 * indexes, revoked ones from the revoked index, a site's or model's from theirs, a search's
 * from the trigram index, a rare facet from appliance_facet_hosts' primary key — and checks
 * the others (facets and search by their primary keys).
 */
function gatherQuery(tag: Tag, f: ApplianceListFilter, now: Date, graceS: number) {
  const facetChecks: Fragment[] = facetsOf(f).map((facet) =>
    frag`exists (select 1 from appliance_facet_hosts x
      where x.facet = ${facet} and x.hostname = a.hostname and x.uid = a.uid)`
  );
  const search = searchCondition(f).map((c) =>
    joined([frag`exists (select 1 from appliance_names s where s.uid = a.uid and `, c, frag`)`], "")
  );
  const where = joined([
    frag`true`,
    ...rowConditions(f, now, graceS),
    ...facetChecks,
    ...search,
    ...cursorCondition(f, "a"),
  ], "\n      and ");
  return run<ApplianceRow>(
    tag,
    joined([
      frag`with g as materialized (
    select a.uid, a.hostname from appliances a
    where `,
      where,
      frag`)`,
      head(now),
      frag`g join appliances a on a.uid = g.uid
    order by g.hostname, g.uid
    limit ${f.limit + 1}`,
    ], ""),
  );
}

/** The last-install-outcome filter as a condition on `a` (none without one). */
function outcomeCondition(f: ApplianceListFilter): Fragment[] {
  if (f.outcome === undefined) return [];
  if (f.outcome === "interrupted") {
    // Constant SQL (a JSON parameter would be sent as a JSON string by porsager/postgres).
    return [{
      strings: [`a.last_report->'lastCycle'->'problems' @> '[{"code":"install_interrupted"}]'`],
      values: [],
    }];
  }
  return [frag`exists (select 1 from appliance_last_outcomes l
      where l.uid = a.uid and l.outcome = ${f.outcome})`];
}

/**
 * Every condition of `f` on `a` alone (facets, search and outcome as `exists` checks by primary
 * key), without any cursor: what the sorted statement, the count and bulk actions select.
 */
export function filterConditions(f: ApplianceListFilter, now: Date, graceS: number): Fragment[] {
  return [
    ...rowConditions(f, now, graceS),
    ...facetsOf(f).map((facet) =>
      frag`exists (select 1 from appliance_facet_hosts x
      where x.facet = ${facet} and x.hostname = a.hostname and x.uid = a.uid)`
    ),
    ...searchCondition(f).map((c) =>
      joined(
        [frag`exists (select 1 from appliance_names s where s.uid = a.uid and `, c, frag`)`],
        "",
      )
    ),
    ...outcomeCondition(f),
  ];
}

/**
 * The sort key of order `sort` as columns `k1`, `k2` (timestamps as UTC text to the microsecond,
 * so a cursor repeats them exactly), and the key's expressions in index order. Indexes (migrations
 * 014, 019): appliances (hostname, uid); (coalesce(last_beat_at, '-infinity'), uid);
 * ((revoked_at is not null), next_due_at, uid).
 */
function sortKey(sort: ApplianceSort): { cols: Fragment; exprs: string[] } {
  const utc = (e: string) =>
    `coalesce(to_char(${e} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '-infinity')`;
  if (sort === "lastBeat") {
    return {
      cols: { strings: [`${utc("a.last_beat_at")} as k1, `], values: [] },
      exprs: ["coalesce(a.last_beat_at, '-infinity'::timestamptz)", "a.uid"],
    };
  }
  if (sort === "state") {
    return {
      cols: {
        strings: [`(a.revoked_at is not null) as k1, ${utc("a.next_due_at")} as k2, `],
        values: [],
      },
      exprs: ["(a.revoked_at is not null)", "a.next_due_at", "a.uid"],
    };
  }
  return { cols: frag``, exprs: ["a.hostname", "a.uid"] };
}

/** `(exprs) op (key…)` for a decoded cursor key of order `sort`. */
function keyCondition(
  sort: ApplianceSort,
  exprs: string[],
  op: ">" | "<",
  key: Array<string | boolean>,
): Fragment {
  const casts = sort === "hostname"
    ? ["", "::uuid"]
    // Sent as text: porsager/postgres would serialize a timestamptz parameter through Date,
    // which has no "-infinity".
    : sort === "lastBeat"
    ? ["::text::timestamptz", "::uuid"]
    : ["::text::boolean", "::text::timestamptz", "::uuid"];
  const strings = [`(${exprs.join(", ")}) ${op} (`];
  key.forEach((_, i) => strings.push(`${casts[i]}${i < key.length - 1 ? ", " : ")"}`));
  return { strings, values: key.map((k) => typeof k === "boolean" ? String(k) : k) };
}

/**
 * The sorted statement: a page (one more row than asked) of the matches of `f` in order `sort`
 * (`desc`: descending), after `after` or — reading backwards — before `before`, straight from
 * the order's index (the planner may instead gather a sparse filter's matches by its own index
 * and sort them). Rows come in reading order: reversed for `before`.
 */
function sortedQuery(
  tag: Tag,
  f: ApplianceListFilter,
  sort: ApplianceSort,
  desc: boolean,
  now: Date,
  graceS: number,
): Promise<KeyedRow[]> {
  const { cols, exprs } = sortKey(sort);
  const backwards = f.before !== undefined;
  // Reading backwards flips the direction of both the comparison and the order.
  const down = desc !== backwards;
  const at = f.before ?? f.cursor;
  const keyset = at === undefined ? [] : [
    keyCondition(
      sort,
      exprs,
      down ? "<" : ">",
      decodeSorted(sort, at, backwards ? "before" : "cursor"),
    ),
  ];
  const where = joined(
    [frag`true`, ...filterConditions(f, now, graceS), ...keyset],
    "\n      and ",
  );
  const dir = down ? " desc" : "";
  const order: Fragment = {
    strings: [`\n    order by ${exprs.map((e) => e + dir).join(", ")}\n    limit `, ""],
    values: [f.limit + 1],
  };
  return run<KeyedRow>(
    tag,
    joined([head(now, cols), frag`appliances a\n    where `, where, order], ""),
  );
}

/**
 * How many appliances `f` selects, counted exactly up to {@link countCap}: `capped` when there are
 * more (the count stops there, so it costs at most that many index entries).
 */
export async function countAppliances(
  db: Db,
  f: ApplianceListFilter,
  now: Date,
  graceS: number,
): Promise<{ count: number; capped: boolean }> {
  const where = joined([frag`true`, ...filterConditions(f, now, graceS)], "\n      and ");
  const rows = await db.begin(async (tx) => {
    await tx`set local plan_cache_mode = force_custom_plan`;
    return await run<{ n: number }>(
      tx,
      joined([
        frag`select count(*)::int as n from (select 1 from appliances a where `,
        where,
        frag` limit ${countCap + 1}) x`,
      ], ""),
    );
  });
  const n = rows[0]?.n ?? 0;
  return n > countCap ? { count: countCap, capped: true } : { count: n, capped: false };
}

/** The transaction's planner settings for the list's walk statement for `f`. */
async function plannerSettings(tx: Sql, f: ApplianceListFilter): Promise<void> {
  // Planned for the values given, never as a generic plan: a plan made for "any model, any
  // site, …" would be wrong for every one of them.
  await tx`set local plan_cache_mode = force_custom_plan`;
  if (joinsOrdered(f)) {
    // Two side tables joined on (host name, UID): PostgreSQL multiplies the two equalities'
    // selectivities, expects next to no rows, and would hash both whole and sort. Merged in
    // order instead, the join stops when the page is full and costs at worst one read of
    // both index ranges (40 ms for 10 % and 25 % of 1,000,000 with nothing in common).
    await tx`set local enable_hashjoin = off`;
    await tx`set local work_mem = '32MB'`;
  }
}

/** Options of {@link listAppliances}. */
export interface ListOptions {
  /**
   * Rows of the driving index a bounded walk examines before switching to the gather statement
   * ({@link defaultWalkCap}); tests set it tiny to take the switch on a small fleet.
   */
  walkCap?: number;
}

/**
 * The page's rows (one more than `f.limit` when there are more), by the walk, or — for a
 * bounded walk ({@link boundedWalk}) that did not fill the page — by a second bounded walk on
 * from the last match (when the matches found say it will fill within 2 × `cap` rows), else by
 * the gather statement.
 * `which` reports the statements run.
 */
async function pageRows(
  tx: Sql,
  f: ApplianceListFilter,
  now: Date,
  graceS: number,
  cap: number,
  which: Array<"walk" | "bounded walk" | "gather">,
): Promise<ApplianceRow[]> {
  await plannerSettings(tx, f);
  if (!boundedWalk(f)) {
    which.push("walk");
    return await walkQuery(tx, f, now, graceS);
  }
  // A walk in the driving index's order stops as soon as the page is full, which is quick
  // when the other conditions match often among the walked rows; when they match few or none
  // (a rare state or site among a facet's holders: 0 of 100,000), it would read every row of
  // the index past the cursor and each one's appliance. So the walk examines at most `cap`
  // rows; a page it fills is exact (the rows examined are the first in order). Otherwise the
  // gather statement answers, complete whatever the walk saw.
  which.push("bounded walk");
  const walked = await walkQuery(tx, f, now, graceS, cap);
  if (walked.length > f.limit) return walked;
  // Matches found, but too few: at the rate they were found, the page would fill within
  // another 2 × cap rows? Then walk on from the last one found (a walk of 3,500 rows is cheaper
  // than gathering 8,000 matches of a model and channel to check their tag).
  const last = walked[walked.length - 1];
  if (last && cap * (f.limit + 1 - walked.length) / walked.length <= 2 * cap) {
    which.push("bounded walk");
    const more = await walkQuery(
      tx,
      { ...f, cursor: encodeCursor(last), limit: f.limit - walked.length },
      now,
      graceS,
      2 * cap,
    );
    if (walked.length + more.length > f.limit) return [...walked, ...more];
  }
  which.push("gather");
  await tx`set local enable_hashjoin = on`;
  return await gatherQuery(tx, f, now, graceS);
}

/**
 * One page of the fleet list at `now` (states judged with a `graceS` grace),
 * ordered by host name then UID, after `f.cursor` when given. Throws a 400
 * {@link ApiError} (`invalid_query`) for a cursor this API did not make.
 */
export async function listAppliances(
  db: Db,
  f: ApplianceListFilter,
  now: Date,
  graceS: number,
  options: ListOptions = {},
): Promise<ApplianceListPage> {
  const cap = options.walkCap ?? defaultWalkCap;
  const sort: ApplianceSort = f.sort ?? "hostname";
  const desc = f.order === "desc";
  if (f.cursor !== undefined && f.before !== undefined) {
    throw new ApiError(400, "invalid_query", 'Give "cursor" (next page) or "before", not both');
  }
  const total = f.count === "true" ? await countAppliances(db, f, now, graceS) : undefined;
  const withTotal = (p: ApplianceListPage) => total === undefined ? p : { ...p, total };
  if (sort === "hostname" && !desc && f.before === undefined && f.outcome === undefined) {
    // Issue 18's statements: the host-name order walked from a side table, or gathered.
    const rows = await db.begin((tx) => pageRows(tx, f, now, graceS, cap, []));
    const page = rows.slice(0, f.limit);
    const first = page[0];
    const last = page[page.length - 1];
    return withTotal({
      rows: page,
      nextCursor: rows.length > f.limit && last ? encodeCursor(last) : null,
      prevCursor: f.cursor !== undefined && first ? encodeCursor(first) : null,
    });
  }
  const rows = await db.begin(async (tx) => {
    await tx`set local plan_cache_mode = force_custom_plan`;
    return await sortedQuery(tx, f, sort, desc, now, graceS);
  });
  const more = rows.length > f.limit;
  const page = rows.slice(0, f.limit);
  if (f.before !== undefined) page.reverse();
  const first = page[0];
  const last = page[page.length - 1];
  const backwards = f.before !== undefined;
  return withTotal({
    rows: page,
    nextCursor: last && (backwards || more) ? encodeSorted(sort, last) : null,
    prevCursor: first && (backwards ? more : f.cursor !== undefined)
      ? encodeSorted(sort, first)
      : null,
  });
}

/** Known values to filter by: sites, models, channels and tags, each sorted, at most `max`. */
export interface ApplianceFacets {
  sites: string[];
  models: string[];
  channels: string[];
  tags: string[];
  /** True for a kind with more than `max` values (only the first `max` are listed). */
  more: { sites: boolean; models: boolean; channels: boolean; tags: boolean };
}

/**
 * The distinct sites, models, channels (of appliances, retired records included) and tags, each
 * read as a skip scan of its index (appliances_site, _model, _channel; appliance_facet_hosts'
 * primary key for tags): one index probe per value, at most `max` + 1 per kind, however large
 * the fleet.
 */
export async function applianceFacets(db: Db, max = 200): Promise<ApplianceFacets> {
  const sql = db.sql;
  const n = max + 1;
  const [sites, models, channels, tags] = await Promise.all([
    sql<{ v: string }>`
      with recursive s(v, n) as (
        (select site, 1 from appliances where site is not null order by site limit 1)
        union all
        select (select site from appliances where site > s.v order by site limit 1), s.n + 1
        from s where s.v is not null and s.n < ${n})
      select v from s where v is not null`,
    sql<{ v: string }>`
      with recursive s(v, n) as (
        (select model, 1 from appliances order by model limit 1)
        union all
        select (select model from appliances where model > s.v order by model limit 1), s.n + 1
        from s where s.v is not null and s.n < ${n})
      select v from s where v is not null`,
    sql<{ v: string }>`
      with recursive s(v, n) as (
        (select channel, 1 from appliances order by channel limit 1)
        union all
        select (select channel from appliances where channel > s.v order by channel limit 1),
          s.n + 1
        from s where s.v is not null and s.n < ${n})
      select v from s where v is not null`,
    sql<{ v: string }>`
      with recursive s(v, n) as (
        (select facet, 1 from appliance_facet_hosts where facet > 't:' and facet < 't;'
          order by facet limit 1)
        union all
        select (select facet from appliance_facet_hosts
            where facet > s.v and facet < 't;' order by facet limit 1), s.n + 1
        from s where s.v is not null and s.n < ${n})
      select substr(v, 3) as v from s where v is not null`,
  ]);
  const cut = (rows: { v: string }[]) => rows.map((r) => r.v).slice(0, max);
  return {
    sites: cut(sites),
    models: cut(models),
    channels: cut(channels),
    tags: cut(tags),
    more: {
      sites: sites.length > max,
      models: models.length > max,
      channels: channels.length > max,
      tags: tags.length > max,
    },
  };
}

/**
 * The executed plans (`explain analyze`) of the list's statements for `query`
 * (raw query parameters, parsed as the route parses them), for the bench
 * and diagnosis: the walk's, or the bounded walk's and (when it did not fill
 * the page) the gather statement's after a line "then gather:".
 */
export async function explainApplianceList(
  db: Db,
  raw: Record<string, string>,
  now: Date,
  graceS: number,
  options: ListOptions = {},
): Promise<string> {
  const f = listAppliancesQuery.parse(raw);
  const cap = options.walkCap ?? defaultWalkCap;
  const which: Array<"walk" | "bounded walk" | "gather"> = [];
  const explainingIn = (tx: Sql): Tag => (strings, ...values) =>
    tx(
      Object.assign(["explain (analyze, buffers) " + strings[0], ...strings.slice(1)], {
        raw: ["explain (analyze, buffers) " + strings.raw[0], ...strings.raw.slice(1)],
      }) as unknown as TemplateStringsArray,
      ...values,
    );
  const text = (rows: unknown[]) =>
    (rows as Record<string, string>[]).map((r) => Object.values(r)[0]).join("\n");
  const sort: ApplianceSort = f.sort ?? "hostname";
  if (sort !== "hostname" || f.order === "desc" || f.before !== undefined || f.outcome) {
    // The sorted statement (and the count, with count=true).
    return await db.begin(async (tx) => {
      await tx`set local plan_cache_mode = force_custom_plan`;
      const plans = [
        text(await sortedQuery(explainingIn(tx), f, sort, f.order === "desc", now, graceS)),
      ];
      if (f.count === "true") {
        const where = joined([frag`true`, ...filterConditions(f, now, graceS)], " and ");
        plans.push(
          "count:",
          text(
            await run(
              explainingIn(tx),
              joined([
                frag`select count(*)::int as n from (select 1 from appliances a where `,
                where,
                frag` limit ${countCap + 1}) x`,
              ], ""),
            ),
          ),
        );
      }
      return plans.join("\n");
    });
  }
  await db.begin((tx) => pageRows(tx, f, now, graceS, cap, which));
  return await db.begin(async (tx) => {
    await plannerSettings(tx, f);
    const explaining = explainingIn(tx);
    if (which[0] === "walk") return text(await walkQuery(explaining, f, now, graceS));
    const plans = [text(await walkQuery(explaining, f, now, graceS, cap))];
    if (which.filter((w) => w === "bounded walk").length > 1) {
      plans.push("then walk on (2 × cap rows from the last match)");
    }
    if (which.includes("gather")) {
      await tx`set local enable_hashjoin = on`;
      plans.push("then gather:", text(await gatherQuery(explaining, f, now, graceS)));
    }
    return plans.join("\n");
  });
}
