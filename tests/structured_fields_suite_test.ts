/**
 * The HTTP working group's structured-field test suite
 * (httpwg/structured-field-tests, vendored byte for byte under
 * tests/vectors/structured-field-tests/ with its LICENSE.md) run against
 * protocol/http/structured_fields.ts.
 *
 * Every case of every file gives the suite's verdict:
 * - a parsing case (`raw`: field lines, joined with ", " as a recipient
 *   combines them) must fail when `must_fail`, and otherwise parse to
 *   `expected`; with `can_fail` either outcome is allowed, and which one the
 *   parser chose is checked too, so a change of choice shows;
 * - wherever `expected` is given, serializing it must give `canonical` (or
 *   `raw` when there is none; `[]` means an empty field);
 * - a serialisation-only case (serialisation-tests/, no `raw`) must fail to
 *   serialize when `must_fail`, and give `canonical` otherwise.
 *
 * The suite's JSON for values: tokens, byte sequences (base32), dates and
 * display strings are `{"__type": …, "value": …}` objects; a number written
 * with a `.` is a Decimal (read from the JSON source text, since `1.0` and `1`
 * are the same JavaScript number).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type BareItem,
  Decimal,
  type Dictionary,
  DisplayString,
  type InnerList,
  type Item,
  type List,
  type Params,
  parseDictionary,
  parseItem,
  parseList,
  serializeDictionary,
  serializeItem,
  serializeList,
  StructuredDate,
  StructuredFieldError,
  Token,
} from "../protocol/http/structured_fields.ts";

const dir = new URL("./vectors/structured-field-tests/", import.meta.url);

/** The suite's files, each with its number of cases (a vendoring slip shows as a count change). */
const parsingFiles: Record<string, number> = {
  "binary.json": 15,
  "boolean.json": 12,
  "date.json": 17,
  "dictionary.json": 26,
  "display-string.json": 22,
  "examples.json": 21,
  "item.json": 5,
  "key-generated.json": 640,
  "large-generated.json": 11,
  "list.json": 11,
  "listlist.json": 12,
  "number-generated.json": 193,
  "number.json": 37,
  "param-dict.json": 14,
  "param-list.json": 20,
  "param-listlist.json": 3,
  "string-generated.json": 256,
  "string.json": 14,
  "token-generated.json": 256,
  "token.json": 6,
};
const serialisationFiles: Record<string, number> = {
  "serialisation-tests/key-generated.json": 378,
  "serialisation-tests/number.json": 9,
  "serialisation-tests/string-generated.json": 33,
  "serialisation-tests/token-generated.json": 124,
};

/**
 * The `can_fail` cases ("SHOULD" in the RFC) and what this parser does with
 * each: it accepts them all (base64 without padding or with non-zero pad bits,
 * field lines joined inside a string, dates past the interoperable range).
 */
const canFailChoices: Record<string, "accept" | "refuse"> = {
  "binary.json: bad padding": "accept",
  "binary.json: non-zero pad bits": "accept",
  "date.json: syntactic max date - 999,999,999,999,999": "accept",
  "date.json: syntactic min date - -999,999,999,999,999": "accept",
  "display-string.json: two lines display string": "accept",
  "string.json: two lines string": "accept",
};

interface Case {
  name: string;
  raw?: string[];
  header_type: "item" | "list" | "dictionary";
  expected?: unknown;
  must_fail?: boolean;
  can_fail?: boolean;
  canonical?: string[];
}

/** Reads a suite file, turning numbers written with a fraction into {@link Decimal}s. */
async function readCases(file: string): Promise<Case[]> {
  const text = await Deno.readTextFile(new URL(file, dir));
  const reviver = (_key: string, value: unknown, context?: { source?: string }) =>
    typeof value === "number" && /[.eE]/.test(context?.source ?? "") ? new Decimal(value) : value;
  return JSON.parse(text, reviver as (key: string, value: unknown) => unknown) as Case[];
}

function base32Decode(text: string): Uint8Array {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const out: number[] = [];
  let bits = 0;
  let acc = 0;
  for (const c of text.replace(/=+$/, "")) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`Bad base32 "${text}"`);
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return new Uint8Array(out);
}

function bareFromJson(v: unknown): BareItem {
  if (
    typeof v === "number" || typeof v === "string" || typeof v === "boolean" ||
    v instanceof Decimal
  ) {
    return v;
  }
  const t = v as { __type: string; value: unknown };
  switch (t.__type) {
    case "token":
      return new Token(t.value as string);
    case "binary":
      return base32Decode(t.value as string);
    case "date":
      return new StructuredDate(t.value as number);
    case "displaystring":
      return new DisplayString(t.value as string);
  }
  throw new Error(`Unknown suite value ${JSON.stringify(v)}`);
}

