/**
 * Every error code the NOC (and a local component server) can answer is in docs/protocol.md's
 * tables, and every code those tables list is one the code can produce.
 *
 * The codes are read from the source, not listed by hand: every `new ApiError(status, code, …`
 * (a literal code; `invalid_${target}` expanded over the validation targets; `e.reason` expanded
 * over the reasons its error class is ever constructed with, the class being the one the
 * surrounding `catch` tests with `instanceof`), every `c.json({ error: … }, status)` (the HTTP
 * error mapping, `not_found` handlers), and every other `error: "<code>"` in a server file. A
 * site whose code the scan cannot read fails the test, so a new kind of site cannot slip by
 * unseen; and the scan must find at least the codes known to exist, so a scan that reads the
 * wrong folders, or nothing, fails too. `bad_package`'s `reason` values are checked the same way.
 */
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url);
const doc = await Deno.readTextFile(new URL("docs/protocol.md", root));

/** A place in the source that answers with an error code. */
interface Site {
  /** The code. */
  code: string;
  /** The HTTP statuses the site may answer it with, or null when the status is not a literal. */
  statuses: number[] | null;
  /** `file:line`. */
  at: string;
}

/** What a scan found: the sites, and the places whose code it could not read. */
interface Scan {
  sites: Site[];
  unread: string[];
  /** Reason codes each error class is constructed with, by class name. */
  reasons: Map<string, Set<string>>;
}

/** `text` with each comment line (`//`, `/*`, ` *`) blanked, line breaks kept, so offsets hold. */
function withoutComments(text: string): string {
  return text.split("\n").map((l) => /^\s*(\/\/|\/\*|\*)/.test(l) ? " ".repeat(l.length) : l)
    .join("\n");
}

const lineOf = (text: string, index: number) => text.slice(0, index).split("\n").length;

/** The statuses named by literal numbers in `expr` (`401`, `e.x ? 401 : 403`), or null. */
function statusesIn(expr: string): number[] | null {
  const found = [...expr.matchAll(/\b[1-5]\d\d\b/g)].map((m) => Number(m[0]));
  return found.length > 0 ? found : null;
}

/** The string literals of `expr`. */
const literals = (expr: string) => [...expr.matchAll(/"([a-z][a-z0-9_]*)"/g)].map((m) => m[1]!);

/** Index just past the `{…}` starting at `open` (strings skipped), or -1. */
function closeBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"' || ch === "'" || ch === "`") {
      for (i++; i < text.length && text[i] !== ch; i++) if (text[i] === "\\") i++;
    } else if (ch === "{") depth++;
    else if (ch === "}" && --depth === 0) return i + 1;
  }
  return -1;
}

/**
 * Reads the error codes `files` (path → source) can answer with. Exported for its own test only.
 */
