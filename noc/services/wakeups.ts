/**
 * NOC-initiated wake-ups (the spec's "ping"). An admin asks one appliance, a
 * site or the whole fleet to cycle now; the request is stored and announced
 * on the instance's {@link WakeBus} (Postgres `NOTIFY` by default, or a
 * `BroadcastChannel` on Deno Deploy), so whichever NOC instance holds the
 * appliance's long poll answers it at once. An agent that was between polls
 * sees the stored request when it reconnects, by its cursor.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Db } from "../db/db.ts";
import type { Logger } from "../../protocol/util/log.ts";
import {
  createWakeBus,
  type WakeBus,
  type WakeBusKind,
  type WakeMessage,
  type WakeTarget,
} from "./wake_bus.ts";

export type { WakeBus, WakeBusKind, WakeTarget } from "./wake_bus.ts";

/** The appliance waiting on a long poll. */
export interface Waiter {
  /** Its UID. */
  uid: string;
  /** Its site, if any. */
  site: string | null;
}

/** The answer to a long poll. */
export interface WakeAnswer {
  /** True when a wake-up for this appliance arrived. */
  wake: boolean;
  /** The newest wake-up id seen; the agent sends it back as `after`. */
  cursor: number;
}

/** Stored wake-ups older than this are not replayed to a reconnecting agent. */
export const wakeReplayS = 600;

function matches(t: WakeTarget, w: Waiter): boolean {
  return t.type === "all" || (t.type === "appliance" && t.value === w.uid) ||
    (t.type === "site" && t.value === w.site);
}

/** Routes wake-ups to the long polls held by this NOC instance. */
export interface WakeHub {
  /** Which bus backend announces wake-ups to the other instances. */
  readonly bus: WakeBusKind;
  /** Stores a wake-up and announces it to every instance; returns its id. */
  trigger(target: WakeTarget, by: string): Promise<number>;
  /**
   * Waits up to `waitMs` for a wake-up for `who` newer than `after` (a
   * stored one answers at once).
   */
  wait(who: Waiter, after: number | null, waitMs: number): Promise<WakeAnswer>;
  /**
   * How many long polls this instance holds: polls whose first read of the stored wake-ups is
   * done and found nothing, still waiting.
   */
  readonly held: number;
  /** True once {@link WakeHub.close} was called (the instance is shutting down). */
  readonly closed: boolean;
  /** Answers every held long poll and stops listening. */
  close(): Promise<void>;
}

/** What a wake-up hub is built from. */
export interface WakeHubDeps {
  /** The database wake-ups are stored in. */
  db: Db;
  /** The clock (replay window). */
  clock: Clock;
  /** The logger. */
  log: Logger;
  /**
   * How wake-ups reach the other instances: `"postgres"` (`pg_notify` on
   * `db`, the default: every instance sharing the database, and in-process on
   * PGlite), `"broadcast"` (a `BroadcastChannel`: the isolates of one Deno
   * Deploy deployment), or a bus of the caller's own.
   */
  bus?: WakeBusKind | WakeBus | undefined;
}

