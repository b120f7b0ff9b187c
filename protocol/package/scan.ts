/**
 * Reading a package in one pass as its bytes go by — while the agent
 * downloads it, or while the NOC stores an upload — instead of reading it back
 * afterwards: the prefix (header and signature) is picked out of the first
 * bytes, and the ciphertext's size and SHA-256 are measured on the way, so the
 * signature is verified once and the ciphertext checked against the signed
 * digest without another pass. Nothing here decrypts.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  maxPrefixBytes,
  PackageError,
  type PackageHeader,
  type ParsedPrefix,
  parsePackagePrefix,
} from "./format.ts";

const magic = new TextEncoder().encode("NOCPKG1\n");
const magicLength = magic.length;

/**
 * Collects a package prefix from the first bytes of a stream, however they
 * are cut. {@link PrefixCollector.take} says how many bytes of each piece
 * belong to the prefix; the rest, and everything after, is ciphertext.
 */
export class PrefixCollector {
  #buf = new Uint8Array(maxPrefixBytes);
  #fill = 0;
  #parsed: ParsedPrefix | null = null;

  /** The parsed prefix, once all of it has been taken. */
  get parsed(): ParsedPrefix | null {
    return this.#parsed;
  }

  /** The prefix's exact bytes, once all of it has been taken. */
  get bytes(): Uint8Array | null {
    return this.#parsed ? this.#buf.subarray(0, this.#parsed.ciphertextOffset) : null;
  }

  /**
   * Takes the prefix's part of `piece`; returns how many of its bytes that
   * was (all of them while the prefix goes on, none once it is complete).
   * Throws {@link PackageError} as soon as the prefix is malformed.
   */
  take(piece: Uint8Array): number {
    if (this.#parsed) return 0;
    const before = this.#fill;
    const n = Math.min(piece.length, this.#buf.length - before);
    this.#buf.set(piece.subarray(0, n), before);
    this.#fill += n;
    const need = this.#needed();
    if (need === null || this.#fill < need) return n;
    this.#parsed = parsePackagePrefix(this.#buf.subarray(0, need));
    return need - before;
  }

  /** The prefix's length, once its first bytes tell it (parsing then refuses a bad one early). */
  #needed(): number | null {
    const have = this.#buf.subarray(0, this.#fill);
    if (have.length < magicLength + 6) return null;
    // A wrong start or an impossible header length: parse what there is, which refuses it at once.
    for (let i = 0; i < magicLength; i++) {
      if (have[i] !== magic[i]) return have.length;
    }
    const hlen = new DataView(have.buffer, have.byteOffset, have.byteLength).getUint32(magicLength);
    const need = magicLength + 4 + hlen + 2 + 64;
    return need > this.#buf.length ? have.length : need;
  }

  /** The stream ended: returns the prefix, or throws {@link PackageError} when it ended inside it. */
  end(): ParsedPrefix {
    if (this.#parsed) return this.#parsed;
    parsePackagePrefix(this.#buf.subarray(0, this.#fill)); // names what is missing
    throw new PackageError("malformed", "Package ends inside its header");
  }
}

/** What {@link PackageScanner} measured. */
export interface ScannedPackage {
  /** The parsed prefix (not yet verified). */
  prefix: ParsedPrefix;
  /** Its exact bytes. */
  prefixBytes: Uint8Array;
  /** Bytes after the prefix. */
  ciphertextSize: number;
  /** SHA-256 of the bytes after the prefix, hex. */
  ciphertextSha256: string;
}

/**
 * Watches a package's bytes go by, in order, and keeps its prefix and the
 * size and SHA-256 of its ciphertext. A malformed prefix is remembered, not
 * thrown, so the bytes can still be checked against the catalog first:
 * {@link PackageScanner.result} throws it.
 */
export class PackageScanner {
  #prefix = new PrefixCollector();
  #error: unknown = null;
  #hash = createHash("sha256");
  #size = 0;
  #result: ScannedPackage | null = null;

  /** Takes the next bytes of the package. */
  update(piece: Uint8Array): void {
    if (this.#result) throw new Error("PackageScanner has already given its result");
    let rest = piece;
    if (!this.#prefix.parsed) {
      if (this.#error !== null) return;
      try {
        rest = piece.subarray(this.#prefix.take(piece));
      } catch (e) {
        this.#error = e;
        return;
      }
    }
    if (rest.length) {
      this.#hash.update(rest);
      this.#size += rest.length;
    }
  }

  /** The package's prefix and ciphertext digest; throws {@link PackageError} when its prefix is malformed. */
  result(): ScannedPackage {
    if (this.#result) return this.#result;
    if (this.#error !== null) throw this.#error;
    const prefix = this.#prefix.end();
    this.#result = {
      prefix,
      prefixBytes: this.#prefix.bytes!.slice(),
      ciphertextSize: this.#size,
      ciphertextSha256: this.#hash.digest("hex"),
    };
    return this.#result;
  }
}

/**
 * Reads a package stream's prefix, returning it and the rest of the stream
 * (the ciphertext, its first piece a view into the piece that held the
 * prefix's end). Throws {@link PackageError} as soon as the prefix is malformed.
 */
export async function splitPackagePrefix(input: AsyncIterable<Uint8Array>): Promise<{
  prefix: ParsedPrefix;
  prefixBytes: Uint8Array;
  header: PackageHeader;
  rest: AsyncIterable<Uint8Array>;
}> {
  const it = input[Symbol.asyncIterator]();
  const collector = new PrefixCollector();
  let leftover: Uint8Array | null = null;
  try {
    while (!collector.parsed) {
      const { value, done } = await it.next();
      if (done) collector.end();
      const used = collector.take(value!);
      if (collector.parsed && used < value!.length) leftover = value!.subarray(used);
    }
  } catch (e) {
    it.return?.()?.catch(() => {});
    throw e;
  }
  const prefix = collector.parsed;
  return {
    prefix,
    prefixBytes: collector.bytes!.slice(),
    header: prefix.header,
    rest: (async function* () {
      try {
        if (leftover) yield leftover;
        for (;;) {
          const { value, done } = await it.next();
          if (done) return;
          yield value;
        }
      } finally {
        it.return?.()?.catch(() => {}); // stop the source without waiting for it
      }
    })(),
  };
}
