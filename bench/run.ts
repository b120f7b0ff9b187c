/**
 * `deno task bench`: runs the benchmarks in one go, prints a table and writes
 * it to bench/RESULTS.md. Set TEST_DATABASE_URL to measure on PostgreSQL.
 *
 * @module
 */
import { type Figure, packageStreaming } from "./package_streaming.ts";
import { consoleRender } from "./console_render.ts";

const sizes = (Deno.env.get("BENCH_PACKAGE_MIB") ?? "16,64,192").split(",").map(Number);
const rows: Figure[] = [];
for (const mib of sizes) rows.push(...await packageStreaming(mib));
rows.push(...await consoleRender(Number(Deno.env.get("BENCH_APPLIANCES") ?? 100_000)));
const lines = [
  `# Benchmarks`,
  ``,
  `Run: ${
    new Date().toISOString()
  } on ${Deno.build.target}, Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores.`,
  ``,
  `| measurement | value | unit | note |`,
  `| --- | ---: | --- | --- |`,
  ...rows.map((r) =>
    `| ${r.name} | ${
      r.unit === "PostgreSQL" || r.unit === "PGlite" ? "" : r.value.toFixed(1)
    } | ${r.unit} | ${r.note} |`
  ),
  ``,
];
const table = lines.join("\n");
console.log(table);
await Deno.writeTextFile(new URL("./RESULTS.md", import.meta.url), table);
