/**
 * A parser and serializer for the parts of RFC 9651 (Structured Field Values)
 * that HTTP Message Signatures and Content-Digest use: dictionaries whose
 * members are items or inner lists, with parameters.
 *
 * @module
 */

/** A token (an unquoted identifier such as `sha-256`). */
export class Token {
  /** Wraps a token's text. */
  constructor(readonly value: string) {}
}

/** A bare item value. */
export type BareItem = number | string | boolean | Uint8Array | Token;
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
/** A dictionary, in member order (a later duplicate key replaces an earlier one). */
export type Dictionary = Array<[string, Item | InnerList]>;

/** A structured field that could not be parsed. */
export class StructuredFieldError extends Error {}

/** Returns true when a dictionary member is an inner list. */
export function isInnerList(member: Item | InnerList): member is InnerList {
  return "items" in member;
}

const keyPattern = /[a-z*][a-z0-9_\-.*]*/y;
const tokenPattern = /[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*/y;
const numberPattern = /-?[0-9]{1,15}(\.[0-9]{1,3})?/y;
/** Most members, items or parameters accepted in one structure (bounds the parser's work). */
const maxMembers = 32;

class Parser {
  i = 0;
  constructor(readonly s: string) {}
  fail(what: string): never {
    throw new StructuredFieldError(`${what} at offset ${this.i} of "${this.s.slice(0, 200)}"`);
  }
  peek(): string {
    return this.s[this.i] ?? "";
  }
  skipSP(): void {
    while (this.peek() === " ") this.i++;
  }
  skipOWS(): void {
    while (this.peek() === " " || this.peek() === "\t") this.i++;
  }
  match(re: RegExp): string | null {
    re.lastIndex = this.i;
    const m = re.exec(this.s);
    if (!m) return null;
    this.i += m[0].length;
    return m[0];
  }
  key(): string {
    return this.match(keyPattern) ?? this.fail("Expected a key");
  }
  params(): Params {
    const out: Params = [];
    while (this.peek() === ";") {
      this.i++;
      this.skipSP();
      const k = this.key();
      let v: BareItem = true;
      if (this.peek() === "=") {
        this.i++;
        v = this.bareItem();
      }
      const at = out.findIndex(([name]) => name === k);
      if (at >= 0) out[at] = [k, v];
      else if (out.length >= maxMembers) this.fail(`More than ${maxMembers} parameters`);
      else out.push([k, v]);
    }
    return out;
  }
  bareItem(): BareItem {
    const c = this.peek();
    if (c === '"') return this.string();
    if (c === ":") return this.bytes();
    if (c === "?") {
      this.i++;
      const b = this.peek();
      if (b !== "0" && b !== "1") this.fail("Expected a boolean");
      this.i++;
      return b === "1";
    }
    if (c === "-" || (c >= "0" && c <= "9")) return this.number();
    if (/[A-Za-z*]/.test(c)) return new Token(this.match(tokenPattern)!);
    return this.fail("Expected an item");
  }
  string(): string {
    this.i++;
    let out = "";
    for (;;) {
      const c = this.s[this.i++];
      if (c === undefined) this.fail("Unterminated string");
      if (c === '"') return out;
      if (c === "\\") {
        const n = this.s[this.i++];
        if (n !== '"' && n !== "\\") this.fail("Bad escape in string");
        out += n;
      } else if (c < " " || c > "~") {
        this.fail("Bad character in string");
      } else out += c;
    }
  }
  bytes(): Uint8Array {
    this.i++;
    const end = this.s.indexOf(":", this.i);
    if (end - this.i > 4096) this.fail("Byte sequence too long");
    if (end < 0) this.fail("Unterminated byte sequence");
    const b64 = this.s.slice(this.i, end);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) this.fail("Bad byte sequence");
    this.i = end + 1;
    try {
      const bin = atob(b64);
      return Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
    } catch {
      return this.fail("Bad byte sequence");
    }
  }
  number(): number {
    const m = this.match(numberPattern);
    if (m === null) this.fail("Expected a number");
    if (/[0-9]/.test(this.peek())) this.fail("Number too long");
    return Number(m);
  }
  item(): Item {
    const value = this.bareItem();
    return { value, params: this.params() };
  }
  innerList(): InnerList {
    this.i++;
    const items: Item[] = [];
    for (;;) {
      this.skipSP();
      if (this.peek() === ")") {
        this.i++;
        return { items, params: this.params() };
      }
      if (items.length >= maxMembers) this.fail(`More than ${maxMembers} items in an inner list`);
      items.push(this.item());
      const c = this.peek();
      if (c !== " " && c !== ")") this.fail("Expected a space or ')' in inner list");
    }
  }
  dictionary(): Dictionary {
    const out: Dictionary = [];
    this.skipSP();
    if (this.i >= this.s.length) return out;
    for (;;) {
      const k = this.key();
      let member: Item | InnerList;
      if (this.peek() === "=") {
        this.i++;
        member = this.peek() === "(" ? this.innerList() : this.item();
      } else {
        member = { value: true, params: this.params() };
      }
      const at = out.findIndex(([name]) => name === k);
      if (at >= 0) out[at] = [k, member];
      else if (out.length >= maxMembers) this.fail(`More than ${maxMembers} dictionary members`);
      else out.push([k, member]);
      this.skipOWS();
      if (this.i >= this.s.length) return out;
      if (this.peek() !== ",") this.fail("Expected ',' between dictionary members");
      this.i++;
      this.skipOWS();
      if (this.i >= this.s.length) this.fail("Trailing comma in dictionary");
    }
  }
}

/** Parses a Dictionary structured field; throws {@link StructuredFieldError}. */
export function parseDictionary(text: string): Dictionary {
  return new Parser(text.trim()).dictionary();
}

/** Serializes a bare item. */
export function serializeBareItem(v: BareItem): string {
  if (typeof v === "string") {
    if (!/^[\x20-\x7e]*$/.test(v)) {
      throw new StructuredFieldError(`String "${v}" has characters outside ASCII`);
    }
    return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  }
  if (typeof v === "boolean") return v ? "?1" : "?0";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    return String(Math.round(v * 1000) / 1000);
  }
  if (v instanceof Token) return v.value;
  let bin = "";
  for (const b of v) bin += String.fromCharCode(b);
  return `:${btoa(bin)}:`;
}

/** Serializes parameters (`;a=1;b="x"`); a `true` value is written as the bare key. */
export function serializeParams(params: Params): string {
  return params.map(([k, v]) => (v === true ? `;${k}` : `;${k}=${serializeBareItem(v)}`)).join("");
}

/** Serializes an inner list with its parameters. */
export function serializeInnerList(list: InnerList): string {
  const items = list.items.map((it) => serializeBareItem(it.value) + serializeParams(it.params));
  return `(${items.join(" ")})${serializeParams(list.params)}`;
}
