/**
 * The package format (spec, FIGURE 5): a signed header, then the payload
 * (a gzip tar archive) encrypted with a fresh AES-256-GCM content key in
 * chunks, so neither side ever holds a package in memory whole.
 *
 * ```
 * "NOCPKG1\n" | u32 header length | header (JSON) | u16 signature length | Ed25519 signature | ciphertext
 * ```
 *
 * The signature covers the header, which names the format, app, name,
 * version, plaintext size, chunk size, ciphertext size and the ciphertext's
 * SHA-256: a valid package cannot be served under another name or version,
 * and its ciphertext is checked before anything is decrypted. Each chunk is
 * sealed with its index and a final-chunk flag as associated data, so chunks
 * cannot be reordered, dropped or the stream truncated. The content key never
 * travels in the package: it is wrapped to each appliance with HPKE.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { hpkeSealBase, type X25519Recipient } from "../crypto/hpke_seal.ts";
import { z } from "zod";
import {
  type Ed25519Key,
  ed25519Sign,
  ed25519Verify,
  importEd25519Public,
} from "../crypto/ed25519.ts";
import { fromBase64Url, toBase64Url, utf8 } from "../util/encoding.ts";
import { nameSchema } from "../schemas.ts";
import { blocks, withLast } from "../util/bytes.ts";
import { aesGcmOpen, aesGcmSeal, tagBytes } from "../crypto/aead.ts";
import type { PublishedKey } from "../keys.ts";

/** The format identifier in every header. */
export const packageFormat = "noc-package/1";
const magic = utf8("NOCPKG1\n");
const signingContext = utf8(`${packageFormat} header\n`);
/** Default plaintext bytes per encrypted chunk. */
export const defaultChunkSize = 1024 * 1024;

const maxHeaderBytes = 16 * 1024;

/** The signed package header. */
export const packageHeaderSchema = z.strictObject({
  format: z.literal(packageFormat),
  app: nameSchema,
  name: nameSchema,
  version: z.string().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9.+_~-]*$/),
  size: z.number().int().min(0),
  chunkSize: z.number().int().min(1024).max(16 * 1024 * 1024),
  ciphertextSize: z.number().int().min(tagBytes),
  ciphertextSha256: z.string().regex(/^[0-9a-f]{64}$/),
  kid: z.string().regex(/^[0-9a-f]{16}$/),
  createdAt: z.iso.datetime({ offset: true }),
});

/** A package header. */
export type PackageHeader = z.infer<typeof packageHeaderSchema>;

/** A package that failed a check; `reason` is a stable code. */
export class PackageError extends Error {
  /** Creates an error with a stable reason code. */
  constructor(
    readonly reason:
      | "malformed"
      | "unknown_key"
      | "expired_key"
      | "bad_signature"
      | "size_mismatch"
      | "digest_mismatch"
      | "decrypt_failed"
      | "wrong_component",
    message: string,
  ) {
    super(message);
  }
}

/**
 * The ciphertext size for `size` plaintext bytes in chunks of `chunkSize`:
 * full chunks, then always a final chunk with the remainder (possibly empty).
 */
export function ciphertextSizeFor(size: number, chunkSize: number): number {
  return size + (Math.floor(size / chunkSize) + 1) * tagBytes;
}

function nonce(index: number): Uint8Array<ArrayBuffer> {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(index));
  return n;
}

function aad(index: number, final: boolean): Uint8Array<ArrayBuffer> {
  const a = new Uint8Array(packageFormat.length + 9);
  a.set(utf8(packageFormat));
  const v = new DataView(a.buffer);
  v.setBigUint64(packageFormat.length, BigInt(index));
  a[packageFormat.length + 8] = final ? 1 : 0;
  return a;
}

/** Imports a raw 32-byte AES-256-GCM content key. */
export function importContentKey(raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  if (raw.length !== 32) {
    throw new PackageError("malformed", `Content key has ${raw.length} bytes, not 32`);
  }
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

/** A fresh random content key (raw bytes). */
export function newContentKey(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(32));
}

/**
 * Encrypts a plaintext stream chunk by chunk: every full chunk, then the
 * remainder (possibly empty) sealed as the final chunk.
 */
