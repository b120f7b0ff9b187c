/**
 * Unit and property tests (fast-check) for protocol/util/encoding.ts: the
 * encoders agree with `node:buffer`, the decoders take back every canonical
 * text, and the decoders accept exactly what the hand-written codecs they
 * replaced accepted (kept below as the reference model), refusing the rest
 * with a `TypeError`.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import {
  fromBase64,
  fromBase64Url,
  fromHex,
  toBase64,
  toBase64Url,
  toHex,
} from "../protocol/util/encoding.ts";

const runs = { numRuns: 1000, seed: 20260905 };

/** Bytes of every length class (0–3 mod 3 and longer than one 0x8000 chunk, occasionally). */
const bytes = fc.oneof(
  { weight: 20, arbitrary: fc.uint8Array({ maxLength: 70 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 0x8000, maxLength: 0x8000 + 3 }) },
);

const b64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const urlChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** Short strings drawn mostly from the base64 alphabets, with padding, whitespace and strays. */
const b64ish = fc.string({
  unit: fc.constantFrom(...(b64Chars + "-_=  \n\t.%é")),
  maxLength: 14,
});
const hexish = fc.string({
  unit: fc.constantFrom(..."0123456789abcdefABCDEFgG \n-+x"),
  maxLength: 9,
});

// The hand-written codecs the module used before the platform methods, kept as the model of what
// is accepted. (Their errors were TypeError or, from atob, a DOMException; now always TypeError.)
const model = {
  fromBase64(text: string): Uint8Array {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.replace(/=+$/, "").length % 4 === 1) {
      throw new TypeError("not base64");
    }
    const bin = atob(text.padEnd(Math.ceil(text.length / 4) * 4, "="));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  },
  fromBase64Url(text: string): Uint8Array {
    if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new TypeError("not base64url");
    const out = model.fromBase64(text.replace(/-/g, "+").replace(/_/g, "/"));
    const back = btoa(String.fromCharCode(...out)).replace(/\+/g, "-").replace(/\//g, "_")
      .replace(/=+$/, "");
    if (back !== text) throw new TypeError("not canonical base64url");
    return out;
  },
  fromHex(text: string): Uint8Array {
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) throw new TypeError("not hex");
    return Uint8Array.from(
      { length: text.length / 2 },
      (_, i) => parseInt(text.slice(2 * i, 2 * i + 2), 16),
    );
  },
};

function outcome(f: (t: string) => Uint8Array, text: string): string {
  try {
    return `ok ${Buffer.from(f(text)).toString("hex")}`;
  } catch {
    return "refused";
  }
}

function assertTypeError(f: () => unknown): void {
  assert.throws(f, TypeError);
}

Deno.test("toBase64, toBase64Url and toHex agree with node:buffer for any bytes", () => {
  fc.assert(
    fc.property(bytes, (b) => {
      const buf = Buffer.from(b);
      assert.equal(toBase64(b), buf.toString("base64"));
      assert.equal(toBase64Url(b), buf.toString("base64url"));
      assert.equal(toHex(b), buf.toString("hex"));
    }),
    runs,
  );
});

Deno.test("the encoders read only the view, not the whole underlying buffer", () => {
  const whole = new Uint8Array([0xff, 1, 2, 3, 0xff]);
  const view = whole.subarray(1, 4);
  assert.equal(toBase64(view), "AQID");
  assert.equal(toBase64Url(view), "AQID");
  assert.equal(toHex(view), "010203");
});

Deno.test("the decoders take back every canonical text node:buffer writes", () => {
  fc.assert(
    fc.property(bytes, (b) => {
      const buf = Buffer.from(b);
      assert.deepEqual(fromBase64(buf.toString("base64")), new Uint8Array(b));
      assert.deepEqual(fromBase64Url(buf.toString("base64url")), new Uint8Array(b));
      assert.deepEqual(fromHex(buf.toString("hex")), new Uint8Array(b));
      assert.deepEqual(fromHex(buf.toString("hex").toUpperCase()), new Uint8Array(b));
    }),
    runs,
  );
});

