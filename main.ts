/**
 * The NOC's entry: reads configuration, and for the server role asked for
 * (`--role` / `NOC_ROLE`: `all` by default, `noc`, `catalog`, `component`, or
 * `local-component` for a site's local component server) opens its
 * dependencies (`openDeps`: PostgreSQL with DATABASE_URL, embedded PGlite
 * otherwise, migrations applied), serves `createApp(deps, { role })` and, for
 * `all` and `noc`, runs the status daemon, notice delivery, retention and the rollout daemon as
 * `Deno.cron` jobs (registered at top level, as Deno Deploy requires).
 *
 * It listens on `NOC_HOST`, or, unset, on every address, IPv4 and IPv6 (`::`; plus `0.0.0.0`
 * where `::` takes no IPv4; `0.0.0.0` alone on a machine without IPv6), and registers with the
 * authority policy (and the banner's `signed for:`) only the names it is reachable at.
 *
 * @module
 */
import {
  type AddressFamily,
  isWildcardAddress,
  listenAddresses,
  loadConfig,
  logSinkOf,
  nocUsage,
  parseNocArgs,
  serverRole,
  wildcardNames,
} from "./noc/config.ts";
import { jsonLogger } from "./protocol/util/log.ts";
import { lineWriter } from "./protocol/util/line_writer.ts";
import { createApp, type NocRole } from "./noc/app.ts";
import { openDeps } from "./noc/deps.ts";
import { statusDaemonJob } from "./noc/jobs/status_daemon.ts";
import { startLivenessTicker } from "./noc/jobs/noc_time.ts";
import { startDueTimer } from "./noc/jobs/due_timer.ts";
import { noticeDeliveryJob } from "./noc/jobs/notice_delivery.ts";
import { retentionJob } from "./noc/jobs/retention.ts";
import { dbUpkeep } from "./noc/jobs/db_upkeep.ts";
import { rolloutDaemonJob } from "./noc/jobs/rollout_daemon.ts";
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
  // Before the database is opened: a second `deno task dev` must not touch the first one's data.
  portFree(config.host, config.port);
  const deps = await openDeps(config, { log, metrics });
  const { db, keys, wakeups } = deps;
  // The admin token and the dev enrolment token belong to the role that serves the admin API.
  const adminRole = role === "all" || role === "noc";
  const admin = adminRole
    ? await bootstrapAdminToken(deps, config)
    : { token: null, path: null, stored: true };
  const enrol = config.dev && adminRole ? await devEnrollmentToken(deps, config) : null;
  // Every role checks its clock against the database's from start-up, before it listens (an
  // instance whose clock is off answers no appliance); the roles that sweep also record the NOC's
  // liveness, so a gap is credited before any sweep judges the fleet.
  await startLivenessTicker(deps, { record: adminRole }).first;
  // The roles that sweep are woken at each appliance's deadline (its due time plus the grace),
  // not only by the once-a-minute cron job (noc/jobs/due_timer.ts).
  if (adminRole) startDueTimer(deps);

  let listener: Listener;
  try {
    listener = listen(config.host, config.port, createApp(deps, { role }).fetch);
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) throw new PortInUse(config.host, config.port);
    throw e;
  }
  const port = listener.port;
  // Loopback at this port, then the names the listener is reachable at.
  deps.authorities.listening({ hostname: "localhost", port });
  for (const hostname of listener.names) deps.authorities.listening({ hostname, port });
  const url = config.publicUrl ?? `http://localhost:${port}`;
  const lines = [
    `Appliance NOC listening on ${url}${role === "all" ? "" : ` (role ${role})`}`,
    `  addresses:       ${listener.addresses}`,
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

  // Ctrl-C (SIGINT) and `kill`/service managers (SIGTERM) both stop cleanly: listeners drained
  // (5 s at most), the database closed (PGlite writes its data folder out), once.
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await wakeups.close();
    await Promise.race([
      Promise.all(listener.servers.map((s) => s.shutdown())),
      new Promise((r) => setTimeout(r, 5000)),
    ]);
    await db.close();
    Deno.exit(0);
  };
  try {
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  } catch {
    // Signals are not available everywhere (Deno Deploy); nothing to clean up there.
  }
  return deps;
}

/** The port asked for is taken: the message names it and how to choose another. */
class PortInUse extends Error {
  constructor(host: string | undefined, port: number) {
    super(
      `port ${port}${host === undefined ? "" : ` on ${host}`} is already in use (another NOC, ` +
        `or another program, listens on it). Choose another port with the PORT variable or the ` +
        `--port flag, e.g. PORT=${port === 8000 ? 8001 : port + 1} deno task dev, or ` +
        `deno task dev -- --port ${port === 8000 ? 8001 : port + 1} (0 picks a free port)`,
    );
  }
}

