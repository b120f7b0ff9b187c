/**
 * `deno task demo`: a NOC on a temporary PGlite, a demo application
 * published, three agents enrolled on temporary roots. Watch them converge,
 * upgrade when a new version is published (woken by the NOC, not waiting
 * for their interval), one go missing and come back. Ctrl-C cleans up.
 *
 * `--quick` stops after the upgrade (used by the test suite). What it narrates about the fleet
 * (states, open alerts) is read back from the NOC's admin API, never assumed.
 *
 * @module
 */
import { agentPermissionFlags } from "../agent/permissions.ts";
import { createTar, gzip } from "../protocol/package/tar.ts";
import { collectBytes } from "../protocol/util/bytes.ts";
import { parseCommandLine, UsageError, usageExitCode } from "../protocol/util/args.ts";

const usage = `Usage: deno task demo [-- --quick]

Starts a NOC on a temporary PGlite database, publishes a demo application, enrols three agents
(gw-1, gw-2, gw-3) on temporary folders and narrates, from what the NOC's admin API answers:
they converge on 1.0.0; 2.0.0 is published and the NOC wakes them to upgrade; gw-3 stops and
goes missing (an open alert); it comes back. Prints the console's URL and the admin token to
sign in with. The NOC keeps running until Ctrl-C, which removes every temporary folder.

  --quick     stop after the upgrade (the test suite uses it)
  -h, --help  this help`;

const quick = (() => {
  try {
    const { values } = parseCommandLine(Deno.args, { quick: { type: "boolean" } });
    if (values.help) {
      console.log(usage);
      Deno.exit(0);
    }
    return values.quick === true;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`demo: ${e.message}\n\n${usage}`);
    Deno.exit(usageExitCode);
  }
})();
const repo = new URL("..", import.meta.url).pathname;
const work = await Deno.makeTempDir({ prefix: "noc-demo-" });
const children = new Set<Deno.ChildProcess>();
let cleaned = false;

async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) {
    try {
      c.kill("SIGTERM");
    } catch {
      // gone already
    }
  }
  await Promise.all([...children].map((c) => c.status.catch(() => null)));
  await Deno.remove(work, { recursive: true }).catch(() => {});
}

function say(text: string): void {
  console.log(`\n== ${text}`);
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 90_000) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function startNoc(): Promise<{ url: string; adminToken: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-sys",
      "main.ts",
      "--dev",
    ],
    cwd: repo,
    env: {
      PORT: "0",
      NOC_HOST: "127.0.0.1",
      NOC_DATA_DIR: `${work}/noc`,
      NOC_REPORT_INTERVAL_S: "10",
      NOC_GRACE_S: "5",
    },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  children.add(child);
  let out = "";
  const dec = new TextDecoder();
  const reader = child.stdout.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`NOC exited before listening:\n${out}`);
    out += dec.decode(value, { stream: true });
    const m = out.match(/listening on (http:\/\/\S+)[\s\S]*admin token:\s+(\S+)/);
    if (m) {
      // Keep draining its log so it never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done) { /* drop */ }
      })();
      return { url: m[1]!.replace("localhost", "127.0.0.1"), adminToken: m[2]! };
    }
  }
}

const noc = await startNoc().catch(async (e) => {
  await cleanup();
  throw e;
});

async function admin(method: string, path: string, body?: unknown, type?: string) {
  const res = await fetch(`${noc.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${noc.adminToken}`,
      ...(body === undefined ? {} : { "content-type": type ?? "application/json" }),
    },
    ...(body === undefined
      ? {}
      : { body: body instanceof Uint8Array ? body as BodyInit : JSON.stringify(body) }),
  });
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function demoPackage(version: string): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ dir: work });
  await Deno.writeTextFile(
    `${dir}/install`,
    `#!/bin/sh
set -e
mkdir -p "$NOC_ROOT/demo"
printf '%s\\n' "$NOC_VERSION" > "$NOC_ROOT/demo/.version.tmp"
mv "$NOC_ROOT/demo/.version.tmp" "$NOC_ROOT/demo/installed-version"
`,
    { mode: 0o755 },
  );
  await Deno.writeTextFile(`${dir}/VERSION`, `${version}\n`);
  const bytes = await collectBytes(gzip(createTar(dir)));
  await Deno.remove(dir, { recursive: true });
  return bytes;
}

async function publish(version: string): Promise<void> {
  await admin(
    "POST",
    `/v1/admin/packages?app=demo&name=demo-app&version=${version}`,
    await demoPackage(version),
    "application/gzip",
  );
  await admin("POST", "/v1/admin/assignments", {
    kind: "package",
    app: "demo",
    name: "demo-app",
    version,
    target: { type: "all" },
  });
  console.log(`published demo/demo-app ${version} and assigned it to every appliance`);
}

interface Agent {
  name: string;
  state: string;
  root: string;
  uid: string;
  child: Deno.ChildProcess | null;
}

