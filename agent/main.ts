/**
 * The appliance agent: `enroll`, `run`, `once`, `status`. Built into one
 * binary with `deno task compile:agent`.
 *
 * @module
 */
import {
  type AgentConfig,
  agentEnvVars,
  agentVersion,
  commandFlags,
  ConfigError,
  type Flags,
  loadAgentConfig,
  parseAgentArgs,
  reportedHostname,
} from "./config.ts";
import { enrollAgent } from "./enroll.ts";
import { agentFetch } from "./http.ts";
import { requireIdentity, runCycle } from "./cycle.ts";
import { runLoop } from "./run.ts";
import { INSTANCE_ID } from "./beat.ts";
import { agentLog } from "./log.ts";
import { AgentError } from "./errors.ts";
import { loadIdentity, loadInstalled, loadState } from "./state.ts";
import { journalled } from "./outcome_journal.ts";
import { onlyFlags, UsageError, usageExitCode } from "../protocol/util/args.ts";

const common = `
Common flags (flags win over NOC_AGENT_* variables, which win over <state>/agent.json):
  --state <dir>        state folder (NOC_AGENT_STATE; default /var/lib/noc-agent)
  --root <dir>         appliance root files are installed into (NOC_AGENT_ROOT; default /opt/appliance)
  --noc <url>          NOC base URL (NOC_AGENT_NOC; default: the one enrolled with)
  --log <auto|json|text>  log format (NOC_AGENT_LOG; auto: text on a terminal, JSON lines otherwise)
  -h, --help           this help

Flags go before or after the command. Usage and configuration errors exit 64.`;

const help: Record<string, string> = {
  main: `noc-agent ${agentVersion}: the Appliance NOC agent

Usage: noc-agent <command> [flags]

Commands:
  enroll   enrol this appliance with a one-time token and pin the NOC's keys
  run      run the cycle every report interval, waking early when the NOC asks
  once     run one cycle and exit (0 ok, 2 some installs failed, 1 the cycle failed)
  status   show what is installed, the last cycle and when the next is due

Run "noc-agent <command> --help" (or "noc-agent help <command>") for a command's flags.${common}`,
  enroll:
    `Usage: noc-agent enroll --noc <url> --token <token> [--model <model>] [--hostname <name>] [--force]

Generates this appliance's Ed25519 (signing) and X25519 (encryption) key pairs,
keeps the private halves in <state>/identity.json (mode 0600), enrols with the
one-time token and pins the NOC public keys it answers with.

  --token <token>      enrolment token from the NOC admin
  --model <model>      appliance model (NOC_AGENT_MODEL; default "generic")
  --hostname <name>    host name to enrol under (NOC_AGENT_HOSTNAME; default this host's);
                       given, it is kept in identity.json and reported in every beat
  --force              replace an existing identity (the appliance enrols as a new one)${common}`,
  run: `Usage: noc-agent run [flags]

Runs a cycle (init plug-ins, SecureBeat, catalog, installs, report, post
plug-ins), then sleeps until the next is due (the NOC's interval, 909 s by
default, with jitter). A long poll to the NOC ends the sleep early when an
admin wakes this appliance. Stops between cycles on SIGINT or SIGTERM.

  --wake-wait <s>         long-poll hold, 0 turns wake-ups off (NOC_AGENT_WAKE_WAIT_S; default 50)
  --plugin-timeout <s>    per plug-in (NOC_AGENT_PLUGIN_TIMEOUT_S; default 30)
  --install-timeout <s>   per install program or file action (NOC_AGENT_INSTALL_TIMEOUT_S; default 600)
  --health-timeout <s>    per package health check (NOC_AGENT_HEALTH_TIMEOUT_S; default 60)
  --download-idle <s>     abandon a download silent this long (NOC_AGENT_DOWNLOAD_IDLE_S; default 60)
  --start-spread <s>      wait a random 0..s (at most the interval) before the first cycle, 0 not
                          at all; never after a fresh enrolment (NOC_AGENT_START_SPREAD_S; default 60)
  --backoff-base <s>      after n failed cycles in a row, wait a random 0..min(interval, s*2^(n-1))
                          (NOC_AGENT_BACKOFF_BASE_S; default 30); a 503/429 Retry-After is honoured
  --mounts <a,b>          mounts whose free space is reported (NOC_AGENT_MOUNTS; default root and state)
  --allow-http-files      accept files over plain HTTP (development only; NOC_AGENT_ALLOW_HTTP_FILES)
  --hostname <name>       host name reported by this process, not saved (NOC_AGENT_HOSTNAME;
                          default the one given at enrolment, else this host's)${common}`,
  once: `Usage: noc-agent once [flags]

Runs one cycle and exits: 0 when everything is installed, 2 when some
component failed (reported, retried later with backoff), 1 when the cycle
failed (NOC unreachable, catalog refused). Takes the same flags as "run"; it
runs its cycle at once (no --start-spread), and records the back-off for the
next cycle.${common}`,
  status: `Usage: noc-agent status [--json]

Shows the identity, what is installed (catalog.cur), the last cycle and when
the next one is due.

  --json               machine-readable output${common}`,
};

