/**
 * A log line writer that never holds up the event loop. `console.log` writes
 * synchronously: when whatever reads the NOC's output (a pipe, journald, a
 * log shipper) falls behind, the pipe fills and every request waits for it.
 * Here lines wait in memory and leave by one background write at a time,
 * together; past a bound, lines are dropped, counted and reported once the
 * reader catches up.
 *
 * @module
 */

/** Where a {@link lineWriter} sends its bytes (`Deno.stdout` fits). */
export interface ByteSink {
  /** Writes some of `p`; resolves to how many bytes were written. */
  write(p: Uint8Array): Promise<number>;
  /** Writes some of `p` at once; for exit, when no later turn will come. */
  writeSync?(p: Uint8Array): number;
}

/** Lines written without waiting; see {@link lineWriter}. */
export interface LineWriter {
  /** Queues `line` (a newline is added); never waits and never throws. */
  write(line: string): void;
  /** Writes every queued line now, synchronously when the sink can (for exit paths). */
  flushSync(): void;
  /** Resolves once every line queued so far has been written or dropped. */
  drained(): Promise<void>;
  /** Lines dropped so far: queued past `maxBytes`, or refused by the sink. */
  readonly dropped: number;
}

/**
 * Returns a writer of lines to `sink`. Lines queued in one turn of the event
 * loop leave in one write; while a write is under way the next lines wait.
 * At most `maxChars` characters wait (8 MiB by default); lines past that are
 * dropped, and a `log_lines_dropped` line says how many once there is room.
 */
export function lineWriter(
  sink: ByteSink,
  options: {
    maxChars?: number;
    /** Told of every `n` lines dropped (for a metric). */
    onDrop?: (n: number) => void;
  } = {},
): LineWriter {
  const maxChars = options.maxChars ?? 8 * 2 ** 20;
  const encoder = new TextEncoder();
  let queue: string[] = [];
  let queued = 0;
  let dropped = 0;
  let unreported = 0;
  let running: Promise<void> | null = null;

  const take = (): { bytes: Uint8Array; lines: number } | null => {
    if (unreported > 0) {
      queue.push(
        JSON.stringify({
          time: new Date().toISOString(),
          level: "warn",
          event: "log_lines_dropped",
          count: unreported,
          reason: "the log's reader fell behind",
        }),
      );
      unreported = 0;
    }
    if (queue.length === 0) return null;
    const text = queue.join("\n") + "\n";
    const lines = queue.length;
    queue = [];
    queued = 0;
    return { bytes: encoder.encode(text), lines };
  };

  const lost = (lines: number) => {
    dropped += lines;
    options.onDrop?.(lines);
  };

  const drain = async () => {
    // One turn's lines leave together: wait for the end of this turn first.
    await new Promise((r) => setTimeout(r, 0));
    for (let next = take(); next; next = take()) {
      const { bytes, lines } = next;
      try {
        for (let at = 0; at < bytes.length;) at += written(await sink.write(bytes.subarray(at)));
      } catch {
        // The reader is gone (a closed pipe): nothing to do but count what it missed.
        lost(lines);
      }
    }
    running = null;
  };

  return {
    write(line) {
      if (queued + line.length + 1 > maxChars) {
        lost(1);
        unreported++;
        return;
      }
      queue.push(line);
      queued += line.length + 1;
      running ??= drain();
    },
    flushSync() {
      // A write still under way finishes on its own (or is cut short by exit).
      const next = take();
      if (!next) return;
      try {
        if (!sink.writeSync) throw new Error("The sink cannot write synchronously");
        for (let at = 0; at < next.bytes.length;) {
          at += written(sink.writeSync(next.bytes.subarray(at)));
        }
      } catch {
        lost(next.lines);
      }
    },
    async drained() {
      while (running) await running;
    },
    get dropped() {
      return dropped;
    },
  };
}

function written(n: number): number {
  if (n <= 0) throw new Error(`The sink wrote ${n} bytes`);
  return n;
}