Deno.test("fromBase64 accepts unpadded and partly padded text, as before", () => {
  assert.deepEqual(fromBase64("AQ"), new Uint8Array([1]));
  assert.deepEqual(fromBase64("AQ="), new Uint8Array([1]));
  assert.deepEqual(fromBase64("AQ=="), new Uint8Array([1]));
  assert.deepEqual(fromBase64("AQI"), new Uint8Array([1, 2]));
  assert.deepEqual(fromBase64("AQI="), new Uint8Array([1, 2]));
  assert.deepEqual(fromBase64(""), new Uint8Array());
  // Spare bits in the last group are ignored by the standard-alphabet decoder.
  assert.deepEqual(fromBase64("AR=="), new Uint8Array([1]));
});

Deno.test("fromBase64 refuses whitespace, strays, excess padding and a lone last character", () => {
  for (
    const bad of [
      "AQ===",
      "AQID=",
      "AQID==",
      "=",
      "A",
      "AQIDB",
      " AQ==",
      "AQ==\n",
      "A Q",
      "AQ-_",
      "AQ.",
      "A=Q=",
    ]
  ) {
    assertTypeError(() => fromBase64(bad));
  }
});

Deno.test("fromBase64Url refuses padding, spare bits, the standard alphabet and bad lengths", () => {
  assert.deepEqual(fromBase64Url("AQ"), new Uint8Array([1]));
  assert.deepEqual(fromBase64Url("-_8"), new Uint8Array([0xfb, 0xff]));
  for (const bad of ["AQ==", "AQ=", "AR", "AQJ", "+/8", "A", "AQIDB", " AQ", "AQ\n", "AQ.", "é"]) {
    assertTypeError(() => fromBase64Url(bad));
  }
  assert.throws(() => fromBase64Url("AR"), /not canonical base64url/);
  assert.throws(() => fromBase64Url("AQ=="), /is not base64url/);
});

Deno.test("fromHex accepts either case and refuses odd lengths, whitespace and non-hex", () => {
  assert.deepEqual(fromHex("0aFf"), new Uint8Array([0x0a, 0xff]));
  assert.deepEqual(fromHex(""), new Uint8Array());
  for (const bad of ["0", "abc", "0g", " 00", "00 ", "0x00", "+0", "-0"]) {
    assertTypeError(() => fromHex(bad));
  }
});

Deno.test("fromBase64 accepts exactly what the hand-written decoder accepted, with the same bytes", () => {
  fc.assert(
    fc.property(b64ish, (text) => {
      assert.equal(outcome(fromBase64, text), outcome(model.fromBase64, text), text);
      if (outcome(fromBase64, text) === "refused") assertTypeError(() => fromBase64(text));
    }),
    { ...runs, numRuns: 20000 },
  );
});

Deno.test("fromBase64Url accepts exactly what the hand-written decoder accepted, with the same bytes", () => {
  const urlish = fc.oneof(
    b64ish,
    // Mostly-valid text, so the spare-bit check is reached often.
    fc.string({ unit: fc.constantFrom(...urlChars), maxLength: 11 }),
  );
  fc.assert(
    fc.property(urlish, (text) => {
      assert.equal(outcome(fromBase64Url, text), outcome(model.fromBase64Url, text), text);
      if (outcome(fromBase64Url, text) === "refused") assertTypeError(() => fromBase64Url(text));
    }),
    { ...runs, numRuns: 20000 },
  );
});

Deno.test("fromHex accepts exactly what the hand-written decoder accepted, with the same bytes", () => {
  fc.assert(
    fc.property(hexish, (text) => {
      assert.equal(outcome(fromHex, text), outcome(model.fromHex, text), text);
      if (outcome(fromHex, text) === "refused") assertTypeError(() => fromHex(text));
    }),
    { ...runs, numRuns: 20000 },
  );
});

Deno.test("fromBase64Url refuses every non-canonical twin of a canonical text", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 40 }),
      fc.integer({ min: 1, max: 15 }),
      (b, flip) => {
        const text = Buffer.from(b).toString("base64url");
        // Padding, as node:buffer's standard encoder would write it.
        const padded = Buffer.from(b).toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
        if (padded !== text) assertTypeError(() => fromBase64Url(padded));
        // Setting spare bits of the last character (there are 2 or 4 of them when length % 3 ≠ 0).
        const spare = b.length % 3 === 1 ? 4 : b.length % 3 === 2 ? 2 : 0;
        if (spare === 0) return;
        const last = urlChars.indexOf(text.at(-1)!);
        const twin = text.slice(0, -1) + urlChars[last ^ (flip & ((1 << spare) - 1))];
        if (twin !== text) assert.throws(() => fromBase64Url(twin), /not canonical/);
      },
    ),
    runs,
  );
});
