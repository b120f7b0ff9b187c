/**
 * The bus that carries wake-up announcements between NOC instances, so that
 * the instance holding an appliance's long poll answers it at once, whichever
 * instance stored the wake-up. Two backends, chosen by configuration:
 *
 * - `postgres` — `pg_notify` / `LISTEN` on channel `noc_wake` of the NOC's
 *   database: every instance sharing the database hears it (self-hosted
 *   PostgreSQL; in-process on PGlite, which has one connection);
 * - `broadcast` — a `BroadcastChannel` named `noc_wake`: on Deno Deploy every
 *   isolate of one deployment shares it; in one process (tests, PGlite) the
 *   channels of the same name reach each other.
 *
 * A message is only a hint: the wake-up itself is a row in `wake_requests`,
 * so a lost message costs an agent the rest of its long poll, never the
 * wake-up.
 *
 * @module
 */
import type { Db } from "../db/db.ts";

/** Who a wake-up is for. */
export type WakeTarget =
  | { type: "appliance"; value: string }
  | { type: "site"; value: string }
  | { type: "all"; value: null };

/** One announcement: the stored wake-up's id and its target. */
export interface WakeMessage {
  /** The `wake_requests` id. */
  id: number;
  /** Who it is for. */
  target: WakeTarget;
}

/** The bus backends configuration can choose. */
export type WakeBusKind = "postgres" | "broadcast";

/** The backends, as configuration names them. */
export const wakeBusKinds: readonly WakeBusKind[] = ["postgres", "broadcast"];

/** Publish/subscribe of wake messages among the NOC instances of one deployment. */
export interface WakeBus {
  /** Which backend carries the messages. */
  readonly kind: WakeBusKind;
  /** Announces `msg` to every subscriber of every instance on the bus, this one included. */
  publish(msg: WakeMessage): Promise<void>;
  /**
   * Calls `fn` with every well-formed message published from now on (a
   * malformed one is dropped); resolves to a function that unsubscribes.
   */
  subscribe(fn: (msg: WakeMessage) => void): Promise<() => Promise<void>>;
}

/** The channel name both backends use by default. */
export const wakeChannel = "noc_wake";

/** Reads a wake message from its JSON text; null unless it has a numeric id and a valid target. */
export function parseWakeMessage(text: string): WakeMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const { id, target } = v as { id?: unknown; target?: unknown };
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 1) return null;
  if (typeof target !== "object" || target === null) return null;
  const t = target as { type?: unknown; value?: unknown };
  if (t.type === "all" && t.value === null) return { id, target: { type: "all", value: null } };
  if ((t.type === "appliance" || t.type === "site") && typeof t.value === "string") {
    return { id, target: { type: t.type, value: t.value } };
  }
  return null;
}

/**
 * The `postgres` backend: `pg_notify(channel, message)` on `db`, heard by
 * every connection that listens on `channel` (a plain identifier).
 */
export function pgNotifyBus(db: Db, channel: string = wakeChannel): WakeBus {
  return {
    kind: "postgres",
    async publish(msg) {
      await db.sql`select pg_notify(${channel}, ${JSON.stringify(msg)})`;
    },
    subscribe: (fn) =>
      db.listen(channel, (payload) => {
        const msg = parseWakeMessage(payload);
        if (msg) fn(msg);
      }),
  };
}

/**
 * The `broadcast` backend: a `BroadcastChannel` called `name`. A channel is
 * open only while this bus has subscribers (an open one keeps the process
 * alive); `publish` without subscribers posts on a channel it closes at once.
 */
export function broadcastBus(name: string = wakeChannel): WakeBus {
  const subscribers = new Set<(msg: WakeMessage) => void>();
  let rx: BroadcastChannel | null = null;
  const deliver = (text: string) => {
    const msg = parseWakeMessage(text);
    if (!msg) return;
    for (const fn of [...subscribers]) fn(msg);
  };
  return {
    kind: "broadcast",
    publish(msg) {
      const text = JSON.stringify(msg);
      if (rx) {
        // A channel does not hear its own posts: this instance's subscribers are told directly.
        rx.postMessage(text);
        queueMicrotask(() => deliver(text));
      } else {
        const tx = new BroadcastChannel(name);
        tx.postMessage(text);
        tx.close();
      }
      return Promise.resolve();
    },
    subscribe(fn) {
      const entry = (msg: WakeMessage) => fn(msg);
      subscribers.add(entry);
      if (!rx) {
        rx = new BroadcastChannel(name);
        rx.onmessage = (e: MessageEvent) => {
          if (typeof e.data === "string") deliver(e.data);
        };
      }
      return Promise.resolve(() => {
        subscribers.delete(entry);
        if (subscribers.size === 0 && rx) {
          rx.close();
          rx = null;
        }
        return Promise.resolve();
      });
    },
  };
}

/** The bus of `kind` for a NOC instance on `db`. */
export function createWakeBus(kind: WakeBusKind, db: Db): WakeBus {
  return kind === "broadcast" ? broadcastBus() : pgNotifyBus(db);
}
