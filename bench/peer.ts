/**
 * The peer benchmark (issue 23 items 0 and 4): the NOC against Icinga 2, the daemon many NOCs
 * already run to catch a missed heartbeat, on the same machine in one run.
 *
 * - **Accepted reports per second.** 2,000 monitored entities on each side, 128 requests in flight
 *   for 20 s, in interleaved rounds (the NOC's signed `POST /v1/beats`, Icinga's
 *   `process-check-result` with state in memory only, Icinga with IDO to PostgreSQL; twice). For
 *   Icinga with IDO also its durable rate: accepted results ÷ (run time + the time its IDO queue
 *   takes to drain into PostgreSQL). Every NOC answer is durable: it is sent after the commit.
 * - **Detection.** 2,000 appliances beating every 10 s and 2,000 passive services reporting as
 *   often; 1 % fall silent. Time from the threshold (due time plus grace; Icinga's freshness
 *   threshold, its `next_check`) to the alert (the NOC's `alerts.opened_at`; Icinga's
 *   `last_state_change`).
 * - **Cost at a quiet rate.** CPU per beat (the NOC process plus the PostgreSQL backends serving
 *   its connections, found through pg_stat_activity's client ports) at 33 beats/s against flat
 *   out; Icinga's CPU per result (daemon plus its IDO backend) at the same rate.
 *
 * Icinga 2 is installed from Debian (`icinga2`, `icinga2-ido-pgsql`) when missing and the bench
 * runs as root; it runs in the foreground from a temporary folder of its own (configuration,
 * state, TLS certificates made with openssl, an API user) on free ports, and its IDO writes to a
 * database of its own on the server of TEST_DATABASE_URL, dropped at the end. Nothing system-wide
 * is configured or started.
 *
 *   deno task bench -- peer           (TEST_DATABASE_URL must be set)
 *   deno run -A bench/peer.ts
 *
 * Shorter runs for development: BENCH_PEER_S (seconds a round, 20), BENCH_PEER_ROUNDS (2),
 * BENCH_PEER_HOSTS (2,000), BENCH_PEER_QUIET_S (20).
 *
 * @module
 */
import { signedRequest } from "../protocol/client.ts";
import { cpuSeconds, type Figure, percentile, postgresCpu } from "./figure.ts";
import { type SimAppliance, simBeat, simulate, simulationNoc } from "./simulate.ts";
import { startBareServer } from "./bare_server.ts";

const hosts = Number(Deno.env.get("BENCH_PEER_HOSTS") ?? 2000);
const roundS = Number(Deno.env.get("BENCH_PEER_S") ?? 20);
const rounds = Number(Deno.env.get("BENCH_PEER_ROUNDS") ?? 2);
const quietS = Number(Deno.env.get("BENCH_PEER_QUIET_S") ?? 20);
const lanes = 128;
const quietRate = 33;
/** Detection: the report interval (the NOC's shortest), the NOC's grace, the silent share. */
const detectIntervalS = 10;
const detectGraceS = 2;
const silentShare = 0.01;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a command; its exit status and output. */
async function run(cmd: string, args: string[], env: Record<string, string> = {}, stdin?: string) {
  const child = new Deno.Command(cmd, {
    args,
    env,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, text };
}

const idoSchema = "/usr/share/icinga2-ido-pgsql/schema/pgsql.sql";

/**
 * Makes sure Icinga 2 and its IDO for PostgreSQL are installed, installing them from Debian
 * when missing; returns what was done, or throws why it cannot.
 */
async function ensureIcinga(): Promise<string> {
  const present = async () =>
    (await run("icinga2", ["--version"]).catch(() => ({ ok: false }))).ok &&
    await Deno.stat(idoSchema).then(() => true, () => false);
  if (await present()) return "Icinga 2 already installed";
  if (Deno.uid() !== 0) throw new Error("Icinga 2 is not installed and the bench is not root");
  // No database set up by the package, no service started (we run our own in the foreground).
  await run(
    "debconf-set-selections",
    [],
    {},
    [
      "icinga2-ido-pgsql icinga2-ido-pgsql/dbconfig-install boolean false",
      "icinga2-ido-pgsql icinga2-ido-pgsql/enable boolean false",
      "",
    ].join("\n"),
  ).catch(() => {});
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    run(
      "apt-get",
      ["install", "-y", "--no-install-recommends", "icinga2", "icinga2-ido-pgsql"],
      env,
    );
  let r = await install();
  if (!r.ok) {
    await run("apt-get", ["update"], env);
    r = await install();
  }
  if (!r.ok || !await present()) {
    throw new Error(`apt-get install icinga2 icinga2-ido-pgsql failed: ${r.text.slice(-300)}`);
  }
  return "Icinga 2 installed from Debian by this run";
}

/** A port free at the moment. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The pids of `pid` and all its descendants (Linux). */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const ppid = Number(
        Deno.readTextFileSync(`/proc/${e.name}/stat`).split(") ")[1]!.split(" ")[1],
      );
      children.set(ppid, [...children.get(ppid) ?? [], Number(e.name)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const visit = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) visit(c);
  };
  visit(pid);
  return out;
}

/** CPU seconds of `pid` and its descendants. */
function treeCpu(pid: number): number {
  return processTree(pid).reduce((s, p) => {
    try {
      return s + cpuSeconds(p);
    } catch {
      return s;
    }
  }, 0);
}

