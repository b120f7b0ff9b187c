/**
 * Where the NOC gets the time from; tests inject a {@link ManualClock}.
 *
 * An instance's clock is checked against the database's (see noc/jobs/noc_time.ts): the status
 * daemon and nonce pruning refuse to run while the two disagree beyond
 * `settings.clockToleranceS`, so one instance's wrong wall clock cannot page the fleet or forget
 * nonces early.
 *
 * @module
 */

/** A time source. */
export interface Clock {
  /** The current time. */
  now(): Date;
  /**
   * How far this clock is ahead of the database's clock, milliseconds (negative: behind), given
   * the database's `clock_timestamp()` read at about the same moment. Absent (the system clock):
   * `now() − dbNow`. A test clock, whose time is not on the database's timeline, says instead
   * how far it was set off the test's true time ({@link ManualClock.jump}).
   */
  offsetFrom?(dbNow: Date): number;
}

/** The machine's clock. */
export const systemClock: Clock = { now: () => new Date() };

/**
 * The machine's clock shifted by `seconds` (a wrong wall clock, for tests and diagnosis); it is
 * measured against the database like the system clock.
 */
export function shiftedClock(seconds: number): Clock {
  return { now: () => new Date(Date.now() + seconds * 1000) };
}

/**
 * A clock that only moves when told to. It stands for an instance's clock on a test's own
 * timeline: {@link advance} moves true time (and this clock with it), {@link jump} moves only this
 * clock, as a wrong wall clock would, and {@link offsetFrom} reports how far it jumped.
 */
export class ManualClock implements Clock {
  #ms: number;
  #skewMs = 0;
  /** Starts at `start` (a date or epoch milliseconds). */
  constructor(start: Date | number = Date.UTC(2026, 10, 24, 12, 0, 0)) {
    this.#ms = typeof start === "number" ? start : start.getTime();
  }
  /** The current (manual) time. */
  now(): Date {
    return new Date(this.#ms);
  }
  /** Moves the clock forward by `seconds` (time passes). */
  advance(seconds: number): Date {
    this.#ms += seconds * 1000;
    return this.now();
  }
  /** Sets the clock to `at`. */
  set(at: Date): void {
    this.#ms = at.getTime();
  }
  /**
   * Moves this clock by `seconds` (negative: back) without time passing: the instance's wall
   * clock is now that far off the database's. Returns the new time.
   */
  jump(seconds: number): Date {
    this.#ms += seconds * 1000;
    this.#skewMs += seconds * 1000;
    return this.now();
  }
  /** How far {@link jump} has set this clock off true time, milliseconds (the database is ignored). */
  offsetFrom(_dbNow: Date): number {
    return this.#skewMs;
  }
}