function scanErrorCodes(files: Record<string, string>): Scan {
  const sources = Object.entries(files).map(([path, text]) => [path, withoutComments(text)]);
  // Reasons each error class is constructed with: `new XError("reason"` or `new XError(\n "reason"`.
  const reasons = new Map<string, Set<string>>();
  for (const [, text] of sources) {
    for (const m of text!.matchAll(/new (\w+Error)\(\s*"([a-z][a-z0-9_]*)"/g)) {
      if (!reasons.has(m[1]!)) reasons.set(m[1]!, new Set());
      reasons.get(m[1]!)!.add(m[2]!);
    }
  }
  const sites: Site[] = [];
  const unread: string[] = [];
  for (const [path, text] of sources as Array<[string, string]>) {
    // ApiError sites.
    for (const m of text.matchAll(/new ApiError\(/g)) {
      const at = `${path}:${lineOf(text, m.index)}`;
      const args = /^new ApiError\(\s*([^,]+?)\s*,\s*([^,]+?)\s*,/.exec(text.slice(m.index));
      if (!args) {
        unread.push(`${at}: new ApiError( without a status and a code`);
        continue;
      }
      const [, statusExpr, codeExpr] = args as unknown as [string, string, string];
      const statuses = statusesIn(statusExpr);
      const literal = /^"([a-z][a-z0-9_]*)"$/.exec(codeExpr);
      if (literal) {
        sites.push({ code: literal[1]!, statuses, at });
        continue;
      }
      if (codeExpr === "`invalid_${target}`") {
        // The validation targets: the `Target` type, with the one renaming validate() applies.
        const union = /type Target = ([^;]+);/.exec(text)?.[1];
        const rename = /target === "(\w+)" \? "(\w+)" : target/.exec(text);
        if (!union || !rename) {
          unread.push(`${at}: invalid_\${target} without its Target type and renaming`);
          continue;
        }
        for (const t of literals(union)) {
          sites.push({ code: `invalid_${t === rename[1] ? rename[2] : t}`, statuses, at });
        }
        continue;
      }
      const reasonOf = /^(\w+)\.reason$/.exec(codeExpr);
      if (reasonOf) {
        // The class the enclosing catch tested with instanceof, in the 20 lines before.
        const before = text.slice(0, m.index).split("\n").slice(-20).join("\n");
        // Or the class it is declared with (`const e: XError = …`).
        const cls = [
          ...before.matchAll(new RegExp(`${reasonOf[1]} instanceof (\\w+)`, "g")),
          ...before.matchAll(new RegExp(`\\b${reasonOf[1]}: (\\w+Error)\\b`, "g")),
        ].at(-1)?.[1];
        const codes = cls ? reasons.get(cls) : undefined;
        if (!codes || codes.size === 0) {
          unread.push(`${at}: ${codeExpr} of an error class the scan cannot name`);
          continue;
        }
        for (const code of codes) sites.push({ code, statuses, at });
        continue;
      }
      unread.push(`${at}: code ${codeExpr}`);
    }
    // JSON answers built in place: c.json({ error: …, … }, status).
    const inJson = new Set<number>();
    for (const m of text.matchAll(/c\.json\(\s*(\{)\s*error:\s*([^\n]+)/g)) {
      const at = `${path}:${lineOf(text, m.index)}`;
      const open = m.index + m[0].indexOf("{");
      const end = closeBrace(text, open);
      const value = /^\s*error:\s*([^,\n]+?)\s*,/.exec(text.slice(open + 1, end))?.[1] ?? "";
      inJson.add(text.indexOf("error:", open));
      const status = /^\s*,\s*([^,)]+)/.exec(text.slice(end))?.[1] ?? "";
      if (value === "err.code") continue; // The ApiError mapping: its codes are the ApiError sites.
      const codes = literals(value);
      if (codes.length === 0 || value.replace(/"[a-z0-9_]+"/g, "").match(/["'`]/)) {
        unread.push(`${at}: error ${value}`);
        continue;
      }
      for (const code of codes) sites.push({ code, statuses: statusesIn(status), at });
    }
    // Any other `error: "<code>"` in a server file is a code too (its status unknown here).
    for (const m of text.matchAll(/\berror:\s*"([a-z][a-z0-9_]*)"/g)) {
      if (inJson.has(m.index)) continue;
      sites.push({ code: m[1]!, statuses: null, at: `${path}:${lineOf(text, m.index)}` });
    }
  }
  return { sites, unread, reasons };
}

/** The server source: the NOC, the local component server and the shared protocol code. */
async function serverSources(): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      const path = `${dir}${e.name}`;
      if (e.isDirectory) await walk(`${path}/`);
      else if (/\.tsx?$/.test(e.name)) files[path] = await Deno.readTextFile(new URL(path, root));
    }
  };
  for (const dir of ["noc/", "local_server/", "protocol/"]) await walk(dir);
  files["main.ts"] = await Deno.readTextFile(new URL("main.ts", root));
  // The client's reading of answers (`not_json` for a body that is not JSON) is not an answer.
  delete files["protocol/client.ts"];
  return files;
}

/** Code → statuses, from every table of docs/protocol.md with a `Status` and an `` `error` `` column. */
function documentedCodes(): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  const lines = doc.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith("|") || !lines[i + 1]?.startsWith("| ---")) continue;
    const cells = (l: string) => l.split("|").slice(1, -1).map((c) => c.trim());
    const head = cells(lines[i]!);
    const col = head.indexOf("`error`"), statusCol = head.indexOf("Status");
    if (col < 0 || statusCol < 0) continue;
    for (i += 2; i < lines.length && lines[i]!.startsWith("|"); i++) {
      const row = cells(lines[i]!);
      const status = Number(row[statusCol]);
      for (const m of (row[col] ?? "").matchAll(/`([a-z][a-z0-9_]*)`/g)) {
        if (!out.has(m[1]!)) out.set(m[1]!, new Set());
        out.get(m[1]!)!.add(status);
      }
    }
  }
  return out;
}

/** Codes that exist today: the scan must find every one of them. */
const knownCodes = [
  "malformed_json",
  "invalid_body",
  "invalid_query",
  "invalid_param",
  "bad_request",
  "invalid_input",
  "not_found",
  "version_exists",
  "hold_exists",
  "key_in_use",
  "clock_skew",
  "expired_signature",
  "replayed_signature",
  "wrong_authority",
  "expired_grant",
  "malformed_grant",
  "not_in_catalog",
  "bad_package",
  "bad_payload",
  "unauthorized",
  "rate_limited",
  "unavailable",
  "internal",
  "shutting_down",
  "not_cached",
  "grant_required",
  "revoked_appliance",
  "token_expired",
  "body_too_large",
];