/** CPU seconds used over a measurement. */
interface CpuUse {
  /** By the measured process and its children. */
  target: number;
  /** By the PostgreSQL backends serving its connections. */
  pg: number;
  /** By every postgres process on the machine (other sessions' included). */
  pgAll: number;
}

/** A CPU sample: of the target's process tree, of each backend serving it, of all postgres. */
interface CpuSample {
  target: number;
  backends: Map<number, number>;
  all: number;
}

/** Samples the CPU of a process tree and of the PostgreSQL backends serving its connections. */
interface CpuProbe {
  sample(): Promise<CpuSample>;
  since(a: CpuSample, b: CpuSample): CpuUse;
}

/** The local ports of the TCP sockets the processes `pids` hold (Linux). */
function tcpPorts(pids: number[]): number[] {
  const inodes = new Set<string>();
  for (const pid of pids) {
    try {
      for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`));
          if (m) inodes.add(m[1]!);
        } catch {
          // closed meanwhile
        }
      }
    } catch {
      // gone
    }
  }
  const ports: number[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(":")[1]!, 16));
    }
  }
  return ports;
}

/** A {@link CpuProbe} of `pid`'s process tree; `admin` reads pg_stat_activity. */
function cpuProbe(
  pid: () => number,
  admin: (ports: number[]) => Promise<number[]>,
): CpuProbe {
  const cpuOf = (p: number) => {
    try {
      return cpuSeconds(p);
    } catch {
      return 0;
    }
  };
  return {
    async sample() {
      const tree = processTree(pid());
      const backends = new Map<number, number>();
      for (const b of await admin(tcpPorts(tree))) backends.set(b, cpuOf(b));
      return { target: treeCpu(pid()), backends, all: postgresCpu() };
    },
    since(a, b) {
      let pg = 0;
      for (const [p, c] of b.backends) pg += c - (a.backends.get(p) ?? 0);
      return { target: b.target - a.target, pg, pgAll: b.all - a.all };
    },
  };
}

/** A running Icinga 2 of this bench. */
interface Icinga {
  pid: number;
  url: string;
  /** An API call; its JSON answer (throws on a status other than 200). */
  api(method: string, path: string, body?: unknown): Promise<Record<string, unknown>>;
  /** Reports one passive result for host `i`'s service; whether it was accepted. */
  report(i: number, exitStatus?: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** The attributes of a service this bench reads. */
interface IcingaAttrs {
  state: number;
  next_check: number;
  last_state_change: number;
}

/** The IDO connection of an Icinga. */
interface IdoDb {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/**
 * Starts Icinga 2 in the foreground from a temporary folder: the API (TLS, basic auth) on a free
 * port, the checker, `hosts` hosts each with one passive service `beat` whose freshness threshold
 * is 60 s (a stale one runs `dummy`, CRITICAL), and the IDO to `ido` when given.
 */
async function startIcinga(label: string, ido: IdoDb | null): Promise<Icinga> {
  const dir = await Deno.makeTempDir({ prefix: `noc-bench-icinga-${label}-` });
  for (const d of ["etc", "data/certs", "log", "cache", "spool", "run/icinga2"]) {
    await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  }
  // A CA and a leaf it signs (a self-signed CA certificate is refused as a server's by rustls).
  const certs = `${dir}/data/certs`;
  await Deno.writeTextFile(
    `${dir}/leaf.ext`,
    "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  for (
    const args of [
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bench-ca"]
        .concat(["-keyout", `${dir}/ca.key`, "-out", `${certs}/ca.crt`]),
      ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=bench"]
        .concat(["-keyout", `${certs}/bench.key`, "-out", `${dir}/bench.csr`]),
      ["x509", "-req", "-in", `${dir}/bench.csr`, "-CA", `${certs}/ca.crt`, "-CAkey"]
        .concat([`${dir}/ca.key`, "-CAcreateserial", "-days", "2", "-extfile", `${dir}/leaf.ext`])
        .concat(["-out", `${certs}/bench.crt`]),
    ]
  ) {
    const r = await run("openssl", args);
    if (!r.ok) throw new Error(`openssl ${args[0]} failed: ${r.text.slice(-300)}`);
  }
  const pem = await Deno.readTextFile(`${certs}/ca.crt`);
  const port = freePort();
  const password = crypto.randomUUID();
  const q = JSON.stringify;
  await Deno.writeTextFile(
    `${dir}/etc/icinga2.conf`,
    `include <itl>
object Endpoint NodeName {}
object Zone ZoneName { endpoints = [ NodeName ] }
object ApiListener "api" { bind_host = "127.0.0.1"; bind_port = ${port}; accept_commands = true }
object ApiUser "bench" { password = ${q(password)}; permissions = [ "*" ] }
object CheckerComponent "checker" {}
for (i in range(${hosts})) {
  object Host "h" + i { check_command = "dummy"; enable_active_checks = false }
}
// Freshness: a passive result moves next_check to now + check_interval; a service without one
// by then runs its check_command (Icinga 2.13 runs it only with active checks enabled).
apply Service "beat" {
  check_command = "dummy"
  enable_active_checks = true
  check_interval = 60s
  retry_interval = 60s
  max_check_attempts = 1
  vars.dummy_state = 2
  vars.dummy_text = "no passive result in time"
  assign where true
}
${
      ido
        ? `object IdoPgsqlConnection "ido" { host = ${q(ido.host)}; port = ${ido.port}; user = ${
          q(ido.user)
        }; password = ${q(ido.password)}; database = ${q(ido.database)} }`
        : ""
    }
`,
  );
  const defs = {
    ConfigDir: `${dir}/etc`,
    DataDir: `${dir}/data`,
    LogDir: `${dir}/log`,
    CacheDir: `${dir}/cache`,
    SpoolDir: `${dir}/spool`,
    InitRunDir: `${dir}/run`,
    NodeName: "bench",
    ZoneName: "bench",
    RunAsUser: Deno.uid() === 0 ? "root" : Deno.env.get("USER") ?? "root",
    RunAsGroup: Deno.uid() === 0 ? "root" : Deno.env.get("USER") ?? "root",
  };
  const child = new Deno.Command("icinga2", {
    args: [
      "daemon",
      "-c",
      `${dir}/etc/icinga2.conf`,
      "-x",
      "warning",
      ...Object.entries(defs).map(([k, v]) => `-D${k}=${v}`),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let tail = "";
  const keep = async (s: ReadableStream<Uint8Array>) => {
    for await (const t of s.pipeThrough(new TextDecoderStream())) tail = (tail + t).slice(-2000);
  };
  const drained = Promise.all([keep(child.stdout), keep(child.stderr)]).catch(() => {});
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  const client = Deno.createHttpClient({ caCerts: [pem] });
  const auth = `Basic ${btoa(`bench:${password}`)}`;
  const url = `https://127.0.0.1:${port}`;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method: method === "GET" && body !== undefined ? "POST" : method,
      client,
      headers: {
        authorization: auth,
        accept: "application/json",
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...(method === "GET" && body !== undefined ? { "x-http-method-override": "GET" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`Icinga ${method} ${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  };
  const stop = async () => {
    const tree = processTree(child.pid);
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      for (const p of tree) {
        try {
          Deno.kill(p, "SIGKILL");
        } catch {
          // gone
        }
      }
    }, 10_000);
    await status;
    clearTimeout(timer);
    await drained;
    // Helpers it forked, should any outlive it.
    for (const p of tree.slice(1)) {
      try {
        Deno.kill(p, "SIGKILL");
      } catch {
        // gone
      }
    }
    client.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const started = performance.now();
  for (;;) {
    if (exited) {
      await drained;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      client.close();
      throw new Error(`Icinga 2 (${label}) exited: ${tail.slice(-400)}`);
    }
    try {
      await api("GET", "/v1/status/ApiListener");
      break;
    } catch {
      if (performance.now() - started > 120_000) {
        await stop();
        throw new Error(`Icinga 2 (${label}) did not answer in 120 s: ${tail.slice(-400)}`);
      }
      await sleep(250);
    }
  }
  return {
    pid: child.pid,
    url,
    api,
    async report(i, exitStatus = 0) {
      const res = await fetch(`${url}/v1/actions/process-check-result`, {
        method: "POST",
        client,
        headers: {
          authorization: auth,
          accept: "application/json",
          "content-type": "application/json",
        },
        body: JSON.stringify({
          type: "Service",
          service: `h${i}!beat`,
          exit_status: exitStatus,
          plugin_output: "OK - beat",
        }),
      });
      await res.body?.cancel();
      return res.status === 200;
    },
    stop,
  };
}

/** The IDO queue of an Icinga: whether connected, and queries waiting to be written. */
async function idoQueue(icinga: Icinga): Promise<{ connected: boolean; items: number }> {
  const r = await icinga.api("GET", "/v1/status/IdoPgsqlConnection");
  // deno-lint-ignore no-explicit-any
  const ido = (r as any).results?.[0]?.status?.idopgsqlconnection?.ido;
  return { connected: ido?.connected === true, items: Number(ido?.query_queue_items ?? NaN) };
}

/** Waits until the IDO queue is empty (and connected); seconds it took. */
async function idoDrain(icinga: Icinga, limitS = 300): Promise<number> {
  const t = performance.now();
  for (;;) {
    const q = await idoQueue(icinga);
    if (q.connected && q.items === 0) return (performance.now() - t) / 1000;
    if (performance.now() - t > limitS * 1000) {
      throw new Error(`the IDO queue still held ${q.items} after ${limitS} s`);
    }
    await sleep(100);
  }
}

/** What a closed-loop round measured. */
interface Round {
  accepted: number;
  seconds: number;
  perS: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU seconds used over the round (see {@link CpuProbe}). */
  cpu: CpuUse;
  /** CPU seconds this process (the driver: signing, TLS) used over the round. */
  driverCpu: number;
}

/**
 * `lanes` requests in flight for `durationS`; lane w sends for the entities w, w + lanes, … in
 * turn (so one entity never has two requests in flight).
 */
async function closedLoop(
  n: number,
  durationS: number,
  send: (i: number) => Promise<boolean>,
  probe: CpuProbe,
): Promise<Round> {
  const latencies: number[] = [];
  let accepted = 0, errors = 0;
  const cpu0 = await probe.sample();
  const self0 = cpuSeconds("self");
  const started = performance.now();
  const end = started + durationS * 1000;
  await Promise.all(Array.from({ length: Math.min(lanes, n) }, async (_, w) => {
    for (let i = w; performance.now() < end; i = i + lanes < n ? i + lanes : w) {
      const t = performance.now();
      const ok = await send(i).catch(() => false);
      latencies.push(performance.now() - t);
      if (ok) accepted++;
      else errors++;
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  const driverCpu = cpuSeconds("self") - self0;
  const cpu = probe.since(cpu0, await probe.sample());
  latencies.sort((a, b) => a - b);
  return {
    accepted,
    seconds,
    perS: accepted / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
    cpu,
    driverCpu,
  };
}

/**
 * Sends at `rate` a second, open loop, to entities 0, 1, … in turn for `durationS` (entity i
 * every n ÷ rate seconds); `skip(i, atMs)` leaves a send out. Returns the round's figures.
 */
async function openLoop(
  n: number,
  rate: number,
  durationS: number,
  send: (i: number) => Promise<boolean>,
  probe: CpuProbe,
  skip: (i: number, at: number) => boolean = () => false,
): Promise<Round> {
  const latencies: number[] = [];
  let accepted = 0, errors = 0;
  const pending = new Set<Promise<void>>();
  const cpu0 = await probe.sample();
  const self0 = cpuSeconds("self");
  const started = performance.now();
  for (let k = 0;; k++) {
    const due = started + (k * 1000) / rate;
    if (due >= started + durationS * 1000) break;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const i = k % n;
    if (skip(i, Date.now())) continue;
    const t = performance.now();
    const p = send(i).catch(() => false).then((ok) => {
      latencies.push(performance.now() - t);
      if (ok) accepted++;
      else errors++;
      pending.delete(p);
    });
    pending.add(p);
  }
  await Promise.all(pending);
  const seconds = (performance.now() - started) / 1000;
  const driverCpu = cpuSeconds("self") - self0;
  const cpu = probe.since(cpu0, await probe.sample());
  latencies.sort((a, b) => a - b);
  return {
    accepted,
    seconds,
    perS: accepted / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
    cpu,
    driverCpu,
  };
}

/**
 * One report for every entity through `send`, untimed, before a round: an Icinga service left
 * without a result for its freshness threshold has gone CRITICAL, and its first result in the round
 * would be a state change (with IDO, a statehistory row) that a steadily reporting fleet does not
 * cause.
 */
async function prime(send: (i: number) => Promise<boolean>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (next < hosts) await send(next++).catch(() => false);
  }));
}

/** A signed SecureBeat of `a` to its NOC (or to `to`); whether it was accepted (200). */
async function beat(a: SimAppliance, to = a.noc): Promise<boolean> {
  const now = new Date();
  a.seq++;
  const res = await fetch(
    await signedRequest({
      baseUrl: to,
      uid: a.uid,
      key: a.key,
      method: "POST",
      path: "/v1/beats",
      body: simBeat(a.seq, now),
      now,
    }),
  );
  await res.body?.cancel();
  return res.status === 200;
}

/** Enrols `hosts` simulated appliances in `noc`. */
async function enrol(noc: { url: string; token: string }): Promise<SimAppliance[]> {
  const r = await simulate({
    appliances: hosts,
    rate: 0,
    durationS: 0,
    nocs: [noc.url],
    adminToken: noc.token,
  });
  return r.fleet;
}

const f1 = (x: number) => x.toFixed(1);
const range = (xs: number[]) => {
  const lo = Math.min(...xs), hi = Math.max(...xs);
  return xs.length === 1 || lo.toFixed(0) === hi.toFixed(0)
    ? lo.toFixed(0)
    : `${lo.toFixed(0)}–${hi.toFixed(0)}`;
};
const sum = <T>(xs: T[], f: (x: T) => number) => xs.reduce((s, x) => s + f(x), 0);
/** CPU milliseconds per item. */
const perMs = (cpuS: number, n: number) => (cpuS / Math.max(1, n) * 1000).toFixed(2);
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);

/** Creates the IDO database on the server of `pg` and loads Icinga's schema into it. */
async function createIdoDb(
  pg: string,
): Promise<{ ido: IdoDb; count(table: string): Promise<number>; drop(): Promise<void> }> {
  const { default: postgres } = await import("postgres");
  const database = `icinga_bench_${crypto.randomUUID().replace(/-/g, "").slice(0, 10)}`;
  const admin = postgres(pg, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${database}`);
  await admin.end();
  const u = new URL(pg);
  const dbUrl = new URL(pg);
  dbUrl.pathname = `/${database}`;
  const db = postgres(dbUrl.href, { max: 1, onnotice: () => {} });
  try {
    await db.unsafe(await Deno.readTextFile(idoSchema));
  } finally {
    await db.end();
  }
  return {
    ido: {
      host: u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
      port: Number(u.port || 5432),
      user: decodeURIComponent(u.username || "postgres"),
      password: decodeURIComponent(u.password),
      database,
    },
    async count(table) {
      const c = postgres(dbUrl.href, { max: 1, onnotice: () => {} });
      try {
        const [r] = await c.unsafe(`select count(*)::int as n from ${table}`);
        return Number(r?.n);
      } finally {
        await c.end();
      }
    },
    async drop() {
      const a = postgres(pg, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists ${database} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}

/** Runs the peer benchmark; returns its figures. */
export async function peerBench(): Promise<Figure[]> {
  const pg = Deno.env.get("TEST_DATABASE_URL");
  const title = "peer: the NOC against Icinga 2";
  if (!pg) {
    return [{
      name: title,
      value: NaN,
      unit: "",
      note: "skipped: set TEST_DATABASE_URL (the NOC and Icinga's IDO run on PostgreSQL)",
    }];
  }
  let installed: string;
  try {
    installed = await ensureIcinga();
  } catch (e) {
    return [{
      name: title,
      value: NaN,
      unit: "",
      note: `skipped: Icinga 2 is not available: ${e instanceof Error ? e.message : String(e)}`,
    }];
  }
  const log = (s: string) => console.error(`peer: ${s}`);
  const version = (await run("icinga2", ["--version"])).text.match(/version: (\S+)\)/)?.[1] ?? "";
  const rows: Figure[] = [];
  const cleanup: Array<() => Promise<void>> = [];
  try {
    const { default: postgres } = await import("postgres");
    const admin = postgres(pg, { max: 1, onnotice: () => {} });
    cleanup.unshift(() => admin.end());
    const backendsOf = async (ports: number[]) =>
      ports.length === 0 ? [] : (await admin<{ pid: number }[]>`
        select pid from pg_stat_activity
        where client_port = any(${ports}::int[]) and pid <> pg_backend_pid()`).map((r) => r.pid);
    const idoDb = await createIdoDb(pg);
    cleanup.unshift(idoDb.drop);
    const noc = await simulationNoc();
    cleanup.unshift(noc.stop);
    const mem = await startIcinga("memory", null);
    cleanup.unshift(mem.stop);
    const withIdo = await startIcinga("ido", idoDb.ido);
    cleanup.unshift(withIdo.stop);
    log(`Icinga ${version} up; enrolling ${hosts} appliances`);
    const fleet = await enrol(noc);
    // Each appliance's first beat, untimed (a returning appliance's beat is what is measured).
    await prime((i) => beat(fleet[i]!));
    log(`waiting for Icinga's IDO to write its configuration`);
    const initialDrain = await idoDrain(withIdo);
    const results = { noc: [] as Round[], mem: [] as Round[], ido: [] as Round[] };
    const drains: number[] = [];
    const queued: number[] = [];
    const nocProbe = cpuProbe(() => noc.pid, backendsOf);
    const memProbe = cpuProbe(() => mem.pid, backendsOf);
    const idoProbe = cpuProbe(() => withIdo.pid, backendsOf);
    for (let r = 0; r < rounds; r++) {
      log(`round ${r + 1}: NOC`);
      results.noc.push(await closedLoop(hosts, roundS, (i) => beat(fleet[i]!), nocProbe));
      log(`round ${r + 1}: Icinga, memory only`);
      await prime((i) => mem.report(i));
      results.mem.push(await closedLoop(hosts, roundS, (i) => mem.report(i), memProbe));
      log(`round ${r + 1}: Icinga with IDO`);
      await prime((i) => withIdo.report(i));
      await idoDrain(withIdo);
      const ido = await closedLoop(hosts, roundS, (i) => withIdo.report(i), idoProbe);
      queued.push((await idoQueue(withIdo)).items);
      const t = performance.now();
      await idoDrain(withIdo);
      drains.push((performance.now() - t) / 1000);
      results.ido.push(ido);
    }
    const statusRows = await idoDb.count("icinga_servicestatus").catch(() => NaN);
    const stateChanges = await idoDb.count("icinga_statehistory").catch(() => NaN);
    const conditions = `${hosts} entities, ${lanes} requests in flight, ${roundS} s a round, ` +
      `${rounds} interleaved rounds (NOC, Icinga memory only, Icinga with IDO)`;
    const latency = (xs: Round[]) =>
      `p50 ${range(xs.map((x) => x.p50))} ms, p99 ${range(xs.map((x) => x.p99))} ms; errors ${
        xs.reduce((s, x) => s + x.errors, 0)
      }`;
    const nocRate = mean(results.noc.map((x) => x.perS));
    const memRate = mean(results.mem.map((x) => x.perS));
    const idoRate = mean(results.ido.map((x) => x.perS));
    const idoDurable = mean(
      results.ido.map((x, i) => x.accepted / (x.seconds + drains[i]!)),
    );
    rows.push({
      name: "NOC: signed SecureBeats accepted (POST /v1/beats, answered after commit)",
      value: nocRate,
      unit: "beats/s",
      note: `rounds ${range(results.noc.map((x) => x.perS))}/s; ${
        latency(results.noc)
      }; each answer is durable; CPU per beat: NOC ${
        perMs(sum(results.noc, (x) => x.cpu.target), sum(results.noc, (x) => x.accepted))
      } ms, its PostgreSQL backends ${
        perMs(sum(results.noc, (x) => x.cpu.pg), sum(results.noc, (x) => x.accepted))
      } ms, this driver (signing) ${
        perMs(sum(results.noc, (x) => x.driverCpu), sum(results.noc, (x) => x.accepted))
      } ms; ${conditions}`,
    });
    rows.push({
      name: "Icinga 2: process-check-result accepted, state in memory only",
      value: memRate,
      unit: "results/s",
      note: `rounds ${range(results.mem.map((x) => x.perS))}/s; ${
        latency(results.mem)
      }; Icinga ${version}, TLS and basic auth; CPU per result: Icinga ${
        perMs(sum(results.mem, (x) => x.cpu.target), sum(results.mem, (x) => x.accepted))
      } ms, this driver ${
        perMs(sum(results.mem, (x) => x.driverCpu), sum(results.mem, (x) => x.accepted))
      } ms`,
    });
    rows.push({
      name: "Icinga 2 with IDO to PostgreSQL: process-check-result accepted",
      value: idoRate,
      unit: "results/s",
      note: `rounds ${range(results.ido.map((x) => x.perS))}/s; ${latency(results.ido)}; ` +
        `its IDO queue held ${range(queued)} queries at the end of a round (query_queue_items)`,
    });
    rows.push({
      name: "Icinga 2 with IDO: durable rate (accepted ÷ (run time + IDO drain time))",
      value: idoDurable,
      unit: "results/s",
      note:
        `the IDO queue took ${drains.map(f1).join(", ")} s to drain after the rounds (${
          f1(initialDrain)
        } s for its configuration at start); ${statusRows} rows in icinga_servicestatus, ${stateChanges} ` +
        `in icinga_statehistory (state changes, none in its own rounds: services gone stale while it idled, ` +
        `then back at the untimed pass before a round)`,
    });
    for (
      const [name, xs] of [["NOC", results.noc], ["Icinga memory only", results.mem], [
        "Icinga with IDO",
        results.ido,
      ]] as const
    ) {
      rows.push({
        name: `p99 latency flat out, ${name}`,
        value: mean(xs.map((x) => x.p99)),
        unit: "ms",
        note: `rounds ${range(xs.map((x) => x.p99))} ms`,
      });
    }
    rows.push({
      name: "ratio: NOC accepted ÷ Icinga with IDO accepted",
      value: nocRate / idoRate,
      unit: "×",
      note: `${nocRate.toFixed(0)} ÷ ${idoRate.toFixed(0)}, same run, same machine`,
      target: "≥ 1.0×",
      met: nocRate / idoRate >= 1,
    });
    rows.push({
      name: "ratio: NOC accepted ÷ Icinga memory only accepted (the goal beyond)",
      value: nocRate / memRate,
      unit: "×",
      note: `${nocRate.toFixed(0)} ÷ ${memRate.toFixed(0)}`,
    });
    rows.push({
      name: "ratio: NOC durable ÷ Icinga with IDO durable",
      value: nocRate / idoDurable,
      unit: "×",
      note: `${nocRate.toFixed(0)} ÷ ${idoDurable.toFixed(0)}: every NOC answer is durable`,
    });

    // Cost at a quiet rate: CPU per beat (NOC plus PostgreSQL) at 33/s against flat out.
    log(`quiet rate: ${quietRate}/s for ${quietS} s each`);
    const flatCpu = results.noc.reduce((s, x) => s + x.cpu.target + x.cpu.pg, 0) /
      Math.max(1, results.noc.reduce((s, x) => s + x.accepted, 0));
    const quiet = await openLoop(hosts, quietRate, quietS, (i) => beat(fleet[i]!), nocProbe);
    const quietCpu = (quiet.cpu.target + quiet.cpu.pg) / Math.max(1, quiet.accepted);
    const icQuiet = await openLoop(
      hosts,
      quietRate,
      quietS,
      (i) => withIdo.report(i),
      idoProbe,
    );
    await idoDrain(withIdo);
    const icQuietCpu = (icQuiet.cpu.target + icQuiet.cpu.pg) / Math.max(1, icQuiet.accepted);
    // The machine's own floor: a bare Deno.serve (bench/bare_server.ts: no verification, database
    // or framework) answering the same signed beats flat out and at the quiet rate — what a lone
    // request costs the runtime and the kernel on an otherwise idle CPU.
    log(`quiet rate: a bare Deno.serve, flat out and at ${quietRate}/s`);
    const bare = await startBareServer();
    cleanup.unshift(bare.stop);
    const bareProbe = cpuProbe(() => bare.pid, () => Promise.resolve([]));
    const bareFlat = await closedLoop(hosts, roundS, (i) => beat(fleet[i]!, bare.url), bareProbe);
    const bareQuiet = await openLoop(
      hosts,
      quietRate,
      quietS,
      (i) => beat(fleet[i]!, bare.url),
      bareProbe,
    );
    await bare.stop();
    cleanup.splice(cleanup.indexOf(bare.stop), 1);
    const bareFlatCpu = bareFlat.cpu.target / Math.max(1, bareFlat.accepted);
    const bareQuietCpu = bareQuiet.cpu.target / Math.max(1, bareQuiet.accepted);
    const floor = bareQuietCpu / bareFlatCpu;
    const icFlatCpu = results.ido.reduce((s, x) => s + x.cpu.target + x.cpu.pg, 0) /
      Math.max(1, results.ido.reduce((s, x) => s + x.accepted, 0));
    rows.push({
      name: `CPU per beat at ${quietRate} beats/s ÷ flat out (NOC + PostgreSQL)`,
      value: quietCpu / flatCpu,
      unit: "×",
      note:
        `${(quietCpu * 1000).toFixed(2)} ms (NOC ${
          (quiet.cpu.target / Math.max(1, quiet.accepted) * 1000).toFixed(2)
        }, PostgreSQL ${(quiet.cpu.pg / Math.max(1, quiet.accepted) * 1000).toFixed(2)}) at ${
          f1(quiet.perS)
        }/s for ${quietS} s against ${(flatCpu * 1000).toFixed(2)} ms flat out; PostgreSQL is ` +
        `the backends serving the NOC's connections (every postgres process on the machine, ` +
        `other sessions' included: ${perMs(quiet.cpu.pgAll, quiet.accepted)} ms quiet, ${
          perMs(
            results.noc.reduce((s, x) => s + x.cpu.pgAll, 0),
            results.noc.reduce((s, x) => s + x.accepted, 0),
          )
        } ms flat out). Icinga with IDO: ${(icQuietCpu * 1000).toFixed(2)} ms per result at ${
          f1(icQuiet.perS)
        }/s (daemon + PostgreSQL), ${
          (icFlatCpu * 1000).toFixed(2)
        } ms flat out; per minute at ${quietRate}/s the NOC used ${
          f1(
            (quiet.cpu.target + quiet.cpu.pg) / Math.max(1e-9, icQuiet.cpu.target + icQuiet.cpu.pg),
          )
        }× Icinga's CPU (Icinga's own ratio ${
          f1(icQuietCpu / icFlatCpu)
        }×). The machine's floor: ` +
        `a bare Deno.serve answering the same beats spent ${(bareQuietCpu * 1000).toFixed(3)} ms ` +
        `per request at ${f1(bareQuiet.perS)}/s against ${(bareFlatCpu * 1000).toFixed(3)} ms ` +
        `flat out (${f1(floor)}×); the NOC's ratio is ${
          f1(quietCpu / flatCpu / floor)
        }× the floor's`,
      target: "≤ 2×",
      met: quietCpu / flatCpu <= 2,
    });
    rows.push({
      name: `floor: a bare Deno.serve's CPU per request at ${quietRate}/s ÷ flat out`,
      value: floor,
      unit: "×",
      note: `${(bareQuietCpu * 1000).toFixed(3)} ms ÷ ${(bareFlatCpu * 1000).toFixed(3)} ms, ` +
        `same signed beats, same run; the runtime's HTTP stack and the kernel with nothing else`,
    });
    await withIdo.stop();
    cleanup.splice(cleanup.indexOf(withIdo.stop), 1);

    // Detection: a fresh NOC on a short interval and grace; Icinga's freshness threshold alike.
    log(`detection: ${hosts} appliances and services every ${detectIntervalS} s, 1 % fall silent`);
    await noc.stop();
    cleanup.splice(cleanup.indexOf(noc.stop), 1);
    const dnoc = await simulationNoc({
      NOC_REPORT_INTERVAL_S: String(detectIntervalS),
      NOC_GRACE_S: String(detectGraceS),
    });
    cleanup.unshift(dnoc.stop);
    const dfleet = await enrol(dnoc);
    await mem.api("POST", "/v1/objects/services", {
      filter: 'service.name == "beat"',
      attrs: { check_interval: detectIntervalS + detectGraceS, retry_interval: 60 },
    });
    const silent = new Set(
      Array.from(
        { length: Math.max(1, Math.round(hosts * silentShare)) },
        (_, k) => Math.floor(k / silentShare) % hosts,
      ),
    );
    // Everyone reports for one interval and a bit; then the silent ones stop, the rest go on
    // past the threshold.
    const warmS = detectIntervalS + 2;
    const totalS = warmS + detectIntervalS + detectGraceS + 6;
    const silenceAt = Date.now() + warmS * 1000;
    const skip = (i: number, at: number) => silent.has(i) && at >= silenceAt;
    // Icinga's freshness threshold of each silent service: its next_check while still OK, read
    // every 250 ms from the silence on (a passive result moves it; the stale check moves it on).
    const thresholds = new Map<string, number>();
    let watching = true;
    const watch = (async () => {
      await sleep(Math.max(0, silenceAt - 500 - Date.now()));
      while (watching) {
        const r = await mem.api("GET", "/v1/objects/services", {
          filter: "host.name in hosts",
          filter_vars: { hosts: [...silent].map((i) => `h${i}`) },
          attrs: ["state", "next_check"],
        }).catch(() => null);
        for (const x of (r?.results ?? []) as Array<{ name: string; attrs: IcingaAttrs }>) {
          if (x.attrs.state === 0) thresholds.set(x.name.split("!")[0]!, x.attrs.next_check * 1000);
        }
        await sleep(250);
      }
    })();
    const rate = hosts / detectIntervalS;
    const [nocDet, icDet] = await Promise.all([
      openLoop(
        hosts,
        rate,
        totalS,
        (i) => beat(dfleet[i]!),
        cpuProbe(() => dnoc.pid, backendsOf),
        skip,
      ),
      openLoop(hosts, rate, totalS, (i) => mem.report(i), memProbe, skip),
    ]);
    // Icinga: state changes of the silent services after their threshold.
    const deadline = Date.now() + 15_000;
    let icLat: number[] = [];
    let icMissing = 0;
    for (;;) {
      const now = await mem.api("GET", "/v1/objects/services", {
        filter: "host.name in hosts",
        filter_vars: { hosts: [...silent].map((i) => `h${i}`) },
        attrs: ["state", "last_state_change"],
      });
      icLat = [];
      icMissing = 0;
      for (const x of now.results as Array<{ name: string; attrs: IcingaAttrs }>) {
        const th = thresholds.get(x.name.split("!")[0]!);
        if (
          x.attrs.state === 2 && th !== undefined && x.attrs.last_state_change * 1000 >= silenceAt
        ) {
          icLat.push(x.attrs.last_state_change * 1000 - th);
        } else icMissing++;
      }
      if (icMissing === 0 || Date.now() > deadline) break;
      await sleep(500);
    }
    watching = false;
    await watch;
    const critical = (await mem.api("GET", "/v1/objects/services", {
      filter: "service.state == 2 && service.last_state_change * 1000 >= since",
      filter_vars: { since: silenceAt },
      attrs: ["state"],
    })).results as Array<{ name: string }>;
    const icOthers = critical.filter((c) => !silent.has(Number(c.name.slice(1).split("!")[0])))
      .length;
    // The NOC: alerts raised for the silent appliances, against their due time plus grace.
    const ddb = postgres(dnoc.shared!.DATABASE_URL, { max: 1, onnotice: () => {} });
    const silentUids = [...silent].map((i) => dfleet[i]!.uid);
    let nocLat: number[] = [];
    let nocMissing = 0, others = 0;
    try {
      for (;;) {
        const rows = await ddb<{ uid: string; opened_at: Date; due: string }[]>`
          select uid::text, opened_at, detail->>'dueAt' as due from alerts
          where kind = 'missed_heartbeat' and opened_at >= ${new Date(silenceAt)}`;
        const by = new Map(rows.map((r) => [r.uid, r]));
        nocLat = silentUids.flatMap((u) => {
          const r = by.get(u);
          return r
            ? [r.opened_at.getTime() - (new Date(r.due).getTime() + detectGraceS * 1000)]
            : [];
        });
        nocMissing = silentUids.length - nocLat.length;
        others = rows.filter((r) => !silentUids.includes(r.uid)).length;
        if (nocMissing === 0 || Date.now() > deadline) break;
        await sleep(500);
      }
    } finally {
      await ddb.end();
    }
    nocLat.sort((a, b) => a - b);
    icLat.sort((a, b) => a - b);
    const s = (ms: number) => (ms / 1000).toFixed(3);
    const detNote =
      `${hosts} appliances beating every ${detectIntervalS} s (${f1(nocDet.perS)}/s), ` +
      `${silent.size} fall silent; threshold = due time + NOC_GRACE_S=${detectGraceS}, alert = ` +
      `alerts.opened_at (the sweep's clock)`;
    rows.push({
      name: "detection p50, NOC: threshold to alert",
      value: percentile(nocLat, 50) / 1000,
      unit: "s",
      note: detNote,
    });
    rows.push({
      name: "detection p99, NOC: threshold to alert",
      value: percentile(nocLat, 99) / 1000,
      unit: "s",
      note: `${nocLat.length} of ${silentUids.length} alerted${
        nocMissing ? ` (${nocMissing} not within the wait)` : ""
      }, worst ${s(nocLat.at(-1) ?? NaN)} s; ${others} alerts for appliances still beating`,
      target: "≤ 2",
      met: nocMissing === 0 && percentile(nocLat, 99) <= 2000,
    });
    const icNote =
      `${hosts} passive services reporting every ${detectIntervalS} s (${
        f1(icDet.perS)
      }/s), freshness threshold ${
        detectIntervalS + detectGraceS
      } s (check_interval; the threshold is next_check while still OK, polled every 250 ms); ` +
      `alert = last_state_change to ` +
      `CRITICAL`;
    rows.push({
      name: "detection p50, Icinga 2: freshness threshold to CRITICAL",
      value: percentile(icLat, 50) / 1000,
      unit: "s",
      note: icNote,
    });
    rows.push({
      name: "detection p99, Icinga 2: freshness threshold to CRITICAL",
      value: percentile(icLat, 99) / 1000,
      unit: "s",
      note: `${icLat.length} of ${silent.size} went CRITICAL${
        icMissing ? ` (${icMissing} not within the wait)` : ""
      }, worst ${s(icLat.at(-1) ?? NaN)} s; ${icOthers} services still reporting went CRITICAL`,
    });
    rows.push({
      name: "Icinga 2 setup",
      value: NaN,
      unit: "",
      note: `${installed}; version ${version}; run in the foreground from a temporary folder ` +
        `(API with TLS and basic auth, checker, IDO to a database of its own on the same ` +
        `PostgreSQL); each service: check_command dummy, passive results, check_interval 60 s as ` +
        `the freshness threshold (Icinga 2.13 runs a freshness check only with ` +
        `enable_active_checks true: a passive result moves next_check)`,
    });
  } finally {
    for (const c of cleanup) await c().catch((e) => log(`cleanup: ${e}`));
  }
  return rows;
}

if (import.meta.main) {
  for (const f of await peerBench()) {
    console.log(`${f.name}: ${f.value.toFixed(3)} ${f.unit}  ${f.target ?? ""} ${f.note}`);
  }
  Deno.exit(0);
}
