/**
 * The one tar parser the agent's extractor and the NOC's payload check share:
 * it reads ustar, pax (POSIX.1-2001) and GNU archives as GNU tar, bsdtar and
 * Python's `tarfile` write them, and yields only directories and regular
 * files with safe relative paths. Everything it refuses, it refuses before
 * the entry is handed out, so nothing refused is ever written.
 *
 * Rules (docs/security.md, "Package archives"):
 * - Header kinds: `0`/NUL (file), `5` (folder), `x` (pax header for the next
 *   entry), `g` (pax global header: skipped, its records never obeyed), `L`
 *   (GNU long name for the next entry). Links (`1`, `2`, `K`), devices,
 *   fifos, sparse files (`S`, pax `GNU.sparse.*`) and unknown kinds are refused.
 * - Of pax records only `path` and `size` change anything; `mtime` and
 *   `linkpath` are checked for form and otherwise unused; the rest are ignored.
 *   A pax `size` must equal the header's size; a NUL in a pax path, an empty
 *   or repeated `path`/`size` record, a pax header before a long-name header
 *   (or any two name headers for one entry) are refused.
 * - The path (after a pax `path` or long name is applied) must be relative,
 *   without `..` or `\`, at most {@link tarRules}.maxPathBytes bytes and
 *   {@link tarRules}.maxDepth components, with no component over 255 bytes.
 *   `./` (or `.`) as a folder is the archive's root and is skipped.
 * - Each path appears once: a second entry for a path (any kind), an entry
 *   under a file, or a file where a folder already is, is refused.
 * - Entries plus the folders they imply are at most `maxEntries`; file
 *   content is at most `maxBytes`; pax, global and long-name headers are at
 *   most 64 KiB each; global headers are at most `maxEntries`; headers of
 *   every kind (root `./` entries, `x`, `g` and `L` included) are at most
 *   `4 × maxEntries + 16`, so no kind of header escapes a count.
 * - The end is two zero blocks; what follows may only be zeros, at most 1 MiB.
 * - Modes keep only the permission bits (setuid, setgid, sticky are dropped).
 *
 * @module
 */
import {
  allZero,
  asciiField,
  ByteReader,
  checksumHolds,
  decodeUtf8,
  headerNumber,
  rawField,
  TarError,
} from "./tar_bytes.ts";

export { TarError };

const block = 512;

/** Fixed bounds of the parser (not tunable: the agent and the NOC must agree). */
export const tarRules: {
  /** Largest pax (`x`, `g`) or long-name (`L`) header body, bytes. */
  readonly maxMetaBytes: number;
  /** Longest entry path, bytes of UTF-8 (a package unpacks under a state folder: PATH_MAX is 4096). */
  readonly maxPathBytes: number;
  /** Longest path component, bytes (NAME_MAX). */
  readonly maxNameBytes: number;
  /**
   * Most components in an entry path ("a/b/c" has 3). Removing a tree holds one open file per
   * level (Deno.remove recursive), so a tree deeper than the open-file limit (1024 by default)
   * could never be deleted; 128 leaves room for the state folder's own levels and fits real
   * trees (npm 2's nested node_modules, Java package folders) with margin.
   */
  readonly maxDepth: number;
  /** Most bytes after the end marker (all zeros: a writer's record padding). */
  readonly maxTrailingBytes: number;
} = Object.freeze({
  maxMetaBytes: 64 * 1024,
  maxPathBytes: 3072,
  maxNameBytes: 255,
  maxDepth: 128,
  maxTrailingBytes: 1024 * 1024,
});

/** The default limits of {@link TarReader} (the agent's: see payload.ts `payloadLimits`). */
export const defaultTarLimits: { readonly maxEntries: number; readonly maxBytes: number } = Object
  .freeze({ maxEntries: 10_000, maxBytes: 4 * 1024 ** 3 });

/**
 * Most headers of any kind {@link TarReader} reads for `maxEntries`: each entry may carry one pax
 * or long-name header, global headers are at most `maxEntries`, and the rest is room for root
 * `./` entries and their pax headers.
 */
export function maxHeaders(maxEntries: number): number {
  return 4 * maxEntries + 16;
}

/** Limits for {@link TarReader} and `extractTar()`. */
export interface TarLimits {
  /** Most entries, counting the folders they imply (10,000 by default). */
  maxEntries?: number;
  /** Most bytes of file content in all (4 GiB by default). */
  maxBytes?: number;
  /**
   * Filled in as the reading runs: `bytesCopied` counts the bytes the reader
   * copied to join a header or metadata split across input pieces (file
   * content is handed out as views of the input, never copied).
   */
  stats?: { bytesCopied: number };
}