export async function* encryptChunks(
  plaintext: AsyncIterable<Uint8Array>,
  key: CryptoKey,
  chunkSize = defaultChunkSize,
): AsyncGenerator<Uint8Array> {
  let index = 0;
  for await (const block of blocks(plaintext, chunkSize)) {
    const final = block.length < chunkSize;
    yield await aesGcmSeal(key, nonce(index), aad(index, final), block);
    index++;
  }
}

/** Decrypts a ciphertext stream produced by {@link encryptChunks}; throws {@link PackageError} on any tampering. */
export async function* decryptChunks(
  ciphertext: AsyncIterable<Uint8Array>,
  key: CryptoKey,
  chunkSize: number,
): AsyncGenerator<Uint8Array> {
  let index = 0;
  for await (const [block, final] of withLast(blocks(ciphertext, chunkSize + tagBytes))) {
    const plain = await aesGcmOpen(key, nonce(index), aad(index, final), block);
    if (plain === null) {
      throw new PackageError(
        "decrypt_failed",
        `Package chunk ${index} does not decrypt (tampered or truncated)`,
      );
    }
    yield plain;
    index++;
  }
}

/** The bytes the package signature covers. */
function signedBytes(headerBytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(signingContext.length + headerBytes.length);
  out.set(signingContext);
  out.set(headerBytes, signingContext.length);
  return out;
}

/** Serializes and signs a header; returns the package prefix (everything before the ciphertext). */
export async function packagePrefix(
  header: PackageHeader,
  signer: { kid: string; privateKey: Ed25519Key },
): Promise<Uint8Array> {
  if (header.kid !== signer.kid) {
    throw new Error(`Header names key "${header.kid}" but "${signer.kid}" signs`);
  }
  const headerBytes = utf8(JSON.stringify(packageHeaderSchema.parse(header)));
  const sig = await ed25519Sign(signer.privateKey, signedBytes(headerBytes));
  const out = new Uint8Array(magic.length + 4 + headerBytes.length + 2 + sig.length);
  const v = new DataView(out.buffer);
  out.set(magic);
  v.setUint32(magic.length, headerBytes.length);
  out.set(headerBytes, magic.length + 4);
  v.setUint16(magic.length + 4 + headerBytes.length, sig.length);
  out.set(sig, magic.length + 6 + headerBytes.length);
  return out;
}

/** A parsed (not yet verified) package prefix. */
export interface ParsedPrefix {
  /** The header. */
  header: PackageHeader;
  /** Its exact bytes. */
  headerBytes: Uint8Array;
  /** The signature. */
  signature: Uint8Array;
  /** Where the ciphertext starts. */
  ciphertextOffset: number;
}

/**
 * Parses the prefix from the first bytes of a package (at least
 * {@link maxPrefixBytes} or the whole package). Throws {@link PackageError}.
 */
