/**
 * The missed-heartbeat sweep over a big fleet: 1,000,000 appliances are
 * seeded in one `insert … select … from generate_series(…)` — 1 % of them
 * overdue past the grace period, 99 % not yet due — then {@link sweep} runs
 * with a manual clock and a notifier that queues its notices in the outbox
 * but never sends them: first at a time when nothing is overdue yet (a fresh
 * set), then with the 1 % overdue, then once more right after (nothing newly
 * overdue). Each sweep's wall time is measured, and the rows it touched are
 * read from its result, from count queries and from the cumulative
 * statistics (`pg_stat_user_tables`, flushed by closing the sweep's
 * connections).
 *
 *   TEST_DATABASE_URL=postgres://… deno run -A bench/sweep_scale.ts [appliances]
 *
 * PostgreSQL only (a fresh schema, dropped at the end); without
 * TEST_DATABASE_URL the figures are NaN.
 *
 * @module
 */
import postgres from "postgres";
import { type Db, openPostgres } from "../noc/db/db.ts";
import { migrate } from "../noc/db/migrate.ts";
import { ManualClock } from "../noc/clock.ts";
import { memoryLogger } from "../protocol/util/log.ts";
import { createNotifier } from "../noc/services/notifier.ts";
import { explainSweep, sweep, type SweepResult } from "../noc/jobs/status_daemon.ts";
import { defaultSettings } from "../noc/config.ts";
import { createNocInstance } from "../noc/services/noc_instance.ts";
import { type Figure, figureTable } from "./figure.ts";

/** Options for {@link sweepScale}. */
export interface SweepScaleOptions {
  /** Appliances seeded (1,000,000 by default); every 100th is overdue. */
  appliances?: number;
}

/** Cumulative per-table counters, as `pg_stat_user_tables` shows them. */
interface TableStats {
  ins: number;
  upd: number;
  hotUpd: number;
  seqScan: number;
  idxScan: number;
}

/** The counters of one moment: per table, and index entries read from `appliances_due`. */
interface Snapshot {
  tables: Map<string, TableStats>;
  dueIndexRead: number;
  dueIndexScans: number;
}

/** What one measured sweep did. */
interface SweepRun {
  wallMs: number;
  result: SweepResult;
  delta: Snapshot | null;
}

const graceS = defaultSettings.graceS;
const interval = defaultSettings.reportIntervalS;

type Admin = ReturnType<typeof postgres>;

async function snapshot(admin: Admin, schema: string): Promise<Snapshot> {
  const tables = await admin<
    {
      relname: string;
      n_tup_ins: string;
      n_tup_upd: string;
      n_tup_hot_upd: string;
      seq_scan: string;
      idx_scan: string | null;
    }[]
  >`select relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, seq_scan, idx_scan
    from pg_stat_user_tables where schemaname = ${schema}`;
  const [due] = await admin<{ idx_tup_read: string; idx_scan: string }[]>`
    select idx_tup_read, idx_scan from pg_stat_user_indexes
    where schemaname = ${schema} and indexrelname = 'appliances_due'`;
  return {
    tables: new Map(tables.map((t) => [t.relname, {
      ins: Number(t.n_tup_ins),
      upd: Number(t.n_tup_upd),
      hotUpd: Number(t.n_tup_hot_upd),
      seqScan: Number(t.seq_scan),
      idxScan: Number(t.idx_scan ?? 0),
    }])),
    dueIndexRead: Number(due?.idx_tup_read ?? NaN),
    dueIndexScans: Number(due?.idx_scan ?? NaN),
  };
}

function same(a: Snapshot, b: Snapshot): boolean {
  return JSON.stringify([...a.tables]) === JSON.stringify([...b.tables]) &&
    a.dueIndexRead === b.dueIndexRead && a.dueIndexScans === b.dueIndexScans;
}

/**
 * The counters once every closed connection has flushed its statistics (a
 * backend flushes on exit): read until two reads 150 ms apart agree, at most
 * 5 s; null when they never settle.
 */
async function settled(admin: Admin, schema: string): Promise<Snapshot | null> {
  let last = await snapshot(admin, schema);
  for (let i = 0; i < 33; i++) {
    await new Promise((r) => setTimeout(r, 150));
    const next = await snapshot(admin, schema);
    if (same(last, next)) return next;
    last = next;
  }
  return null;
}

function diff(after: Snapshot, before: Snapshot): Snapshot {
  const tables = new Map<string, TableStats>();
  for (const [name, a] of after.tables) {
    const b = before.tables.get(name) ?? { ins: 0, upd: 0, hotUpd: 0, seqScan: 0, idxScan: 0 };
    tables.set(name, {
      ins: a.ins - b.ins,
      upd: a.upd - b.upd,
      hotUpd: a.hotUpd - b.hotUpd,
      seqScan: a.seqScan - b.seqScan,
      idxScan: a.idxScan - b.idxScan,
    });
  }
  return {
    tables,
    dueIndexRead: after.dueIndexRead - before.dueIndexRead,
    dueIndexScans: after.dueIndexScans - before.dueIndexScans,
  };
}