/**
 * Throws {@link PortInUse} when `port` (not 0) cannot be listened on at `host` (every address
 * when undefined) because something else listens there; any other failure is left to `listen`.
 */
function portFree(host: string | undefined, port: number): void {
  if (port === 0) return;
  for (const hostname of host === undefined ? listenAddresses(undefined) : [host]) {
    try {
      Deno.listen({ hostname, port }).close();
      return;
    } catch (e) {
      if (e instanceof Deno.errors.AddrInUse) throw new PortInUse(host, port);
      // another failure (no IPv6, not ours to listen on): try the next address, or let listen say
    }
  }
}

/** The NOC's listening sockets: its servers, their port, the names it is reachable at. */
interface Listener {
  /** Every server (two where `::` takes no IPv4 and `0.0.0.0` is served beside it). */
  servers: Deno.HttpServer[];
  /** The port they share. */
  port: number;
  /** Names (host, IPv4 address, bracketed IPv6 address) it is reachable at, loopback aside. */
  names: string[];
  /** What it listens on, in words, for the banner. */
  addresses: string;
}

/**
 * `handler`, shown an IPv4 client of a dual-stack (`::`) listener as its IPv4 address
 * (`192.0.2.7`, not `::ffff:192.0.2.7`): the address recorded and shown is the same whichever
 * listener took the connection.
 */
function ipv4Unmapped(
  handler: Deno.ServeHandler<Deno.NetAddr>,
): Deno.ServeHandler<Deno.NetAddr> {
  return (req, info) => {
    const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(info.remoteAddr.hostname)?.[1];
    if (mapped === undefined) return handler(req, info);
    const remoteAddr = { ...info.remoteAddr, hostname: mapped };
    return handler(req, {
      remoteAddr,
      get completed() {
        return info.completed;
      },
    });
  };
}

/**
 * Listens on `host` (`NOC_HOST`; undefined: every address, both families, see
 * `listenAddresses` in noc/config.ts) at `port` (0: a free one). Throws as `Deno.serve` does when
 * no address can be bound.
 */
function listen(
  host: string | undefined,
  port: number,
  handler: Deno.ServeHandler<Deno.NetAddr>,
): Listener {
  const serve = (hostname: string, p: number) =>
    Deno.serve({ hostname, port: p, onListen: () => {} }, ipv4Unmapped(handler));
  if (host !== undefined && !isWildcardAddress(host)) {
    const server = serve(host, port);
    return { servers: [server], port: server.addr.port, names: [host], addresses: host };
  }
  const [want, fallback] = listenAddresses(host) as [string, string | undefined];
  let bound = want;
  let first: Deno.HttpServer<Deno.NetAddr>;
  let noIpv6 = "";
  try {
    first = serve(want, port);
  } catch (e) {
    if (fallback === undefined) throw e;
    noIpv6 = e instanceof Error ? e.message : String(e);
    bound = fallback;
    first = serve(fallback, port);
  }
  const at = first.addr.port;
  const servers: Deno.HttpServer[] = [first];
  const families = new Set<AddressFamily>([bound === "0.0.0.0" ? "IPv4" : "IPv6"]);
  if (bound !== "0.0.0.0") {
    // `::` takes IPv4 too unless the system keeps it to IPv6 (net.ipv6.bindv6only=1): then
    // 0.0.0.0 at the same port is free, and is served as well when NOC_HOST is unset.
    let v4Free = false;
    try {
      Deno.listen({ hostname: "0.0.0.0", port: at }).close();
      v4Free = true;
    } catch {
      // in use: by the `::` listener (dual-stack), or listening is not ours to try (Deno Deploy)
    }
    if (!v4Free) families.add("IPv4");
    else if (host === undefined) {
      servers.push(serve("0.0.0.0", at));
      families.add("IPv4");
    }
  }
  const addresses = families.size === 2
    ? "every IPv4 and IPv6 address"
    : families.has("IPv4")
    ? `every IPv4 address, no IPv6 (${
      noIpv6 ? `IPv6 cannot be listened on: ${noIpv6}` : "NOC_HOST=0.0.0.0"
    })`
    : `every IPv6 address, no IPv4 (NOC_HOST=${host}, and net.ipv6.bindv6only=1)`;
  return { servers, port: at, names: wildcardNames(families), addresses };
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
    // Phased rollouts: each minute is evaluated once across instances (rollout_evaluations).
    Deno.cron("noc rollout daemon", "* * * * *", { backoffSchedule }, async () => {
      await rolloutDaemonJob(await ready);
    });
    // PGlite has no autovacuum: vacuum, analyse and freeze as it would (a no-op on PostgreSQL).
    Deno.cron("noc database upkeep", "* * * * *", { backoffSchedule }, async () => {
      await dbUpkeep(await ready);
    });
  }
}
