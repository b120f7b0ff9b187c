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
const rss = async () =>
  Number(/VmRSS:\s+(\d+) kB/.exec(await Deno.readTextFile(`/proc/${noc.pid}/status`))![1]) / 1024;
const samples: Array<{ s: number; mib: number }> = [];
const started = performance.now();
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    samples.push({ s: (performance.now() - started) / 1000, mib: await rss().catch(() => 0) });
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
    log: (l) => console.error(l),
  });
  sampling = false;
  await sampler;
  const mib = samples.map((x) => x.mib).filter((x) => x > 0);
  const warm = samples.find((x) => x.s >= 60)?.mib ?? mib[0] ?? 0;
  console.log([
    `soak: ${r.cycles} cycles in ${(r.durationS / 60).toFixed(1)} min on ${noc.backend}: ${
      r.cyclesPerS.toFixed(0)
    }/s (target ${rate}/s), ${r.errors} errors ${JSON.stringify(r.errorKinds)}`,
    `  beat p50/p95/p99 ${r.latencyMs.beat.p50.toFixed(1)}/${r.latencyMs.beat.p95.toFixed(1)}/${
      r.latencyMs.beat.p99.toFixed(1)
    } ms, catalog ${r.latencyMs.catalog.p50.toFixed(1)}/${r.latencyMs.catalog.p95.toFixed(1)}/${
      r.latencyMs.catalog.p99.toFixed(1)
    } ms`,
    `  NOC memory (RSS): start ${mib[0]?.toFixed(0)} MiB, after 1 min ${warm.toFixed(0)} MiB, end ${
      mib[mib.length - 1]?.toFixed(0)
    } MiB, peak ${Math.max(...mib).toFixed(0)} MiB (${samples.length} samples)`,
  ].join("\n"));
} finally {
  sampling = false;
  await noc.stop();
}
