/**
 * The import rule between the repository's programs (docs/architecture.md):
 *
 * - `protocol/` imports nothing local outside `protocol/`;
 * - `agent/`, `local_server/` and `cli/` import their own folder and `protocol/` only;
 * - `noc/` imports `noc/` and `protocol/`; inside it the layers go one way:
 *   `config.ts`, `clock.ts` (0) ← `db/` (1) ← `services/` (2) ← `jobs/` (3) ←
 *   `http/` (4) ← `app.ts`, `deps.ts` (5). A file imports its own layer or a lower one.
 * - `main.ts`, `tests/`, `bench/` and `examples/` may import anything.
 *
 * Every form counts: static, `import type`, `export … from` and dynamic `import("…")`.
 *
 * @module
 */

/** One forbidden import: the importing file, the specifier as written, and why. */
export interface ImportViolation {
  /** Repository-relative path of the importing file. */
  file: string;
  /** The specifier as written in the file. */
  specifier: string;
  /** Repository-relative path it resolves to. */
  target: string;
  /** The rule it breaks. */
  rule: string;
}

const specifierPattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])([^"'\n]+)\1/g;

/** The local (relative) import specifiers of a source text, comments included as code. */
export function localSpecifiers(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(specifierPattern)) {
    const spec = m[2]!;
    if (spec.startsWith("./") || spec.startsWith("../") || spec.startsWith("/")) out.push(spec);
  }
  return out;
}

function resolve(file: string, spec: string): string {
  const parts = spec.startsWith("/") ? [] : file.split("/").slice(0, -1);
  for (const seg of spec.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return parts.join("/");
}

function program(path: string): string {
  const top = path.split("/")[0]!;
  return path.includes("/") ? top : path;
}

const nocLayers: Array<[RegExp, number, string]> = [
  [/^noc\/(config|clock)\.ts$/, 0, "base"],
  [/^noc\/db\//, 1, "db"],
  [/^noc\/services\//, 2, "services"],
  [/^noc\/jobs\//, 3, "jobs"],
  [/^noc\/http\//, 4, "http"],
  [/^noc\/[^/]+\.tsx?$/, 5, "composition"],
];

function nocLayer(path: string): [number, string] | null {
  for (const [re, rank, name] of nocLayers) if (re.test(path)) return [rank, name];
  return null;
}

/** The rule `file` breaks by importing `target`, or null when the import is allowed. */
export function ruleBroken(file: string, target: string): string | null {
  const from = program(file);
  const to = program(target);
  if (["main.ts", "tests", "bench", "examples"].includes(from)) return null;
  if (from === "protocol") {
    return to === "protocol" ? null : "protocol/ imports nothing outside protocol/";
  }
  if (from === "agent" || from === "local_server" || from === "cli") {
    return to === from || to === "protocol" ? null : `${from}/ imports only ${from}/ and protocol/`;
  }
  if (from === "noc") {
    if (to === "protocol") return null;
    if (to !== "noc") return "noc/ imports only noc/ and protocol/";
    const a = nocLayer(file);
    const b = nocLayer(target);
    if (!a) return `noc file outside every layer (${nocLayers.map((l) => l[2]).join(", ")})`;
    if (!b) return `imports a noc file outside every layer`;
    return b[0] <= a[0] ? null : `noc/ layers go one way: ${a[1]} may not import ${b[1]}`;
  }
  return `${file} is in no program folder the rule knows`;
}

/** Every forbidden import among `files` (repository-relative path → source text). */
export function importViolations(files: Record<string, string>): ImportViolation[] {
  const out: ImportViolation[] = [];
  for (const [file, source] of Object.entries(files)) {
    for (const specifier of localSpecifiers(source)) {
      const target = resolve(file, specifier);
      const rule = ruleBroken(file, target);
      if (rule) out.push({ file, specifier, target, rule });
    }
  }
  return out;
}
