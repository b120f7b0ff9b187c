/**
 * The local component server's entry: `deno task local` (through `main.ts --role
 * local-component`), or this file run by itself with the same permissions:
 *
 * ```
 * deno run --allow-net --allow-env --allow-read --allow-write --allow-sys --allow-run=openssl \
 *   local_server/main.ts --upstream https://noc.example --site lab --token <token>
 * ```
 *
 * `--help` prints the usage and exits 0; a configuration error exits 64, a failure to start 1.
 *
 * @module
 */
import { loadLocalConfig, LocalConfigError, localUsage, parseLocalArgs } from "./config.ts";
import { startLocalServer } from "./server.ts";
import { jsonLogger, type Logger } from "../protocol/util/log.ts";
import { lineWriter } from "../protocol/util/line_writer.ts";
import { usageExitCode } from "../protocol/util/args.ts";

/**
 * Starts a local component server from `args` and `env`, prints its banner, and stops it (exit 0)
 * on SIGINT or SIGTERM. Resolves once it listens. Exits the process itself: 0 after `--help`,
 * 64 on a configuration error, 1 when it fails to start.
 */
export async function runLocalServer(
  args: string[],
  env: Record<string, string>,
  log: Logger,
): Promise<void> {
  let config, local;
  try {
    if (parseLocalArgs(args).help) {
      console.log(localUsage);
      Deno.exit(0);
    }
    config = loadLocalConfig(args, env);
    local = await startLocalServer(config, log);
  } catch (e) {
    console.error(
      `Local component server failed to start: ${e instanceof Error ? e.message : e}`,
    );
    Deno.exit(e instanceof LocalConfigError ? usageExitCode : 1);
  }
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

if (import.meta.main) {
  // As main.ts does: log lines leave through a writer that never holds up requests.
  const out = lineWriter(Deno.stdout);
  addEventListener("unload", () => out.flushSync());
  await runLocalServer(Deno.args, Deno.env.toObject(), jsonLogger((line) => out.write(line)));
}
