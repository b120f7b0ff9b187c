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

/** A page of the list: its rows (at most `limit`) and the cursor of the next page, if any. */
export interface ApplianceListPage {
  rows: ApplianceRow[];
  nextCursor: string | null;
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
 * The conditions of the list's statement: one per filter given, each a predicate an index
 * serves — model, site, channel: indexes on (column, hostname, uid); app, version, tag: the
 * joins on `appliance_facet_hosts` (see query()); search: the trigram index (host name), the
 * address index and the primary key of `appliance_names`; states: the due-time, missing and
 * revoked indexes. With no `or … is null` around them, the planner reads either the matches
 * (sparse filters) or a host-name order until the page is full (dense ones).
 */
function conditions(f: ApplianceListFilter, now: Date, graceS: number): Fragment[] {
  const cutoff = new Date(now.getTime() - graceS * 1000);
  const where: Fragment[] = [];
  const retired = f.retired ?? "exclude";
  if (retired === "exclude") where.push(frag`a.superseded_by is null`);
  if (retired === "only") where.push(frag`a.superseded_by is not null`);
  if (f.model !== undefined) where.push(frag`a.model = ${f.model}`);
  if (f.site !== undefined) where.push(frag`a.site = ${f.site}`);
  if (f.channel !== undefined) where.push(frag`a.channel = ${f.channel}`);
  if (f.q !== undefined) {
    // appliance_names is joined (see query()): host name, address or UID.
    const like = `%${f.q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
    const byUid = uuidPattern.test(f.q) ? frag` or s.uid = ${f.q.toLowerCase()}::uuid` : frag``;
    where.push(joined([
      frag`(s.search like lower(${like}) or s.address = ${f.q}`,
      byUid,
      frag`)`,
    ], ""));
  }
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
  if (f.cursor) {
    // On the table whose order the statement follows (see query()): its index starts there.
    const [afterHost, afterUid] = decodeCursor(f.cursor);
    const t = driver(f);
    where.push(
      t === "s"
        ? frag`(s.hostname, s.uid) > (${afterHost}, ${afterUid}::uuid)`
        : t === "f0"
        ? frag`(f0.hostname, f0.uid) > (${afterHost}, ${afterUid}::uuid)`
        : frag`(a.hostname, a.uid) > (${afterHost}, ${afterUid}::uuid)`,
    );
  }
  return where;
}

/** The list's statement for `f`: a page (one more row than `f.limit`) in host-name order. */
function query(tag: Tag, f: ApplianceListFilter, now: Date, graceS: number) {
  const head = frag`
    select a.uid, a.hostname, a.model, a.site, a.channel, a.tags, a.interval_s, a.agent_version,
      a.enrolled_at, a.last_beat_at, a.last_seq, a.last_address, a.next_due_at, a.missing_since,
      a.revoked_at, a.revoked_reason, a.superseded_by, a.supersedes,
      (select jsonb_build_object('id', m.id, 'endsAt', m.ends_at, 'reason', m.reason)
         from maintenance_windows m
         where (m.uid = a.uid or m.site = a.site) and m.starts_at <= ${now} and m.ends_at > ${now}
         order by m.ends_at desc limit 1) as maintenance
    from `;
  // The statement follows the host-name order of one table (driver()): a search reads
  // appliance_names, a facet filter appliance_facet_hosts (each holds the host names in the same
  // order, kept by migration 014's triggers), anything else appliances. A facet's rows, read in
  // order from the cursor, stop when the page is full however the facet's holders are spread
  // over host-name order; a second facet (app or version, and tag) or a search with a facet is
  // joined on (host name, UID) — a merge of two ordered index scans, see listAppliances().
  const facets = facetsOf(f);
  const t = driver(f);
  const joins: Fragment[] = t === "s"
    ? [frag`appliance_names s join appliances a on a.uid = s.uid`]
    : t === "f0"
    ? [
      frag`appliance_facet_hosts f0 join appliances a on a.uid = f0.uid and f0.facet = ${facets[
        0
      ]!}`,
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
  return run<ApplianceRow>(tag, joined([head, from, where, tail], ""));
}

/** The transaction's planner settings for the list's statement for `f`. */
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
): Promise<ApplianceListPage> {
  const rows = await db.begin(async (tx) => {
    await plannerSettings(tx, f);
    return await query(tx, f, now, graceS);
  });
  const page = rows.slice(0, f.limit);
  const last = page[page.length - 1];
  return { rows: page, nextCursor: rows.length > f.limit && last ? encodeCursor(last) : null };
}

/**
 * The executed plan (`explain analyze`) of the list's statement for `query`
 * (raw query parameters, parsed as the route parses them), for the bench
 * and diagnosis.
 */
export async function explainApplianceList(
  db: Db,
  raw: Record<string, string>,
  now: Date,
  graceS: number,
): Promise<string> {
  const f = listAppliancesQuery.parse(raw);
  return await db.begin(async (tx) => {
    await plannerSettings(tx, f);
    const explaining: Tag = (strings, ...values) =>
      tx(
        Object.assign(["explain (analyze, buffers) " + strings[0], ...strings.slice(1)], {
          raw: ["explain (analyze, buffers) " + strings.raw[0], ...strings.raw.slice(1)],
        }) as unknown as TemplateStringsArray,
        ...values,
      );
    const rows = await query(explaining, f, now, graceS) as unknown as Record<string, string>[];
    return rows.map((r) => Object.values(r)[0]).join("\n");
  });
}
