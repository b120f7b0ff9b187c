/**
 * Metrics in the Prometheus text format (version 0.0.4): counters and
 * histograms this instance counted since it started, and gauges read from the
 * database at scrape time, which every instance agrees on.
 *
 * @module
 */
import type { Db } from "../db/db.ts";
import { fleetCounts } from "./appliances.ts";
import { type Admission, admissionClasses, shedReasons } from "./admission.ts";

type Labels = Record<string, string>;

/** Latency buckets, seconds. */
const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Series {
  help: string;
  type: "counter" | "histogram";
  values: Map<string, { labels: Labels; value: number; buckets?: number[]; sum?: number }>;
}

/** This instance's metrics. */
export interface Metrics {
  /** Adds `by` (1) to counter `name` with `labels`. */
  inc(name: CounterName, labels?: Labels, by?: number): void;
  /** Records an observation of `seconds` in histogram `name`. */
  observe(name: HistogramName, labels: Labels, seconds: number): void;
  /**
   * The text exposition, with the database gauges read now (`graceS`: late until missing) and,
   * given `admission`, its gauges by class.
   */
  render(db: Db, now: Date, graceS: number, admission?: Admission): Promise<string>;
}

const counters = {
  noc_beats_total: "SecureBeats accepted",
  noc_catalogs_total: "Catalog answers, by status (200 or 304)",
  noc_downloads_total: "Component downloads started, by kind",
  noc_download_bytes_total: "Component bytes sent (as announced by Content-Length), by kind",
  noc_notice_deliveries_total: "Notice deliveries, by outcome (delivered, failed or abandoned)",
  noc_sweeps_total: "Status daemon passes",
  noc_alerts_raised_total: "Missed-heartbeat alerts raised by this instance's sweeps",
  noc_identity_refusals_total: "Refused appliance identities (bad token or signature)",
  noc_log_lines_dropped_total: "Log lines dropped because the log's reader fell behind",
  noc_shed_total:
    "Requests answered 503 overloaded without being processed, by class and reason (queue_full, " +
    "expected_wait, queue_timeout, client_gone, address_busy)",
  noc_finished_client_gone_total:
    "Requests processed to the end although their client had gone meanwhile (timed out or " +
    "disconnected while the handler ran), by class",
  noc_audit_failures_total:
    "Audit log writes that failed, by stage (before a change: refused 503; after: outcome unknown)",
} as const;

const histograms = {
  noc_http_request_duration_seconds: "HTTP request latency, by method, route and status class",
  noc_sweep_duration_seconds: "Status daemon pass duration",
  noc_queue_wait_seconds:
    "Time a request waited in its class's queue for admission (0 for one admitted at once), by " +
    "class; one shed at once (queue full, address busy) is not counted",
} as const;

/** A counter's name. */
export type CounterName = keyof typeof counters;
/** A histogram's name. */
export type HistogramName = keyof typeof histograms;

const key = (labels: Labels) =>
  Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`)
    .join(",");

/** Escapes a label value for the text format. */
function esc(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function labelText(labels: Labels, extra: Labels = {}): string {
  const all = { ...labels, ...extra };
  const parts = Object.entries(all).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** Creates an empty registry. */
export function createMetrics(): Metrics {
  const series = new Map<string, Series>();
  for (const [name, help] of Object.entries(counters)) {
    series.set(name, { help, type: "counter", values: new Map() });
  }
  for (const [name, help] of Object.entries(histograms)) {
    series.set(name, { help, type: "histogram", values: new Map() });
  }
  // The overload counters are shown at 0 from the start: an alert rule on them sees 0, not "no
  // data", until something is shed.
  for (const cls of admissionClasses) {
    for (const reason of shedReasons) {
      const labels = { class: cls, reason };
      series.get("noc_shed_total")!.values.set(key(labels), { labels, value: 0 });
    }
    const labels = { class: cls };
    series.get("noc_finished_client_gone_total")!.values.set(key(labels), { labels, value: 0 });
    series.get("noc_queue_wait_seconds")!.values.set(key(labels), {
      labels,
      value: 0,
      sum: 0,
      buckets: latencyBuckets.map(() => 0),
    });
  }
  return {
    inc(name, labels = {}, by = 1) {
      const s = series.get(name)!;
      const k = key(labels);
      const v = s.values.get(k) ?? { labels, value: 0 };
      v.value += by;
      s.values.set(k, v);
    },
    observe(name, labels, seconds) {
      const s = series.get(name)!;
      const k = key(labels);
      const v = s.values.get(k) ??
        { labels, value: 0, sum: 0, buckets: latencyBuckets.map(() => 0) };
      v.value += 1;
      v.sum! += seconds;
      latencyBuckets.forEach((b, i) => {
        if (seconds <= b) v.buckets![i]!++;
      });
      s.values.set(k, v);
    },
    async render(db, now, graceS, admission) {
      const lines: string[] = [];
      for (const [name, s] of series) {
        lines.push(`# HELP ${name} ${s.help}`, `# TYPE ${name} ${s.type}`);
        for (const v of s.values.values()) {
          if (s.type === "counter") {
            lines.push(`${name}${labelText(v.labels)} ${v.value}`);
            continue;
          }
          latencyBuckets.forEach((b, i) => {
            lines.push(`${name}_bucket${labelText(v.labels, { le: String(b) })} ${v.buckets![i]}`);
          });
          lines.push(`${name}_bucket${labelText(v.labels, { le: "+Inf" })} ${v.value}`);
          lines.push(`${name}_sum${labelText(v.labels)} ${v.sum}`);
          lines.push(`${name}_count${labelText(v.labels)} ${v.value}`);
        }
      }
      lines.push(...processGauges());
      if (admission) lines.push(...admissionGauges(admission));
      lines.push(...await databaseGauges(db, now, graceS));
      return lines.join("\n") + "\n";
    },
  };
}