function env(): Record<string, string | undefined> {
  return Object.fromEntries(agentEnvVars.map((n) => [n, Deno.env.get(n)]));
}

const commands = ["enroll", "run", "once", "status"] as const;
type Command = (typeof commands)[number];
const isCommand = (w: string | undefined): w is Command => commands.some((c) => c === w);

async function main(args: string[]): Promise<number> {
  const { words, flags, help: wantsHelp } = parseAgentArgs(args);
  const [word, ...rest] = words;
  if (word === undefined || word === "help") {
    const about = rest[0];
    if (about !== undefined && !isCommand(about)) {
      throw new UsageError(`Unknown command "${about}" (one of ${commands.join(", ")})`);
    }
    if (word === undefined && !wantsHelp) {
      throw new UsageError(`Missing command (one of ${commands.join(", ")}; --help says more)`);
    }
    console.log(help[about ?? "main"]);
    return 0;
  }
  if (!isCommand(word)) {
    throw new UsageError(`Unknown command "${word}" (one of ${commands.join(", ")})`);
  }
  if (wantsHelp) {
    console.log(help[word]);
    return 0;
  }
  onlyFlags(flags, commandFlags[word], `noc-agent ${word}`);
  if (rest.length > 0) throw new UsageError(`Unexpected argument "${rest[0]}"`);
  const config = await loadAgentConfig(flags, env());
  switch (word) {
    case "enroll":
      return await enrollCommand(config, flags);
    case "once":
    case "run":
      return await cycleCommand(config, word);
    default:
      return await statusCommand(config, flags);
  }
}

async function enrollCommand(config: AgentConfig, flags: Flags): Promise<number> {
  const token = flags.token;
  const noc = flags.noc ?? config.noc;
  if (!token) throw new ConfigError(`"enroll" needs --token <token>`);
  if (!noc) throw new ConfigError(`"enroll" needs --noc <url>`);
  const { identity, supersedes } = await enrollAgent(config, {
    noc,
    token,
    force: flags.force === true,
    now: new Date(),
  });
  const log = agentLog(config.log);
  log.info("enrolled", {
    uid: identity.uid,
    noc: identity.noc,
    pinnedKeys: identity.pinnedKeys.map((k) => k.kid),
  });
  if (supersedes.length > 0) {
    // Said plainly: a second agent enrolled under an existing appliance's name retires it.
    log.warn("enrolled_superseding", {
      hostname: config.hostname,
      superseded: supersedes,
      message:
        `this enrolment retired the NOC's earlier record(s) of host name "${config.hostname}" ` +
        `(a re-imaged appliance); if that appliance still runs, it is refused from now on: give ` +
        `each agent its own --hostname`,
    });
  }
  return 0;
}

async function cycleCommand(config: AgentConfig, command: "once" | "run"): Promise<number> {
  const identity = requireIdentity(await loadIdentity(config.state), config.state);
  const log = agentLog(config.log);
  const ctx = {
    config,
    identity,
    log,
    now: () => new Date(),
    fetch: await agentFetch(config.state),
  };
  // Both commands say which instance they are (the instanceId every beat of this process
  // carries), so an operator can match a clone mark's instances to processes.
  const started = () =>
    log.info("agent_started", {
      uid: identity.uid,
      noc: config.noc ?? identity.noc,
      version: agentVersion,
      instanceId: INSTANCE_ID,
      hostname: reportedHostname(config, identity),
    });
  if (command === "once") {
    started();
    const r = await runCycle(ctx);
    return r.outcome === "ok" ? 0 : r.outcome === "partial" ? 2 : 1;
  }
  const stop = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(sig, () => {
        log.info("stopping", { signal: sig });
        stop.abort();
      });
    } catch {
      // Not every platform has every signal.
    }
  }
  started();
  await runLoop(ctx, stop.signal);
  return 0;
}

