// deno-lint-ignore-file no-explicit-any
/**
 * Real agent processes for the install tests (tests/agent_installs_*_test.ts): as tests/_agent.ts
 * runs them, with the shipped permission flags, plus leave to read the two test-only variables —
 * `NOC_AGENT_BOOT_ID_FILE` (the boot id source, agent/install_attempts.ts) and `NOC_AGENT_CUT_AT`
 * (a SIGKILL at a named point, agent/cut_points.ts) — which the shipped permissions never grant.
 */
import assert from "node:assert/strict";
import { migratedDb } from "./_harness.ts";
import { agentPermissionFlags } from "../agent/permissions.ts";
import { type AgentBox, agentBox, type AgentRun, type ServedNoc } from "./_agent.ts";
import { serveNoc } from "./_agent.ts";

const repo = new URL("..", import.meta.url).pathname;

/** The test-only variables the agents here may read. */
export const testOnlyEnv = ["NOC_AGENT_BOOT_ID_FILE", "NOC_AGENT_CUT_AT"];

/** An enrolled agent whose runs may read the test-only variables. */
export interface InstallBox extends AgentBox {
  /** The file its boot id is read from (`NOC_AGENT_BOOT_ID_FILE`, inside the state folder). */
  bootIdFile: string;
  /** Writes a new boot id (a simulated reboot). */
  reboot(id?: string): Promise<void>;
  /** Runs the agent to completion (killed ones too) with `env` added. */
  agent(args: string[], env?: Record<string, string>): Promise<AgentRun>;
  /** Starts the agent (output dropped), for a test to SIGKILL it. */
  start(args: string[], env?: Record<string, string>): Deno.ChildProcess;
}

function flags(state: string, root: string): string[] {
  return agentPermissionFlags(state, root).map((f) =>
    f.startsWith("--allow-env=") ? `${f},${testOnlyEnv.join(",")}` : f
  );
}

function events(stdout: string): any[] {
  return stdout.split("\n").flatMap((l) => {
    try {
      return l.startsWith("{") ? [JSON.parse(l)] : [];
    } catch {
      return [];
    }
  });
}

/** A box (tests/_agent.ts) enrolled with `noc` through {@link InstallBox.agent}. */
export async function installBox(noc: ServedNoc, root?: string): Promise<InstallBox> {
  const box = await agentBox();
  const rootDir = root ?? box.root;
  const hostname = `box-${crypto.randomUUID().slice(0, 8)}`;
  const bootIdFile = `${box.state}/test-boot-id`;
  await Deno.writeTextFile(bootIdFile, `${crypto.randomUUID()}\n`);
  const command = (args: string[], env: Record<string, string>, output: "piped" | "null") =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags(box.state, rootDir), "agent/main.ts", ...args],
      cwd: repo,
      env: {
        NOC_AGENT_STATE: box.state,
        NOC_AGENT_ROOT: rootDir,
        NOC_AGENT_LOG: "json",
        NOC_AGENT_HOSTNAME: hostname,
        NOC_AGENT_BOOT_ID_FILE: bootIdFile,
        ...env,
      },
      stdin: "null",
      stdout: output,
      stderr: output,
    });
  const agent = async (args: string[], env: Record<string, string> = {}): Promise<AgentRun> => {
    const out = await command(args, env, "piped").output();
    const stdout = new TextDecoder().decode(out.stdout);
    return {
      code: out.code,
      stdout,
      stderr: new TextDecoder().decode(out.stderr),
      events: events(stdout),
    };
  };
  const token = await noc.enrollmentToken();
  const r = await agent(["enroll", "--noc", noc.url, "--token", token, "--model", "vs-2000"]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return {
    ...box,
    root: rootDir,
    bootIdFile,
    agent,
    start: (args, env = {}) => command(args, env, "null").spawn(),
    async reboot(id = crypto.randomUUID()) {
      await Deno.writeTextFile(bootIdFile, `${id}\n`);
    },
    async readRoot(path) {
      return await Deno.readTextFile(`${rootDir}/${path}`).catch(() => null);
    },
  };
}

/** A served NOC on PGlite for `fn`, closed afterwards. */
export async function withNoc(fn: (noc: ServedNoc) => Promise<void>): Promise<void> {
  const db = await migratedDb();
  const noc = await serveNoc(db);
  try {
    await fn(noc);
  } finally {
    await noc.close();
    await db.close();
  }
}

/** The appliance as the NOC shows it (by the box's UID). */
export async function shown(noc: ServedNoc, box: AgentBox): Promise<any> {
  const uid = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid;
  return (await noc.admin("GET", `/v1/admin/appliances/${uid}`)).body;
}

/** Every path under `dir` (folders end in "/"), relative to it, sorted. */
export async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) {
        out.push(`${r}/`);
        await walk(`${d}/${e.name}`, r);
      } else out.push(r);
    }
  };
  await walk(dir, "").catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  return out.sort();
}