/** One entry the reader hands out: a folder or a regular file. */
export interface TarEntry {
  /** Normalised safe relative path ("a/b", never empty, no `.`, `..` or leading `/`). */
  path: string;
  kind: "file" | "dir";
  /** Permission bits only (mode & 0o777). */
  mode: number;
  /** Content bytes (0 for a folder). */
  size: number;
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

const kinds: Record<string, string> = {
  "1": "hard link",
  "2": "symbolic link",
  "K": "link (GNU long link name)",
  "3": "character device",
  "4": "block device",
  "6": "fifo",
  "7": "contiguous file",
  "S": "sparse file",
  "D": "GNU dump folder",
  "M": "multi-volume continuation",
  "N": "GNU old long name",
  "V": "volume label",
  "X": "Solaris extended header",
};

/**
 * How to archive a tree holding links so that it has none, told with the refusal. `-h` alone is
 * not enough for a symbolic link to a file in the same tree: GNU tar then stores the second name
 * of that file as a hard link.
 */
const linkFixes: Record<string, string> = {
  "1": " (GNU tar: add --hard-dereference)",
  "2": " (GNU tar: add -h --hard-dereference, that is --dereference --hard-dereference)",
  "K": " (GNU tar: add -h --hard-dereference, that is --dereference --hard-dereference)",
};

/** What a pax header said about the next entry. */
interface Pax {
  path?: string;
  size?: number;
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextEncoder();

function paxRecords(body: Uint8Array): Pax {
  const pax: Pax = {};
  const bad = (why: string) => new TarError(`Archive has a malformed pax header (${why})`);
  let at = 0;
  while (at < body.length) {
    let sp = at;
    while (sp < body.length && body[sp]! >= 0x30 && body[sp]! <= 0x39 && sp - at < 8) sp++;
    if (sp === at || body[sp] !== 0x20) throw bad("a record without its length");
    const len = Number(latin1.decode(body.subarray(at, sp)));
    const end = at + len;
    if (len <= sp - at + 1 || end > body.length || body[end - 1] !== 0x0a) {
      throw bad("a record's length is wrong");
    }
    const rec = body.subarray(sp + 1, end - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 1) throw bad("a record without a key");
    const key = latin1.decode(rec.subarray(0, eq));
    const value = rec.subarray(eq + 1);
    at = end;
    if (key.startsWith("GNU.sparse.")) {
      throw new TarError("Archive holds a sparse file; only files and folders are allowed");
    }
    if (key === "path") {
      if (pax.path !== undefined) throw bad("two path records");
      if (value.includes(0)) throw new TarError("Archive has a pax path with a NUL in it");
      if (value.length === 0) throw bad("an empty path");
      if (value.length > tarRules.maxPathBytes) {
        throw new TarError(`Archive has a path longer than ${tarRules.maxPathBytes} bytes`);
      }
      pax.path = decodeUtf8(value, "a pax path");
    } else if (key === "size") {
      if (pax.size !== undefined) throw bad("two size records");
      const s = latin1.decode(value);
      if (!/^[0-9]{1,16}$/.test(s) || Number(s) > Number.MAX_SAFE_INTEGER) {
        throw bad(`size "${s.slice(0, 20)}"`);
      }
      pax.size = Number(s);
    } else if (key === "mtime") {
      if (!/^-?[0-9]{1,20}(\.[0-9]{0,20})?$/.test(latin1.decode(value))) throw bad("mtime");
    }
    // linkpath: only links use it, and links are refused. Every other record is ignored.
  }
  return pax;
}

/**
 * A pull parser over an uncompressed tar stream: {@link next} hands out the
 * next folder or file (after every check), {@link read} its content as
 * views of the input. Content not read is skipped by the next {@link next}.
 */
export class TarReader {
  #r: ByteReader;
  #maxEntries: number;
  #maxBytes: number;
  /** Every path seen: entries ("file", "dir") and folders they imply ("implied"). */
  #seen = new Map<string, "file" | "dir" | "implied">();
  #entries = 0;
  #globals = 0;
  #headers = 0;
  #maxHeaders: number;
  #bytes = 0;
  #left = 0;
  #pad = 0;
  #done = false;

