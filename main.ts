/**
 * The NOC server: reads configuration, opens the database (PostgreSQL with
 * DATABASE_URL, embedded PGlite otherwise), applies migrations, serves the
 * app, and runs the status daemon, notice delivery and history pruning as
 * `Deno.cron` jobs.
 *
 * @module
 */
import { loadConfig, serverRole } from "./noc/config.ts";
import { loadLocalConfig, LocalConfigError, localUsage } from "./local_server/config.ts";
import { startLocalServer } from "./local_server/server.ts";
import { openDb } from "./noc/db/db.ts";
import { migrate } from "./noc/db/migrate.ts";
import { jsonLogger } from "./protocol/util/log.ts";
import { lineWriter } from "./protocol/util/line_writer.ts";
import { systemClock } from "./noc/clock.ts";
import { createNotifier } from "./noc/services/notifier.ts";
import { createApp } from "./noc/app.ts";
import { openBlobCache } from "./noc/services/blob_cache.ts";
import { statusDaemon } from "./noc/jobs/status_daemon.ts";
import { pruneHistory, pruneNonces } from "./noc/jobs/retention.ts";
import { pruneIncompleteBlobs } from "./noc/services/blobs.ts";
import {
  bootstrapAdminToken,
  devEnrollmentToken,
  loadNocKeys,
} from "./noc/services/startup_secrets.ts";
import type { AppDeps } from "./noc/services/deps.ts";
import { createWakeHub } from "./noc/services/wakeups.ts";
import { createMetrics } from "./noc/services/metrics.ts";

const metrics = createMetrics();
// Not console.log: a reader that falls behind (a full pipe) must not hold up every request.
const out = Deno.env.get("DENO_DEPLOYMENT_ID") ? null : lineWriter(Deno.stdout, {
  onDrop: (n) => metrics.inc("noc_log_lines_dropped_total", {}, n),
});
const log = jsonLogger(out ? (line) => out.write(line) : undefined);
addEventListener("unload", () => out?.flushSync());

async function start(): Promise<AppDeps> {
  const config = loadConfig(Deno.env.toObject(), Deno.args);
  const clock = systemClock;
  if (!config.databaseUrl) await Deno.mkdir(config.dataDir, { recursive: true });
  const db = await openDb(config);
  const applied = await migrate(db);
  if (applied.length > 0) log.info("migrations_applied", { applied });
  const keys = await loadNocKeys(config);
  const notifier = await createNotifier({
    db,
    clock,
    log,
    webhooks: config.webhookUrls,
    metrics,
  });
  const wakeups = createWakeHub({ db, clock, log });
  const deps: AppDeps = {
    db,
    clock,
    keys,
    notifier,
    settings: config.settings,
    log,
    wakeups,
    metrics,
    blobCache: config.blobCacheDir
      ? await openBlobCache({ dir: config.blobCacheDir, budgetBytes: config.blobCacheBytes, log })
      : null,
  };
  const admin = await bootstrapAdminToken(deps, config);
  const enrol = config.dev ? await devEnrollmentToken(deps, config) : null;

  const server = Deno.serve({
    port: config.port,
    hostname: config.host,
    onListen: ({ port }) => {
      const url = config.publicUrl ?? `http://localhost:${port}`;
      const lines = [
        `Appliance NOC listening on ${url}`,
        `  database:        ${
          config.databaseUrl ? "PostgreSQL (DATABASE_URL)" : `PGlite in ${config.dataDir}/pglite`
        }`,
        `  NOC key id:      ${keys.kid}`,
        `  console:         ${url}/ui  (API: ${url}/docs)`,
      ];
      if (admin.token) lines.push(`  admin token:     ${admin.token}`);
      else if (admin.path) lines.push(`  admin token:     in ${admin.path}`);
      if (enrol) {
        lines.push(
          `  enrolment token: ${enrol.token} (single use, expires ${enrol.expiresAt.toISOString()})`,
        );
      }
      if (admin.token) {
        lines.push(
          `  try: curl -H "Authorization: Bearer ${admin.token}" ${url}/v1/admin/appliances`,
        );
      }
      console.log(lines.join("\n"));
    },
  }, createApp(deps).fetch);

  try {
    Deno.addSignalListener("SIGINT", async () => {
      await wakeups.close();
      await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 5000))]);
      await db.close();
      Deno.exit(0);
    });
  } catch {
    // Signals are not available everywhere (Deno Deploy); nothing to clean up there.
  }
  return deps;
}

/** A local component server: the component server's twin on a site's LAN. */
async function startLocal(): Promise<void> {
  if (Deno.args.includes("--help")) {
    console.log(localUsage);
    Deno.exit(0);
  }
  const config = loadLocalConfig(Deno.args, Deno.env.toObject());
  const local = await startLocalServer(config, log);
  console.log([
    `Local component server listening on ${local.url}`,
    `  site:            ${local.identity.site}`,
    `  id:              ${local.identity.id}`,
    `  upstream NOC:    ${local.identity.upstream}`,
    `  cache:           ${config.dataDir}/cache (budget ${config.cacheBytes} bytes)`,
    `  certificate:     ${local.certFile}${
      local.selfSigned ? " (self-signed: copy it to each appliance as <state>/ca.pem)" : ""
    }`,
  ].join("\n"));
  const stop = async () => {
    await local.close();
    Deno.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, stop);
    } catch {
      // No signals here.
    }
  }
}

const role = (() => {
  try {
    return serverRole(Deno.args, Deno.env.toObject());
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    Deno.exit(64);
  }
})();

const ready = role === "all"
  ? start().catch((e) => {
    console.error(`NOC failed to start: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  })
  : new Promise<AppDeps>(() => {});

if (role === "local-component") {
  startLocal().catch((e) => {
    console.error(
      `Local component server failed to start: ${e instanceof Error ? e.message : e}`,
    );
    Deno.exit(e instanceof LocalConfigError ? 64 : 1);
  });
}

const backoffSchedule = [1000, 5000, 15000];

// Registered at top level (Deno Deploy reads them at start-up); a local component server has none.
if (role === "all") {
  Deno.cron("noc status daemon", "* * * * *", { backoffSchedule }, async () => {
    const deps = await ready;
    const r = await statusDaemon(deps);
    const pruneStart = performance.now();
    const nonces = await pruneNonces(deps);
    deps.log.info("sweep", {
      alerted: r.alerted.length,
      recovered: r.recovered.length,
      notices: r.notices,
      ms: Math.round(r.durationMs),
      noncesPruned: nonces,
      pruneMs: Math.round(performance.now() - pruneStart),
    });
  });

  Deno.cron("noc notice delivery", "* * * * *", { backoffSchedule }, async () => {
    const deps = await ready;
    await deps.notifier.deliver();
  });

  Deno.cron("noc history pruning", "17 3 * * *", { backoffSchedule }, async () => {
    const deps = await ready;
    const r = await pruneHistory(deps, deps.settings.historyRetentionDays);
    // Uploads that never finished (a crash or a dropped connection mid-publish) are never served; drop them.
    const blobs = await pruneIncompleteBlobs(
      deps.db,
      new Date(deps.clock.now().getTime() - 86_400_000),
    );
    deps.log.info("history_pruned", { ...r, incompleteBlobs: blobs });
  });
}
