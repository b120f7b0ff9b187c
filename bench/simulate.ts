/**
 * The fleet simulator: N enrolled appliances performing real, signed check-in
 * cycles — a SecureBeat, then the catalog with `If-None-Match` — at a target
 * rate, spread over one or several NOC instances; a share of them can stay
 * silent to exercise the sweep. Prints achieved cycles per second, latency
 * percentiles per request type and errors.
 *
 *   deno task simulate -- --appliances 2000 --rate 500 --duration 30 [--noc URL ...]
 *     [--token ADMIN] [--silent 0.01] [--concurrency 256] [--json]
 *
 * Without `--noc`, a NOC process is started on a temporary PGlite (or on
 * TEST_DATABASE_URL when set) with rate limits off. A NOC given with `--noc`
 * needs `--token` (an admin token, to make enrolment tokens), and
 * NOC_RATE_APPLIANCE_PER_MIN set high enough for the rate asked. Appliance
 * keys are generated once per fleet size and kept in bench/.sim-keys/.
 *
 * @module
 */
import { signedRequest } from "../lib/appliance_client.ts";
import {
  exportEd25519Seed,
  exportRawPublic,
  generateEd25519,
  generateX25519,
  importEd25519Seed,
} from "../lib/ed25519.ts";
import { fromBase64Url, toBase64Url } from "../lib/encoding.ts";
import { newSeed } from "../lib/noc_keys.ts";
import { startNoc } from "../tests/_process.ts";
import { percentile } from "./figure.ts";

/** What a run measured. */
export interface SimulationResult {
  /** The appliances, for another run on the same database. */
  fleet: SimAppliance[];
  appliances: number;
  targetRate: number;
  durationS: number;
  cycles: number;
  cyclesPerS: number;
  errors: number;
  errorKinds: Record<string, number>;
  latencyMs: Record<"beat" | "catalog", { p50: number; p95: number; p99: number; n: number }>;
  silent: number;
}

