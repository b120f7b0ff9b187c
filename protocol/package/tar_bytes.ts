/**
 * The byte layer under the tar reader: a queue of the input's pieces that
 * hands out views into them (zero-copy), and the header field decoders.
 *
 * @module
 */

/** An archive that must not be extracted. */
export class TarError extends Error {}

/**
 * Reads an archive stream as a queue of its pieces, handing out views into
 * them: bytes are copied only to join a header (or other metadata) that
 * straddles two pieces, never to move what is left, so reading is linear in
 * the archive's size. Pieces must not be reused by their source once yielded.
 */
export class ByteReader {
  #it: AsyncIterator<Uint8Array>;
  #queue: Uint8Array[] = [];
  #head = 0;
  #buffered = 0;
  #stats: { bytesCopied: number } | undefined;
  /** Reads `input`; `stats.bytesCopied` counts the bytes joined across pieces. */
  constructor(input: AsyncIterable<Uint8Array>, stats?: { bytesCopied: number }) {
    this.#it = input[Symbol.asyncIterator]();
    this.#stats = stats;
  }
  /** Waits until at least `n` bytes are buffered; false when the stream ends first. */
  async #fill(n: number): Promise<boolean> {
    while (this.#buffered < n) {
      const { value, done } = await this.#it.next();
      if (done) return false;
      if (value.length === 0) continue;
      this.#queue.push(value);
      this.#buffered += value.length;
    }
    return true;
  }
  /** Drops `n` bytes from the front of the queue (at most what is buffered). */
  #advance(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const first = this.#queue[0]!;
      const left = first.length - this.#head;
      if (n < left) {
        this.#head += n;
        return;
      }
      n -= left;
      this.#queue.shift();
      this.#head = 0;
    }
  }
  /** Exactly `n` bytes, or null at a clean end before any byte; throws when cut part-way. */
  async read(n: number): Promise<Uint8Array | null> {
    if (!(await this.#fill(n))) {
      if (this.#buffered === 0) return null;
      throw new TarError("Archive is truncated");
    }
    const first = this.#queue[0]!;
    if (first.length - this.#head >= n) {
      const out = first.subarray(this.#head, this.#head + n);
      this.#advance(n);
      return out;
    }
    // Straddles pieces: join just these n bytes.
    const out = new Uint8Array(n);
    let at = 0;
    for (let i = 0; at < n; i++) {
      const piece = this.#queue[i]!;
      const from = i === 0 ? this.#head : 0;
      const m = Math.min(n - at, piece.length - from);
      out.set(piece.subarray(from, from + m), at);
      at += m;
    }
    if (this.#stats) this.#stats.bytesCopied += n;
    this.#advance(n);
    return out;
  }
  /** Exactly `n` bytes; throws when the stream ends first. */
  async readExactly(n: number): Promise<Uint8Array> {
    const out = await this.read(n);
    if (out === null) throw new TarError("Archive is truncated");
    return out;
  }
  /** Between 1 and `max` bytes as a view into one piece (never copied), or null at the end. */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (!(await this.#fill(1))) return null;
    const first = this.#queue[0]!;
    const n = Math.min(max, first.length - this.#head);
    const out = first.subarray(this.#head, this.#head + n);
    this.#advance(n);
    return out;
  }
  /** Between 1 and `max` bytes as a view into one piece; throws when the stream ends. */
  async readUpTo(max: number): Promise<Uint8Array> {
    const out = await this.readSome(max);
    if (out === null) throw new TarError("Archive is truncated");
    return out;
  }
  /** Skips exactly `n` bytes; throws when the stream ends first. */
  async skip(n: number): Promise<void> {
    while (n > 0) {
      // Piece by piece: a large skip never buffers more than one piece.
      const got = await this.readUpTo(Math.min(n, 1024 * 1024));
      n -= got.length;
    }
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes UTF-8 (fatal); `what` names the field in the {@link TarError}. */
export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new TarError(`Archive has ${what} that is not UTF-8`);
  }
}

/** A NUL-terminated header text field, as raw bytes (up to the first NUL). */
export function rawField(h: Uint8Array, at: number, len: number): Uint8Array {
  const raw = h.subarray(at, at + len);
  const end = raw.indexOf(0);
  return end >= 0 ? raw.subarray(0, end) : raw;
}

/** A NUL-terminated header text field, compared as ASCII. */
export function asciiField(h: Uint8Array, at: number, len: number): string {
  return String.fromCharCode(...rawField(h, at, len));
}

/**
 * A numeric header field: octal digits (leading spaces allowed, ended by
 * NUL or space, nothing after but NULs and spaces), or GNU base-256 (first
 * byte 0x80) for a non-negative value up to 2^53 - 1. Refuses anything else,
 * including an empty field and a negative base-256 value.
 */
export function headerNumber(h: Uint8Array, at: number, len: number, what: string): number {
  const f = h.subarray(at, at + len);
  if (f[0] === 0x80) {
    let n = 0;
    for (let i = 1; i < len; i++) {
      n = n * 256 + f[i]!;
      if (n > Number.MAX_SAFE_INTEGER) throw new TarError(`Archive header's ${what} is too large`);
    }
    return n;
  }
  if ((f[0]! & 0x80) !== 0) {
    throw new TarError(`Archive header has a negative or malformed ${what}`);
  }
  let i = 0;
  while (i < len && f[i] === 0x20) i++;
  let n = 0;
  const start = i;
  for (; i < len && f[i]! >= 0x30 && f[i]! <= 0x37; i++) n = n * 8 + (f[i]! - 0x30);
  const digits = i - start;
  for (; i < len; i++) if (f[i] !== 0 && f[i] !== 0x20) break;
  if (digits === 0 || i < len) {
    throw new TarError(`Archive header has a bad ${what} "${asciiField(h, at, len).trim()}"`);
  }
  return n;
}

/** Whether the header's checksum holds (unsigned, or the signed sum some old writers used). */
export function checksumHolds(h: Uint8Array): boolean {
  const stored = headerNumber(h, 148, 8, "checksum");
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = 0; i < 512; i++) {
    if (i >= 148 && i < 156) continue;
    const b = h[i]!;
    unsigned += b;
    signed += b < 128 ? b : b - 256;
  }
  return stored === unsigned || stored === signed;
}

/** Whether every byte is zero. */
export function allZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}