const zero: TableStats = { ins: NaN, upd: NaN, hotUpd: NaN, seqScan: NaN, idxScan: NaN };
const stat = (d: Snapshot | null, table: string): TableStats => d?.tables.get(table) ?? zero;

/**
 * Runs one sweep at `at` on connections of its own (opened and warmed up
 * before, closed after, so their statistics are flushed), timing it.
 */
async function measuredSweep(
  url: string,
  schema: string,
  admin: Admin,
  at: Date,
): Promise<SweepRun> {
  const before = await settled(admin, schema);
  const db = openPostgres(url, { schema, max: 2 });
  let run: { wallMs: number; result: SweepResult };
  try {
    await db.sql`select 1`;
    const clock = new ManualClock(at);
    const notifier = await createNotifier({
      db,
      clock,
      log: memoryLogger(),
      webhooks: [],
      autoDeliver: false,
    });
    const t = performance.now();
    const result = await sweep({
      db,
      clock,
      notifier,
      graceS,
      settings: defaultSettings,
      checkins: { instance: createNocInstance() },
    });
    run = { wallMs: performance.now() - t, result };
  } finally {
    await db.close();
  }
  const after = await settled(admin, schema);
  return { ...run, delta: before && after ? diff(after, before) : null };
}

function touched(r: SweepRun): string {
  const d = r.delta;
  if (!d) return "pg_stat_user_tables did not settle: row counts from the sweep's result only";
  const a = stat(d, "appliances"), al = stat(d, "alerts");
  const n = stat(d, "notices"), nd = stat(d, "notice_deliveries");
  return `pg_stat deltas: appliances ${a.upd} updated (${a.hotUpd} HOT), alerts ${al.ins} ` +
    `inserted, notices ${n.ins}, notice_deliveries ${nd.ins}; appliances_due: ` +
    `${d.dueIndexScans} scans, ${d.dueIndexRead} entries read; appliances seq scans ${a.seqScan}`;
}

