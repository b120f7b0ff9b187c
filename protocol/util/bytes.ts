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

/** Passes a stream through, failing once it exceeds `max` bytes. */
export async function* limitBytes(
  input: AsyncIterable<Uint8Array>,
  max: number,
  onExceed: () => Error,
): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const p of input) {
    n += p.length;
    if (n > max) throw onExceed();
    yield p;
  }
}

/**
 * Passes a stream through, failing with `onIdle()` when no bytes arrive for `idleS` seconds (a
 * large upload may take its time, but may not stall).
 */
export async function* limitIdle(
  input: AsyncIterable<Uint8Array>,
  idleS: number,
  onIdle: () => Error,
): AsyncGenerator<Uint8Array> {
  const it = input[Symbol.asyncIterator]();
  try {
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<"idle">((resolve) => {
        timer = setTimeout(() => resolve("idle"), idleS * 1000);
      });
      let r: IteratorResult<Uint8Array> | "idle";
      try {
        r = await Promise.race([it.next(), idle]);
      } finally {
        clearTimeout(timer);
      }
      if (r === "idle") throw onIdle();
      if (r.done) return;
      yield r.value;
    }
  } finally {
    // Stop the source (a stalled request body) without waiting for it.
    it.return?.().catch(() => {});
  }
}