/** Creates the wake-up hub of one NOC instance; it starts listening on first use. */
export function createWakeHub(deps: WakeHubDeps): WakeHub {
  const bus = typeof deps.bus === "object"
    ? deps.bus
    : createWakeBus(deps.bus ?? "postgres", deps.db);
  const waiters = new Set<{ who: Waiter; done: (a: WakeAnswer) => void; recheck: () => void }>();
  // The polls whose first read of wake_requests is done and found nothing: only a wake-up
  // stored from then on answers them before their time is up.
  let held = 0;
  let listening: Promise<() => Promise<void>> | null = null;
  let closed = false;

  // A bus message is a hint, never the answer: anyone who can reach the bus (any role on the
  // database, for pg_notify) could send one. A held poll it concerns reads wake_requests again and
  // is woken only by a stored wake-up, with the cursor the table gives.
  const onMessage = (msg: WakeMessage) => {
    for (const w of [...waiters]) if (matches(msg.target, w.who)) w.recheck();
  };
  const listen = () => {
    listening ??= bus.subscribe(onMessage).catch((e) => {
      listening = null;
      throw e;
    });
    return listening;
  };

  const newest = async (who: Waiter, after: number) => {
    const since = new Date(deps.clock.now().getTime() - wakeReplayS * 1000);
    const [row] = await deps.db.sql<{ last: number; mine: number | null }>`
      select coalesce(max(id), 0)::int8 as last,
        max(id) filter (where id > ${after} and created_at > ${since} and (target_type = 'all'
          or (target_type = 'appliance' and target_value = ${who.uid})
          or (target_type = 'site' and target_value = ${who.site})))::int8 as mine
      from wake_requests`;
    return row!;
  };

  return {
    async trigger(target, by) {
      const [row] = await deps.db.sql<{ id: number }>`
        insert into wake_requests (target_type, target_value, created_at, created_by)
        values (${target.type}, ${target.value}, ${deps.clock.now()}, ${by})
        returning id`;
      const id = row!.id;
      // Announced once stored, so a poll woken by it can also find it. A message that is lost
      // costs a held poll its early answer only: the stored wake-up answers the next poll.
      await bus.publish({ id, target }).catch((e) =>
        deps.log.warn("wake_publish_failed", { bus: bus.kind, id, error: String(e) })
      );
      return id;
    },
    async wait(who, after, waitMs) {
      if (closed) return { wake: false, cursor: after ?? 0 };
      await listen();
      let done!: (a: WakeAnswer) => void;
      let answered = false;
      const answer = new Promise<WakeAnswer>((resolve) =>
        done = (a) => {
          answered = true;
          resolve(a);
        }
      );
      // The cursor this poll started from, once read; a recheck looks for wake-ups past it.
      let from: number | null = null;
      let checking = false;
      let again = false;
      const recheck = () => {
        if (from === null) {
          // The first read is under way and may have started before this wake-up was stored.
          again = true;
          return;
        }
        if (checking) {
          again = true;
          return;
        }
        checking = true;
        void (async () => {
          try {
            do {
              again = false;
              const s = await newest(who, from!);
              if (s.mine !== null) done({ wake: true, cursor: Math.max(from!, s.last) });
            } while (again);
          } catch (e) {
            deps.log.warn("wake_recheck_failed", { error: String(e) });
          } finally {
            checking = false;
          }
        })();
      };
      const entry = { who, done, recheck };
      // Registered before the stored wake-ups are read, so none slips between the two.
      waiters.add(entry);
      let last = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const stored = await newest(who, after ?? Number.MAX_SAFE_INTEGER);
        // The cursor is the newest stored id: a cursor past it (a table restored from a backup,
        // or one a forged message once handed out) is pulled back, so later wake-ups reach it.
        last = stored.last;
        if (stored.mine !== null) done({ wake: true, cursor: last });
        from = Math.min(after ?? last, last);
        if (again) recheck();
        // Started only now: even `wait=0` first sees the stored wake-ups.
        timer = setTimeout(() => done({ wake: false, cursor: last }), waitMs);
        const counted = !answered;
        if (counted) held++;
        const a = await answer.finally(() => counted && held--);
        return { wake: a.wake, cursor: a.wake ? Math.max(a.cursor, last) : last };
      } finally {
        clearTimeout(timer);
        waiters.delete(entry);
      }
    },
    bus: bus.kind,
    get held() {
      return held;
    },
    get closed() {
      return closed;
    },
    async close() {
      closed = true;
      for (const w of [...waiters]) w.done({ wake: false, cursor: 0 });
      const stop = await listening?.catch(() => null);
      await stop?.().catch((e) => deps.log.warn("wake_unlisten_failed", { error: String(e) }));
    },
  };
}