/** The scan nodes of a plan, in order, on one line. */
function planSummary(plan: string): string {
  return plan.split("\n")
    .filter((l) => /Scan|Limit|LockRows|Update|Join|Anti/.test(l))
    .map((l) => l.replace(/^\s*(->\s*)?/, "").replace(/\s+\(cost=.*$/, ""))
    .join(" → ");
}

function nanFigures(note: string, n: number): Figure[] {
  return [
    { name: `setup: seed ${n.toLocaleString("en")} appliances`, value: NaN, unit: "s", note },
    { name: "sweep, 0 % overdue (fresh set)", value: NaN, unit: "ms", note },
    {
      name: "sweep, 1 % overdue: wall time",
      value: NaN,
      unit: "ms",
      note,
      target: "< 1000",
      met: false,
    },
    { name: "sweep, 1 % overdue: appliance rows updated", value: NaN, unit: "rows", note },
    { name: "sweep, 1 % overdue: alerts raised", value: NaN, unit: "rows", note },
    { name: "sweep right after, 0 % newly overdue: wall time", value: NaN, unit: "ms", note },
    { name: "sweep right after: rows touched", value: NaN, unit: "rows", note },
  ];
}

/**
 * Seeds `appliances` (1,000,000 by default) appliances on PostgreSQL
 * (TEST_DATABASE_URL, in a fresh schema dropped at the end), 1 % of them
 * overdue, and measures the missed-heartbeat sweep over them; returns the
 * figures (NaN, with a note, without TEST_DATABASE_URL).
 */
export async function sweepScale(options: SweepScaleOptions = {}): Promise<Figure[]> {
  const n = options.appliances ?? 1_000_000;
  const url = Deno.env.get("TEST_DATABASE_URL");
  if (!url) {
    return nanFigures(
      "not measured: needs PostgreSQL (set TEST_DATABASE_URL); PGlite is not run at this size",
      n,
    );
  }
  const schema = `bench_sweep_${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  let db: Db | null = null;
  const figures: Figure[] = [];
  const label = n.toLocaleString("en");
  try {
    await admin.unsafe(`create schema "${schema}"`);
    db = openPostgres(url, { schema, max: 2 });
    await migrate(db);
    const now = new ManualClock().now();
    const cutoff = new Date(now.getTime() - graceS * 1000);

    // Every 100th appliance was due 1–600 s before the grace ran out; the others are due 1–899 s from now.
    let t = performance.now();
    await db.sql`
      insert into appliances (uid, model, hostname, site, channel, sign_key, enc_key, interval_s,
        enrolled_at, last_beat_at, next_due_at)
      select gen_random_uuid(), 'vs-' || (i % 4), 'gw-' || lpad(i::text, 7, '0'),
        'site-' || (i % 2000), 'stable', 'k' || i, 'e' || i, ${interval}::int,
        ${now}::timestamptz - interval '30 days', d.due - make_interval(secs => ${interval}::int), d.due
      from generate_series(1, ${n}::int) i
      cross join lateral (select case when i % 100 = 0
        then ${cutoff}::timestamptz - make_interval(secs => 1 + i % 600)
        else ${now}::timestamptz + make_interval(secs => 1 + i % 899) end as due) d`;
    const insertS = (performance.now() - t) / 1000;
    t = performance.now();
    await db.sql`analyze appliances`;
    const analyzeS = (performance.now() - t) / 1000;
    // So that autovacuum does not start on the freshly loaded table in the middle of a sweep.
    t = performance.now();
    await db.sql`vacuum appliances`;
    const vacuumS = (performance.now() - t) / 1000;
    const [seeded] = await db.sql<{ total: number; overdue: number; size: string }>`
      select count(*)::int as total,
        count(*) filter (where next_due_at <= ${cutoff})::int as overdue,
        pg_size_pretty(pg_total_relation_size('appliances')) as size
      from appliances`;
    const overdue = seeded!.overdue;
    figures.push({
      name: `setup: seed ${label} appliances (one insert … select generate_series)`,
      value: insertS,
      unit: "s",
      note: `${seeded!.total} rows, ${overdue} overdue past the ${graceS} s grace, the rest not ` +
        `yet due; table + indexes ${seeded!.size}; then analyze ${analyzeS.toFixed(1)} s, ` +
        `vacuum ${vacuumS.toFixed(1)} s`,
    });
    const plan = planSummary(await db.begin((tx) => explainSweep(tx, now, cutoff)));
    await db.close();
    db = null;

    // (c) A fresh set where nothing is overdue yet: 1,000 s earlier, every due time is ahead of the cutoff.
    const none = await measuredSweep(url, schema, admin, new Date(now.getTime() - 1000_000));
    figures.push({
      name: `sweep, 0 % overdue (fresh set of ${label})`,
      value: none.wallMs,
      unit: "ms",
      note: `clock 1,000 s before the others, so nothing is past due + grace; alerted ` +
        `${none.result.alerted.length}, notices ${none.result.notices}; ${touched(none)}`,
    });

    // (a) The 1 % overdue.
    const missed = await measuredSweep(url, schema, admin, now);
    // Counted on a connection of its own, closed at once: its statistics are flushed before (b).
    const counter = openPostgres(url, { schema, max: 1 });
    const [after] = await counter.sql<{ alerts: number; missing: number; notices: number }>`
      select (select count(*)::int from alerts) as alerts,
        (select count(*)::int from appliances where missing_since is not null) as missing,
        (select count(*)::int from notices) as notices`.finally(() => counter.close());
    const a = stat(missed.delta, "appliances");
    const al = stat(missed.delta, "alerts");
    figures.push({
      name: `sweep, 1 % overdue (${overdue} of ${label}): wall time`,
      value: missed.wallMs,
      unit: "ms",
      note: `sweep's own durationMs ${missed.result.durationMs.toFixed(1)}; batches of ≤ 1,000, ` +
        `one transaction each (appliances_due scanned ${
          missed.delta?.dueIndexScans ?? "?"
        } times); plan (explainSweep): ${plan}`,
      target: "< 1000",
      met: missed.wallMs < 1000,
    });
    figures.push({
      name: "sweep, 1 % overdue: appliance rows updated",
      value: missed.delta ? a.upd : missed.result.alerted.length,
      unit: "rows",
      note: `${missed.delta ? "n_tup_upd delta" : "from the result"}; sweep result: ` +
        `${missed.result.alerted.length} alerted; ${after!.missing} appliances now missing ` +
        `(expected ${overdue}); ${touched(missed)}`,
    });
    figures.push({
      name: "sweep, 1 % overdue: alerts raised",
      value: missed.delta ? al.ins : after!.alerts,
      unit: "rows",
      note: `${missed.delta ? "n_tup_ins delta" : "count(*)"}; count(*) alerts ${after!.alerts}; ` +
        `notices ${after!.notices} (sweep says ${missed.result.notices}: one digest per batch)`,
    });

    // (b) Right after, a minute later: nobody newly overdue.
    const again = await measuredSweep(url, schema, admin, new Date(now.getTime() + 60_000));
    const aa = stat(again.delta, "appliances");
    const rows = again.delta
      ? aa.upd + stat(again.delta, "alerts").ins + stat(again.delta, "notices").ins +
        stat(again.delta, "notice_deliveries").ins
      : again.result.alerted.length + again.result.recovered.length;
    figures.push({
      name: "sweep right after, 0 % newly overdue: wall time",
      value: again.wallMs,
      unit: "ms",
      note: `clock +60 s; alerted ${again.result.alerted.length}, recovered ` +
        `${again.result.recovered.length}, notices ${again.result.notices}`,
    });
    figures.push({
      name: "sweep right after: rows touched",
      value: rows,
      unit: "rows",
      note: `${again.delta ? "inserted + updated, pg_stat deltas" : "from the result"}; ${
        touched(again)
      }`,
    });
    return figures;
  } finally {
    try {
      await db?.close();
    } finally {
      await admin.unsafe(`drop schema if exists "${schema}" cascade`);
      await admin.end();
    }
  }
}

if (import.meta.main) {
  const arg = Deno.args[0];
  console.log(figureTable(await sweepScale(arg ? { appliances: Number(arg) } : {})));
}
