/**
 * Timers that cannot overflow: `setTimeout` takes a signed 32-bit delay, so
 * anything over 2^31 − 1 ms (24.8 days) — or NaN — fires at once. Every delay
 * that comes from data (a server's answer, a catalog's size, a state file) goes
 * through {@link timerMs}, and long waits through {@link sleep}, which waits in
 * pieces.
 *
 * @module
 */

/** The longest delay `setTimeout` honours, milliseconds. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `ms` as a safe `setTimeout` delay: at least 0, at most {@link MAX_TIMER_MS} (NaN: the most). */
export function timerMs(ms: number): number {
  if (Number.isNaN(ms)) return MAX_TIMER_MS;
  return Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(ms)));
}

/**
 * Waits `ms` (any length, in pieces no longer than {@link MAX_TIMER_MS}), or
 * until `signal` aborts or the function handed to `onWake` is called;
 * resolves either way. Measured on the monotonic clock (`performance.now()`): a
 * wall clock stepped back meanwhile does not stretch the wait (review 23a: a
 * step back of an hour put the NOC's due timer to sleep for an hour).
 */
export function sleep(
  ms: number,
  signal?: AbortSignal,
  onWake?: (wake: () => void) => void,
): Promise<void> {
  const until = performance.now() + Math.max(0, Number.isNaN(ms) ? 0 : ms);
  return new Promise<void>((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const arm = () => {
      const left = until - performance.now();
      if (left <= 0) return done();
      timer = setTimeout(arm, timerMs(left));
    };
    if (signal?.aborted) return done();
    signal?.addEventListener("abort", done, { once: true });
    onWake?.(done);
    arm();
  });
}
