/**
 * The audit log's formats: a request summary never holds a secret, keeps what a route accepts
 * whole, and holds only storable text; a CSV cell is quoted as RFC 4180 says, and no part of it a
 * spreadsheet could start a cell with — its start, or after any separator an import may split at
 * (`,` `;` tab `|`) — is a formula.
 */
import assert from "node:assert/strict";
import {
  canonicalTarget,
  cleanText,
  csvCell,
  summarise,
  summaryBounds,
} from "../noc/services/audit.ts";
import { parseCsv } from "./_audit_csv.ts";

Deno.test("audit summaries redact secrets and keep accepted values whole, within bounds", () => {
  const action = Array.from({ length: 64 }, (_, i) => `${i}`.padEnd(1024, "x"));
  const s = summarise({
    name: "bob",
    password: "hunter2hunter2",
    nested: { token: "noc_op_x", apiToken: "y", privateKey: "z", seed: "s", label: "ok" },
    endorsement: { signature: "sig" },
    long: "x".repeat(500),
    action,
    uids: Array.from({ length: 1000 }, () => crypto.randomUUID()),
    deep: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } },
  }) as Record<string, unknown>;
  assert.equal(s.password, "[redacted]");
  assert.deepEqual(s.nested, {
    token: "[redacted]",
    apiToken: "[redacted]",
    privateKey: "[redacted]",
    seed: "[redacted]",
    label: "ok",
  });
  assert.equal(s.endorsement, "[redacted]");
  assert.equal(s.long, "x".repeat(500), "kept whole");
  assert.deepEqual(s.action, action, "a fileinfo action at its own bound (64 × 1,024) is whole");
  assert.equal((s.uids as unknown[]).length, 1000);
  assert.equal(
    JSON.stringify(s.deep),
    '{"a":{"b":{"c":{"d":{"e":{"f":{"g":"[…]"}}}}}}}',
    "depth is bounded",
  );
  const huge = summarise("y".repeat(summaryBounds.string + 5)) as string;
  assert.equal(huge.length, summaryBounds.string + 1);
  assert.equal(JSON.stringify(s).includes("hunter2"), false);
});

Deno.test("audit text is storable: NUL and unpaired surrogates are replaced, keys too", () => {
  assert.equal(cleanText("a\u0000b"), "a\u2400b");
  assert.equal(cleanText("a\ud800b"), "a\ufffdb");
  assert.equal(cleanText("ok 😀"), "ok 😀", "paired surrogates stay");
  const s = summarise({ "k\u0000": ["v\u0000", "\udfff"] });
  assert.deepEqual(s, { "k\u2400": ["v\u2400", "\ufffd"] });
  assert.equal(
    canonicalTarget("7D0C1A52-0B0E-4A8E-9B51-3F0C2B5D9E11"),
    "7d0c1a52-0b0e-4a8e-9b51-3f0c2b5d9e11",
  );
  assert.equal(canonicalTarget("Vera\u0000"), "Vera\u2400", "a name keeps its case, cleaned");
});

/**
 * The fields a spreadsheet would make of `line` if it split it at `sep`, honouring a quote only
 * at a field's start (as LibreOffice and Excel do), and trimming spaces (an import option).
 */
function spreadsheetFields(line: string, sep: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    let cell = "";
    while (line[i] === " ") i++;
    if (line[i] === '"') {
      i++;
      while (i < line.length) {
        if (line[i] === '"' && line[i + 1] === '"') {
          cell += '"';
          i += 2;
        } else if (line[i] === '"') {
          i++;
          break;
        } else cell += line[i++];
      }
      while (i < line.length && line[i] !== sep) cell += line[i++];
    } else {
      while (i < line.length && line[i] !== sep) cell += line[i++];
    }
    out.push(cell.trim());
    i++;
  }
  return out;
}

/** True when a spreadsheet could run `field` as a formula (a signed number, maybe closing a JSON
 * array or a quote, is read as a number or text). */
const formula = (f: string) =>
  /^[=+\-@\t\r]/.test(f) && !/^[+-]\d+(\.\d+)?([eE][+-]?\d+)?[\]}"]*$/.test(f);

Deno.test("CSV cells are quoted per RFC 4180 and formulas are neutralised after any separator", () => {
  assert.equal(csvCell("plain"), "plain");
  assert.equal(csvCell(null), "");
  assert.equal(csvCell(403), "403");
  assert.equal(csvCell('a "b", c'), '"a ""b"", c"');
  assert.equal(csvCell("two\r\nlines"), '"two\r\nlines"');
  for (const f of ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"]) {
    assert.ok(csvCell(f).replace(/^"/, "").startsWith(`'${f[0]}`), f);
  }
  assert.equal(csvCell('=HYPERLINK("x","y")'), `"'=HYPERLINK(""x"",""y"")"`);
  assert.equal(csvCell({ a: "=1" }), '"{""a"":""=1""}"', "JSON starts with {");
  // The attacker review's user agent: a formula after each `;`.
  const agent = "Mozilla/5.0;=1+1;=cmd|' /C calc'!A0";
  assert.equal(csvCell(agent), `"Mozilla/5.0;'=1+1;'=cmd|' /C calc'!A0"`);
  // Every separator, spaces and quotes before the trigger, every trigger.
  const hostile = [
    agent,
    "a,=1",
    "a; =1",
    'a;"=1+1"',
    "a\t@SUM(1)",
    "a|-2+3+cmd|' /C calc'!A0",
    "x;+1+cmd",
    "x,\t=1",
    "ok;-5",
    '{"n":[1,-2,3]}',
  ];
  for (const h of hostile) {
    const line = ["1", h, "x"].map(csvCell).join(",") + "\r\n";
    // RFC 4180 readers get the text back, with a ' before each neutralised trigger.
    const [[, back]] = parseCsv(line) as [string[]];
    assert.equal(back!.replaceAll("'", ""), h.replaceAll("'", ""), h);
    for (const sep of [",", ";", "\t", "|"]) {
      const fields = spreadsheetFields(line.slice(0, -2), sep);
      const bad = fields.filter(formula);
      assert.deepEqual(bad, [], `${JSON.stringify(h)} split at ${JSON.stringify(sep)}`);
    }
  }
  // JSON's negative numbers stay JSON (a spreadsheet reads -2 as a number).
  assert.deepEqual(JSON.parse(parseCsv(csvCell({ n: [1, -2] }) + "\r\n")[0]![0]!), { n: [1, -2] });
  const line = ["=1+1", 'say "hi", ok', "multi\nline", "x"].map(csvCell).join(",") + "\r\n";
  assert.deepEqual(parseCsv(line), [["'=1+1", 'say "hi", ok', "multi\nline", "x"]]);
});