  /** Reads `input` (a tar stream) under `limits`. */
  constructor(input: AsyncIterable<Uint8Array>, limits: TarLimits = {}) {
    this.#r = new ByteReader(input, limits.stats);
    this.#maxEntries = limits.maxEntries ?? defaultTarLimits.maxEntries;
    this.#maxBytes = limits.maxBytes ?? defaultTarLimits.maxBytes;
    this.#maxHeaders = maxHeaders(this.#maxEntries);
  }

  /** Entries handed out so far (files and folders, not the root `./`). */
  get entries(): number {
    return this.#entries;
  }

  /** File content bytes of the entries handed out so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Up to `max` bytes of the current file's content (a view), or null when it is all read. */
  async read(max = 1024 * 1024): Promise<Uint8Array | null> {
    if (this.#left === 0) return null;
    const chunk = await this.#r.readUpTo(Math.min(max, this.#left));
    this.#left -= chunk.length;
    return chunk;
  }

  /**
   * The next entry, or null at the end of the archive (after its end marker
   * and the zeros after it are checked). Throws {@link TarError}.
   */
  async next(): Promise<TarEntry | null> {
    if (this.#done) return null;
    if (this.#left + this.#pad > 0) await this.#r.skip(this.#left + this.#pad);
    this.#left = 0;
    this.#pad = 0;
    let pax: Pax | undefined;
    let longName: string | undefined;
    for (;;) {
      const h = await this.#r.read(block);
      if (h === null) throw new TarError("Archive ends without its end marker");
      if (allZero(h)) {
        if (pax || longName !== undefined) {
          throw new TarError("Archive ends with a pax or long-name header and no entry");
        }
        await this.#end();
        return null;
      }
      if (!checksumHolds(h)) throw new TarError("Archive header checksum does not match");
      if (++this.#headers > this.#maxHeaders) {
        throw new TarError(
          `Archive has more than ${this.#maxHeaders} headers (root "./" entries, pax and ` +
            `long-name headers included; at most ${this.#maxEntries} entries)`,
        );
      }
      const magic = asciiField(h, 257, 8);
      const gnu = magic === "ustar  ";
      if (!gnu && asciiField(h, 257, 6) !== "ustar") {
        throw new TarError("Archive is not ustar, pax or GNU tar");
      }
      const type = String.fromCharCode(h[156]!);
      const size = headerNumber(h, 124, 12, "size");
      if (type === "x" || type === "g" || type === "L") {
        if (size > tarRules.maxMetaBytes) {
          throw new TarError(`Archive has a pax or long-name header over 64 KiB`);
        }
        if (pax || longName !== undefined) {
          throw new TarError(
            type === "L" && pax
              ? "Archive applies a pax header to a long-name header"
              : "Archive has two pax or long-name headers for one entry",
          );
        }
        const body = size === 0 ? new Uint8Array(0) : await this.#r.readExactly(size);
        await this.#r.skip((block - (size % block)) % block);
        if (type === "x") pax = paxRecords(body);
        else if (type === "L") longName = this.#longName(body);
        else if (++this.#globals > this.#maxEntries) {
          throw new TarError(`Archive has more than ${this.#maxEntries} global headers`);
        }
        continue;
      }
      if (type !== "0" && type !== "\0" && type !== "5") {
        const shown = longName ?? pax?.path ?? decodeUtf8(this.#headerName(h, gnu), "a name");
        throw new TarError(
          `Archive entry "${shown}" is a ${
            kinds[type] ?? `type "${type}" entry`
          }; only files and folders are allowed${linkFixes[type] ?? ""}`,
        );
      }
      if (pax?.size !== undefined && pax.size !== size) {
        throw new TarError(
          `Archive has a pax size (${pax.size}) that disagrees with its header (${size})`,
        );
      }
      const name = pax?.path ?? longName ??
        decodeUtf8(this.#headerName(h, gnu), "a name");
      const entry = this.#entry(name, type === "5" ? "dir" : "file", size, h);
      if (entry) return entry;
      pax = undefined;
      longName = undefined;
    }
  }

  #headerName(h: Uint8Array, gnu: boolean): Uint8Array {
    const name = rawField(h, 0, 100);
    // GNU's header has no prefix field: those bytes are times and sparse data.
    const prefix = gnu ? new Uint8Array(0) : rawField(h, 345, 155);
    if (prefix.length === 0) return name;
    const joined = new Uint8Array(prefix.length + 1 + name.length);
    joined.set(prefix);
    joined[prefix.length] = 0x2f;
    joined.set(name, prefix.length + 1);
    return joined;
  }

  #longName(body: Uint8Array): string {
    const end = body.indexOf(0);
    const name = end >= 0 ? body.subarray(0, end) : body;
    if (end >= 0 && !allZero(body.subarray(end))) {
      throw new TarError("Archive has a long name with bytes after its NUL");
    }
    if (name.length === 0) throw new TarError("Archive has an empty long name");
    if (name.length > tarRules.maxPathBytes) {
      throw new TarError(`Archive has a path longer than ${tarRules.maxPathBytes} bytes`);
    }
    return decodeUtf8(name, "a long name");
  }

  /** Checks one entry; null for the archive's root folder (`./`), which is skipped. */
  #entry(name: string, kind: "file" | "dir", size: number, h: Uint8Array): TarEntry | null {
    const bytes = utf8.encode(name).length;
    if (bytes > tarRules.maxPathBytes) {
      throw new TarError(`Archive has a path longer than ${tarRules.maxPathBytes} bytes`);
    }
    if (kind === "file" && name.endsWith("/")) {
      throw new TarError(`Archive entry "${name}" is a file with a folder's name`);
    }
    if (kind === "dir" && size !== 0) {
      throw new TarError(`Archive folder "${name}" has content`);
    }
    const isRoot = !name.includes("\0") && !name.startsWith("/") &&
      name.split("/").every((p) => p === "" || p === ".");
    if (isRoot && kind === "dir") return null;
    const path = safeRelativePath(name);
    const parts = path.split("/");
    if (parts.length > tarRules.maxDepth) {
      throw new TarError(
        `Archive path "${path.length > 60 ? `${path.slice(0, 60)}…` : path}" is ${parts.length} ` +
          `levels deep; at most ${tarRules.maxDepth} levels are allowed`,
      );
    }
    if (parts.some((p) => utf8.encode(p).length > tarRules.maxNameBytes)) {
      throw new TarError(`Archive path "${name}" has a name longer than 255 bytes`);
    }
    this.#claim(path, kind);
    this.#bytes += size;
    if (this.#bytes > this.#maxBytes) {
      throw new TarError(`Archive holds more than ${this.#maxBytes} bytes`);
    }
    this.#entries++;
    this.#left = size;
    this.#pad = (block - (size % block)) % block;
    return { path, kind, mode: headerNumber(h, 100, 8, "mode") & 0o777, size };
  }

  /** Records `path` (and the folders it implies), refusing duplicates and paths under files. */
  #claim(path: string, kind: "file" | "dir"): void {
    const was = this.#seen.get(path);
    if (was === "file" || was === "dir") {
      throw new TarError(`Archive has "${path}" twice`);
    }
    if (was === "implied" && kind === "file") {
      throw new TarError(`Archive has a file "${path}" where it already has a folder`);
    }
    // Walk up until a known folder: everything above a known folder is known.
    const implied: string[] = [];
    for (let cut = path.lastIndexOf("/"); cut > 0; cut = path.lastIndexOf("/", cut - 1)) {
      const parent = path.slice(0, cut);
      const p = this.#seen.get(parent);
      if (p === "file") throw new TarError(`Archive has "${path}" under the file "${parent}"`);
      if (p !== undefined) break;
      implied.push(parent);
    }
    if (this.#seen.size + implied.length + (was ? 0 : 1) > this.#maxEntries) {
      throw new TarError(`Archive has more than ${this.#maxEntries} entries`);
    }
    for (const p of implied) this.#seen.set(p, "implied");
    this.#seen.set(path, kind);
  }

  /** After the first zero block: the second, then only zeros (bounded) to the end; never copied. */
  async #end(): Promise<void> {
    let after = 0;
    for (;;) {
      const chunk = await this.#r.readSome(64 * 1024);
      if (chunk === null) break;
      const nonZero = chunk.findIndex((b) => b !== 0);
      if (nonZero >= 0) {
        throw new TarError(
          after + nonZero < block
            ? "Archive has data after a lone zero block (no end marker)"
            : "Archive has data after its end marker",
        );
      }
      after += chunk.length;
      if (after > block + tarRules.maxTrailingBytes) {
        throw new TarError("Archive has more than 1 MiB after its end marker");
      }
    }
    if (after < block) throw new TarError("Archive ends without its end marker");
    this.#done = true;
  }
}
