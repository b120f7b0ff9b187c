/**
 * Review 21, fault injector's brief: the name given at enrolment is not the name the agent beats
 * with. `noc-agent enroll --hostname mx-lon-01` tells the NOC that name, but it is kept nowhere
 * on the appliance: `run` and `once` without `--hostname` (a service unit, the README's own
 * `once` line) report the system's host name, and the NOC renames the appliance to it at its
 * first beat. Two appliances from one golden image (same system host name) so end up with one
 * name at the NOC — and an enrolment under that name then retires both (docs/operations.md,
 * "an enrolment under a name supersedes every active record of it in that site").
 */
import assert from "node:assert/strict";
import { agentPermissionFlags } from "../agent/permissions.ts";
import { agentBox } from "./_agent.ts";
import { detail, withServedNoc } from "./_degrades.ts";

const repo = new URL("..", import.meta.url).pathname;

/** Runs the agent as a service unit would: no NOC_AGENT_HOSTNAME, no --hostname. */
async function agent(state: string, root: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...agentPermissionFlags(state, root), "agent/main.ts", ...args],
    cwd: repo,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
      NOC_AGENT_STATE: state,
      NOC_AGENT_ROOT: root,
      NOC_AGENT_LOG: "json",
    },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, text: d.decode(out.stdout) + d.decode(out.stderr) };
}

// REAL FAULT (review 21)
Deno.test({
  name: "an appliance enrolled with --hostname keeps that name at its next beat",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withServedNoc({}, async (noc) => {
      const box = await agentBox();
      try {
        const token = await noc.enrollmentToken();
        const e = await agent(box.state, box.root, [
          "enroll",
          "--noc",
          noc.url,
          "--token",
          token,
          "--model",
          "vs-2000",
          "--hostname",
          "mx-lon-01",
        ]);
        assert.equal(e.code, 0, e.text);
        assert.equal((await detail(noc, box)).hostname, "mx-lon-01", "enrolled under its name");
        const r = await agent(box.state, box.root, ["once", "--allow-http-files"]);
        assert.equal(r.code, 0, r.text);
        const got = await detail(noc, box);
        assert.equal(
          got.hostname,
          "mx-lon-01",
          `renamed by its first beat to the system's name (was: ${
            JSON.stringify(got.hostnameHistory)
          })`,
        );
      } finally {
        await box.remove();
      }
    }),
});
