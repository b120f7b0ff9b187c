/**
 * The least permissions the agent runs with: network, read and write of its
 * state folder and the appliance root, running installers and plug-ins,
 * system information for health data, and its own environment variables.
 * `deno task compile:agent` bakes them in for the default folders; the tests
 * run `agent/main.ts` with the same flags for their temporary folders.
 *
 * @module
 */
import { agentEnvVars, defaultRootDir, defaultStateDir } from "./config.ts";

/** The `deno run` / `deno compile` permission flags for `state` and `root`. */
export function agentPermissionFlags(
  state: string = defaultStateDir,
  root: string = defaultRootDir,
): string[] {
  const dirs = [...new Set([state, root])].join(",");
  return [
    "--allow-net",
    `--allow-read=${dirs}`,
    `--allow-write=${dirs}`,
    "--allow-run",
    "--allow-sys",
    `--allow-env=${agentEnvVars.join(",")}`,
  ];
}

/** The exact `compile:agent` task. */
export function compileCommand(): string {
  return `deno compile ${agentPermissionFlags().join(" ")} --output dist/noc-agent agent/main.ts`;
}
