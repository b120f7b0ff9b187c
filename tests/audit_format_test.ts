/**
 * The audit log's formats: a request summary never holds a secret and is bounded; a CSV cell is
 * quoted as RFC 4180 says and a cell a spreadsheet would run as a formula starts with '.
 */
import assert from "node:assert/strict";
import { csvCell, summarise } from "../noc/services/audit.ts";
import { parseCsv } from "./_audit_csv.ts";

Deno.test("audit summaries redact secrets and bound every size", () => {
  const s = summarise({
    name: "bob",
    password: "hunter2hunter2",
    nested: { token: "noc_op_x", apiToken: "y", privateKey: "z", seed: "s", label: "ok" },
    endorsement: { signature: "sig" },
    long: "x".repeat(500),
    list: Array.from({ length: 50 }, (_, i) => i),
    deep: { a: { b: { c: { d: { e: 1 } } } } },
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
  assert.equal((s.long as string).length, 201);
  assert.equal((s.list as unknown[]).length, 21);
  assert.equal((s.list as unknown[])[20], "[30 more]");
  assert.deepEqual(s.deep, { a: { b: { c: "[…]" } } });
  const wide = summarise(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])));
  assert.equal(Object.keys(wide as object).length, 31);
  assert.equal(JSON.stringify(s).includes("hunter2"), false);
});

Deno.test("CSV cells are quoted per RFC 4180 and formulas are neutralised", () => {
  assert.equal(csvCell("plain"), "plain");
  assert.equal(csvCell(null), "");
  assert.equal(csvCell(403), "403");
  assert.equal(csvCell('a "b", c'), '"a ""b"", c"');
  assert.equal(csvCell("two\r\nlines"), '"two\r\nlines"');
  for (const f of ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"]) {
    assert.ok(csvCell(f).replace(/^"/, "").startsWith(`'${f[0]}`), f);
  }
  assert.equal(csvCell('=HYPERLINK("x","y")'), `"'=HYPERLINK(""x"",""y"")"`);
  assert.equal(
    csvCell({ a: "=1" }),
    '"{""a"":""=1""}"',
    "JSON starts with {, quoted for its quotes",
  );
  const line = ["=1+1", 'say "hi", ok', "multi\nline", "x"].map(csvCell).join(",") + "\r\n";
  assert.deepEqual(parseCsv(line), [["'=1+1", 'say "hi", ok', "multi\nline", "x"]]);
});