export function parsePackagePrefix(bytes: Uint8Array): ParsedPrefix {
  const fail = (m: string): never => {
    throw new PackageError("malformed", m);
  };
  if (bytes.length < magic.length + 6) fail("Package is too short to have a header");
  for (let i = 0; i < magic.length; i++) {
    if (bytes[i] !== magic[i]) fail("Package does not start with NOCPKG1");
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = v.getUint32(magic.length);
  if (hlen > maxHeaderBytes) fail(`Package header is ${hlen} bytes, more than ${maxHeaderBytes}`);
  if (bytes.length < magic.length + 6 + hlen) fail("Package is truncated inside its header");
  const headerBytes = bytes.slice(magic.length + 4, magic.length + 4 + hlen);
  const slen = v.getUint16(magic.length + 4 + hlen);
  if (slen !== 64) fail(`Package signature is ${slen} bytes, not 64`);
  const sigStart = magic.length + 6 + hlen;
  if (bytes.length < sigStart + slen) fail("Package is truncated inside its signature");
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch {
    fail("Package header is not JSON");
  }
  const r = packageHeaderSchema.safeParse(json);
  if (!r.success) {
    fail(
      `Package header is invalid: ${r.error.issues[0]?.path.join(".")}: ${
        r.error.issues[0]?.message
      }`,
    );
  }
  const header = r.data!;
  const expected = ciphertextSizeFor(header.size, header.chunkSize);
  if (header.ciphertextSize !== expected) {
    const chunks = Math.floor(header.size / header.chunkSize) + 1;
    fail(
      `Package header's sizes do not agree: a payload of ${header.size} bytes in chunks of ${header.chunkSize} bytes has ${chunks} chunks (the last one holds the remainder, ${
        header.size % header.chunkSize
      } bytes, and is there even when empty) and a ciphertext of ${expected} bytes (each chunk adds a ${tagBytes}-byte tag); the header's ciphertextSize is ${header.ciphertextSize}`,
    );
  }
  return {
    header,
    headerBytes,
    signature: bytes.slice(sigStart, sigStart + slen),
    ciphertextOffset: sigStart + slen,
  };
}

/** The most bytes a package prefix can take. */
export const maxPrefixBytes = magic.length + 4 + maxHeaderBytes + 2 + 64;

/**
 * Verifies the prefix's signature against `trusted` keys (by key id; a key
 * past its `notAfter` is refused). Throws {@link PackageError}.
 */
export async function verifyPackagePrefix(
  prefix: ParsedPrefix,
  trusted: readonly PublishedKey[],
  now: Date,
): Promise<void> {
  const key = trusted.find((k) => k.kid === prefix.header.kid);
  if (!key) {
    throw new PackageError(
      "unknown_key",
      `Package is signed by unknown key "${prefix.header.kid}"`,
    );
  }
  if (key.notAfter && Date.parse(key.notAfter) <= now.getTime()) {
    throw new PackageError(
      "expired_key",
      `Package is signed by key "${key.kid}", retired at ${key.notAfter}`,
    );
  }
  const pub = await importEd25519Public(fromBase64Url(key.publicKey));
  const ok = await ed25519Verify(
    pub,
    prefix.signature as Uint8Array<ArrayBuffer>,
    signedBytes(prefix.headerBytes),
  );
  if (!ok) throw new PackageError("bad_signature", "Package signature does not verify");
}

/** Checks that a verified header names the component the catalog promised. */
export function expectComponent(
  header: PackageHeader,
  want: { app: string; name: string; version: string },
): void {
  if (header.app !== want.app || header.name !== want.name || header.version !== want.version) {
    throw new PackageError(
      "wrong_component",
      `Package is ${header.app}/${header.name}@${header.version}, not ${want.app}/${want.name}@${want.version}`,
    );
  }
}

/**
 * Checks a ciphertext's size and SHA-256, measured as its bytes went by (while
 * downloading or uploading it), against the signed header; throws
 * {@link PackageError} (`size_mismatch`, `digest_mismatch`).
 */
export function checkCiphertextDigest(
  got: { size: number; sha256: string },
  header: PackageHeader,
): void {
  if (got.size !== header.ciphertextSize) {
    throw new PackageError(
      "size_mismatch",
      got.size > header.ciphertextSize
        ? "Package ciphertext is longer than its header says"
        : `Package ciphertext is ${got.size} bytes, header says ${header.ciphertextSize}`,
    );
  }
  if (got.sha256 !== header.ciphertextSha256) {
    throw new PackageError(
      "digest_mismatch",
      "Package ciphertext does not match the signed digest",
    );
  }
}

/** Streams `ciphertext`, checking its size and SHA-256 against the header; yields it unchanged. */
export async function* checkCiphertext(
  ciphertext: AsyncIterable<Uint8Array>,
  header: PackageHeader,
): AsyncGenerator<Uint8Array> {
  const h = createHash("sha256");
  let n = 0;
  for await (const piece of ciphertext) {
    n += piece.length;
    if (n > header.ciphertextSize) {
      throw new PackageError("size_mismatch", "Package ciphertext is longer than its header says");
    }
    h.update(piece);
    yield piece;
  }
  checkCiphertextDigest({ size: n, sha256: h.digest("hex") }, header);
}

/**
 * Decrypts a package's ciphertext pushed to it piece by piece, as it arrives
 * (the NOC test-decrypts an upload on its way into the database). Where each
 * chunk ends, and which one is final, come from the header's sizes; the
 * caller must refuse bytes past `header.ciphertextSize` and check the digest
 * ({@link checkCiphertextDigest}) before trusting anything. A chunk that does
 * not open is remembered, not thrown, so the caller can report a size or
 * digest mismatch first: {@link ChunkOpener.end} throws it.
 */
export class ChunkOpener {
  #key: CryptoKey;
  #header: PackageHeader;
  #sealed: number;
  #buf: Uint8Array<ArrayBuffer>;
  #fill = 0;
  #index = 0;
  #seen = 0;
  #failed: PackageError | null = null;

  /** An opener for the package `header` describes, with its content key. */
  constructor(key: CryptoKey, header: PackageHeader) {
    this.#key = key;
    this.#header = header;
    this.#sealed = header.chunkSize + tagBytes;
    this.#buf = new Uint8Array(Math.min(this.#sealed, header.ciphertextSize));
  }

  /** Takes the next ciphertext bytes; returns the plaintext of every chunk they complete. */
  async push(piece: Uint8Array): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < piece.length && this.#seen < this.#header.ciphertextSize) {
      const want = Math.min(this.#sealed, this.#header.ciphertextSize - this.#index * this.#sealed);
      const n = Math.min(want - this.#fill, piece.length - at);
      this.#buf.set(piece.subarray(at, at + n), this.#fill);
      this.#fill += n;
      this.#seen += n;
      at += n;
      if (this.#fill === want) {
        const plain = await this.#open(
          this.#buf.subarray(0, want),
          this.#seen === this.#header.ciphertextSize,
        );
        if (plain) out.push(plain);
        this.#fill = 0;
        this.#index++;
      }
    }
    return out;
  }

  async #open(sealed: Uint8Array<ArrayBuffer>, final: boolean): Promise<Uint8Array | null> {
    if (this.#failed) return null;
    const plain = await aesGcmOpen(this.#key, nonce(this.#index), aad(this.#index, final), sealed);
    if (plain === null) {
      this.#failed = new PackageError(
        "decrypt_failed",
        `Package chunk ${this.#index} does not decrypt (tampered or truncated)`,
      );
    }
    return plain;
  }

  /** Ends the ciphertext; throws {@link PackageError} unless every chunk was there and opened. */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.#seen !== this.#header.ciphertextSize) {
      throw new PackageError(
        "decrypt_failed",
        `Package ciphertext ends after ${this.#seen} of ${this.#header.ciphertextSize} bytes`,
      );
    }
  }
}

