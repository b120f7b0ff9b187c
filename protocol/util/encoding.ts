/**
 * Byte encodings used on the wire: base64, base64url (unpadded) and hex.
 *
 * The codecs are the platform's `Uint8Array` base64 and hex methods; this
 * module adds the acceptance rules the protocol needs on top of them (no
 * whitespace, no padding in base64url, no spare bits set in base64url) and
 * turns every refusal into a `TypeError`.
 *
 * @module
 */

/**
 * Characters the platform decoders skip (ASCII whitespace) or treat as padding;
 * the text before any padding must hold none. The decoders check the alphabet.
 */
const skippedOrPadding = /[\t\n\f\r =]/;
/** Unpadded base64url, to tell a stray character from spare bits in an error. */
const base64UrlText = /^[A-Za-z0-9_-]*$/;

function quote(text: string): string {
  return `"${text.slice(0, 40)}"`;
}

function trailingPadding(text: string): number {
  let n = 0;
  while (n < 3 && text.charCodeAt(text.length - 1 - n) === 0x3d) n++;
  return n;
}

/** Encodes bytes as standard base64 with padding. */
export function toBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

/**
 * Decodes standard base64; throws a `TypeError` on anything else. Padding is
 * optional and may be partial (`AB`, `AB=` and `AB==` all decode), but never
 * longer than the last group needs; spare bits in the last group are ignored.
 */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const pad = trailingPadding(text);
  const body = text.slice(0, text.length - pad);
  const rest = body.length % 4;
  if (rest === 1 || pad > (4 - rest) % 4 || skippedOrPadding.test(body)) {
    throw new TypeError(`Value ${quote(text)} is not base64`);
  }
  try {
    // "loose" (the default) decodes an unpadded last group and ignores its spare bits.
    return Uint8Array.fromBase64(body);
  } catch {
    throw new TypeError(`Value ${quote(text)} is not base64`);
  }
}

/** Encodes bytes as unpadded base64url. */
export function toBase64Url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/**
 * Decodes unpadded base64url; throws a `TypeError` on anything else, including
 * non-canonical text (spare bits set), so each value has one encoding.
 */
export function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const rest = text.length % 4;
  if (rest === 1 || skippedOrPadding.test(text)) {
    throw new TypeError(`Value ${quote(text)} is not base64url`);
  }
  try {
    // "strict" refuses spare bits but wants the padding the wire form leaves out.
    const padded = rest === 0 ? text : text + "==".slice(0, 4 - rest);
    return Uint8Array.fromBase64(padded, { alphabet: "base64url", lastChunkHandling: "strict" });
  } catch {
    const why = base64UrlText.test(text) ? "is not canonical base64url" : "is not base64url";
    throw new TypeError(`Value ${quote(text)} ${why}`);
  }
}

/** Encodes bytes as lower-case hex. */
export function toHex(bytes: Uint8Array): string {
  return bytes.toHex();
}

/** Decodes hex (either case); throws a `TypeError` on odd length or non-hex characters. */
export function fromHex(text: string): Uint8Array<ArrayBuffer> {
  try {
    return Uint8Array.fromHex(text);
  } catch {
    throw new TypeError(`Value ${quote(text)} is not hex`);
  }
}

/** UTF-8 encodes a string. */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text);
}

/** SHA-256 of bytes or of a string's UTF-8 encoding. */
export async function sha256(
  data: Uint8Array<ArrayBuffer> | string,
): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = typeof data === "string" ? utf8(data) : data;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}
