/** Small helpers for streams of bytes. */

/** Re-chunks a byte stream into blocks of exactly `size` bytes, then the remainder (possibly empty). */
export async function* blocks(
  input: AsyncIterable<Uint8Array>,
  size: number,
): AsyncGenerator<Uint8Array<ArrayBuffer>> {
  let buf = new Uint8Array(size);
  let fill = 0;
  for await (const piece of input) {
    let at = 0;
    while (at < piece.length) {
      const n = Math.min(size - fill, piece.length - at);
      buf.set(piece.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill === size) {
        yield buf;
        buf = new Uint8Array(size);
        fill = 0;
      }
    }
  }
  yield buf.slice(0, fill);
}

/** Yields each item with whether it is the last one. */
export async function* withLast<T>(it: AsyncIterable<T>): AsyncGenerator<[T, boolean]> {
  let prev: { v: T } | undefined;
  for await (const v of it) {
    if (prev) yield [prev.v, false];
    prev = { v };
  }
  if (prev) yield [prev.v, true];
}

/** Joins byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Reads a whole (small) stream into one array. */
export async function collectBytes(
  it: AsyncIterable<Uint8Array>,
): Promise<Uint8Array<ArrayBuffer>> {
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  return concatBytes(parts);
}

/** Bounds for {@link limitStream}: each is off unless given, with the error it fails with. */
export interface StreamLimits {
  /** Most bytes in all; more fails with `onTooLarge()`. */
  maxBytes?: number;
  /** The error for {@link maxBytes}. */
  onTooLarge?: () => Error;
  /** Most seconds without a byte; longer fails with `onIdle()` (a large upload may take its time, but may not stall). */
  idleS?: number;
  /** The error for {@link idleS}. */
  onIdle?: () => Error;
  /** Most seconds for the whole stream; longer fails with `onLate()` (a slow sender holds nothing for long). */
  deadlineS?: number;
  /** The error for {@link deadlineS}. */
  onLate?: () => Error;
}

/**
 * Passes a byte stream through, failing as soon as it breaks one of `limits`
 * (size, idle time, overall time). Whenever it stops early — a limit, an
 * error, or a consumer that stops reading — the source is stopped at once: a
 * `ReadableStream` is cancelled even while a read is pending, so a stalled
 * request body is not left open. Every bounded body read in the project goes
 * through here ({@link limitBytes}, {@link limitIdle}, and `readBody` /
 * `requestSizeLimit` in `protocol/http/validate.ts`).
 */
export async function* limitStream(
  input: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>,
  limits: StreamLimits,
): AsyncGenerator<Uint8Array> {
  const fail = (make: (() => Error) | undefined, what: string) =>
    make ? make() : new Error(`Stream ${what}`);
  const reader = input instanceof ReadableStream ? input.getReader() : null;
  const it = reader ? null : (input as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const next = (): Promise<IteratorResult<Uint8Array>> =>
    reader ? reader.read() as Promise<IteratorResult<Uint8Array>> : it!.next();
  let deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  const deadline = limits.deadlineS === undefined ? null : new Promise<"late">((resolve) => {
    deadlineTimer = setTimeout(() => resolve("late"), limits.deadlineS! * 1000);
  });
  let total = 0;
  let ended = false;
  try {
    for (;;) {
      let idleTimer: ReturnType<typeof setTimeout> | undefined;
      const read = next();
      let r: IteratorResult<Uint8Array> | "late" | "idle";
      if (deadline === null && limits.idleS === undefined) {
        r = await read;
      } else {
        read.catch(() => {}); // it may lose the race and fail later, when nobody waits for it
        const racers: Array<Promise<IteratorResult<Uint8Array> | "late" | "idle">> = [read];
        if (deadline) racers.push(deadline);
        if (limits.idleS !== undefined) {
          racers.push(
            new Promise<"idle">((resolve) => {
              idleTimer = setTimeout(() => resolve("idle"), limits.idleS! * 1000);
            }),
          );
        }
        try {
          r = await Promise.race(racers);
        } finally {
          clearTimeout(idleTimer);
        }
      }
      if (r === "late") throw fail(limits.onLate, `took longer than ${limits.deadlineS} s`);
      if (r === "idle") throw fail(limits.onIdle, `stalled for ${limits.idleS} s`);
      if (r.done) {
        ended = true;
        return;
      }
      total += r.value.length;
      if (limits.maxBytes !== undefined && total > limits.maxBytes) {
        throw fail(limits.onTooLarge, `is larger than ${limits.maxBytes} bytes`);
      }
      yield r.value;
    }
  } finally {
    clearTimeout(deadlineTimer);
    if (reader) {
      if (ended) reader.releaseLock();
      else reader.cancel().catch(() => {}); // without waiting for the source
    } else if (!ended) {
      // Stop the source (a stalled request body) without waiting for it.
      it!.return?.()?.catch(() => {});
    }
  }
}

/** Passes a stream through, failing once it exceeds `max` bytes (see {@link limitStream}). */
export function limitBytes(
  input: AsyncIterable<Uint8Array>,
  max: number,
  onExceed: () => Error,
): AsyncGenerator<Uint8Array> {
  return limitStream(input, { maxBytes: max, onTooLarge: onExceed });
}

/**
 * Passes a stream through, failing with `onIdle()` when no bytes arrive for `idleS` seconds (a
 * large upload may take its time, but may not stall). See {@link limitStream}.
 */
export function limitIdle(
  input: AsyncIterable<Uint8Array>,
  idleS: number,
  onIdle: () => Error,
): AsyncGenerator<Uint8Array> {
  return limitStream(input, { idleS, onIdle });
}
