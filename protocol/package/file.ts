/**
 * Packages on disk: building one from a plaintext stream, and opening one —
 * signature first, then the ciphertext's size and digest, and only then
 * decryption — without ever holding it in memory whole. A package whose
 * bytes were scanned as they arrived ({@link PackageScanner}, as the agent's
 * download does) is verified without reading it again and decrypted in one
 * read ({@link verifyScannedPackage}, {@link decryptPackageFile}).
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  checkCiphertextDigest,
  ciphertextSizeFor,
  decryptChunks,
  defaultChunkSize,
  encryptChunks,
  expectComponent,
  importContentKey,
  maxPrefixBytes,
  newContentKey,
  packageFormat,
  type PackageHeader,
  packagePrefix,
  type ParsedPrefix,
  parsePackagePrefix,
  verifyPackagePrefix,
} from "./format.ts";
import { PackageScanner, type ScannedPackage } from "./scan.ts";
import type { PublishedKey } from "../keys.ts";
import type { Ed25519Key } from "../crypto/ed25519.ts";

/** Reads a file from `offset` to its end as a stream of chunks. */
export async function* readFileFrom(path: string, offset = 0): AsyncGenerator<Uint8Array> {
  using f = await Deno.open(path, { read: true });
  await f.seek(offset, Deno.SeekMode.Start);
  const buf = new Uint8Array(256 * 1024);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) return;
    yield buf.slice(0, n);
  }
}

async function writeAll(f: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await f.write(bytes.subarray(at));
}

/** What {@link buildPackage} made. */
export interface BuiltPackage {
  /** The signed header. */
  header: PackageHeader;
  /** The raw content key (secret: keep it encrypted at rest, wrap it per appliance). */
  contentKey: Uint8Array<ArrayBuffer>;
  /** Total package file size. */
  fileSize: number;
}

/** Encrypts `plaintext` into a signed package file at `out`. */
export async function buildPackage(options: {
  plaintext: AsyncIterable<Uint8Array>;
  app: string;
  name: string;
  version: string;
  signer: { kid: string; privateKey: Ed25519Key };
  out: string;
  now: Date;
  chunkSize?: number;
  contentKey?: Uint8Array<ArrayBuffer>;
}): Promise<BuiltPackage> {
  const chunkSize = options.chunkSize ?? defaultChunkSize;
  const contentKey = options.contentKey ?? newContentKey();
  const key = await importContentKey(contentKey);
  const tmp = `${options.out}.ciphertext.tmp`;
  let size = 0;
  async function* counted() {
    for await (const piece of options.plaintext) {
      size += piece.length;
      yield piece;
    }
  }
  try {
    // The ciphertext is hashed as it is written: its digest goes in the header, before it.
    const hash = createHash("sha256");
    let ciphertextSize = 0;
    {
      using f = await Deno.open(tmp, { write: true, create: true, truncate: true });
      for await (const c of encryptChunks(counted(), key, chunkSize)) {
        hash.update(c);
        ciphertextSize += c.length;
        await writeAll(f, c);
      }
    }
    const sha256 = hash.digest("hex");
    const header: PackageHeader = {
      format: packageFormat,
      app: options.app,
      name: options.name,
      version: options.version,
      size,
      chunkSize,
      ciphertextSize,
      ciphertextSha256: sha256,
      kid: options.signer.kid,
      createdAt: options.now.toISOString(),
    };
    if (ciphertextSize !== ciphertextSizeFor(size, chunkSize)) {
      throw new Error("Ciphertext size is inconsistent");
    }
    const prefix = await packagePrefix(header, options.signer);
    {
      using f = await Deno.open(options.out, { write: true, create: true, truncate: true });
      await writeAll(f, prefix);
      for await (const c of readFileFrom(tmp)) await writeAll(f, c);
    }
    return { header, contentKey, fileSize: prefix.length + ciphertextSize };
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

/** Reads and parses a package file's prefix. */
export async function readPackagePrefix(path: string): Promise<ParsedPrefix> {
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(maxPrefixBytes);
  let n = 0;
  for (;;) {
    const r = await f.read(buf.subarray(n));
    if (r === null || r === 0) break;
    n += r;
    if (n === buf.length) break;
  }
  return parsePackagePrefix(buf.subarray(0, n));
}

/** Reads a package file once, picking out its prefix and measuring its ciphertext ({@link PackageScanner}). */
export async function scanPackageFile(path: string): Promise<PackageScanner> {
  const scanner = new PackageScanner();
  for await (const chunk of readFileFrom(path)) scanner.update(chunk);
  return scanner;
}

/** A package whose signature, component and ciphertext digest have all been checked. */
export interface VerifiedPackage {
  /** The verified header. */
  header: PackageHeader;
  /** Where its ciphertext starts in the package file. */
  ciphertextOffset: number;
}

/**
 * Checks a scanned package, in the order the format sets, without reading it
 * again: the signature against `trusted` (once), that it is the expected
 * component, then the ciphertext's size and SHA-256 (measured as its bytes
 * went by) against the signed header. Throws {@link PackageError}; nothing may
 * be decrypted from a package that has not passed.
 */
export async function verifyScannedPackage(
  scanned: PackageScanner | ScannedPackage,
  options: {
    trusted: readonly PublishedKey[];
    now: Date;
    expect?: { app: string; name: string; version: string };
  },
): Promise<VerifiedPackage> {
  const scan = scanned instanceof PackageScanner ? scanned.result() : scanned;
  await verifyPackagePrefix(scan.prefix, options.trusted, options.now);
  if (options.expect) expectComponent(scan.prefix.header, options.expect);
  checkCiphertextDigest(
    { size: scan.ciphertextSize, sha256: scan.ciphertextSha256 },
    scan.prefix.header,
  );
  return { header: scan.prefix.header, ciphertextOffset: scan.prefix.ciphertextOffset };
}

/**
 * Decrypts a verified package file in one read. Each chunk is authenticated
 * (AES-256-GCM, its index and a final flag bound in) under a content key that
 * is itself bound to the signed ciphertext digest, so bytes changed on disk
 * after the check fail to decrypt rather than yield plaintext.
 */
export async function* decryptPackageFile(
  path: string,
  verified: VerifiedPackage,
  contentKey: Uint8Array<ArrayBuffer>,
): AsyncGenerator<Uint8Array> {
  const key = await importContentKey(contentKey);
  yield* decryptChunks(
    readFileFrom(path, verified.ciphertextOffset),
    key,
    verified.header.chunkSize,
  );
}

/**
 * Opens a package file: verifies the signature against `trusted`, checks it
 * is the expected component, checks the ciphertext's size and digest over the
 * whole file, and only then yields the decrypted payload. Two reads: one to
 * check, one to decrypt (a package scanned while it downloaded needs only the
 * second: {@link verifyScannedPackage}, {@link decryptPackageFile}).
 */
export async function* openPackageFile(path: string, options: {
  trusted: readonly PublishedKey[];
  contentKey: Uint8Array<ArrayBuffer>;
  now: Date;
  expect?: { app: string; name: string; version: string };
}): AsyncGenerator<Uint8Array> {
  const verified = await verifyScannedPackage(await scanPackageFile(path), options);
  yield* decryptPackageFile(path, verified, options.contentKey);
}