/** Streaming SHA-256 and byte count of a stream. */
export async function digestStream(
  input: AsyncIterable<Uint8Array>,
): Promise<{ sha256: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const piece of input) {
    h.update(piece);
    size += piece.length;
  }
  return { sha256: h.digest("hex"), size };
}

const hpke = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

function wrapInfo(
  h: Pick<PackageHeader, "app" | "name" | "version" | "ciphertextSha256">,
): Uint8Array<ArrayBuffer> {
  return utf8(
    `${packageFormat} content key\n${h.app}\n${h.name}\n${h.version}\n${h.ciphertextSha256}`,
  );
}

/**
 * Wraps a content key to an X25519 public key with HPKE base mode (RFC 9180,
 * DHKEM-X25519, HKDF-SHA256, AES-256-GCM), bound to the package it opens.
 * Returns base64url of `enc || ciphertext`.
 */
export async function wrapContentKey(
  contentKey: Uint8Array<ArrayBuffer>,
  recipientPublic: Uint8Array<ArrayBuffer> | X25519Recipient,
  header: Pick<PackageHeader, "app" | "name" | "version" | "ciphertextSha256">,
): Promise<string> {
  // Same bytes as hpke.seal (tests/hpke_seal_test.ts), on synchronous primitives: faster.
  return await Promise.resolve(
    toBase64Url(hpkeSealBase(recipientPublic, wrapInfo(header), contentKey)),
  );
}

/**
 * Unwraps a content key with the recipient's X25519 private key (PKCS#8
 * bytes, or an HPKE key); throws {@link PackageError}.
 */
export async function unwrapContentKey(
  wrapped: string,
  recipientPrivate: Uint8Array | CryptoKey,
  header: Pick<PackageHeader, "app" | "name" | "version" | "ciphertextSha256">,
): Promise<Uint8Array<ArrayBuffer>> {
  try {
    const bytes = fromBase64Url(wrapped);
    if (bytes.length !== 32 + 48) throw new Error("length");
    const sk = recipientPrivate instanceof Uint8Array
      ? await hpke.kem.deserializePrivateKey(recipientPrivate.slice(-32).buffer)
      : recipientPrivate;
    const pt = await hpke.open(
      { recipientKey: sk, enc: bytes.slice(0, 32).buffer, info: wrapInfo(header) },
      bytes.slice(32).buffer,
    );
    return new Uint8Array(pt);
  } catch {
    throw new PackageError(
      "decrypt_failed",
      "Content key does not unwrap for this appliance and package",
    );
  }
}
