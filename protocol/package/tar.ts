/**
 * A deliberately small ustar archive writer and a strict extractor for
 * package payloads. Only directories and regular files exist in a package:
 * the extractor refuses links, devices, absolute paths, `..` and anything
 * else that could land outside its destination, and bounds entry count and
 * total size.
 *
 * @module
 */

const block = 512;
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** An archive that must not be extracted. */
export class TarError extends Error {}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(path: string, type: "0" | "5", mode: number, size: number): Uint8Array {
  const h = new Uint8Array(block);
  let name = path;
  let prefix = "";
  if (enc.encode(name).length > 100) {
    const cut = path.lastIndexOf("/", 155);
    if (
      cut <= 0 || enc.encode(path.slice(cut + 1)).length > 100 ||
      enc.encode(path.slice(0, cut)).length > 155
    ) {
      throw new TarError(`Path "${path}" is too long for a package archive`);
    }
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  const put = (s: string, at: number) => h.set(enc.encode(s), at);
  put(name, 0);
  put(octal(mode & 0o777, 8), 100);
  put(octal(0, 8), 108);
  put(octal(0, 8), 116);
  put(octal(size, 12), 124);
  put(octal(0, 12), 136);
  put("        ", 148);
  put(type, 156);
  put("ustar\0", 257);
  put("00", 263);
  put(prefix, 345);
  const sum = h.reduce((a, b) => a + b, 0);
  put(octal(sum, 7) + " ", 148);
  return h;
}

async function* walk(
  root: string,
  rel: string,
): AsyncGenerator<{ rel: string; info: Deno.FileInfo }> {
  const entries: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) entries.push(e);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    const info = await Deno.lstat(`${root}/${path}`);
    if (info.isSymlink) {
      throw new TarError(`"${path}" is a symbolic link; packages hold only files and folders`);
    }
    if (info.isDirectory) {
      yield { rel: path, info };
      yield* walk(root, path);
    } else if (info.isFile) {
      yield { rel: path, info };
    } else {
      throw new TarError(`"${path}" is not a regular file or folder`);
    }
  }
}

/** Archives the contents of `dir` (sorted, owner 0, time 0: the same tree gives the same bytes). */
export async function* createTar(dir: string): AsyncGenerator<Uint8Array> {
  for await (const { rel, info } of walk(dir, "")) {
    if (info.isDirectory) {
      yield header(rel + "/", "5", info.mode ?? 0o755, 0);
      continue;
    }
    yield header(rel, "0", info.mode ?? 0o644, info.size);
    using f = await Deno.open(`${dir}/${rel}`, { read: true });
    let left = info.size;
    while (left > 0) {
      // A fresh buffer per read, handed on as is: a consumer may keep it.
      const buf = new Uint8Array(Math.min(64 * 1024, left));
      const n = await f.read(buf);
      if (n === null) throw new TarError(`"${rel}" shrank while it was archived`);
      left -= n;
      yield buf.subarray(0, n);
    }
    const pad = (block - (info.size % block)) % block;
    if (pad) yield new Uint8Array(pad);
  }
  yield new Uint8Array(2 * block);
}

/** Gzip-compresses a byte stream. */
export function gzip(input: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  return ReadableStream.from(input as AsyncIterable<Uint8Array<ArrayBuffer>>).pipeThrough(
    new CompressionStream("gzip") as unknown as TransformStream<
      Uint8Array<ArrayBuffer>,
      Uint8Array
    >,
  );
}

/** Gunzips a byte stream. */
export function gunzip(input: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  return ReadableStream.from(input as AsyncIterable<Uint8Array<ArrayBuffer>>).pipeThrough(
    new DecompressionStream("gzip") as unknown as TransformStream<
      Uint8Array<ArrayBuffer>,
      Uint8Array
    >,
  );
}

/**
 * Reads an archive stream as a queue of its pieces, handing out views into
 * them: bytes are copied only to join a header (or padding) that straddles
 * two pieces, never to move what is left, so reading is linear in the
 * archive's size. Pieces must not be reused by their source once yielded.
 */
