/**
 * `deno task bench`: every benchmark in one run — check-in cycles against the
 * HTTP and database ceilings, the sweep and the appliance list over a million appliances, 256 MiB
 * downloads against nginx, the agent, catalog generation, a local-server
 * sync's stage for a 1,000-appliance site, the console, the rollout daemon's pass, overload at
 * twice the capacity and the peer rows against Icinga 2 (issue 23) — printed as one table with targets and ratios, and written to
 * bench/RESULTS.md. Set TEST_DATABASE_URL to include the PostgreSQL rows.
 *
 *   deno task bench                 (everything; about half an hour on 2 cores)
 *   deno task bench -- checkin sweep  (only the sections named)
 *
 * @module
 */
import { type Figure, figureTable } from "./figure.ts";
import { checkinBench } from "./checkin.ts";
import { sweepScale } from "./sweep_scale.ts";
import { applianceListScale } from "./appliance_list.ts";
import { packageStreaming } from "./package_streaming.ts";
import { agentBench } from "./agent_bench.ts";
import { catalogGeneration } from "./catalog_gen.ts";
import { siteStageBench } from "./site_stage.ts";
import { consoleRender } from "./console_render.ts";
import { preauthMemory } from "./preauth_memory.ts";
import { rolloutGatesBench } from "./rollout_gates.ts";
import { peerBench } from "./peer.ts";
import { overloadBench } from "./overload.ts";

const sections: Array<[string, string, () => Promise<Figure[]>]> = [
  [
    "checkin",
    "Check-in cycles (simulator: a signed SecureBeat with the catalog's If-None-Match, POST /v1/checkin; two requests where marked)",
    checkinBench,
  ],
  [
    "overload",
    "Overload: 2× the capacity measured first, for 60 s; a fleet told Retry-After",
    overloadBench,
  ],
  ["sweep", "Missed-heartbeat sweep over 1,000,000 appliances", () => sweepScale()],
  [
    "list",
    "Appliance list and search over 1,000,000 appliances (admin API and console)",
    () => applianceListScale(),
  ],
  [
    "download",
    "Package downloads (256 MiB)",
    () => packageStreaming(Number(Deno.env.get("BENCH_PACKAGE_MIB") ?? 256)),
  ],
  ["agent", "Agent", agentBench],
  ["catalog", "Catalog generation, 200 components", catalogGeneration],
  [
    "stage",
    "Local-server sync stage, 1,000-appliance site, 50 assignments",
    siteStageBench,
  ],
  [
    "console",
    "Operator console",
    () => consoleRender(Number(Deno.env.get("BENCH_APPLIANCES") ?? 100_000)),
  ],
  [
    "rollouts",
    "Rollout daemon pass: 20 metric-gated phased rollouts (PGlite 10,000, PostgreSQL 100,000 appliances)",
    () => rolloutGatesBench(),
  ],
  [
    "preauth",
    "Work before authentication: 10 concurrent unauthenticated 200 MiB posts",
    preauthMemory,
  ],
  [
    "peer",
    "Peer: the NOC against Icinga 2 (accepted and durable reports, detection, quiet-rate cost)",
    peerBench,
  ],
];

const args = Deno.args.filter((a) => a !== "--");
if (args.includes("--help") || args.includes("-h")) {
  console.log(
    `Usage: deno task bench [-- SECTION...]\n\nRuns every benchmark (or only the sections named), ` +
      `prints one table of figures with targets and ratios, and writes bench/RESULTS.md.\n` +
      `Set TEST_DATABASE_URL to include the PostgreSQL rows.\n\nSections:\n` +
      sections.map(([key, title]) => `  ${key.padEnd(10)} ${title}`).join("\n"),
  );
  Deno.exit(0);
}
const unknown = args.filter((a) => !sections.some(([key]) => key === a));
if (unknown.length > 0) {
  console.error(`bench: no section ${unknown.join(", ")} (deno task bench -- --help lists them)`);
  Deno.exit(64);
}
const chosen = sections.filter(([key]) => args.length === 0 || args.includes(key));
const parts: string[] = [];
const all: Figure[] = [];
for (const [, title, run] of chosen) {
  console.error(`bench: ${title} ...`);
  const started = performance.now();
  let figures: Figure[];
  try {
    figures = await run();
  } catch (e) {
    figures = [{
      name: title,
      value: NaN,
      unit: "",
      note: `failed: ${e instanceof Error ? e.message : String(e)}`.slice(0, 400),
    }];
  }
  all.push(...figures);
  parts.push(
    `## ${title}\n\n${figureTable(figures)}\n\n(${
      ((performance.now() - started) / 1000).toFixed(0)
    } s)\n`,
  );
}
const targets = all.filter((f) => f.target !== undefined);
const missed = targets.filter((f) => f.met !== true);
const cpu = await Deno.readTextFile("/proc/cpuinfo").then(
  (t) => /model name\s*:\s*(.+)/.exec(t)?.[1] ?? "unknown CPU",
  () => "unknown CPU",
);
const text = [
  `# Benchmarks`,
  ``,
  `Run ${
    new Date().toISOString()
  } on ${Deno.build.target}, ${navigator.hardwareConcurrency} cores (${cpu}), Deno ${Deno.version.deno}; ${
    Deno.env.get("TEST_DATABASE_URL")
      ? "PostgreSQL from TEST_DATABASE_URL"
      : "no PostgreSQL (TEST_DATABASE_URL unset)"
  }.`,
  ``,
  `Targets met: ${targets.length - missed.length} of ${targets.length}${
    missed.length ? ` (not met: ${missed.map((f) => f.name).join("; ")})` : ""
  }.`,
  ``,
  ...parts,
].join("\n");
console.log(text);
if (args.length === 0) await Deno.writeTextFile(new URL("./RESULTS.md", import.meta.url), text);
Deno.exit(0);
