/** What services, jobs and routes are built from: `AppDeps` (made by `createDeps()` in noc/deps.ts; tests build their own). */
import type { Admission } from "./admission.ts";
import type { Clock } from "../clock.ts";
import type { Settings } from "../config.ts";
import type { Db } from "../db/db.ts";
import type { Logger } from "../../protocol/util/log.ts";
import type { NocKeys } from "./signing_keys.ts";
import type { Notifier } from "./notifier.ts";
import type { WakeHub } from "./wakeups.ts";
import type { Metrics } from "./metrics.ts";
import type { BlobCache } from "./blob_cache.ts";
import type { CheckinStore } from "./checkins.ts";
import type { NocLimits } from "./rate_limit.ts";
import type { ContentKeyCache } from "./publishing.ts";
import type { FleetOverviewCache } from "./fleet_overview.ts";
import type { Authorities } from "./authorities.ts";

/** The resources a NOC instance is built around (opened by `openDeps()` in noc/deps.ts, or by a test). */
export interface DepsResources {
  /** The database: PostgreSQL (npm:postgres) or PGlite, one data path for both. */
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

/** The dependencies of `createApp`: the resources, plus the state `createDeps()` builds around them. */
export interface AppDeps extends DepsResources {
  /** Batched check-in statements (appliance lookup, nonces, beats, catalog touches). */
  checkins: CheckinStore;
  /** Rate limiters: per appliance, per local server, enrolments and sign-ins per address. */
  limits: NocLimits;
  /** Packages' content keys, unsealed once. */
  contentKeys: ContentKeyCache;
  /** The fleet page's cached beat rate and versions in the field. */
  fleetOverview: FleetOverviewCache;
  /** Which signed `@authority` values name this NOC (configured public hosts, or its listener). */
  authorities: Authorities;
  /** Admission control: bounded work in flight and queues per class (services/admission.ts). */
  admission: Admission;
}
