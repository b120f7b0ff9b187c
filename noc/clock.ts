/** Where the NOC gets the time from; tests inject a {@link ManualClock}. */
export interface Clock {
  /** The current time. */
  now(): Date;
}

/** The machine's clock. */
export const systemClock: Clock = { now: () => new Date() };

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  #ms: number;
  /** Starts at `start` (a date or epoch milliseconds). */
  constructor(start: Date | number = Date.UTC(2026, 10, 24, 12, 0, 0)) {
    this.#ms = typeof start === "number" ? start : start.getTime();
  }
  /** The current (manual) time. */
  now(): Date {
    return new Date(this.#ms);
  }
  /** Moves the clock forward by `seconds`. */
  advance(seconds: number): Date {
    this.#ms += seconds * 1000;
    return this.now();
  }
  /** Sets the clock to `at`. */
  set(at: Date): void {
    this.#ms = at.getTime();
  }
}
