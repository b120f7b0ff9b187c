/**
 * The package payload check shared by the agent (after it unpacks) and the
 * NOC (before it signs or stores): a payload is a gzip'd tar archive that the
 * agent's extractor accepts, within {@link payloadLimits}, with an executable
 * regular file `install` at its top.
 *
 * @module
 */
import { gunzip } from "./tar.ts";
import { defaultTarLimits, TarError, TarReader } from "./tar_reader.ts";

/** A package payload the agent could not install; the message names the problem. */
export class PayloadError extends Error {}

/** The agent's limits, shared by the agent's extractor and the NOC's publish check: 10,000 entries (with the folders they imply), 4 GiB of file content. */
export const payloadLimits: { readonly maxEntries: number; readonly maxBytes: number } =
  defaultTarLimits;

/** What a payload holds: its entries (files and folders) and its file content bytes. */
export interface PayloadSummary {
  /** Entries the archive holds (files and folders). */
  entries: number;
  /** Bytes of file content in all. */
  bytes: number;
}

/**
 * The rule the agent applies to the unpacked `install` program: `info` is
 * what `Deno.lstat()` (or the archive) says of the top-level `install`, or
 * null when there is none. Throws {@link PayloadError} naming the problem.
 */
export function checkInstallProgram(
  info: { isFile: boolean; isDirectory?: boolean; mode: number | null } | null,
): void {
  if (!info) throw new PayloadError(`Payload has no "install" program at its top level`);
  if (!info.isFile) {
    throw new PayloadError(`Payload's "install" is not a regular file`);
  }
  if (((info.mode ?? 0) & 0o100) === 0) {
    throw new PayloadError(`Payload's "install" is not executable (mode has no owner execute bit)`);
  }
}

/** Largest piece of gzip handed to the decompressor at once, bytes. */
const gzipPiece = 2 * 1024;

/** An error of the payload's source (not of the payload): passed on as it is. */
class SourceFailure {
  constructor(readonly error: unknown) {}
}

async function* checkedGzip(
  gz: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  const magic: number[] = [];
  const it = gz[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<Uint8Array>;
    try {
      next = await it.next();
    } catch (e) {
      throw new SourceFailure(e);
    }
    if (next.done) break;
    const chunk = next.value;
    for (let i = 0; i < chunk.length && magic.length < 2; i++) magic.push(chunk[i]!);
    if (magic.length === 2 && (magic[0] !== 0x1f || magic[1] !== 0x8b)) {
      await it.return?.();
      throw new PayloadError("Payload is not gzip (it does not start with 1f 8b)");
    }
    // In small pieces: one piece is inflated at once, and deflate packs up to ~1,000 times, so a
    // piece of 2 KiB is at most ~2 MiB of work between two chances to pause (sharingTheLoop).
    for (let at = 0; at < chunk.length; at += gzipPiece) yield chunk.subarray(at, at + gzipPiece);
  }
  if (magic.length < 2) throw new PayloadError("Payload is not gzip (it is too short)");
}

/** Longest the check runs before it lets other work on the event loop run, milliseconds. */
const turnMs = 10;

/**
 * Passes `input` on, and once `turnMs` of work (gunzip and parsing) have passed since the last
 * pause, waits for a timer: the NOC runs the check on its one event loop, and without a pause a
 * payload that inflates to gigabytes would hold every other request until it is checked.
 */
async function* sharingTheLoop(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let since = performance.now();
  for await (const chunk of input) {
    yield chunk;
    if (performance.now() - since >= turnMs) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      since = performance.now();
    }
  }
}

/**
 * Checks a gzip'd tar payload exactly as the agent would unpack it, writing
 * nothing: gzip, parses under the agent's rules (tar_reader.ts), has an
 * executable regular file `install` at its top, within {@link payloadLimits}.
 * Reads `gz` to its end, pausing for a timer every 10 ms of work so that
 * other work on the event loop goes on meanwhile. Throws {@link PayloadError} naming the problem, or
 * what reading `gz` threw (a failing source is not a bad payload).
 */
export async function inspectPayload(gz: AsyncIterable<Uint8Array>): Promise<PayloadSummary> {
  const reader = new TarReader(sharingTheLoop(gunzip(checkedGzip(gz))), payloadLimits);
  let install: { isFile: boolean; mode: number } | null = null;
  try {
    for (let e = await reader.next(); e !== null; e = await reader.next()) {
      if (e.path === "install") install = { isFile: e.kind === "file", mode: e.mode };
    }
  } catch (e) {
    if (e instanceof SourceFailure) throw e.error;
    if (e instanceof PayloadError) throw e;
    if (e instanceof TarError) throw new PayloadError(e.message);
    throw new PayloadError(`Payload is not valid gzip: ${e instanceof Error ? e.message : e}`);
  }
  checkInstallProgram(install);
  return { entries: reader.entries, bytes: reader.bytes };
}

/**
 * Push form of {@link inspectPayload} for one-pass pipelines: `push()`
 * resolves when the bytes are consumed (backpressure); once the check has
 * failed, every later `push()` rejects with its {@link PayloadError}, so a
 * pipeline stops at the first bad bytes. `end()` returns the summary or
 * throws {@link PayloadError}.
 */
export class PayloadInspector {
  #waiting: ((r: IteratorResult<Uint8Array>) => void) | null = null;
  #offered: { bytes: Uint8Array | null; taken: () => void; refused: (e: unknown) => void } | null =
    null;
  #result: Promise<PayloadSummary>;
  #settled = false;

  /** Starts inspecting; feed it with {@link push} and finish with {@link end}. */
  constructor() {
    const source: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({
        next: () =>
          new Promise<IteratorResult<Uint8Array>>((resolve) => {
            this.#waiting = resolve;
            this.#deliver();
          }),
      }),
    };
    this.#result = inspectPayload(source);
    // Nothing will read again: a waiting push is released, or refused with the failure.
    const settled = (failure?: { e: unknown }) => {
      this.#settled = true;
      const o = this.#offered;
      this.#offered = null;
      if (failure) o?.refused(failure.e);
      else o?.taken();
    };
    this.#result.then(() => settled(), (e) => settled({ e }));
  }

  #deliver(): void {
    if (!this.#waiting || !this.#offered) return;
    const resolve = this.#waiting;
    const { bytes, taken } = this.#offered;
    this.#waiting = null;
    this.#offered = null;
    resolve(bytes === null ? { done: true, value: undefined } : { done: false, value: bytes });
    taken();
  }

  #offer(bytes: Uint8Array | null): Promise<void> {
    // Once the check has ended, a failure rejects every push; a success takes nothing more.
    if (this.#settled) return this.#result.then(() => {});
    return new Promise<void>((taken, refused) => {
      this.#offered = { bytes, taken, refused };
      this.#deliver();
    });
  }

  /**
   * Hands over the next bytes of the gzip'd payload; resolves when they are
   * consumed, and rejects with the {@link PayloadError} once the check has
   * failed. The inspector may keep a view of `bytes`: do not modify them
   * afterwards. One push at a time.
   */
  push(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return Promise.resolve();
    return this.#offer(bytes);
  }

  /** Marks the end of the payload; returns its summary or throws {@link PayloadError}. */
  async end(): Promise<PayloadSummary> {
    await this.#offer(null);
    return await this.#result;
  }
}
