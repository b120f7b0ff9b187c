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
import type { Config } from "./config.ts";
import { openDb } from "./db/db.ts";
import { migrate } from "./db/migrate.ts";
import type { Logger } from "../protocol/util/log.ts";
import type { AppDeps, DepsResources } from "./services/deps.ts";
import { createNotifier } from "./services/notifier.ts";
import { createWakeHub } from "./services/wakeups.ts";
import type { Metrics } from "./services/metrics.ts";
import { openBlobCache } from "./services/blob_cache.ts";
import { createCheckinStore } from "./services/checkins.ts";
import { createLimits } from "./services/rate_limit.ts";
import { contentKeyCache } from "./services/publishing.ts";
import { fleetOverviewCache } from "./services/fleet_overview.ts";
import { loadNocKeys } from "./services/startup_secrets.ts";
import { resignFileinfo } from "./services/fileinfo.ts";
import { createAuthorities } from "./services/authorities.ts";
import { createAdmission } from "./services/admission.ts";

/** Builds a NOC instance's dependencies: `resources` plus every cache, limiter and batcher. */
export function createDeps(resources: DepsResources): AppDeps {
  return {
    ...resources,
    checkins: createCheckinStore(resources.db, resources.notifier, resources.log),
    limits: createLimits(resources.clock, resources.settings),
    contentKeys: contentKeyCache(resources.keys),
    fleetOverview: fleetOverviewCache(),
    authorities: createAuthorities(resources.settings.publicHosts, [
      resources.settings.catalogUrl,
      resources.settings.componentUrl,
    ]),
    admission: createAdmission(resources.settings),
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
  if (!config.databaseUrl) await Deno.mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const db = await openDb(config);
  const applied = await migrate(db);
  if (applied.length > 0) log.info("migrations_applied", { applied });
  const keys = await loadNocKeys(config, db);
  // fileinfo saved before signatures existed, or signed by a NOC key since rotated out: signed now,
  // when the NOC's key may sign packages (never in release-keys-only mode).
  const resigned = await resignFileinfo({ db, keys, clock });
  if (resigned > 0) log.info("fileinfo_resigned", { count: resigned });
  const notifier = await createNotifier({
    db,
    clock,
    log,
    webhooks: config.webhookUrls,
    metrics,
    timeoutMs: config.settings.webhookTimeoutS * 1000,
  });
  return createDeps({
    db,
    clock,
    keys,
    notifier,
    settings: config.settings,
    log,
    wakeups: createWakeHub({ db, clock, log, bus: config.wakeBus }),
    metrics,
    blobCache: config.blobCacheDir
      ? await openBlobCache({ dir: config.blobCacheDir, budgetBytes: config.blobCacheBytes, log })
      : null,
  });
}
