/**
 * `createDeps()`: the one place a NOC instance's per-process state is built —
 * the check-in batcher, the rate limiters, the content-key and fleet-overview
 * caches — around the resources it is given (database, clock, keys, notifier,
 * wake-up hub, metrics, log, blob cache). `main.ts` opens those resources
 * from configuration with {@link openDeps}; tests pass their own to
 * `createDeps()`. Nothing else in the NOC keeps module-level state.
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import type { Config, Settings } from "./config.ts";
import { type Db, openDb } from "./db/db.ts";
import { migrate } from "./db/migrate.ts";
import type { Logger } from "../protocol/util/log.ts";
import type { AppDeps } from "./services/deps.ts";
import type { NocKeys } from "./services/signing_keys.ts";
import { createNotifier, type Notifier } from "./services/notifier.ts";
import { createWakeHub, type WakeHub } from "./services/wakeups.ts";
import type { Metrics } from "./services/metrics.ts";
import { type BlobCache, openBlobCache } from "./services/blob_cache.ts";
import { createCheckinStore } from "./services/checkins.ts";
import { createLimits } from "./services/rate_limit.ts";
import { contentKeyCache } from "./services/publishing.ts";
import { fleetOverviewCache } from "./services/fleet_overview.ts";
import { loadNocKeys } from "./services/startup_secrets.ts";

/** The resources a NOC instance is built around (opened by {@link openDeps}, or by a test). */
export interface DepsResources {
  /** The database handle. */
  db: Db;
  /** Time source (a manual clock in tests). */
  clock: Clock;
  /** The NOC's keys. */
  keys: NocKeys;
  /** The notice outbox. */
  notifier: Notifier;
  /** Request-time settings. */
  settings: Settings;
  /** Structured log. */
  log: Logger;
  /** Wake-ups for the agents' long polls held by this instance. */
  wakeups: WakeHub;
  /** Counters and histograms (`/metrics`). */
  metrics: Metrics;
  /** The component server's disk cache, if any. */
  blobCache?: BlobCache | null;
}

/** Builds a NOC instance's dependencies: `resources` plus every cache, limiter and batcher. */
export function createDeps(resources: DepsResources): AppDeps {
  return {
    ...resources,
    checkins: createCheckinStore(resources.db),
    limits: createLimits(resources.clock, resources.settings),
    contentKeys: contentKeyCache(resources.keys),
    fleetOverview: fleetOverviewCache(),
  };
}

/**
 * Opens a NOC instance from configuration: the database (PostgreSQL with
 * `DATABASE_URL`, PGlite in the data folder otherwise) with its migrations
 * applied, the keys, the notifier, the wake-up hub and the blob cache; then
 * {@link createDeps}. Throws when a resource cannot be opened.
 */
export async function openDeps(
  config: Config,
  opts: { log: Logger; metrics: Metrics; clock?: Clock },
): Promise<AppDeps> {
  const { log, metrics } = opts;
  const clock = opts.clock ?? systemClock;
  if (!config.databaseUrl) await Deno.mkdir(config.dataDir, { recursive: true });
  const db = await openDb(config);
  const applied = await migrate(db);
  if (applied.length > 0) log.info("migrations_applied", { applied });
  const keys = await loadNocKeys(config);
  const notifier = await createNotifier({ db, clock, log, webhooks: config.webhookUrls, metrics });
  return createDeps({
    db,
    clock,
    keys,
    notifier,
    settings: config.settings,
    log,
    wakeups: createWakeHub({ db, clock, log }),
    metrics,
    blobCache: config.blobCacheDir
      ? await openBlobCache({ dir: config.blobCacheDir, budgetBytes: config.blobCacheBytes, log })
      : null,
  });
}