class ByteReader {
  #it: AsyncIterator<Uint8Array>;
  #queue: Uint8Array[] = [];
  #head = 0;
  #buffered = 0;
  #stats: { bytesCopied: number } | undefined;
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
  /** Exactly `n` bytes, or null at a clean end before any byte. */
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
  /** Between 1 and `max` bytes, as a view into one piece (never copied); throws when the stream ends. */
  async readUpTo(max: number): Promise<Uint8Array> {
    if (!(await this.#fill(1))) throw new TarError("Archive is truncated");
    const first = this.#queue[0]!;
    const n = Math.min(max, first.length - this.#head);
    const out = first.subarray(this.#head, this.#head + n);
    this.#advance(n);
    return out;
  }
  /** Skips exactly `n` bytes; throws when the stream ends first. */
  async skip(n: number): Promise<void> {
    if (!(await this.#fill(n))) throw new TarError("Archive is truncated");
    this.#advance(n);
  }
}

function field(h: Uint8Array, at: number, len: number): string {
  const raw = h.subarray(at, at + len);
  const end = raw.indexOf(0);
  try {
    return dec.decode(end >= 0 ? raw.subarray(0, end) : raw);
  } catch {
    throw new TarError("Archive header has a name that is not UTF-8");
  }
}

function parseOctal(h: Uint8Array, at: number, len: number, what: string): number {
  const s = field(h, at, len).trim();
  if (!/^[0-7]{1,12}$/.test(s)) throw new TarError(`Archive header has a bad ${what} "${s}"`);
  return parseInt(s, 8);
}

/** Checks an archive path and returns its safe relative form; throws {@link TarError}. */
export function safeRelativePath(path: string): string {
  if (path.includes("\0") || path.includes("\\")) {
    throw new TarError(`Archive path "${path}" has a forbidden character`);
  }
  if (path.startsWith("/")) throw new TarError(`Archive path "${path}" is absolute`);
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) throw new TarError(`Archive path "${path}" escapes with ".."`);
  if (parts.length === 0) throw new TarError(`Archive path "${path}" is empty`);
  return parts.join("/");
}

/** Limits for {@link extractTar}. */
export interface ExtractLimits {
  /** Most entries (10,000 by default). */
  maxEntries?: number;
  /** Most bytes of file content in all (4 GiB by default). */
  maxBytes?: number;
  /**
   * Filled in as the extraction runs: `bytesCopied` counts the bytes the
   * reader copied to join a header or padding split across input pieces
   * (file content is written from views of the input, never copied).
   */
  stats?: { bytesCopied: number };
}

/**
 * Extracts an uncompressed tar stream into `dest` (which must exist and be
 * empty, and which the caller created). Refuses, before writing it, any entry
 * that is not a regular file or folder or whose path would leave `dest`.
 * Returns the relative paths written.
 */
export async function extractTar(
  input: AsyncIterable<Uint8Array>,
  dest: string,
  limits: ExtractLimits = {},
): Promise<string[]> {
  const maxEntries = limits.maxEntries ?? 10_000;
  const maxBytes = limits.maxBytes ?? 4 * 1024 ** 3;
  const r = new ByteReader(input, limits.stats);
  const written: string[] = [];
  let total = 0;
  for (;;) {
    const h = await r.read(block);
    if (h === null) throw new TarError("Archive ends without its end marker");
    if (h.every((b) => b === 0)) return written;
    const stored = parseOctal(h, 148, 8, "checksum");
    const copy = h.slice();
    copy.fill(0x20, 148, 156);
    if (copy.reduce((a, b) => a + b, 0) !== stored) {
      throw new TarError("Archive header checksum does not match");
    }
    if (field(h, 257, 6) !== "ustar") throw new TarError("Archive is not ustar");
    const type = String.fromCharCode(h[156]!);
    const name = [field(h, 345, 155), field(h, 0, 100)].filter((s) => s !== "").join("/");
    const size = parseOctal(h, 124, 12, "size");
    const mode = parseOctal(h, 100, 8, "mode") & 0o777;
    if (type !== "0" && type !== "\0" && type !== "5") {
      const kinds: Record<string, string> = {
        "1": "hard link",
        "2": "symbolic link",
        "3": "device",
        "4": "device",
        "6": "fifo",
      };
      throw new TarError(
        `Archive entry "${name}" is a ${
          kinds[type] ?? `type "${type}" entry`
        }; only files and folders are allowed`,
      );
    }
    const rel = safeRelativePath(name);
    if (++written.length > maxEntries) {
      throw new TarError(`Archive has more than ${maxEntries} entries`);
    }
    written[written.length - 1] = rel;
    const target = `${dest}/${rel}`;
    if (type === "5") {
      await Deno.mkdir(target, { recursive: true, mode: mode | 0o700 });
      continue;
    }
    total += size;
    if (total > maxBytes) throw new TarError(`Archive holds more than ${maxBytes} bytes`);
    const parent = rel.includes("/") ? `${dest}/${rel.slice(0, rel.lastIndexOf("/"))}` : dest;
    await Deno.mkdir(parent, { recursive: true });
    // Every folder on the way was made by this extraction (links are never created), so the path stays inside dest.
    const f = await Deno.open(target, { write: true, createNew: true, mode: mode | 0o600 });
    try {
      let left = size;
      while (left > 0) {
        const chunk = await r.readUpTo(Math.min(left, 1024 * 1024));
        let at = 0;
        while (at < chunk.length) at += await f.write(chunk.subarray(at));
        left -= chunk.length;
      }
    } finally {
      f.close();
    }
    await Deno.chmod(target, mode);
    const pad = (block - (size % block)) % block;
    if (pad) await r.skip(pad);
  }
}
