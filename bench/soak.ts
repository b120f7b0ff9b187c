/**
 * `deno task soak`: the fleet simulator against one NOC on PostgreSQL for a
 * long run (1,000 cycles per second for 30 minutes by default), sampling the
 * NOC process's resident memory every 10 seconds; prints the figures: cycles
 * per second, errors, latency percentiles, and memory at the start, the end
 * and its peak. Not part of CI.
 *
 *   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test deno task soak -- [--rate 1000] [--minutes 30] [--appliances 10000]
 *
 * @module
 */
import { simulate, simulationNoc } from "./simulate.ts";
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
const noc = await simulationNoc();
const rss = () => rssMiB(noc.pid);
const samples: Array<{ s: number; mib: number; heap: number }> = [];
// The NOC's JavaScript heap in use, from its /metrics (tells a leak from a heap that grew and stays).
const heapMiB = async () => {
  const res = await fetch(`${noc.url}/metrics`, {
    headers: { authorization: `Bearer ${noc.token}` },
  });
  const m = /^noc_js_heap_used_bytes (\d+)/m.exec(await res.text());
  return m ? Number(m[1]) / 2 ** 20 : NaN;
};
// Warm-up, not counted: one pass over the fleet at the same rate. Every appliance's first catalog
// is built and signed in it (10,000 in 10 s at the default rate), as after a fleet's enrolment.
const warm = await simulate({
  appliances,
  rate,
  durationS: Math.max(20, (appliances / rate) * 2),
  nocs: [noc.url],
  adminToken: noc.token,
  log: (l) => console.error(l),
});
const warmLine = `  warm-up (not counted): ${warm.cycles} cycles in ${
  warm.durationS.toFixed(0)
} s, every appliance's first catalog built; ${warm.errors} errors ${
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
    }/s (target ${rate}/s), ${r.errors} errors ${JSON.stringify(r.errorKinds)}`,
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
    `  each minute, RSS / JavaScript heap in use (MiB): ${
      samples.filter((_, i) => i % 6 === 0).map((x) => `${x.mib.toFixed(0)}/${x.heap.toFixed(0)}`)
        .join(" ")
    }`,
  ].join("\n"));
} finally {
  sampling = false;
  await noc.stop();
}