/** Admission control's state by class, read at scrape time (noc/services/admission.ts). */
function admissionGauges(admission: Admission): string[] {
  const load = admission.load();
  const pace = admission.pace();
  const byClass = (
    name: string,
    help: string,
    value: (c: typeof admissionClasses[number]) => number,
  ) => [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} gauge`,
    ...admissionClasses.map((c) => `${name}{class="${c}"} ${value(c)}`),
  ];
  return [
    ...byClass(
      "noc_admission_in_flight",
      "Requests holding an admission slot, by class",
      (c) => load[c].inFlight,
    ),
    ...byClass(
      "noc_admission_queued",
      "Requests waiting for an admission slot, by class",
      (c) => load[c].queued,
    ),
    ...byClass(
      "noc_admission_queue_limit",
      "The most requests a class's queue holds now: its bound (NOC_MAX_QUEUE's share), or fewer " +
        "when its slots are not expected to start more within half of NOC_MAX_QUEUE_WAIT_MS",
      (c) => pace[c].queueLimit,
    ),
    ...byClass(
      "noc_admission_service_seconds",
      "Median of how long the class's latest 64 requests held their slot (0: none measured yet)",
      (c) => (pace[c].serviceMs ?? 0) / 1000,
    ),
  ];
}

/** One unlabelled gauge in the text format. */
function gauge(name: string, help: string, value: number): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`];
}

/** This process's memory, read at scrape time (a soak watches these). */
function processGauges(): string[] {
  const m = Deno.memoryUsage();
  return [
    ...gauge("process_resident_memory_bytes", "Resident memory of this NOC process.", m.rss),
    ...gauge("noc_js_heap_used_bytes", "JavaScript heap in use in this NOC process.", m.heapUsed),
    ...gauge(
      "noc_js_heap_total_bytes",
      "JavaScript heap reserved by this NOC process.",
      m.heapTotal,
    ),
    ...gauge(
      "noc_external_bytes",
      "Memory held outside the JavaScript heap (buffers, WebAssembly).",
      m.external,
    ),
  ];
}

async function databaseGauges(db: Db, now: Date, graceS: number): Promise<string[]> {
  const f = await fleetCounts(db, now, graceS);
  const [alerts] = await db.sql<{ open: number }>`
    select count(*)::int as open from alerts where resolved_at is null`;
  const [outbox] = await db.sql<{ pending: number; failing: number }>`
    select count(*) filter (where delivered_at is null)::int as pending,
      count(*) filter (where delivered_at is null and attempts > 0)::int as failing
    from notice_deliveries`;
  return [
    "# HELP noc_appliances Appliances by state",
    "# TYPE noc_appliances gauge",
    ...(["ok", "late", "missing", "revoked"] as const).map((s) =>
      `noc_appliances{state="${s}"} ${f[s]}`
    ),
    ...gauge(
      "noc_appliances_overdue",
      "Appliances past their due time (late or missing)",
      f.late + f.missing,
    ),
    ...gauge("noc_alerts_open", "Open alerts", alerts?.open ?? 0),
    ...gauge(
      "noc_notice_deliveries_pending",
      "Notice deliveries not yet accepted by their target",
      outbox?.pending ?? 0,
    ),
    ...gauge(
      "noc_notice_deliveries_failing",
      "Pending notice deliveries that failed at least once",
      outbox?.failing ?? 0,
    ),
  ];
}
