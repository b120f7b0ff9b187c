/**
 * A deliberately small ustar archive writer and a strict extractor for
 * package payloads. Only directories and regular files exist in a package:
 * the extractor (on the parser in tar_reader.ts, which reads ustar, pax and
 * GNU archives) refuses links, devices, absolute paths, `..` and anything
 * else that could land outside its destination, and bounds entry count and
 * total size.
 *
 * @module
 */

import { safeRelativePath, type TarLimits, TarReader } from "./tar_reader.ts";
import { TarError } from "./tar_bytes.ts";

export { safeRelativePath, TarError };

const block = 512;
const enc = new TextEncoder();

/** Limits for {@link extractTar} (see {@link TarLimits}). */
export type ExtractLimits = TarLimits;

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
 * Extracts an uncompressed tar stream into `dest` (which must exist and be
 * empty, and which the caller created), under the rules of
 * {@link TarReader} (tar_reader.ts): every entry is checked before anything
 * of it is written, so nothing refused is ever created and nothing lands
 * outside `dest`. Files get their mode's permission bits at once; folders
 * get theirs after the whole archive is written (deepest first), as GNU tar
 * does, so a read-only folder still receives its contents. The root entry
 * `./` is skipped (`dest` keeps its mode). Returns the relative paths of the
 * entries written, in archive order.
 */
export async function extractTar(
  input: AsyncIterable<Uint8Array>,
  dest: string,
  limits: ExtractLimits = {},
): Promise<string[]> {
  const reader = new TarReader(input, limits);
  const written: string[] = [];
  const dirModes: Array<{ path: string; mode: number }> = [];
  for (let e = await reader.next(); e !== null; e = await reader.next()) {
    written.push(e.path);
    const target = `${dest}/${e.path}`;
    if (e.kind === "dir") {
      await Deno.mkdir(target, { recursive: true, mode: 0o700 });
      dirModes.push({ path: target, mode: e.mode });
      continue;
    }
    const cut = e.path.lastIndexOf("/");
    if (cut > 0) await Deno.mkdir(`${dest}/${e.path.slice(0, cut)}`, { recursive: true });
    // Every folder on the way was made by this extraction (links are never created), so the path stays inside dest.
    const f = await Deno.open(target, { write: true, createNew: true, mode: 0o600 });
    try {
      for (let chunk = await reader.read(); chunk !== null; chunk = await reader.read()) {
        let at = 0;
        while (at < chunk.length) at += await f.write(chunk.subarray(at));
      }
    } finally {
      f.close();
    }
    await Deno.chmod(target, e.mode);
  }
  dirModes.sort((a, b) => b.path.length - a.path.length);
  for (const d of dirModes) await Deno.chmod(d.path, d.mode);
  return written;
}
