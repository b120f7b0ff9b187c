// deno-lint-ignore-file no-explicit-any
/** Real agent processes on temporary roots, and a NOC served over real HTTP for them. */
import assert from "node:assert/strict";
import { agentPermissionFlags } from "../agent/permissions.ts";
import { ManualClock } from "../noc/clock.ts";
import type { Db } from "../noc/db/db.ts";
import { type TestNoc, testNoc } from "./_harness.ts";
import type { Settings } from "../noc/config.ts";

const repo = new URL("..", import.meta.url).pathname;

/** What an agent command printed and how it exited. */
export interface AgentRun {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
  /** JSON log events from stdout. */
  events: any[];
}

function parseEvents(stdout: string): any[] {
  return stdout.split("\n").flatMap((l) => {
    try {
      return l.startsWith("{") ? [JSON.parse(l)] : [];
    } catch {
      return [];
    }
  });
}

/** An agent with its own state folder and appliance root. */
export interface AgentBox {
  /** State folder. */
  state: string;
  /** Appliance root. */
  root: string;
  /** Runs `deno run <the agent's permission flags> agent/main.ts <args>` to completion. */
  run(args: string[], env?: Record<string, string>): Promise<AgentRun>;
  /** Starts a long-running agent command. */
  spawn(args: string[], env?: Record<string, string>): AgentProcess;
  /** Reads a file under the root, or null. */
  readRoot(path: string): Promise<string | null>;
  /** Reads `catalog.cur` as JSON. */
  catalogCur(): Promise<any>;
  /** Empties the root and the state folder, keeping only the identity. */
  wipe(): Promise<void>;
  /** Removes both folders. */
  remove(): Promise<void>;
}

/** A running agent process whose JSON log is followed. */
export interface AgentProcess {
  /** Process id. */
  pid: number;
  /** Events logged so far. */
  events: any[];
  /** Resolves with the first event (after those already seen, from `from`) that `match` accepts. */
  waitFor(match: (e: any) => boolean, from?: number, timeoutMs?: number): Promise<any>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/**
 * Creates temporary folders for an agent, which enrols under a host name of its own
 * (`NOC_AGENT_HOSTNAME`, `box-<random>`): agents sharing this machine's name would retire each
 * other's records as re-imaged appliances.
 */
export async function agentBox(): Promise<AgentBox> {
  const base = await Deno.makeTempDir({ prefix: "noc-agent-" });
  const hostname = `box-${crypto.randomUUID().slice(0, 8)}`;
  const state = `${base}/state`;
  const root = `${base}/root`;
  await Deno.mkdir(state, { mode: 0o700 });
  await Deno.mkdir(root);
  const command = (args: string[], env: Record<string, string>) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", ...agentPermissionFlags(state, root), "agent/main.ts", ...args],
      cwd: repo,
      env: {
        NOC_AGENT_STATE: state,
        NOC_AGENT_ROOT: root,
        NOC_AGENT_LOG: "json",
        NOC_AGENT_HOSTNAME: hostname,
        // `run`'s first cycle at once, as before the first-cycle spread (tests set their own).
        NOC_AGENT_START_SPREAD_S: "0",
        ...env,
      },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    });
  return {
    state,
    root,
    async run(args, env = {}) {
      const out = await command(args, env).output();
      const stdout = new TextDecoder().decode(out.stdout);
      return {
        code: out.code,
        stdout,
        stderr: new TextDecoder().decode(out.stderr),
        events: parseEvents(stdout),
      };
    },
    spawn(args, env = {}) {
      const child = command(args, env).spawn();
      const events: any[] = [];
      let listeners: Array<() => void> = [];
      const stderr = child.stderr.text();
      const drain = (async () => {
        let buf = "";
        const dec = new TextDecoder();
        for await (const chunk of child.stdout) {
          buf += dec.decode(chunk, { stream: true });
          let nl;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.startsWith("{")) events.push(JSON.parse(line));
          }
          for (const l of listeners) l();
        }
      })();
      return {
        pid: child.pid,
        events,
        waitFor(match, from = 0, timeoutMs = 60_000) {
          return new Promise((resolve, reject) => {
            const check = () => {
              const hit = events.slice(from).find(match);
              if (hit) {
                clearTimeout(timer);
                listeners = listeners.filter((l) => l !== check);
                resolve(hit);
              }
            };
            const timer = setTimeout(() => {
              listeners = listeners.filter((l) => l !== check);
              reject(new Error(`agent event not seen; events: ${JSON.stringify(events)}`));
            }, timeoutMs);
            listeners.push(check);
            check();
          });
        },
        async stop(signal: Deno.Signal = "SIGTERM") {
          try {
            child.kill(signal);
          } catch {
            // already exited
          }
          const status = await child.status;
          await drain.catch(() => {});
          await stderr.catch(() => "");
          return status;
        },
      };
    },
    async readRoot(path) {
      return await Deno.readTextFile(`${root}/${path}`).catch(() => null);
    },
    async catalogCur() {
      return JSON.parse(await Deno.readTextFile(`${state}/catalog.cur`));
    },
    async wipe() {
      for await (const e of Deno.readDir(state)) {
        if (e.name !== "identity.json") {
          await Deno.remove(`${state}/${e.name}`, { recursive: true });
        }
      }
      await Deno.remove(root, { recursive: true });
      await Deno.mkdir(root);
    },
    async remove() {
      await Deno.remove(base, { recursive: true }).catch(() => {});
    },
  };
}

