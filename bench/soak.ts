/**
 * `deno task soak`: the fleet simulator against one NOC on PostgreSQL for a
 * long run (1,000 cycles per second for 30 minutes by default), sampling the
 * NOC process's resident memory every 10 seconds; prints the figures: cycles
 * per second, errors, latency percentiles, the slowest cycle, memory at the
 * start, the end and its peak, and each second in which cycles were slow or
 * failed, beside the NOC's sweeps (and, with `--trace-gc`, its garbage
 * collections of 20 ms or more) around it. Not part of CI.
 *
 *   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test deno task soak -- [--rate 1000] [--minutes 30] [--appliances 10000] [--trace-gc]
 *
 * @module
 */
import { simulate, simulationNoc, type Stall } from "./simulate.ts";
import { rssMiB } from "./figure.ts";

function flag(name: string, dflt: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
}

if (!Deno.env.get("TEST_DATABASE_URL")) {
  console.error("The soak runs on PostgreSQL: set TEST_DATABASE_URL (see the README).");
  Deno.exit(64);
}
const rate = flag("rate", 1000),
  minutes = flag("minutes", 30),
  appliances = flag("appliances", 10_000);
const traceGc = Deno.args.includes("--trace-gc");
const nocBorn = Date.now();
// Kept from the NOC's output: errors, its sweep lines, and (traced) collections pausing ≥ 20 ms.
const gcPause =
  /^\[\d+:0x[0-9a-f]+\]\s+(\d+) ms: ([^\d]+?) [\d.]+ \([^,]*, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ ([\d.]+) ms/;
const noc = await simulationNoc(
  {},
  traceGc ? ["--v8-flags=--trace-gc"] : [],
  undefined,
  (line) => {
    if (line.includes('"event":"sweep"')) return true;
    if (line.includes('"event":"request"')) return Number(/"ms":([\d.]+)/.exec(line)?.[1]) >= 100;
    const gc = gcPause.exec(line);
    if (gc) return Number(gc[3]) >= 20;
    return !line.includes('"level":"info"');
  },
);
const rss = () => rssMiB(noc.pid);
const samples: Array<{ s: number; mib: number; heap: number; fds: number }> = [];
// The NOC's open files and sockets (its connections from the simulator among them).
const openFds = async () => {
  let n = 0;
  for await (const _ of Deno.readDir(`/proc/${noc.pid}/fd`)) n++;
  return n;
};
// The NOC's JavaScript heap in use, from its /metrics (tells a leak from a heap that grew and stays).
const heapMiB = async () => {
  const res = await fetch(`${noc.url}/metrics`, {
    headers: { authorization: `Bearer ${noc.token}` },
  });
  const m = /^noc_js_heap_used_bytes (\d+)/m.exec(await res.text());
  return m ? Number(m[1]) / 2 ** 20 : NaN;
};
// Warm-up, not counted: one cycle of every appliance, 128 at a time as fast as they go, so every
// first catalog is built and signed before the measured run. (A warm-up at the soak's rate that
// skipped cycles finding 256 in flight left thousands of first catalogs to the measured run; the
// NOC then fell behind for as long as the backlog lasted in one 1-minute try: 1,560 overruns,
// cycles of up to 12 s.)
const warm = await simulate({
  appliances,
  rate: 0,
  concurrency: 128,
  onePass: true,
  durationS: 600,
  nocs: [noc.url],
  adminToken: noc.token,
  log: (l) => console.error(l),
});
const warmLine = `  warm-up (not counted): ${warm.cycles} cycles in ${
  warm.durationS.toFixed(1)
} s (one cycle of each appliance, 128 in flight); ${warm.errors} errors ${
  JSON.stringify(warm.errorKinds)
}`;
const started = performance.now();
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    samples.push({
      s: (performance.now() - started) / 1000,
      mib: await rss().catch(() => 0),
      heap: await heapMiB().catch(() => NaN),
      fds: await openFds().catch(() => NaN),
    });
    await new Promise((r) => setTimeout(r, 10_000));
  }
})();
try {
  const r = await simulate({
    appliances,
    rate,
    durationS: minutes * 60,
    nocs: [noc.url],
    adminToken: noc.token,
    fleet: warm.fleet,
    log: (l) => console.error(l),
  });
  sampling = false;
  await sampler;
  const mib = samples.map((x) => x.mib).filter((x) => x > 0);
  const afterMinute = samples.find((x) => x.s >= 60)?.mib ?? mib[0] ?? 0;
  console.log([
    `soak: ${r.cycles} cycles in ${(r.durationS / 60).toFixed(1)} min on ${noc.backend}: ${
      r.cyclesPerS.toFixed(0)
    }/s (${rate > 0 ? `target ${rate}/s` : "flat out"}), ${r.errors} errors ${
      JSON.stringify(r.errorKinds)
    }`,
    `  beat p50/p95/p99 ${r.latencyMs.beat.p50.toFixed(1)}/${r.latencyMs.beat.p95.toFixed(1)}/${
      r.latencyMs.beat.p99.toFixed(1)
    } ms, catalog ${r.latencyMs.catalog.p50.toFixed(1)}/${r.latencyMs.catalog.p95.toFixed(1)}/${
      r.latencyMs.catalog.p99.toFixed(1)
    } ms`,
    `  NOC memory (RSS): start ${mib[0]?.toFixed(0)} MiB, after 1 min ${
      afterMinute.toFixed(0)
    } MiB, end ${mib[mib.length - 1]?.toFixed(0)} MiB, peak ${
      Math.max(...mib).toFixed(0)
    } MiB (${samples.length} samples)`,
    warmLine,
    `  each minute, RSS / JavaScript heap in use (MiB) / open files and sockets: ${
      samples.filter((_, i) => i % 6 === 0).map((x) =>
        `${x.mib.toFixed(0)}/${x.heap.toFixed(0)}/${x.fds}`
      )
        .join(" ")
    }`,
    `  whole cycle (beat + catalog) p50/p99/p99.9 ${r.cycleMs.p50.toFixed(1)}/${
      r.cycleMs.p99.toFixed(1)
    }/${r.cycleMs.p999.toFixed(1)} ms, slowest ${
      r.cycleMs.max.toFixed(0)
    } ms; ${r.slowCycles} cycles over 250 ms; ${r.stalls.length} seconds with a slow cycle, an error, a late simulator or 256 cycles in flight`,
    ...stallReport(r.stalls, noc.output()),
  ].join("\n"));
} finally {
  sampling = false;
  await noc.stop();
}

