import assert from "node:assert/strict";
import { importViolations, localSpecifiers } from "./_import_rule.ts";

const root = new URL("../", import.meta.url);

async function repoSources(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(dir: string): Promise<void> {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      const path = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory) {
        if (e.name.startsWith(".") || e.name === "node_modules" || e.name === "dist") continue;
        await walk(path);
      } else if (/\.tsx?$/.test(e.name)) {
        out[path] = await Deno.readTextFile(new URL(path, root));
      }
    }
  }
  await walk("");
  return out;
}

Deno.test("import rule: the repository breaks none of it", async () => {
  const files = await repoSources();
  assert.ok(Object.keys(files).some((f) => f.startsWith("protocol/")), "protocol/ was scanned");
  assert.ok(Object.keys(files).some((f) => f.startsWith("noc/http/")), "noc/http/ was scanned");
  const found = importViolations(files);
  assert.deepEqual(
    found.map((v) => `${v.file}: "${v.specifier}" (${v.rule})`),
    [],
  );
});

Deno.test("import rule: a forbidden import is named, with its file and rule", () => {
  const fixture = {
    "protocol/catalog.ts": `import type { Sql } from "../noc/db/db.ts";`,
    "agent/cycle.ts":
      `import { x } from "../noc/services/catalogs.ts";\nimport { y } from "../protocol/catalog.ts";`,
    "local_server/cache.ts": `export { z } from "../cli/noc.ts";`,
    "cli/noc.ts": `const m = await import("../local_server/app.ts");`,
    "noc/services/publishing.ts": `import { ApiError } from "../http/admin/components.ts";`,
    "noc/db/db.ts": `import type { AppDeps } from "../services/deps.ts";`,
    "noc/http/v1/beats.ts": `import { checkins } from "../../services/checkins.ts";`,
    "noc/jobs/status_daemon.ts": `import { rollouts } from "../services/rollouts.ts";`,
    "main.ts": `import { createApp } from "./noc/app.ts";`,
  };
  const found = importViolations(fixture).map((v) => `${v.file} -> ${v.specifier}: ${v.rule}`);
  assert.deepEqual(found, [
    "protocol/catalog.ts -> ../noc/db/db.ts: protocol/ imports nothing outside protocol/",
    "agent/cycle.ts -> ../noc/services/catalogs.ts: agent/ imports only agent/ and protocol/",
    "local_server/cache.ts -> ../cli/noc.ts: local_server/ imports only local_server/ and protocol/",
    "cli/noc.ts -> ../local_server/app.ts: cli/ imports only cli/ and protocol/",
    "noc/services/publishing.ts -> ../http/admin/components.ts: noc/ layers go one way: services may not import http",
    "noc/db/db.ts -> ../services/deps.ts: noc/ layers go one way: db may not import services",
  ]);
});

Deno.test("import rule: every import form is seen", () => {
  const src = [
    `import a from "./a.ts";`,
    `import type { B } from "../b.ts";`,
    `export * from "./c.ts";`,
    `export { d } from "./d.ts";`,
    `import "./e.ts";`,
    `const f = await import("./f.ts");`,
    `import {\n  g,\n  h,\n} from "./g.ts";`,
    `import x from "npm:postgres";`,
    `import y from "hono";`,
  ].join("\n");
  assert.deepEqual(localSpecifiers(src), [
    "./a.ts",
    "../b.ts",
    "./c.ts",
    "./d.ts",
    "./e.ts",
    "./f.ts",
    "./g.ts",
  ]);
});

Deno.test("no module-level mutable state in the programs: no top-level let or WeakMap", async () => {
  const files = await repoSources();
  const programs = /^(protocol|noc|agent|local_server|cli)\//;
  const found: string[] = [];
  for (const [file, source] of Object.entries(files)) {
    if (!programs.test(file)) continue;
    source.split("\n").forEach((line, i) => {
      if (
        /^(export\s+)?(let|var)\s/.test(line) ||
        /^(export\s+)?const\s+\w+\s*=\s*new WeakMap/.test(line)
      ) {
        found.push(`${file}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(found, [], "per-process state belongs in createDeps() (noc/deps.ts)");
});

Deno.test("the agent, the local server and the CLI load no NOC module (deno info)", async () => {
  for (const entry of ["agent/main.ts", "local_server/main.ts", "cli/noc.ts"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: new URL("../", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: Array<{ specifier: string }>;
    };
    const local = graph.modules.map((m) => m.specifier).filter((s) => s.startsWith("file:"));
    assert.ok(local.some((s) => s.includes("/protocol/")), `${entry} uses protocol/`);
    assert.deepEqual(local.filter((s) => /\/noc\/|\/main\.ts$/.test(s) && !s.endsWith(entry)), []);
  }
});
