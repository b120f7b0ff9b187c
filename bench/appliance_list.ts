/**
 * The appliance list at 1,000,000 appliances: every filter and search of
 * `GET /v1/admin/appliances` (alone and combined, dense and sparse, zero
 * matches, deep keyset pages) and the console's `/ui/appliances` page, timed
 * through the app (`app.request()`, the admin API's real routes and JSON) on
 * a fleet seeded by {@link seedFleet} — median of 5 after one warm-up run.
 * Target: every request under 200 ms.
 *
 * The ceiling (floor, rather) each row is compared with is measured in the
 * same run: the unfiltered first page (what any list costs at least), and a
 * full scan of the table (what a filter costs that no index serves).
 *
 *   TEST_DATABASE_URL=postgres://… deno run -A bench/appliance_list.ts [appliances] [--keep=schema]
 *
 * PostgreSQL only (a fresh schema, dropped at the end; with `--keep=NAME` the
 * schema NAME is seeded once and kept, for explaining plans by hand); without
 * TEST_DATABASE_URL the figures are NaN.
 *
 * @module
 */
import postgres from "postgres";
import { type Db, openPostgres } from "../noc/db/db.ts";
import { migrate } from "../noc/db/migrate.ts";
import { ManualClock } from "../noc/clock.ts";
import { testNoc } from "../tests/_harness.ts";
import { signIn } from "../tests/_console.ts";
import { defaultSettings } from "../noc/config.ts";
import { explainApplianceList } from "../noc/services/appliance_list.ts";
import { type Figure, figureTable, medianMs } from "./figure.ts";
import { type SeededFleet, seedFleet, seedNow } from "./appliance_list_seed.ts";

/** {@link medianMs} after one untimed call. */
const medianWarm = (runs: number, fn: () => Promise<unknown>) => medianMs(runs, fn, 1);

/** One list request of the bench: its query, and how many items it must return. */
interface ListCase {
  name: string;
  query: Record<string, string>;
  /** Items the page must hold (a check that the fast path answers the same). */
  expect?: (items: number) => boolean;
}

function cases(f: SeededFleet, uidOf: (i: number) => string): ListCase[] {
  const lone = f.loneVersionAt;
  const one = (n: number) => n === 1;
  const full = (n: number) => n === 100;
  return [
    { name: "first page, no filter", query: {}, expect: full },
    {
      name: "app + version, 60 % of the fleet",
      query: { app: "vscreen", version: "4.2.0" },
      expect: full,
    },
    { name: "app + version, 1 %", query: { app: "vscreen", version: "4.1.9" }, expect: full },
    {
      name: "app + version that one appliance runs",
      query: { app: "vscreen", version: "4.3.0-rc1" },
      expect: one,
    },
    { name: "version alone, one appliance", query: { version: "4.3.0-rc1" }, expect: one },
    {
      name: "app alone, 10 %, none among the first 166,000 host names",
      query: { app: "beta-tools" },
      expect: full,
    },
    {
      name: "app 10 % + tag 25 %, no appliance has both",
      query: { app: "beta-tools", tag: "pci" },
      expect: (n) => n === 0,
    },
    { name: "app 10 % + tag 25 % (5 %)", query: { app: "beta-tools", tag: "dmz" }, expect: full },
    {
      name: "app 10 % + state late 1 %, none has both",
      query: { app: "beta-tools", state: "late" },
      expect: (n) => n === 0,
    },
    {
      name: "app 10 % + state missing",
      query: { app: "beta-tools", state: "missing" },
    },
    {
      name: "app 10 % + state revoked",
      query: { app: "beta-tools", state: "revoked" },
    },
    {
      name: "search 17 % at the end + state late",
      query: { q: "webf", state: "late" },
    },
    {
      name: "app + version 60 % + tag 25 %",
      query: { app: "vscreen", version: "4.2.0", tag: "pci" },
      expect: full,
    },
    {
      name: "app + version nobody runs",
      query: { app: "vscreen", version: "9.9.9" },
      expect: (n) => n === 0,
    },
    { name: "model, 10 appliances", query: { model: "vs-9000" }, expect: (n) => n === 10 },
    { name: "model, 9 %", query: { model: "vs-100" }, expect: full },
    { name: "site, 200 appliances", query: { site: "site-1234" }, expect: full },
    { name: "channel canary, 1 %", query: { channel: "canary" }, expect: full },
    { name: "tag on 20 appliances", query: { tag: "lab" }, expect: (n) => n === 20 },
    { name: "tag, 25 %", query: { tag: "pci" }, expect: full },
    { name: "state revoked, 0.5 %", query: { state: "revoked" }, expect: full },
    { name: "state missing, 1.5 %", query: { state: "missing" }, expect: full },
    { name: "state late, 1 %", query: { state: "late" }, expect: full },
    { name: "state ok, 97 %", query: { state: "ok" }, expect: full },
    { name: "search: whole host name", query: { q: f.hostname(lone) }, expect: one },
    { name: "search: part of host names (0.3 %)", query: { q: "lhr-00" }, expect: full },
    { name: "search: role, 17 %", query: { q: "mail" }, expect: full },
    {
      name: "search: 17 %, all at the end of host-name order",
      query: { q: "webf" },
      expect: full,
    },
    { name: "search: UID", query: { q: uidOf(lone) }, expect: one },
    { name: "search: address", query: { q: f.address(lone) }, expect: one },
    { name: "search: no match", query: { q: "no-such-host" }, expect: (n) => n === 0 },
    { name: "search: two letters, no match", query: { q: "zq" }, expect: (n) => n === 0 },
    {
      name: "site + state missing",
      query: { site: "site-1234", state: "missing" },
      expect: (n) => n >= 1,
    },
    {
      name: "model + channel + tag",
      query: { model: "vs-100", channel: "beta", tag: "dmz" },
      expect: (n) => n >= 1,
    },
    {
      name: "app + version 1 % + site",
      query: { app: "vscreen", version: "4.1.9", site: "site-1001" },
      expect: (n) => n >= 1,
    },
    {
      name: "search + state missing",
      query: { q: "lhr", state: "missing" },
      expect: (n) => n >= 1,
    },
    { name: "page of 1,000, no filter", query: { limit: "1000" }, expect: (n) => n === 1000 },
  ];
}

