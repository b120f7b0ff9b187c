/**
 * Command lines of every program, as real processes: the operator CLI (cli/noc.ts), the agent
 * (agent/main.ts), the local component server (local_server/main.ts, and main.ts --role
 * local-component) and the NOC (main.ts). One policy (protocol/util/args.ts): flags anywhere,
 * boolean flags take no value, --help/-h prints the usage to stdout and exits 0, a usage error
 * names the flag and exits 64.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { localTaskFlags, nocFlags } from "./_process.ts";
import { agentPermissionFlags } from "../agent/permissions.ts";
import { usageErrorOf } from "../protocol/util/args.ts";
import { loadConfig, parseNocArgs, serverRole } from "../noc/config.ts";

const repo = new URL("..", import.meta.url);

interface Ran {
  code: number;
  out: string;
  err: string;
}

async function run(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: repo,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout), err: d.decode(r.stderr) };
}

const cliFlags = ["--allow-net", "--allow-read", "--allow-write", "--allow-env"];
const cli = (args: string[], env: Record<string, string> = {}) =>
  run(["run", ...cliFlags, "cli/noc.ts", ...args], env);

async function withAgentFolders<T>(
  fn: (agent: (args: string[]) => Promise<Ran>) => Promise<T>,
): Promise<T> {
  const base = await Deno.makeTempDir({ prefix: "noc-args-" });
  const state = `${base}/state`, root = `${base}/root`;
  await Deno.mkdir(state);
  await Deno.mkdir(root);
  try {
    return await fn((args) =>
      run(["run", ...agentPermissionFlags(state, root), "agent/main.ts", ...args], {
        NOC_AGENT_STATE: state,
        NOC_AGENT_ROOT: root,
      })
    );
  } finally {
    await Deno.remove(base, { recursive: true });
  }
}

const local = (args: string[]) => run(["run", ...localTaskFlags, "local_server/main.ts", ...args]);

Deno.test("noc --help lists every command and flag on stdout and exits 0; so does each command's", async () => {
  for (const help of [["--help"], ["-h"], ["help"]]) {
    const r = await cli(help);
    assert.equal(r.code, 0, r.err);
    for (
      const form of [
        "noc tokens [list]",
        "noc tokens create",
        "noc tokens revoke <id>",
        "noc appliances [list]",
        "noc appliances show <uid>",
        "noc appliances revoke <uid>",
        "noc alerts [list]",
        "noc alerts ack <id>",
        "noc package <dir|payload.tgz>",
        "noc upload <package file>",
        "noc file put <path>",
        "noc assign",
        "noc wake",
        "noc keygen",
        "noc release-key add <public key>",
        "noc local-servers [list]",
        "noc local-servers token",
        "noc local-servers revoke <id>",
        "noc rollouts [list]",
        "noc rollouts show <id>",
        "noc rollouts appliances <id>",
        "noc rollouts create",
        "noc rollouts pause <id>",
        "noc rollouts resume <id>",
        "noc rollouts cancel <id>",
        "noc rollouts advance <id>",
      ]
    ) {
      assert.ok(r.out.includes(`  ${form} `), `${form} in:\n${r.out}`);
    }
    for (const flag of ["--json", "--noc <url>", "--token <token>", "--target", "-h, --help"]) {
      assert.ok(r.out.includes(flag), flag);
    }
  }
  // After a command or a subcommand, the command's usage: its forms and every flag they take.
  for (const args of [["appliances", "--help"], ["appliances", "show", "x", "-h"]]) {
    const r = await cli(args);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Usage: noc appliances <list\|show\|revoke>/);
    for (const word of ["show <uid>", "revoke <uid>", "--reason", "--cursor", "--json"]) {
      assert.ok(r.out.includes(word), word);
    }
    assert.ok(!r.out.includes("--rollout"), "only the command's own flags");
  }
  // Phased rollouts: the phase spec and the gate flags are explained in the command's usage.
  const rollouts = await cli(["rollouts", "create", "--help"]);
  assert.equal(rollouts.code, 0, rollouts.err);
  assert.match(rollouts.out, /^Usage: noc rollouts <list\|show\|appliances\|create\|pause/);
  for (
    const word of ["--phase <spec>", "soak=<dur>", "--metric <app.key>", "--max-drop", "--plan"]
  ) {
    assert.ok(rollouts.out.includes(word), word);
  }
});

Deno.test("noc refuses an unknown flag, a missing value, a valued boolean and a stray word by name, exit 64", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["appliances", "--colour", "red"], /Unknown flag "--colour"/],
    [
      ["appliances", "show", "u", "--rollout", "5"],
      /Unknown flag "--rollout" for "noc appliances show"/,
    ],
    [["tokens", "create", "--site"], /Flag "--site" needs a value/],
    [["tokens", "create", "--site", "--json"], /Flag "--site" needs a value/],
    [["appliances", "--json=yes"], /Flag "--json" takes no value/],
    [["alerts", "ack", "1", "2"], /Unexpected argument "2"/],
    [["rollouts", "create", "--phase"], /Flag "--phase" needs a value/],
    [
      ["rollouts", "pause", "3", "--rollback"],
      /Unknown flag "--rollback" for "noc rollouts pause"/,
    ],
    [["frobnicate"], /Unknown command "frobnicate"/],
    [["appliances", "frobnicate"], /Unknown subcommand "frobnicate"/],
    [[], /Missing command/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args, { NOC_URL: "http://127.0.0.1:9", NOC_TOKEN: "x" });
    assert.equal(r.code, 64, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, message);
    assert.equal(r.out, "");
  }
});

dbTest(
  "noc appliances --json show <uid>, show <uid> --json and --json before the command print the same",
  async ({ db }) => {
    const noc = await testNoc(db);
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      noc.app.fetch,
    );
    try {
      const env = { NOC_URL: `http://127.0.0.1:${server.addr.port}`, NOC_TOKEN: noc.adminToken };
      const a = await noc.enrollAppliance({ hostname: "gw-args" });
      await a.beat();
      const runs = await Promise.all([
        cli(["appliances", "--json", "show", a.uid], env),
        cli(["appliances", "show", a.uid, "--json"], env),
        cli(["--json", "appliances", "show", a.uid], env),
        // `deno task noc -- …` passes the `--` through.
        cli(["--", "appliances", "show", "--json", a.uid], env),
      ]);
      for (const r of runs) assert.equal(r.code, 0, r.err);
      const shown = JSON.parse(runs[0]!.out);
      assert.equal(shown.uid, a.uid);
      assert.equal(shown.hostname, "gw-args");
      for (const r of runs.slice(1)) assert.deepEqual(JSON.parse(r.out), shown);
      // The connection flags go anywhere too, and win over the environment.
      const flagsFirst = await cli([
        "--noc",
        env.NOC_URL,
        "appliances",
        "--token",
        env.NOC_TOKEN,
        "show",
        a.uid,
      ], { NOC_URL: "http://127.0.0.1:9" });
      assert.equal(flagsFirst.code, 0, flagsFirst.err);
      assert.match(flagsFirst.out, /^gw-args \(/);
    } finally {
      await server.shutdown();
    }
  },
);

Deno.test("noc-agent: --help on every command lists its flags, flags go before or after the command, unknown ones are named", async () => {
  await withAgentFolders(async (agent) => {
    const main = await agent(["-h"]);
    assert.equal(main.code, 0, main.err);
    for (const c of ["enroll", "run", "once", "status"]) {
      assert.match(main.out, new RegExp(`^  ${c} `, "m"));
    }
    const flagsOf: Record<string, string[]> = {
      enroll: ["--noc", "--token", "--model", "--hostname", "--force", "--state", "--root"],
      run: ["--wake-wait", "--plugin-timeout", "--install-timeout", "--allow-http-files", "--log"],
      once: ["--state", "--root", "--noc", "--log", "--help"],
      status: ["--json", "--state"],
    };
    for (const [c, flags] of Object.entries(flagsOf)) {
      for (const help of [[c, "--help"], ["--help", c], ["help", c]]) {
        const r = await agent(help);
        assert.equal(r.code, 0, `${help.join(" ")}: ${r.err}`);
        assert.match(r.out, new RegExp(`Usage: noc-agent ${c}`));
        for (const f of flags) assert.ok(r.out.includes(f), `${c}: ${f}`);
      }
    }
    // A boolean flag before the command is the flag, not the command's value.
    const status = await agent(["--json", "status"]);
    assert.equal(status.code, 0, status.err);
    assert.equal(JSON.parse(status.out).enrolled, false);
    assert.deepEqual(JSON.parse((await agent(["status", "--json"])).out), JSON.parse(status.out));

    const refused: Array<[string[], RegExp]> = [
      [["status", "--colour"], /Unknown flag "--colour"/],
      [["status", "--force"], /Unknown flag "--force" for "noc-agent status"/],
      [["status", "--json=yes"], /Flag "--json" takes no value/],
      [["once", "--plugin-timeout"], /Flag "--plugin-timeout" needs a value/],
      [["status", "extra"], /Unexpected argument "extra"/],
      [[], /Missing command/],
    ];
    for (const [args, message] of refused) {
      const r = await agent(args);
      assert.equal(r.code, 64, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, message);
    }
  });
});

Deno.test("local server: --allow-http-upstream takes no value, so --allow-http-upstream --port 4443 is accepted", async () => {
  const data = await Deno.makeTempDir({ prefix: "noc-args-local-" });
  try {
    // Accepted: what stops it is the missing enrolment, not the flags.
    const needs = /first start needs --upstream, --site and --token/;
    const alone = await local(["--allow-http-upstream", "--port", "4443", "--data", data]);
    assert.equal(alone.code, 64);
    assert.match(alone.err, needs);
    const task = await run([
      "task",
      "local",
      "--",
      "--allow-http-upstream",
      "--port",
      "4443",
      "--data",
      data,
    ]);
    assert.equal(task.code, 64);
    assert.match(task.err, needs);
    assert.doesNotMatch(task.err, /Unknown|argument/);

    for (const help of [["--help"], ["--port", "1", "-h"]]) {
      const r = await local(help);
      assert.equal(r.code, 0, r.err);
      for (const f of ["--upstream", "--site", "--token", "--allow-http-upstream", "--cache"]) {
        assert.ok(r.out.includes(f), f);
      }
    }
    const viaMain = await run([
      "run",
      ...localTaskFlags,
      "main.ts",
      "--role",
      "local-component",
      "--help",
    ]);
    assert.equal(viaMain.code, 0, viaMain.err);
    assert.match(viaMain.out, /--allow-http-upstream/);

    const refused: Array<[string[], RegExp]> = [
      [["--colour", "red"], /Unknown flag "--colour"/],
      [["--allow-http-upstream=yes"], /Flag "--allow-http-upstream" takes no value/],
      [["--port"], /Flag "--port" needs a value/],
      [["--data", data, "stray"], /Unexpected argument "stray"/],
    ];
    for (const [args, message] of refused) {
      const r = await local(args);
      assert.equal(r.code, 64, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, message);
    }
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("main.ts: --help lists the NOC's flags and roles; a bad flag or role is named and exits 64 before anything starts", async () => {
  const data = await Deno.makeTempDir({ prefix: "noc-args-main-" });
  try {
    for (const help of [["--help"], ["--role", "catalog", "-h"], ["--dev", "--help"]]) {
      const r = await run(["run", ...nocFlags, "main.ts", ...help], { NOC_DATA_DIR: data });
      assert.equal(r.code, 0, r.err);
      for (
        const word of ["--role", "--dev", "--port", "-h, --help", "local-component", "catalog"]
      ) {
        assert.ok(r.out.includes(word), word);
      }
    }
    const refused: Array<[string[], RegExp]> = [
      [["--colour"], /Unknown flag "--colour"/],
      [["--dev=yes"], /Flag "--dev" takes no value/],
      [["--port"], /Flag "--port" needs a value/],
      [["--port", "http"], /"--port" must be a whole number/],
      [["--role", "moon"], /"moon" is not a role/],
      [["--role", "catalog", "--upstream", "x"], /Unknown flag "--upstream"/],
    ];
    for (const [args, message] of refused) {
      const r = await run(["run", ...nocFlags, "main.ts", ...args], { NOC_DATA_DIR: data });
      assert.equal(r.code, 64, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, message);
    }
    // The local server's flags are the local server's: the NOC's parser leaves them alone.
    const localFlags = await run(
      ["run", ...nocFlags, "main.ts", "--data", data, "--allow-http-upstream", "--port", "4443"],
      { NOC_ROLE: "local-component" },
    );
    assert.equal(localFlags.code, 64);
    assert.match(localFlags.err, /first start needs --upstream, --site and --token/);
    assert.equal(
      (await Array.fromAsync(Deno.readDir(data))).some((e) => e.name === "pglite"),
      false,
    );
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("NOC flags and roles: parseNocArgs, serverRole and NOC_LOG_SINK", () => {
  assert.deepEqual(parseNocArgs(["--port", "0", "--dev"]), {
    dev: true,
    port: 0,
    role: undefined,
    help: false,
  });
  assert.equal(parseNocArgs(["-h"]).help, true);
  for (const role of ["all", "noc", "catalog", "component", "local-component"] as const) {
    assert.equal(serverRole(["--role", role], {}), role);
    assert.equal(serverRole([], { NOC_ROLE: role }), role);
  }
  assert.equal(serverRole([], {}), "all");
  assert.equal(serverRole(["--role=noc"], { NOC_ROLE: "catalog" }), "noc", "the flag wins");
  assert.equal(serverRole(["--role", "local-component", "--site", "lab"], {}), "local-component");
  assert.throws(() => serverRole(["--role"], {}), /"--role" needs a value/);
  // An empty role (a deploy script's unset variable) is refused, never taken as `all`.
  assert.throws(() => serverRole(["--role", ""], { NOC_ROLE: "component" }), /is empty/);
  assert.throws(() => serverRole([], { NOC_ROLE: "" }), /is empty/);
  assert.throws(() => serverRole(["--role", "noc", "--site", "lab"], {}), /Unknown flag "--site"/);

  assert.equal(loadConfig({}, ["--port", "1234"]).port, 1234);
  assert.equal(loadConfig({ PORT: "99" }).port, 99);
  assert.equal(loadConfig({}).logSink, "stdout");
  assert.equal(loadConfig({ DENO_DEPLOYMENT_ID: "x" }).logSink, "stdout", "never guessed");
  assert.equal(loadConfig({ NOC_LOG_SINK: "console" }).logSink, "console");
  assert.throws(() => loadConfig({ NOC_LOG_SINK: "file" }), /NOC_LOG_SINK: must be "stdout"/);
});

Deno.test("parseArgs errors become usage errors naming the flag; other errors pass through", () => {
  const unknown = Object.assign(new TypeError("Unknown option '-z'"), {
    code: "ERR_PARSE_ARGS_UNKNOWN_OPTION",
  });
  assert.equal((usageErrorOf(unknown) as Error).message, 'Unknown flag "-z"');
  const short = Object.assign(new TypeError("Option '-p, --port <value>' argument missing"), {
    code: "ERR_PARSE_ARGS_INVALID_OPTION_VALUE",
  });
  assert.equal((usageErrorOf(short) as Error).message, 'Flag "--port" needs a value');
  const other = new Error("disk full");
  assert.equal(usageErrorOf(other), other);
});