function paramsFromJson(v: unknown): Params {
  return (v as Array<[string, unknown]>).map(([k, x]) => [k, bareFromJson(x)]);
}

function itemFromJson(v: unknown): Item {
  const [bare, params] = v as [unknown, unknown];
  return { value: bareFromJson(bare), params: paramsFromJson(params) };
}

function memberFromJson(v: unknown): Item | InnerList {
  const [first, params] = v as [unknown, unknown];
  if (Array.isArray(first)) {
    return { items: first.map(itemFromJson), params: paramsFromJson(params) };
  }
  return itemFromJson(v);
}

function fromJson(c: Case): Item | List | Dictionary {
  if (c.header_type === "item") return itemFromJson(c.expected);
  if (c.header_type === "list") return (c.expected as unknown[]).map(memberFromJson);
  return (c.expected as Array<[string, unknown]>).map(([k, m]): [string, Item | InnerList] => [
    k,
    memberFromJson(m),
  ]);
}

function parse(c: Case, text: string): Item | List | Dictionary {
  if (c.header_type === "item") return parseItem(text);
  if (c.header_type === "list") return parseList(text);
  return parseDictionary(text);
}

function serialize(c: Case, value: Item | List | Dictionary): string {
  if (c.header_type === "item") return serializeItem(value as Item);
  if (c.header_type === "list") return serializeList(value as List);
  return serializeDictionary(value as Dictionary);
}

/** Runs one case; returns why it disagrees with the suite, or null. Tallies the outcome. */
function runCase(file: string, c: Case, tally: Tally): string | null {
  const label = `${file}: ${c.name}`;
  if (c.raw !== undefined) {
    let parsed: Item | List | Dictionary | undefined;
    let error: unknown;
    try {
      parsed = parse(c, c.raw.join(", "));
    } catch (e) {
      error = e;
    }
    if (error !== undefined && !(error instanceof StructuredFieldError)) {
      return `threw ${String(error)} instead of StructuredFieldError`;
    }
    if (c.can_fail) {
      const choice = error === undefined ? "accept" : "refuse";
      if (canFailChoices[label] !== choice) return `can_fail case now ${choice}ed`;
      tally.canFail++;
    }
    if (c.must_fail) {
      if (error === undefined) return `parsed, but must fail: ${JSON.stringify(parsed)}`;
    } else if (error === undefined) {
      try {
        assert.deepEqual(parsed, fromJson(c));
      } catch (e) {
        return `parsed to something else: ${(e as Error).message}`;
      }
    } else if (!c.can_fail) {
      return `failed to parse: ${(error as Error).message}`;
    }
  }
  if (c.expected !== undefined && !(c.raw === undefined && c.must_fail)) {
    const want = (c.canonical ?? c.raw ?? []).join(", ");
    let got: string;
    try {
      got = serialize(c, fromJson(c));
    } catch (e) {
      return `expected value did not serialize: ${(e as Error).message}`;
    }
    if (got !== want) return `serialized to ${JSON.stringify(got)}, not ${JSON.stringify(want)}`;
    tally.serialized++;
  }
  if (c.raw === undefined && c.must_fail) {
    try {
      const got = serialize(c, fromJson(c));
      return `serialized to ${JSON.stringify(got)}, but must fail`;
    } catch (e) {
      if (!(e instanceof StructuredFieldError)) return `threw ${String(e)}`;
    }
    tally.serialized++;
  }
  return null;
}

interface Tally {
  cases: number;
  serialized: number;
  canFail: number;
}

async function runFile(file: string, count: number): Promise<Tally> {
  const cases = await readCases(file);
  assert.equal(cases.length, count, `${file} has ${cases.length} cases, not ${count}`);
  const tally: Tally = { cases: 0, serialized: 0, canFail: 0 };
  const disagreements: string[] = [];
  for (const c of cases) {
    const why = runCase(file, c, tally);
    if (why !== null) disagreements.push(`${c.name}: ${why}`);
    tally.cases++;
  }
  assert.deepEqual(disagreements, [], `${file}: ${disagreements.length} cases disagree`);
  return tally;
}

for (const [file, count] of Object.entries(parsingFiles)) {
  Deno.test(`structured-field suite ${file}: every case parses and serializes as the suite says`, async () => {
    await runFile(file, count);
  });
}

for (const [file, count] of Object.entries(serialisationFiles)) {
  Deno.test(`structured-field suite ${file}: every value serializes or is refused as the suite says`, async () => {
    await runFile(file, count);
  });
}

Deno.test("the structured-field suite's vendored files are all run", async () => {
  const vendored: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".json")) vendored.push(e.name);
  for await (const e of Deno.readDir(new URL("serialisation-tests/", dir))) {
    vendored.push(`serialisation-tests/${e.name}`);
  }
  assert.deepEqual(
    vendored.sort(),
    [...Object.keys(parsingFiles), ...Object.keys(serialisationFiles)].sort(),
  );
});

