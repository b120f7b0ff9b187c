/**
 * What one NOC instance knows about itself that the database cannot tell: its id (for the
 * clock-skew records), and whether it has been alive without a break since it last recorded its
 * liveness (see noc/jobs/noc_time.ts). Held by the instance's check-in store (`createDeps()`), so
 * it lives exactly as long as the instance.
 *
 * @module
 */

/** One NOC instance's view of its own continuity. */
export interface NocInstance {
  /** Random id of this instance (a process, or a test's deps). */
  readonly id: string;
  /**
   * `performance.now()` of this instance's last successful liveness record; null before the
   * first, and again after a failed one (the database was unreachable: the instance was not
   * able to receive beats, so its next record looks for a gap to credit).
   */
  lastAliveMono: number | null;
  /**
   * With a liveness ticker running (main.ts), the longest silence, milliseconds, between two
   * records that still counts as continuous: a process suspended longer (a paused VM, SIGSTOP)
   * looks for a gap too. Null without a ticker (tests drive time by hand).
   */
  maxQuietMs: number | null;
  /**
   * This instance's clock minus the database's, seconds, as the last clock check found it when it
   * was beyond the tolerance; null when it was within (or before the first check). While set,
   * the instance answers no signed request (503 `noc_clock_skew`): it would judge signature times
   * and set due times on a wrong clock.
   */
  clockSkewS: number | null;
  /**
   * The latest time (this instance's clock) it answered a check-in 503 `overloaded`, not yet
   * recorded; the next liveness record writes it for every instance to see (`checkin_shed_at`,
   * migration 032) and clears it.
   */
  checkinShedAt: Date | null;
}

/** A new instance, not yet alive. */
export function createNocInstance(): NocInstance {
  return {
    id: crypto.randomUUID(),
    lastAliveMono: null,
    maxQuietMs: null,
    clockSkewS: null,
    checkinShedAt: null,
  };
}

/** Whether `instance` has been alive without a break since its last liveness record. */
export function isContinuous(instance: NocInstance, monoNow = performance.now()): boolean {
  if (instance.lastAliveMono === null) return false;
  return instance.maxQuietMs === null || monoNow - instance.lastAliveMono <= instance.maxQuietMs;
}