async function enrolAgent(name: string): Promise<Agent> {
  const state = `${work}/${name}/state`;
  const root = `${work}/${name}/root`;
  await Deno.mkdir(state, { recursive: true, mode: 0o700 });
  await Deno.mkdir(root, { recursive: true });
  const { token } = await admin("POST", "/v1/admin/enrollment-tokens", { label: name });
  const out = await agentCommand(state, root, [
    "enroll",
    "--noc",
    noc.url,
    "--token",
    token,
    "--hostname",
    name,
    "--model",
    "demo-box",
  ]).output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  const uid = JSON.parse(await Deno.readTextFile(`${state}/identity.json`)).uid;
  console.log(`enrolled ${name} as ${uid}`);
  return { name, state, root, uid, child: null };
}

function agentCommand(state: string, root: string, args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...agentPermissionFlags(state, root), "agent/main.ts", ...args],
    cwd: repo,
    env: { NOC_AGENT_STATE: state, NOC_AGENT_ROOT: root, NOC_AGENT_LOG: "json" },
    stdout: "null",
    stderr: "null",
  });
}

function startAgent(a: Agent): void {
  a.child = agentCommand(a.state, a.root, ["run", "--allow-http-files", "--wake-wait", "20"])
    .spawn();
  children.add(a.child);
}

async function stopAgent(a: Agent): Promise<void> {
  if (!a.child) return;
  a.child.kill("SIGTERM");
  await a.child.status;
  children.delete(a.child);
  a.child = null;
}

async function versionOf(a: Agent): Promise<string | null> {
  return (await Deno.readTextFile(`${a.root}/demo/installed-version`).catch(() => null))?.trim() ??
    null;
}

async function table(agents: Agent[]): Promise<void> {
  const list = await admin("GET", "/v1/admin/appliances?limit=100");
  for (const a of agents) {
    const item = list.items.find((i: { uid: string }) => i.uid === a.uid);
    console.log(
      `  ${a.name.padEnd(8)} state=${String(item?.state).padEnd(8)} demo-app=${
        (await versionOf(a)) ?? "-"
      }`,
    );
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    console.log("\ncleaning up…");
    await cleanup();
    Deno.exit(0);
  });
}

try {
  say(`NOC on a temporary PGlite: ${noc.url}`);
  console.log(`  console:     ${noc.url}/ui (sign in with the admin token)`);
  console.log(`  admin token: ${noc.adminToken}`);
  console.log(`  try: curl -H "Authorization: Bearer ${noc.adminToken}" ${noc.url}/v1/admin/fleet`);

  say("publish the demo application, version 1.0.0");
  await publish("1.0.0");

  say("enrol three agents on temporary roots and start them");
  const agents: Agent[] = [];
  for (const name of ["gw-1", "gw-2", "gw-3"]) agents.push(await enrolAgent(name));
  for (const a of agents) startAgent(a);
  await waitUntil(
    "every agent runs 1.0.0",
    async () => (await Promise.all(agents.map(versionOf))).every((v) => v === "1.0.0"),
  );
  console.log("converged:");
  await table(agents);

  say("publish 2.0.0 and wake the fleet (no waiting for the interval)");
  await publish("2.0.0");
  await admin("POST", "/v1/admin/wake", { all: true });
  await waitUntil(
    "every agent runs 2.0.0",
    async () => (await Promise.all(agents.map(versionOf))).every((v) => v === "2.0.0"),
  );
  console.log("upgraded:");
  await table(agents);

  if (!quick) {
    const gone = agents[2]!;
    say(`${gone.name} stops; the status daemon notices the missed heartbeat`);
    await stopAgent(gone);
    // Said once the NOC says it: the sweep (run here rather than waiting for the minute's cron)
    // has opened a missed-heartbeat alert for it. The state alone can read "missing" a moment
    // before any sweep has alerted.
    await waitUntil(`the NOC has an open alert for ${gone.name}`, async () => {
      await admin("POST", "/v1/admin/sweep");
      const mine = await admin("GET", `/v1/admin/alerts?status=open&uid=${gone.uid}`);
      return mine.items.some((a: { kind: string }) => a.kind === "missed_heartbeat");
    });
    const alerts = await admin("GET", "/v1/admin/alerts?status=open");
    console.log(
      `open alerts: ${alerts.items.length} (${
        alerts.items.map((a: { kind: string; hostname: string | null }) =>
          `${a.kind} ${a.hostname ?? "-"}`
        ).join(", ")
      }; see ${noc.url}/ui/alerts)`,
    );
    await table(agents);

    say(`${gone.name} comes back`);
    startAgent(gone);
    await waitUntil(
      `${gone.name} is ok again`,
      async () => (await admin("GET", `/v1/admin/appliances/${gone.uid}`)).state === "ok",
    );
    await admin("POST", "/v1/admin/sweep");
    const still = await admin("GET", "/v1/admin/alerts?status=open");
    console.log(`open alerts: ${still.items.length}`);
    await table(agents);

    say(
      `the NOC keeps running at ${noc.url} (console: ${noc.url}/ui) — press Ctrl-C to stop and clean up`,
    );
    await new Promise(() => {});
  }
  say("demo finished");
} catch (e) {
  console.error(`demo failed: ${e instanceof Error ? e.message : e}`);
  await cleanup();
  Deno.exit(1);
}
await cleanup();
Deno.exit(0);