// Beyond the suite: behaviour it does not pin down.

Deno.test("a display string keeps a leading byte order mark and round-trips any Unicode text", () => {
  assert.deepEqual(parseItem('%"%ef%bb%bfa"').value, new DisplayString("\uFEFFa"));
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 40 }), (text) => {
      const wire = serializeItem({ value: new DisplayString(text), params: [] });
      assert.deepEqual(parseItem(wire).value, new DisplayString(text));
    }),
    { numRuns: 500, seed: 9651 },
  );
  assert.throws(
    () => serializeItem({ value: new DisplayString("\uD800"), params: [] }),
    StructuredFieldError,
  );
});

Deno.test("a plain whole number serializes as an Integer and a Decimal keeps its fraction", () => {
  assert.equal(serializeItem({ value: 2, params: [] }), "2");
  assert.equal(serializeItem({ value: new Decimal(2), params: [] }), "2.0");
  assert.equal(serializeItem({ value: 2.5, params: [] }), "2.5");
  assert.deepEqual(parseItem("2.0").value, new Decimal(2));
  assert.equal(parseItem("2").value, 2);
  assert.equal(serializeItem({ value: new StructuredDate(-0), params: [] }), "@0");
});

Deno.test("the parser refuses more than the RFC's minimum sizes, and accepts them", () => {
  const members = (n: number) => Array.from({ length: n }, (_, i) => `a${i}`).join(", ");
  assert.equal(parseList(members(1024)).length, 1024);
  assert.throws(() => parseList(members(1025)), StructuredFieldError);
  assert.equal(parseDictionary(members(1024)).length, 1024);
  assert.throws(() => parseDictionary(members(1025)), StructuredFieldError);
  const inner = (n: number) => `(${Array.from({ length: n }, (_, i) => i).join(" ")})`;
  assert.equal((parseList(inner(256))[0] as InnerList).items.length, 256);
  assert.throws(() => parseList(inner(257)), StructuredFieldError);
  const params = (n: number) => `a${Array.from({ length: n }, (_, i) => `;p${i}`).join("")}`;
  assert.equal(parseItem(params(256)).params.length, 256);
  assert.throws(() => parseItem(params(257)), StructuredFieldError);
  // Repeated keys overwrite and do not count twice.
  assert.equal(parseItem(`a${";p".repeat(5000)}`).params.length, 1);
  const bytes = (n: number) => `:${btoa("x".repeat(n))}:`;
  assert.equal((parseItem(bytes(16384)).value as Uint8Array).length, 16384);
  assert.throws(() => parseItem(bytes(16387)), StructuredFieldError);
});

Deno.test("any structure the serializer writes parses back to itself", () => {
  const key = fc.stringMatching(/^[a-z*][a-z0-9_\-.*]{0,6}$/);
  const bare: fc.Arbitrary<BareItem> = fc.oneof(
    fc.integer({ min: -999_999_999_999_999, max: 999_999_999_999_999 }),
    fc.integer({ min: -999_999_999_999_999, max: 999_999_999_999_999 }).map((n) =>
      new Decimal(n / 1000)
    ),
    fc.string({ unit: fc.constantFrom(...' !"#\\az~'), maxLength: 12 }),
    fc.stringMatching(/^[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]{0,8}$/).map((t) => new Token(t)),
    fc.uint8Array({ maxLength: 20 }),
    fc.boolean(),
    fc.integer({ min: -999_999_999_999_999, max: 999_999_999_999_999 }).map((n) =>
      new StructuredDate(n)
    ),
    fc.string({ unit: "grapheme", maxLength: 8 }).map((t) => new DisplayString(t)),
  );
  const uniq = <T>(pairs: Array<[string, T]>) =>
    [...new Map(pairs)].map(([k, v]): [string, T] => [k, v]);
  const params = fc.array(fc.tuple(key, bare), { maxLength: 3 }).map(uniq);
  const item = fc.record({ value: bare, params }).map((r): Item => ({ ...r }));
  const member = fc.oneof(
    item,
    fc.record({ items: fc.array(item, { maxLength: 3 }), params }).map((r): InnerList => ({
      ...r,
    })),
  );
  fc.assert(
    fc.property(
      fc.array(member, { maxLength: 4 }),
      fc.array(fc.tuple(key, member), { maxLength: 4 }),
      (list, dict) => {
        // Decimals are written to three places; the generator only makes such values.
        assert.deepEqual(parseList(serializeList(list)), list);
        assert.deepEqual(parseDictionary(serializeDictionary(uniq(dict))), uniq(dict));
      },
    ),
    { numRuns: 500, seed: 9421 },
  );
});
