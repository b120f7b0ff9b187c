/** What the app factory is built from; tests build the same app with their own. */
import type { Clock } from "./clock.ts";
import type { Settings } from "./config.ts";
import type { Db } from "./db/db.ts";
import type { Logger } from "../protocol/util/log.ts";
import type { NocKeys } from "./services/signing_keys.ts";
import type { Notifier } from "./services/notifier.ts";
import type { WakeHub } from "./services/wakeups.ts";
import type { Metrics } from "./services/metrics.ts";
import type { BlobCache } from "./services/blob_cache.ts";

/** The dependencies of `createApp`. */
export interface AppDeps {
  /** Storage. */
  db: Db;
  /** Time source (a manual clock in tests). */
  clock: Clock;
  /** The NOC signing keys. */
  keys: NocKeys;
  /** The notice outbox. */
  notifier: Notifier;
  /** Request-time settings. */
  settings: Settings;
  /** Structured log. */
  log: Logger;
  /** Wake-ups for the agents' long polls held by this instance. */
  wakeups: WakeHub;
  /** This instance's counters and histograms (`/metrics`). */
  metrics: Metrics;
  /** The component server's disk cache, when it has one. */
  blobCache?: BlobCache | null;
}

/** An authenticated appliance, as the appliance routes see it. */
export interface ApplianceIdentity {
  /** Its UID (also its signature key id). */
  uid: string;
  /** Its host name. */
  hostname: string;
  /** Its model. */
  model: string;
  /** Its site, if any. */
  site: string | null;
  /** Its report interval, seconds. */
  intervalS: number;
}

/** An authenticated local component server, as its routes see it. */
export interface LocalServerIdentity {
  /** Its id (also its signature key id). */
  id: string;
  /** The site it serves. */
  site: string;
  /** Its name. */
  name: string;
  /** The base URL appliances reach it at. */
  url: string;
}

/** Hono environment of the app: per-request variables. */
export interface AppEnv {
  /** Request-scoped values. */
  Variables: {
    /** The signed-in appliance (appliance routes). */
    appliance: ApplianceIdentity;
    /** The verified raw body (appliance routes). */
    body: Uint8Array<ArrayBuffer>;
    /** The signed-in local component server (local server routes). */
    localServer: LocalServerIdentity;
    /** The admin token's label (admin routes). */
    admin: string;
  };
}