/**
 * Null when the agent can create a file in `state`; otherwise the OS error (e.g. read-only). The
 * probe is named as an atomic write's temporary file, which a cycle's start sweeps should a cut
 * leave it (agent/debris.ts).
 */
async function stateUnwritable(state: string): Promise<string | null> {
  try {
    const hex = [...crypto.getRandomValues(new Uint8Array(4))]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    const probe = `${state}/state.json.tmp-${hex}`;
    (await Deno.open(probe, { write: true, createNew: true, mode: 0o600 })).close();
    await Deno.remove(probe);
    return null;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null; // not enrolled yet: nothing to write
    return e instanceof Error ? e.message : String(e);
  }
}

async function statusCommand(config: AgentConfig, flags: Flags): Promise<number> {
  const identity = await loadIdentity(config.state);
  const installed = await loadInstalled(config.state);
  const state = await loadState(config.state);
  // What the saved state cannot say: a folder the agent cannot write keeps the last saved cycle,
  // so status says so itself (newcomer review 21c).
  const unwritable = await stateUnwritable(config.state);
  const status = {
    enrolled: identity !== null,
    stateUnwritable: unwritable,
    uid: identity?.uid ?? null,
    noc: config.noc ?? identity?.noc ?? null,
    state: config.state,
    root: config.root,
    installed,
    lastCycle: state.lastCycle,
    nextDueAt: state.nextDueAt,
    intervalS: state.intervalS,
    failures: state.failures,
    // Back-pressure (docs/agent.md, "Back-pressure and back-off"): cycles failed in a row, and
    // the Retry-After the NOC asked for, honoured until then.
    failedCycles: state.failedCycles ?? 0,
    notBefore: state.notBefore ?? null,
    // Outcomes not yet acknowledged by the NOC: the journal's, and any only state.json holds.
    pendingReports: state.pendingReports.length +
      (await journalled(config.state).catch(() => ({ outcomes: [] }))).outcomes.length,
  };
  if (flags.json) {
    console.log(JSON.stringify(status, null, 2));
    return 0;
  }
  const lines = [
    identity
      ? `appliance ${identity.uid} enrolled with ${status.noc}`
      : `not enrolled (state folder ${config.state})`,
    ...(unwritable
      ? [
        `state folder NOT WRITABLE: ${unwritable} — cycles run but save nothing, so what follows ` +
        "is the last saved state; the NOC sees the state_unwritable problem",
      ]
      : []),
    `last cycle: ${state.lastCycle.outcome}${
      state.lastCycle.finishedAt ? ` at ${state.lastCycle.finishedAt}` : ""
    }${state.lastCycle.message ? ` (${state.lastCycle.message})` : ""}`,
    `next due:   ${state.nextDueAt ?? "now"} (interval ${state.intervalS} s)`,
    ...(status.failedCycles > 0
      ? [`backing off: ${status.failedCycles} cycle(s) failed in a row`]
      : []),
    ...(status.notBefore && Date.parse(status.notBefore) > Date.now()
      ? [`NOC busy:   no cycle before ${status.notBefore} (its Retry-After)`]
      : []),
    `installed:  ${installed.length === 0 ? "nothing" : ""}`,
    ...installed.map((c) =>
      `  ${c.kind.padEnd(8)} ${c.app}/${c.name} ${c.version}${
        c.destination ? ` -> ${c.destination}` : ""
      }`
    ),
    ...(state.lastCycle.problems ?? []).map((p) => `problem: ${p.code}: ${p.message}`),
    ...Object.entries(state.failures).map(([k, f]) =>
      `retrying ${k} ${f.version} after ${f.retryAt}`
    ),
  ];
  console.log(lines.join("\n"));
  return 0;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    if (e instanceof UsageError || e instanceof AgentError) {
      console.error(`noc-agent: ${e.message}`);
      code = usageExitCode;
    } else if (e instanceof Deno.errors.NotCapable) {
      console.error(`noc-agent: ${e.message} (the agent may only touch its state folder and root)`);
      code = 77;
    } else {
      console.error(`noc-agent: ${e instanceof Error ? e.message : String(e)}`);
      code = 1;
    }
  }
  Deno.exit(code);
}
