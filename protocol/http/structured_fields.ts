/**
 * A parser and serializer for RFC 9651 (Structured Field Values for HTTP):
 * Lists, Dictionaries and Items, with every bare item type (Integer, Decimal,
 * String, Token, Byte Sequence, Boolean, Date and Display String). HTTP
 * Message Signatures (RFC 9421) and Content-Digest (RFC 9530) read their
 * headers with it.
 *
 * It follows the RFC's parsing algorithms (§4.2) step by step and passes the
 * HTTP working group's structured-field test suite
 * (tests/structured_fields_suite_test.ts). It accepts Byte Sequences without
 * `=` padding or with non-zero pad bits, as §4.2.7 says parsers SHOULD.
 *
 * Its work is linear in the input and bounded: it refuses more than the RFC's
 * minimum supported sizes (§3.1–§3.2: 1024 List or Dictionary members, 256
 * Inner List items, 256 Parameters, 16384-octet Byte Sequences), which no
 * caller here needs.
 *
 * @module
 */
import { fromBase64, toBase64 } from "../util/encoding.ts";

/** A token (an unquoted identifier such as `sha-256`). */
export class Token {
  /** Wraps a token's text. */
  constructor(readonly value: string) {}
}

/**
 * A Decimal (`1.5`, `2.0`): a number written with a fraction part. Integers
 * are plain numbers; a Decimal keeps `2.0` distinct from the Integer `2`.
 */
export class Decimal {
  /** Wraps a decimal's value. */
  constructor(readonly value: number) {}
  /** The value as JavaScript writes it. */
  toString(): string {
    return String(this.value);
  }
}

/** A Date (`@1659578233`): whole seconds since the Unix epoch. */
export class StructuredDate {
  /** Wraps a date's seconds since 1970-01-01T00:00:00Z. */
  constructor(readonly seconds: number) {}
  /** The date as a JavaScript `Date` (invalid past ±8.64e12 s). */
  toDate(): Date {
    return new Date(this.seconds * 1000);
  }
  /** The seconds, as written after `@`. */
  toString(): string {
    return String(this.seconds);
  }
}

/** A Display String (`%"f%c3%bc"`): Unicode text, percent-encoded as UTF-8 on the wire. */
export class DisplayString {
  /** Wraps a display string's text. */
  constructor(readonly value: string) {}
}

/** A bare item value: an Integer is a plain number, a Decimal a {@link Decimal}. */
export type BareItem =
  | number
  | Decimal
  | string
  | boolean
  | Uint8Array
  | Token
  | StructuredDate
  | DisplayString;
/** Ordered parameters of an item or inner list. */
export type Params = Array<[string, BareItem]>;
/** An item with its parameters. */
export interface Item {
  /** The item's value. */
  value: BareItem;
  /** Its parameters, in order. */
  params: Params;
}
/** An inner list with its parameters. */
export interface InnerList {
  /** The list's items. */
  items: Item[];
  /** Its parameters, in order. */
  params: Params;
}
/** A List: items and inner lists, in order. */
export type List = Array<Item | InnerList>;
/** A dictionary, in member order (a later duplicate key replaces an earlier one in place). */
export type Dictionary = Array<[string, Item | InnerList]>;

/** A structured field that could not be parsed, or a value that cannot be serialized. */
export class StructuredFieldError extends Error {}

/** Returns true when a list or dictionary member is an inner list. */
export function isInnerList(member: Item | InnerList): member is InnerList {
  return "items" in member;
}

/** Most List or Dictionary members accepted (RFC 9651 §3.1, §3.2 minimum). */
const maxMembers = 1024;
/** Most Inner List items or Parameters accepted (RFC 9651 §3.1.1, §3.1.2 minimum). */
const maxInner = 256;
/** Longest Byte Sequence accepted, in octets (RFC 9651 §3.3.5 minimum), as base64 characters. */
const maxBase64 = Math.ceil(16384 / 3) * 4;
/** Largest Integer magnitude (15 digits, RFC 9651 §3.3.1). */
const maxInteger = 999_999_999_999_999;