const scan = scanErrorCodes(await serverSources());
const produced = new Map<string, Site[]>();
for (const s of scan.sites) produced.set(s.code, [...(produced.get(s.code) ?? []), s]);
const documented = documentedCodes();

Deno.test("scanErrorCodes() reads multi-line ApiErrors, error classes' reasons and JSON answers", () => {
  const found = scanErrorCodes({
    "a.ts": [
      "/** Answered as `{ error: code }`: new ApiError(400, code, …) in a comment is no site. */",
      "class ThingError extends Error {}",
      'const x = () => { throw new ThingError("thing_gone", "m"); };',
      'throw new ApiError(409, "one_code", "m");',
      "throw new ApiError(",
      "  404,",
      '  "two_code",',
      "  `m`,",
      ");",
      "try { x(); } catch (e) {",
      "  if (!(e instanceof ThingError)) throw e;",
      '  throw new ApiError(e.kind === "x" ? 401 : 403, e.reason, e.message);',
      "}",
      'type Target = "json" | "query";',
      'const t = target === "json" ? "body" : target;',
      "throw new ApiError(400, `invalid_${target}`, m);",
      "return c.json(",
      '  { error: malformed ? "three_code" : "four_code", message: "m" },',
      "  err.status,",
      ");",
      'return c.json({ error: "five_code", message: "m" }, 503);',
      'return c.json({ error: err.code, message: "m" }, err.status);',
      'const body = { error: "six_code" };',
      "throw new ApiError(400, someCode, m);",
      'return c.json({ error: pick(), message: "m" }, 400);',
    ].join("\n"),
  });
  const got = found.sites.map((s) => `${s.code} ${s.statuses?.join("/") ?? "?"}`).sort();
  assert.deepEqual(got, [
    "five_code 503",
    "four_code ?",
    "invalid_body 400",
    "invalid_query 400",
    "one_code 409",
    "six_code ?",
    "thing_gone 401/403",
    "three_code ?",
    "two_code 404",
  ]);
  assert.deepEqual(found.unread, ["a.ts:24: code someCode", "a.ts:25: error pick()"]);
});

Deno.test("the scan reads every error code site of the server source, and finds the codes known to exist", () => {
  assert.deepEqual(scan.unread, [], "sites whose code the scan cannot read");
  const missing = knownCodes.filter((c) => !produced.has(c));
  assert.deepEqual(missing, [], "known codes the scan did not find");
  assert.ok(produced.size >= 59, `only ${produced.size} codes found`);
  // Every signature refusal reaches the wire through appliance_auth's e.reason.
  for (const r of scan.reasons.get("SignatureError") ?? []) assert.ok(produced.has(r), r);
  assert.ok((scan.reasons.get("SignatureError")?.size ?? 0) >= 13);
});

Deno.test("every error code the NOC and a local server answer is in docs/protocol.md's tables, with its status", () => {
  const missing: string[] = [];
  for (const [code, sites] of produced) {
    const statuses = documented.get(code);
    if (!statuses) {
      missing.push(`${code} (${sites.map((s) => s.at).join(", ")})`);
      continue;
    }
    for (const s of sites) {
      if (s.statuses && !s.statuses.some((st) => statuses.has(st))) {
        missing.push(`${code} as ${s.statuses.join(" or ")} (${s.at})`);
      }
    }
  }
  assert.deepEqual(missing, [], "codes (or statuses) docs/protocol.md's error tables lack");
});

Deno.test("every code docs/protocol.md's error tables list is one the code can answer", () => {
  assert.ok(documented.size >= 59, `only ${documented.size} codes in the tables`);
  const stale = [...documented.keys()].filter((c) => !produced.has(c));
  assert.deepEqual(stale, [], "documented codes no source produces");
});

Deno.test("docs/protocol.md names every reason of bad_package", () => {
  const row = doc.split("\n").find((l) => /^\| 400 +\| `bad_package` /.test(l));
  assert.ok(row, "the bad_package row");
  const reasons = scan.reasons.get("PackageError");
  assert.ok(reasons && reasons.size >= 8, "PackageError's reasons");
  const unnamed = [...reasons].filter((r) => !row.includes(`\`${r}\``));
  assert.deepEqual(unnamed, [], "reasons the bad_package row does not name");
});
