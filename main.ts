/**
 * The NOC's entry: reads configuration, and for the server role asked for
 * (`--role` / `NOC_ROLE`: `all` by default, `noc`, `catalog`, `component`, or
 * `local-component` for a site's local component server) opens its
 * dependencies (`openDeps`: PostgreSQL with DATABASE_URL, embedded PGlite
 * otherwise, migrations applied), serves `createApp(deps, { role })` and, for
 * `all` and `noc`, runs the status daemon, notice delivery and retention as
 * `Deno.cron` jobs (registered at top level, as Deno Deploy requires).
 *
 * @module
 */
import { loadConfig, logSinkOf, nocUsage, parseNocArgs, serverRole } from "./noc/config.ts";
import { jsonLogger } from "./protocol/util/log.ts";
import { lineWriter } from "./protocol/util/line_writer.ts";
import { createApp, type NocRole } from "./noc/app.ts";
import { openDeps } from "./noc/deps.ts";
import { statusDaemonJob } from "./noc/jobs/status_daemon.ts";
import { noticeDeliveryJob } from "./noc/jobs/notice_delivery.ts";
import { retentionJob } from "./noc/jobs/retention.ts";
import { bootstrapAdminToken, devEnrollmentToken } from "./noc/services/startup_secrets.ts";
import type { AppDeps } from "./noc/services/deps.ts";
import { createMetrics } from "./noc/services/metrics.ts";

const metrics = createMetrics();
const sink = (() => {
  try {
    return logSinkOf(Deno.env.toObject());
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    Deno.exit(64);
  }
})();
// stdout: not console.log, as a reader that falls behind (a full pipe) must not hold up every
// request. console: Deno Deploy, which collects console output.
const out = sink === "stdout"
  ? lineWriter(Deno.stdout, { onDrop: (n) => metrics.inc("noc_log_lines_dropped_total", {}, n) })
  : null;
const log = jsonLogger(out ? (line) => out.write(line) : undefined);
addEventListener("unload", () => out?.flushSync());

async function start(role: NocRole): Promise<AppDeps> {
  const config = loadConfig(Deno.env.toObject(), Deno.args);
  const deps = await openDeps(config, { log, metrics });
  const { db, keys, wakeups } = deps;
  // The admin token and the dev enrolment token belong to the role that serves the admin API.
  const adminRole = role === "all" || role === "noc";
  const admin = adminRole
    ? await bootstrapAdminToken(deps, config)
    : { token: null, path: null, stored: true };
  const enrol = config.dev && adminRole ? await devEnrollmentToken(deps, config) : null;

  const server = Deno.serve({
    port: config.port,
    hostname: config.host,
    onListen: ({ port }) => {
      deps.authorities.listening({ hostname: config.host, port });
      const url = config.publicUrl ?? `http://localhost:${port}`;
      const lines = [
        `Appliance NOC listening on ${url}${role === "all" ? "" : ` (role ${role})`}`,
        `  database:        ${
          config.databaseUrl ? "PostgreSQL (DATABASE_URL)" : `PGlite in ${config.dataDir}/pglite`
        }`,
        `  NOC key id:      ${keys.kid}`,
        `  signed for:      ${deps.authorities.describe()}`,
      ];
      if (adminRole) lines.push(`  console:         ${url}/ui  (API: ${url}/docs)`);
      if (admin.token) lines.push(`  admin token:     ${admin.token}`);
      else if (admin.path) lines.push(`  admin token:     in ${admin.path}`);
      else if (adminRole && !admin.stored) {
        lines.push(
          "  admin token:     none: set NOC_ADMIN_TOKEN (the admin API refuses all until then)",
        );
      }
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
  }, createApp(deps, { role }).fetch);

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

const role = (() => {
  try {
    return serverRole(Deno.args, Deno.env.toObject());
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    Deno.exit(64);
  }
})();

if (role !== "local-component" && parseNocArgs(Deno.args).help) {
  console.log(nocUsage);
  Deno.exit(0);
}

if (role === "local-component") {
  // Imported only here: a NOC process never loads the local server.
  const { runLocalServer } = await import("./local_server/main.ts");
  await runLocalServer(Deno.args, Deno.env.toObject(), log);
} else {
  const ready = start(role).catch((e) => {
    console.error(`NOC failed to start: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  });

  // Registered at top level (Deno Deploy reads them at start-up) by the role that owns the status
  // daemon; the catalog and component roles run none.
  if (role === "all" || role === "noc") {
    const backoffSchedule = [1000, 5000, 15000];
    Deno.cron("noc status daemon", "* * * * *", { backoffSchedule }, async () => {
      await statusDaemonJob(await ready);
    });
    Deno.cron("noc notice delivery", "* * * * *", { backoffSchedule }, async () => {
      await noticeDeliveryJob(await ready);
    });
    Deno.cron("noc history pruning", "17 3 * * *", { backoffSchedule }, async () => {
      await retentionJob(await ready);
    });
  }
}