const keyText = /^[a-z*][a-z0-9_\-.*]*$/;
const keyPattern = /[a-z*][a-z0-9_\-.*]*/y;
const tokenText = /^[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*$/;
const tokenPattern = /[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*/y;
const base64Chars = /^[A-Za-z0-9+/=]*$/;
const lowerHexPair = /^[0-9a-f]{2}$/;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** Adds `key` to an ordered map held as pairs, or overwrites its value where it stands. */
function setMember<V>(
  out: Array<[string, V]>,
  index: Map<string, number>,
  key: string,
  value: V,
  max: number,
  fail: (what: string) => never,
): void {
  const at = index.get(key);
  if (at !== undefined) {
    out[at] = [key, value];
    return;
  }
  if (out.length >= max) fail(`More than ${max} members`);
  index.set(key, out.length);
  out.push([key, value]);
}

/** RFC 9651 §4.2, one field value at a time. */
class Parser {
  i = 0;
  constructor(readonly s: string) {}
  fail(what: string): never {
    throw new StructuredFieldError(`${what} at offset ${this.i} of "${this.s.slice(0, 200)}"`);
  }
  at(): number {
    return this.s.charCodeAt(this.i);
  }
  done(): boolean {
    return this.i >= this.s.length;
  }
  skipSP(): void {
    while (this.at() === 0x20) this.i++;
  }
  skipOWS(): void {
    while (this.at() === 0x20 || this.at() === 0x09) this.i++;
  }
  match(re: RegExp): string | null {
    re.lastIndex = this.i;
    const m = re.exec(this.s);
    if (!m) return null;
    this.i += m[0].length;
    return m[0];
  }
  /** §4.2: leading and trailing spaces are discarded; anything else left over fails. */
  top<T>(parse: () => T): T {
    this.skipSP();
    const out = parse();
    this.skipSP();
    if (!this.done()) this.fail("Unexpected characters after the value");
    return out;
  }
  /** §4.2.1 */
  list(): List {
    const out: List = [];
    while (!this.done()) {
      if (out.length >= maxMembers) this.fail(`More than ${maxMembers} list members`);
      out.push(this.itemOrInnerList());
      if (this.endOfMember()) return out;
    }
    return out;
  }
  /** After a List or Dictionary member: true at the end, past the comma otherwise. */
  endOfMember(): boolean {
    this.skipOWS();
    if (this.done()) return true;
    if (this.at() !== 0x2c) this.fail("Expected ',' between members");
    this.i++;
    this.skipOWS();
    if (this.done()) this.fail("Trailing comma");
    return false;
  }
  itemOrInnerList(): Item | InnerList {
    return this.at() === 0x28 ? this.innerList() : this.item();
  }
  /** §4.2.1.2 */
  innerList(): InnerList {
    this.i++;
    const items: Item[] = [];
    while (!this.done()) {
      this.skipSP();
      if (this.at() === 0x29) {
        this.i++;
        return { items, params: this.params() };
      }
      if (items.length >= maxInner) this.fail(`More than ${maxInner} items in an inner list`);
      items.push(this.item());
      const c = this.at();
      if (c !== 0x20 && c !== 0x29) this.fail("Expected a space or ')' in an inner list");
    }
    return this.fail("Unterminated inner list");
  }
  /** §4.2.2 */
  dictionary(): Dictionary {
    const out: Dictionary = [];
    const index = new Map<string, number>();
    while (!this.done()) {
      const key = this.key();
      let member: Item | InnerList;
      if (this.at() === 0x3d) {
        this.i++;
        member = this.itemOrInnerList();
      } else {
        member = { value: true, params: this.params() };
      }
      setMember(out, index, key, member, maxMembers, (what) => this.fail(what));
      if (this.endOfMember()) return out;
    }
    return out;
  }
  /** §4.2.3 */
  item(): Item {
    const value = this.bareItem();
    return { value, params: this.params() };
  }
  /** §4.2.3.1 */
  bareItem(): BareItem {
    const c = this.at();
    if (c === 0x2d || isDigit(c)) return this.number();
    if (c === 0x22) return this.string();
    if (isAlpha(c) || c === 0x2a) return new Token(this.match(tokenPattern)!);
    if (c === 0x3a) return this.bytes();
    if (c === 0x3f) return this.boolean();
    if (c === 0x40) return this.date();
    if (c === 0x25) return this.displayString();
    return this.fail("Expected an item");
  }
  /** §4.2.3.2 */
  params(): Params {
    const out: Params = [];
    const index = new Map<string, number>();
    while (this.at() === 0x3b) {
      this.i++;
      this.skipSP();
      const key = this.key();
      let value: BareItem = true;
      if (this.at() === 0x3d) {
        this.i++;
        value = this.bareItem();
      }
      setMember(out, index, key, value, maxInner, (what) => this.fail(what));
    }
    return out;
  }
  /** §4.2.3.3 */
  key(): string {
    return this.match(keyPattern) ?? this.fail("Expected a key");
  }
  /** §4.2.4 */
  number(): number | Decimal {
    const start = this.i;
    if (this.at() === 0x2d) this.i++;
    if (!isDigit(this.at())) this.fail("Expected a digit");
    const digitsFrom = this.i;
    let dot = -1;
    for (; !this.done(); this.i++) {
      const c = this.at();
      if (c === 0x2e && dot < 0) {
        if (this.i - digitsFrom > 12) this.fail("Decimal has more than 12 integer digits");
        dot = this.i;
      } else if (!isDigit(c)) {
        break;
      }
      const length = this.i + 1 - digitsFrom;
      if (dot < 0 && length > 15) this.fail("Integer has more than 15 digits");
      if (dot >= 0 && length > 16) this.fail("Decimal has more than 16 characters");
    }
    const text = this.s.slice(start, this.i);
    if (dot < 0) return Number(text) + 0; // + 0 turns -0 into 0
    const fraction = this.i - dot - 1;
    if (fraction === 0) this.fail("Decimal ends with '.'");
    if (fraction > 3) this.fail("Decimal has more than 3 fraction digits");
    return new Decimal(Number(text) + 0);
  }
  /** §4.2.5 */
  string(): string {
    this.i++;
    let out = "";
    while (!this.done()) {
      const c = this.s[this.i++]!;
      if (c === "\\") {
        const n = this.s[this.i++];
        if (n !== '"' && n !== "\\") this.fail("Bad escape in string");
        out += n;
      } else if (c === '"') {
        return out;
      } else if (c < " " || c > "~") {
        this.fail("Bad character in string");
      } else {
        out += c;
      }
    }
    return this.fail("Unterminated string");
  }
  /** §4.2.7 */
  bytes(): Uint8Array {
    this.i++;
    const end = this.s.indexOf(":", this.i);
    if (end < 0) this.fail("Unterminated byte sequence");
    if (end - this.i > maxBase64) this.fail("Byte sequence longer than 16384 bytes");
    const b64 = this.s.slice(this.i, end);
    if (!base64Chars.test(b64)) this.fail("Bad character in byte sequence");
    try {
      // Missing padding and non-zero pad bits are accepted, as the RFC says parsers SHOULD.
      const out = fromBase64(b64);
      this.i = end + 1;
      return out;
    } catch {
      return this.fail("Bad base64 in byte sequence");
    }
  }
  /** §4.2.8 */
  boolean(): boolean {
    this.i++;
    const c = this.at();
    if (c !== 0x30 && c !== 0x31) this.fail("Expected a boolean");
    this.i++;
    return c === 0x31;
  }
  /** §4.2.9 */
  date(): StructuredDate {
    this.i++;
    const n = this.number();
    if (n instanceof Decimal) this.fail("A date must be an integer");
    return new StructuredDate(n);
  }
  /** §4.2.10 */
  displayString(): DisplayString {
    this.i++;
    if (this.at() !== 0x22) this.fail("Expected '\"' after '%'");
    this.i++;
    const bytes: number[] = [];
    while (!this.done()) {
      const c = this.at();
      this.i++;
      if (c < 0x20 || c > 0x7e) this.fail("Bad character in display string");
      if (c === 0x25) {
        const hex = this.s.slice(this.i, this.i + 2);
        if (!lowerHexPair.test(hex)) this.fail("Bad percent-encoding in display string");
        bytes.push(parseInt(hex, 16));
        this.i += 2;
      } else if (c === 0x22) {
        try {
          const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
          return new DisplayString(decoder.decode(new Uint8Array(bytes)));
        } catch {
          return this.fail("Display string is not UTF-8");
        }
      } else {
        bytes.push(c);
      }
    }
    return this.fail("Unterminated display string");
  }
}

/** Parses a Dictionary structured field; throws {@link StructuredFieldError}. */
export function parseDictionary(text: string): Dictionary {
  const p = new Parser(text);
  return p.top(() => p.dictionary());
}

/** Parses a List structured field; throws {@link StructuredFieldError}. */
export function parseList(text: string): List {
  const p = new Parser(text);
  return p.top(() => p.list());
}

/** Parses an Item structured field; throws {@link StructuredFieldError}. */
export function parseItem(text: string): Item {
  const p = new Parser(text);
  return p.top(() => p.item());
}

function serializeInteger(n: number): string {
  if (!Number.isInteger(n) || Math.abs(n) > maxInteger) {
    throw new StructuredFieldError(`${n} is not an integer of at most 15 digits`);
  }
  return String(n + 0);
}

/**
 * §4.1.5: rounds to three fraction digits (ties to even, on the number's
 * shortest decimal form, so 0.0025 gives 0.002) and keeps at least one.
 */
function serializeDecimal(n: number): string {
  if (!Number.isFinite(n)) throw new StructuredFieldError(`${n} is not a decimal`);
  const abs = Math.abs(n);
  // Past 1e21 JavaScript writes an exponent; those are too large anyway, and under 1e-7 round to 0.
  if (abs >= 1e13) throw new StructuredFieldError(`${n} has more than 12 integer digits`);
  const text = abs < 1e-6 ? "0" : String(abs);
  const [whole = "0", fraction = ""] = text.split(".");
  let scaled = BigInt(whole + fraction.slice(0, 3).padEnd(3, "0"));
  const rest = fraction.slice(3);
  if (rest !== "") {
    const first = rest.charCodeAt(0) - 0x30;
    const beyond = /[1-9]/.test(rest.slice(1));
    if (first > 5 || (first === 5 && (beyond || scaled % 2n === 1n))) scaled += 1n;
  }
  const intPart = scaled / 1000n;
  if (intPart > 999_999_999_999n) {
    throw new StructuredFieldError(`${n} has more than 12 integer digits`);
  }
  const frac = String(scaled % 1000n).padStart(3, "0").replace(/0+$/, "") || "0";
  const sign = n < 0 && scaled !== 0n ? "-" : "";
  return `${sign}${intPart}.${frac}`;
}

function serializeKey(key: string): string {
  if (!keyText.test(key)) throw new StructuredFieldError(`"${key}" is not a valid key`);
  return key;
}

function serializeDisplayString(text: string): string {
  if (!text.isWellFormed()) {
    throw new StructuredFieldError("Display string has an unpaired surrogate");
  }
  let out = '%"';
  for (const b of new TextEncoder().encode(text)) {
    if (b === 0x25 || b === 0x22 || b < 0x20 || b > 0x7e) {
      out += `%${b.toString(16).padStart(2, "0")}`;
    } else {
      out += String.fromCharCode(b);
    }
  }
  return `${out}"`;
}

/**
 * Serializes a bare item (§4.1.3); throws {@link StructuredFieldError} for a
 * value the RFC cannot carry. A plain number is an Integer when it is whole
 * and a Decimal otherwise; wrap it in {@link Decimal} to write `2.0`.
 */
export function serializeBareItem(v: BareItem): string {
  if (typeof v === "string") {
    if (!/^[\x20-\x7e]*$/.test(v)) {
      throw new StructuredFieldError(`String "${v}" has characters outside ASCII`);
    }
    return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  }
  if (typeof v === "boolean") return v ? "?1" : "?0";
  if (typeof v === "number") return Number.isInteger(v) ? serializeInteger(v) : serializeDecimal(v);
  if (v instanceof Decimal) return serializeDecimal(v.value);
  if (v instanceof Token) {
    if (!tokenText.test(v.value)) throw new StructuredFieldError(`"${v.value}" is not a token`);
    return v.value;
  }
  if (v instanceof StructuredDate) return `@${serializeInteger(v.seconds)}`;
  if (v instanceof DisplayString) return serializeDisplayString(v.value);
  if (v instanceof Uint8Array) return `:${toBase64(v)}:`;
  throw new StructuredFieldError(`${String(v)} is not a structured field value`);
}

/** Serializes parameters (`;a=1;b="x"`); a `true` value is written as the bare key. */
export function serializeParams(params: Params): string {
  return params.map(([k, v]) =>
    v === true ? `;${serializeKey(k)}` : `;${serializeKey(k)}=${serializeBareItem(v)}`
  ).join("");
}

/** Serializes an item with its parameters. */
export function serializeItem(item: Item): string {
  return serializeBareItem(item.value) + serializeParams(item.params);
}

/** Serializes an inner list with its parameters. */
export function serializeInnerList(list: InnerList): string {
  return `(${list.items.map(serializeItem).join(" ")})${serializeParams(list.params)}`;
}

function serializeMember(member: Item | InnerList): string {
  return isInnerList(member) ? serializeInnerList(member) : serializeItem(member);
}

/** Serializes a List; an empty list gives "" (the field is then left out). */
export function serializeList(list: List): string {
  return list.map(serializeMember).join(", ");
}

/** Serializes a Dictionary; a member whose value is `true` is written as its bare key. */
export function serializeDictionary(dict: Dictionary): string {
  return dict.map(([key, member]) => {
    if (!isInnerList(member) && member.value === true) {
      return serializeKey(key) + serializeParams(member.params);
    }
    return `${serializeKey(key)}=${serializeMember(member)}`;
  }).join(", ");
}
