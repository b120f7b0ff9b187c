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
import { hostnameGivenExplicitly, loadAgentConfig, reportedHostname } from "../agent/config.ts";
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

// Found by review 21, now fixed:
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
        // A name given to one `once` is that process's alone: the next beats under the kept one.
        const o = await agent(box.state, box.root, [
          "once",
          "--allow-http-files",
          "--hostname",
          "mx-tmp",
        ]);
        assert.equal(o.code, 0, o.text);
        assert.equal((await detail(noc, box)).hostname, "mx-tmp");
        const back = await agent(box.state, box.root, ["once", "--allow-http-files"]);
        assert.equal(back.code, 0, back.text);
        assert.equal((await detail(noc, box)).hostname, "mx-lon-01", "the override was not saved");
        // `enroll --force` with a new name replaces the kept one.
        const f = await agent(box.state, box.root, [
          "enroll",
          "--force",
          "--noc",
          noc.url,
          "--token",
          await noc.enrollmentToken(),
          "--model",
          "vs-2000",
          "--hostname",
          "mx-lon-02",
        ]);
        assert.equal(f.code, 0, f.text);
        const kept = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`));
        assert.equal(kept.hostname, "mx-lon-02");
        // A new identity starts a new cycle state (newcomer review 21: a re-enrolled copy kept the
        // old identity's last catalog serial and refused every catalog of its new one).
        const fresh = JSON.parse(await Deno.readTextFile(`${box.state}/state.json`));
        assert.deepEqual([fresh.seq, fresh.lastSerial, fresh.etag], [0, 0, null]);
        assert.ok(!(await Deno.stat(`${box.state}/catalog.json`).catch(() => null)));
        const again = await agent(box.state, box.root, ["once", "--allow-http-files"]);
        assert.equal(again.code, 0, again.text);
        assert.equal((await detail(noc, box)).hostname, "mx-lon-02");
      } finally {
        await box.remove();
      }
    }),
});

Deno.test("the beat's host name: this process's, else the enrolled one, else the system's", async () => {
  const state = await Deno.makeTempDir();
  try {
    const load = (flags: Record<string, string>, env: Record<string, string>) =>
      loadAgentConfig(flags, env);
    const system = await load({ state }, {});
    assert.equal(system.hostnameFrom, "system");
    assert.equal(hostnameGivenExplicitly(system), false, "enroll keeps no system name");
    const flag = await load({ state, hostname: "mx-flag" }, { NOC_AGENT_HOSTNAME: "mx-env" });
    assert.equal(flag.hostname, "mx-flag");
    assert.equal(hostnameGivenExplicitly(flag), true);
    const env = await load({ state }, { NOC_AGENT_HOSTNAME: "mx-env" });
    assert.equal(env.hostnameFrom, "env");
    assert.equal(hostnameGivenExplicitly(env), true);
    // A run given no name beats under the enrolled one; an old identity (none kept): the system's.
    assert.equal(reportedHostname(system, { hostname: "mx-lon-01" }), "mx-lon-01");
    assert.equal(reportedHostname(system, {}), system.hostname);
    assert.equal(reportedHostname(system, null), system.hostname);
    // A name given to this process wins, for it alone.
    assert.equal(reportedHostname(flag, { hostname: "mx-lon-01" }), "mx-flag");
    assert.equal(reportedHostname(env, { hostname: "mx-lon-01" }), "mx-env");
    // So does agent.json's, though enroll does not copy it into the identity.
    await Deno.writeTextFile(`${state}/agent.json`, JSON.stringify({ hostname: "mx-file" }));
    const file = await load({ state }, {});
    assert.equal(file.hostnameFrom, "file");
    assert.equal(hostnameGivenExplicitly(file), false);
    assert.equal(reportedHostname(file, { hostname: "mx-lon-01" }), "mx-file");
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});