/**
 * Each stall second, with the NOC's sweeps and long collections in the 3 s before it, and the
 * requests the NOC itself took 100 ms or more over that ended in it or the next second.
 */
function stallReport(stalls: Stall[], output: string): string[] {
  const events: Array<{ at: number; what: string }> = [];
  const slow: Array<{ end: number; ms: number }> = [];
  for (const line of output.split("\n")) {
    // Traced collections are written beside the log and can split one of its lines: skip those.
    const e = line.includes('"event":"') ? parsed(line) : null;
    if (e?.event === "request") {
      slow.push({ end: Date.parse(e.time), ms: e.ms });
      continue;
    }
    if (e?.event === "sweep") {
      const end = Date.parse(e.time);
      events.push({
        at: end - e.ms - e.pruneMs,
        what: `sweep ${e.ms} ms + nonce prune ${e.pruneMs} ms (${e.noncesPruned} rows)`,
      });
      continue;
    }
    const gc = gcPause.exec(line);
    if (gc) {
      events.push({
        at: nocBorn + Number(gc[1]),
        what: `NOC ${gc[2]} pause ${Number(gc[3]).toFixed(0)} ms`,
      });
    }
  }
  return stalls.slice(0, 60).map((s) => {
    const t = Date.parse(s.at);
    const near = events.filter((e) => e.at >= t - 3000 && e.at < t + 1000).map((e) =>
      `${((e.at - t) / 1000).toFixed(1)} s: ${e.what}`
    );
    const inNoc = slow.filter((x) => x.end >= t && x.end < t + 2000);
    if (inNoc.length) {
      near.push(
        `NOC took ≥ 100 ms over ${inNoc.length} requests (longest ${
          Math.max(...inNoc.map((x) => x.ms)).toFixed(0)
        } ms)`,
      );
    }
    return `    ${
      s.at.slice(11, 19)
    } saturated ${s.saturated}, errors ${s.errors}, slow ${s.slowCycles} (max ${
      s.maxCycleMs.toFixed(0)
    } ms), simulator late ${s.lateMs.toFixed(0)} ms, in flight ${s.inFlight}${
      near.length ? ` | ${near.join("; ")}` : ""
    }`;
  }).concat(
    stalls.length > 60 ? [`    … ${stalls.length - 60} more seconds`] : [],
    events.filter((e) => e.what.startsWith("sweep")).length
      ? [
        `  sweeps: ${
          events.filter((e) => e.what.startsWith("sweep")).map((e) => e.what.replace(/^sweep /, ""))
            .join("; ")
        }`,
      ]
      : [],
  );
}

function parsed(line: string) {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}