/** A NOC on a test database served over real HTTP, its clock starting at the real time. */
export interface ServedNoc extends TestNoc {
  /** Base URL. */
  url: string;
  /** Stops the server. */
  close(): Promise<void>;
  /** Stops answering (the port is closed), as a NOC that is down. */
  stop(): Promise<void>;
  /** Answers again, on the same port. */
  start(): void;
}

/** Serves a test NOC on a free loopback port. */
export async function serveNoc(db: Db, settings: Partial<Settings> = {}): Promise<ServedNoc> {
  const clock = new ManualClock(new Date());
  const noc = await testNoc(db, { clock, settings: { allowPlainHttpFiles: true, ...settings } });
  let server: Deno.HttpServer<Deno.NetAddr> | null = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    noc.app.fetch,
  );
  const port = server.addr.port;
  noc.deps.authorities.listening({ hostname: "127.0.0.1", port });
  return {
    ...noc,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await noc.deps.wakeups.close();
      await server?.shutdown();
      server = null;
    },
    async stop() {
      await server?.shutdown();
      server = null;
    },
    start() {
      server ??= Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, noc.app.fetch);
    },
  };
}

/**
 * A real agent enrolled with `noc` (model vs-2000; `extra` goes into its enrolment token): the
 * enrolment exited 0 and left its private keys readable by the agent alone (identity.json 0600).
 */
export async function enrolledAgent(
  noc: ServedNoc,
  extra: Record<string, unknown> = {},
): Promise<AgentBox> {
  const box = await agentBox();
  const token = await noc.enrollmentToken(extra);
  const r = await box.run(["enroll", "--noc", noc.url, "--token", token, "--model", "vs-2000"]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const mode = (await Deno.stat(`${box.state}/identity.json`)).mode! & 0o777;
  assert.equal(mode, 0o600, "private keys are readable by the agent alone");
  return box;
}

/**
 * Mounts a tmpfs of `mib` MiB on `dir` (mode 0700); false when that is not possible here (it needs
 * root), for tests that then say they were skipped. The caller unmounts it.
 */
export async function mountTmpfs(dir: string, mib: number): Promise<boolean> {
  if (Deno.uid() !== 0) return false;
  const out = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${mib}m,mode=0700`, "tmpfs", dir],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => null);
  return out?.success ?? false;
}