/** An enrolled simulated appliance. */
export interface SimAppliance {
  uid: string;
  key: CryptoKey;
  noc: string;
  seq: number;
  etag: string | null;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

function flags(args: string[], name: string): string[] {
  return args.flatMap((a, i) => a === `--${name}` && args[i + 1] ? [args[i + 1]!] : []);
}

/** Keys for `n` appliances, generated once and cached on disk. */
async function fleetKeys(n: number): Promise<Array<{ seed: string; pub: string; enc: string }>> {
  const dir = new URL("./.sim-keys/", import.meta.url);
  const file = new URL(`fleet-${n}.json`, dir);
  try {
    return JSON.parse(await Deno.readTextFile(file));
  } catch {
    // generate below
  }
  const keys = [];
  for (let i = 0; i < n; i++) {
    const s = await generateEd25519();
    const x = await generateX25519();
    keys.push({
      seed: toBase64Url(await exportEd25519Seed(s.privateKey)),
      pub: toBase64Url(await exportRawPublic(s.publicKey)),
      enc: toBase64Url(await exportRawPublic(x.publicKey)),
    });
  }
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(file, JSON.stringify(keys));
  return keys;
}

/** Runs a simulation; returns what it measured. */
export async function simulate(options: {
  appliances: number;
  rate: number;
  durationS: number;
  nocs: string[];
  adminToken: string;
  silent?: number;
  /** Open loop: most cycles in flight. Closed loop (`rate` 0): cycles kept in flight. */
  concurrency?: number;
  /** False: no enrolment, random UIDs (for a bare server measuring the HTTP ceiling). */
  enrol?: boolean;
  /** Appliances enrolled by an earlier run on the same database (each is sent to `nocs` in turn). */
  fleet?: SimAppliance[];
  /** Called when the load starts and when it ends (after enrolment), to sample CPU time. */
  onLoad?: (phase: "start" | "end") => void;
  log?: (line: string) => void;
}): Promise<SimulationResult> {
  const log = options.log ?? (() => {});
  const keys = options.fleet ? [] : await fleetKeys(options.appliances);
  const fleet: SimAppliance[] = options.fleet?.map((a, i) => ({
    ...a,
    noc: options.nocs[i % options.nocs.length]!,
  })) ?? [];
  const enrolStart = performance.now();
  const batch = 50;
  for (let i = 0; i < keys.length && options.enrol === false; i++) {
    fleet.push({
      uid: crypto.randomUUID(),
      key: await importEd25519Seed(fromBase64Url(keys[i]!.seed)),
      noc: options.nocs[i % options.nocs.length]!,
      seq: 0,
      etag: null,
    });
  }
  for (let i = 0; i < keys.length && options.enrol !== false; i += batch) {
    await Promise.all(
      keys.slice(i, i + batch).map(async (k, j) => {
        const noc = options.nocs[(i + j) % options.nocs.length]!;
        const t = await fetch(`${noc}/v1/admin/enrollment-tokens`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${options.adminToken}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({ label: "simulator" }),
        });
        const { token } = await t.json();
        const r = await fetch(`${noc}/v1/enroll`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            token,
            model: "sim-1",
            hostname: `sim-${i + j}`,
            signingKey: k.pub,
            encryptionKey: k.enc,
          }),
        });
        const e = await r.json();
        if (r.status !== 201) throw new Error(`enrolment failed: ${JSON.stringify(e)}`);
        fleet.push({
          uid: e.uid,
          key: await importEd25519Seed(fromBase64Url(k.seed)),
          noc,
          seq: 0,
          etag: null,
        });
      }),
    );
  }
  log(
    `enrolled ${fleet.length} appliances in ${
      ((performance.now() - enrolStart) / 1000).toFixed(1)
    } s`,
  );
  const silent = Math.floor(fleet.length * (options.silent ?? 0));
  const active = fleet.slice(silent);
  const latencies = { beat: [] as number[], catalog: [] as number[] };
  const errorKinds: Record<string, number> = {};
  let errors = 0, cycles = 0, inFlight = 0, next = 0;
  const maxInFlight = options.concurrency ?? 256;
  const fail = (kind: string) => {
    errors++;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  };
  const cycle = async (a: SimAppliance) => {
    const now = new Date();
    a.seq++;
    const beat = {
      seq: a.seq,
      sentAt: now.toISOString(),
      health: {
        load: [0.1, 0.1, 0.1],
        memory: { totalBytes: 4294967296, availableBytes: 2147483648 },
        disks: [{ mount: "/", totalBytes: 64000000000, freeBytes: 32000000000 }],
        uptimeS: 3600,
      },
      components: [],
      lastCycle: { outcome: "ok" },
      apps: {},
    };
    let t = performance.now();
    const b = await fetch(
      await signedRequest({
        baseUrl: a.noc,
        uid: a.uid,
        key: a.key,
        method: "POST",
        path: "/v1/beats",
        body: beat,
        now,
      }),
    );
    await b.body?.cancel();
    latencies.beat.push(performance.now() - t);
    if (b.status !== 200) return fail(`beat ${b.status}`);
    t = performance.now();
    const c = await fetch(
      await signedRequest({
        baseUrl: a.noc,
        uid: a.uid,
        key: a.key,
        method: "GET",
        path: "/v1/catalog",
        now,
        ...(a.etag ? { headers: { "if-none-match": a.etag } } : {}),
      }),
    );
    if (c.status === 200) a.etag = c.headers.get("etag");
    await c.body?.cancel();
    latencies.catalog.push(performance.now() - t);
    if (c.status !== 200 && c.status !== 304) return fail(`catalog ${c.status}`);
    cycles++;
  };
  options.onLoad?.("start");
  const started = performance.now();
  const end = started + options.durationS * 1000;
  const pending = new Set<Promise<void>>();
  let due = started;
  if (options.rate <= 0) {
    // Closed loop: `concurrency` cycles kept in flight, each appliance in one lane only.
    await Promise.all(Array.from({ length: Math.min(maxInFlight, active.length) }, async (_, w) => {
      for (let i = w; performance.now() < end; i += maxInFlight) {
        await cycle(active[i % active.length]!).catch((e) => fail(String(e?.name ?? e)));
      }
    }));
  }
  while (options.rate > 0 && performance.now() < end && active.length > 0) {
    // Open loop: cycles are started on schedule, whether or not earlier ones finished.
    due += 1000 / options.rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (inFlight >= maxInFlight) {
      fail("client saturated");
      continue;
    }
    const a = active[next++ % active.length]!;
    inFlight++;
    const p = cycle(a).catch((e) => fail(String(e?.name ?? e))).finally(() => {
      inFlight--;
      pending.delete(p);
    });
    pending.add(p);
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - started) / 1000;
  options.onLoad?.("end");
  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), n: s.length };
  };
  return {
    fleet,
    appliances: fleet.length,
    targetRate: options.rate,
    durationS: elapsed,
    cycles,
    cyclesPerS: cycles / elapsed,
    errors,
    errorKinds,
    latencyMs: { beat: stats(latencies.beat), catalog: stats(latencies.catalog) },
    silent,
  };
}