/** The scan nodes of a plan, in order, on one line. */
function planSummary(plan: string): string {
  return plan.split("\n")
    .filter((l) =>
      /Scan|Join|Nested Loop|Sort|Limit|Append|Subquery|CTE|then gather/.test(l) &&
      !/Sort Key|Sort Method/.test(l)
    )
    .map((l) => l.replace(/^\s*(->\s*)?/, "").replace(/\s+\(cost=.*$/, ""))
    .join(" → ");
}

function nanFigures(note: string): Figure[] {
  return [{ name: "appliance list at 1,000,000", value: NaN, unit: "ms", note }];
}

/** Options for {@link applianceListScale}. */
export interface ApplianceListOptions {
  /** Appliances seeded (1,000,000 by default). */
  appliances?: number;
  /** Keep (and reuse, when already seeded) this schema instead of a fresh one. */
  keepSchema?: string;
}

/**
 * Seeds a fleet on PostgreSQL (TEST_DATABASE_URL) and times every filter and
 * search of the appliance list on it; returns the figures (NaN, with a note,
 * without TEST_DATABASE_URL).
 */
export async function applianceListScale(options: ApplianceListOptions = {}): Promise<Figure[]> {
  const n = options.appliances ?? 1_000_000;
  const url = Deno.env.get("TEST_DATABASE_URL");
  if (!url) {
    return nanFigures(
      "not measured: needs PostgreSQL (set TEST_DATABASE_URL); PGlite is not run at this size",
    );
  }
  const schema = options.keepSchema ??
    `bench_list_${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  let db: Db | null = null;
  const figures: Figure[] = [];
  const label = n.toLocaleString("en");
  try {
    await admin.unsafe(`create schema if not exists "${schema}"`);
    db = openPostgres(url, { schema, max: 4 });
    await migrate(db);
    const [have] = await db.sql<{ n: number }>`select count(*)::int as n from appliances`;
    let fleet: SeededFleet;
    const t = performance.now();
    if (have!.n === 0) {
      fleet = await seedFleet(db.sql, n, seedNow, defaultSettings.graceS);
      // The side tables too: statistics, and a visibility map for their index-only scans.
      await db.sql`vacuum analyze appliances`;
      await db.sql`vacuum analyze appliance_facet_hosts`;
      await db.sql`vacuum analyze appliance_names`;
    } else {
      fleet = await seedFleet(db.sql, 0, seedNow, defaultSettings.graceS);
      fleet = { ...fleet, n: have!.n, loneVersionAt: Math.max(1, Math.floor(have!.n * 0.424242)) };
    }
    const seedS = (performance.now() - t) / 1000;
    const [size] = await db.sql<{ size: string }>`
      select pg_size_pretty(pg_total_relation_size('appliances')) as size`;
    figures.push({
      name: `setup: seed ${label} appliances (one insert … select generate_series, then analyze)`,
      value: seedS,
      unit: "s",
      note: `table + indexes ${size!.size}; 8–9 components in each last report`,
    });
    const uidByHost = new Map<string, string>();
    const uidOf = (i: number) => uidByHost.get(fleet.hostname(i)) ?? "";
    for (
      const r of await db.sql<{ uid: string; hostname: string }>`
      select uid, hostname from appliances where hostname = ${fleet.hostname(fleet.loneVersionAt)}`
    ) uidByHost.set(r.hostname, r.uid);

    const noc = await testNoc(db, { clock: new ManualClock(seedNow) });
    const list = async (query: Record<string, string>) => {
      const r = await noc.admin("GET", `/v1/admin/appliances?${new URLSearchParams(query)}`);
      if (r.status !== 200) throw new Error(`list ${JSON.stringify(query)}: ${r.status}`);
      return r.body as { items: Array<{ hostname: string }>; nextCursor: string | null };
    };

    // Floors measured in this run: the cheapest page, and a scan no index serves.
    const floorMs = await medianWarm(5, () => list({}));
    const scanMs = await medianWarm(
      3,
      () => db!.sql`select count(*) from appliances where hostname || '' like '%no-such-host%'`,
    );
    figures.push({
      name: `ceiling: full scan of ${label} appliances (no index)`,
      value: scanMs,
      unit: "ms",
      note: "select count(*) with a predicate no index serves: what an unindexed filter costs",
    });
    for (const c of cases(fleet, uidOf)) {
      let items = NaN;
      const ms = await medianWarm(5, async () => {
        items = (await list(c.query)).items.length;
      });
      const plan = planSummary(
        await explainApplianceList(db, c.query, seedNow, defaultSettings.graceS),
      );
      const ok = c.expect ? c.expect(items) : true;
      figures.push({
        name: `list at ${label}: ${c.name}`,
        value: ms,
        unit: "ms",
        target: "< 200",
        met: ms < 200 && ok,
        note: `${new URLSearchParams(c.query)}; ${items} items${ok ? "" : " (WRONG count)"}; ` +
          `${(ms / floorMs).toFixed(1)}× the unfiltered first page, ${
            (100 * ms / scanMs).toFixed(0)
          } % of a full scan; plan: ${plan}`,
      });
    }

    // Keyset pages deep into the list: 50,000 appliances in (the 500th page of 100), and
    // 900,000 in.
    const cursorAt = async (offset: number) => {
      const [deep] = await db!.sql<{ hostname: string; uid: string }>`
        select hostname, uid from appliances order by hostname, uid offset ${offset} limit 1`;
      return btoa(JSON.stringify([deep!.hostname, deep!.uid]))
        .replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    };
    const at50k = await cursorAt(Math.floor(n * 0.05));
    const at900k = await cursorAt(Math.floor(n * 0.9));
    for (
      const [name, q, cursor, want] of [
        ["500th page, no filter", {}, at50k, 100],
        ["500th page of state ok", { state: "ok" }, at50k, 100],
        ["500th page of app + version 60 %", { app: "vscreen", version: "4.2.0" }, at50k, 100],
        ["500th page of app 10 %", { app: "beta-tools" }, at50k, 100],
        ["page after 900,000 of app 10 % (none there)", { app: "beta-tools" }, at900k, 0],
        ["page after 900,000 of tag 25 %", { tag: "pci" }, at900k, 100],
        [
          "page after 900,000 of app 10 % + tag 25 % (none there)",
          { app: "beta-tools", tag: "dmz" },
          at900k,
          0,
        ],
      ] as Array<[string, Record<string, string>, string, number]>
    ) {
      let items = NaN;
      const ms = await medianWarm(5, async () => {
        items = (await list({ ...q, cursor })).items.length;
      });
      figures.push({
        name: `list at ${label}: ${name} (keyset cursor)`,
        value: ms,
        unit: "ms",
        target: "< 200",
        met: ms < 200 && items === want,
        note: `${items} items; ${(ms / floorMs).toFixed(1)}× the unfiltered first page`,
      });
    }

    // The console's page reads through the same route (pages of 50).
    for (
      const [name, q] of [
        ["console /ui/appliances, app + version one appliance runs", {
          app: "vscreen",
          version: "4.3.0-rc1",
        }],
        ["console /ui/appliances, search part of host names", { q: "lhr-00" }],
      ] as Array<[string, Record<string, string>]>
    ) {
      const session = await signIn(noc);
      const ms = await medianWarm(5, async () => {
        const res = await session.get(`/ui/appliances?${new URLSearchParams(q)}`);
        if (res.status !== 200) throw new Error(`console ${res.status}`);
        await res.text();
      });
      figures.push({
        name: `${name} (${label})`,
        value: ms,
        unit: "ms",
        target: "< 200",
        met: ms < 200,
        note: `rendered through the app; ${(ms / floorMs).toFixed(1)}× the API's unfiltered page`,
      });
    }
    figures.splice(1, 0, {
      name: `floor: unfiltered first page of 100 (${label})`,
      value: floorMs,
      unit: "ms",
      note: "GET /v1/admin/appliances through the app; the ratios below are to this",
    });
    return figures;
  } finally {
    try {
      await db?.close();
    } finally {
      if (!options.keepSchema) await admin.unsafe(`drop schema if exists "${schema}" cascade`);
      await admin.end();
    }
  }
}

if (import.meta.main) {
  const keep = Deno.args.find((a) => a.startsWith("--keep="))?.slice(7);
  const count = Deno.args.find((a) => /^\d+$/.test(a));
  console.log(figureTable(
    await applianceListScale({
      ...(count ? { appliances: Number(count) } : {}),
      ...(keep ? { keepSchema: keep } : {}),
    }),
  ));
}