/** Starts a NOC process for a simulation (PGlite, or TEST_DATABASE_URL in a fresh schema). */
export async function simulationNoc(
  extraEnv: Record<string, string> = {},
  denoFlags: string[] = [],
  /** A PostgreSQL Unix socket folder for the NOC's connections (its admin ones stay on TCP). */
  socketDir?: string,
) {
  const work = await Deno.makeTempDir({ prefix: "noc-sim-" });
  const pg = Deno.env.get("TEST_DATABASE_URL");
  const token = extraEnv.NOC_ADMIN_TOKEN ?? `noc_adm_sim-${crypto.randomUUID()}`;
  let schema: string | null = null;
  let dbUrl: string | undefined;
  if (pg) {
    const { default: postgres } = await import("postgres");
    schema = `sim_${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;
    const admin = postgres(pg, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create schema ${schema}`);
    await admin.end();
    const u = new URL(pg);
    u.searchParams.set("options", `-c search_path=${schema}`);
    if (socketDir) u.searchParams.set("host", socketDir);
    dbUrl = u.href;
  }
  const signingKey = extraEnv.NOC_SIGNING_KEY ?? newSeed();
  const masterKey = extraEnv.NOC_MASTER_KEY ?? newSeed();
  const noc = await startNoc(
    {
      NOC_DATA_DIR: `${work}/data`,
      NOC_ADMIN_TOKEN: token,
      NOC_RATE_APPLIANCE_PER_MIN: "0",
      NOC_RATE_ENROLL_PER_MIN: "0",
      ...(dbUrl
        ? { DATABASE_URL: dbUrl, NOC_SIGNING_KEY: signingKey, NOC_MASTER_KEY: masterKey }
        : {}),
      ...extraEnv,
    },
    denoFlags,
    (line) => !line.includes('"level":"info"'),
  );
  return {
    url: noc.url,
    pid: noc.pid,
    token,
    backend: pg ? "PostgreSQL" : "PGlite",
    output: noc.output,
    /** What a second instance needs to share this one's database. */
    shared: dbUrl
      ? { DATABASE_URL: dbUrl, NOC_SIGNING_KEY: signingKey, NOC_MASTER_KEY: masterKey }
      : null,
    async stop() {
      await noc.stop();
      if (pg && schema) {
        const { default: postgres } = await import("postgres");
        const admin = postgres(pg, { max: 1, onnotice: () => {} });
        await admin.unsafe(`drop schema ${schema} cascade`);
        await admin.end();
      }
      await Deno.remove(work, { recursive: true });
    },
  };
}

if (import.meta.main) {
  const args = Deno.args.filter((a) => a !== "--");
  const appliances = Number(flag(args, "appliances") ?? 1000);
  const rate = Number(flag(args, "rate") ?? 200);
  const durationS = Number(flag(args, "duration") ?? 20);
  const given = flags(args, "noc");
  const own = given.length === 0 ? await simulationNoc() : null;
  try {
    const token = own?.token ?? flag(args, "token") ?? Deno.env.get("NOC_TOKEN");
    if (!token) throw new Error("--token (an admin token) is needed with --noc");
    const r = await simulate({
      appliances,
      rate,
      durationS,
      nocs: own ? [own.url] : given,
      adminToken: token,
      silent: Number(flag(args, "silent") ?? 0),
      concurrency: Number(flag(args, "concurrency") ?? 256),
      log: (l) => console.error(l),
    });
    if (args.includes("--json")) console.log(JSON.stringify(r, null, 2));
    else {
      console.log(
        `${r.cycles} cycles in ${r.durationS.toFixed(1)} s: ${
          r.cyclesPerS.toFixed(0)
        }/s (target ${rate}/s), ${r.errors} errors ${JSON.stringify(r.errorKinds)}`,
      );
      for (const [k, v] of Object.entries(r.latencyMs)) {
        console.log(
          `  ${k.padEnd(8)} p50 ${v.p50.toFixed(1)} ms  p95 ${v.p95.toFixed(1)} ms  p99 ${
            v.p99.toFixed(1)
          } ms  (${v.n})`,
        );
      }
      if (own) console.log(`  NOC: ${own.backend}, one instance started for the run`);
    }
  } finally {
    await own?.stop();
  }
}
