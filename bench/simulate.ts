/**
 * The fleet simulator: N enrolled appliances performing real, signed check-in
 * cycles — a SecureBeat, then the catalog with `If-None-Match` — at a target
 * rate, spread over one or several NOC instances; a share of them can stay
 * silent to exercise the sweep. Prints achieved cycles per second, latency
 * percentiles per request type and errors. As in a real fleet, each appliance
 * runs one cycle at a time and waits for it (up to the agent's 30 s request
 * timeout); an error is a request that failed or timed out, or a cycle still
 * running when the same appliance's next one is due. A `503` (the NOC shed the request, issue 23)
 * is not an error: it ends the cycle and is counted as shed, with its own latency; the latencies
 * per request type are those of answered (non-503) requests.
 *
 *   deno task simulate -- --appliances 2000 --rate 500 --duration 30 [--noc URL ...]
 *     [--token ADMIN] [--silent 0.01] [--concurrency N] [--json]
 *
 * Without `--noc`, a NOC process is started on a temporary PGlite (or on
 * TEST_DATABASE_URL when set) with rate limits off. A NOC given with `--noc`
 * needs `--token` (an admin token, to make enrolment tokens), and
 * NOC_RATE_APPLIANCE_PER_MIN set high enough for the rate asked. Appliance
 * keys are generated once per fleet size and kept in bench/.sim-keys/.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { isLoopbackHost } from "../noc/services/authorities.ts";
import { signedParts, signedRequest, signingKeyFromSeed } from "../protocol/client.ts";
import { RawHttpClient } from "./raw_http.ts";
import {
  type Ed25519Key,
  exportEd25519Seed,
  exportRawPublic,
  generateEd25519,
  generateX25519,
} from "../protocol/crypto/ed25519.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { newSeed } from "../protocol/keys.ts";
import { startNoc } from "../tests/_process.ts";
import { percentile } from "./figure.ts";

/** The SecureBeat a simulated appliance sends: a small, valid report (no components, no apps). */
export function simBeat(seq: number, now: Date) {
  return {
    seq,
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
}

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
  /** Cycles ended by a 503 (the NOC shed the beat or the catalog): not errors. */
  shed: number;
  /** How fast the 503s were answered, milliseconds. */
  shedMs: { p50: number; p99: number; max: number; n: number };
  latencyMs: Record<"beat" | "catalog", { p50: number; p95: number; p99: number; n: number }>;
  /** Whole cycles (beat + catalog), in milliseconds. */
  cycleMs: { p50: number; p99: number; p999: number; max: number };
  /** Cycles that took longer than `slowMs`. */
  slowCycles: number;
  silent: number;
  /**
   * The seconds (wall clock) in which something went wrong or slow: errors (among them cycles
   * not started because `concurrency` were in flight), the simulator's own timer late by more
   * than 50 ms (its event loop stalled) or 256 cycles or more in flight, cycles slower than
   * `slowMs`. In time order.
   */
  stalls: Stall[];
}

/** One second of a run with something notable in it. */
export interface Stall {
  /** The second, ISO 8601. */
  at: string;
  saturated: number;
  errors: number;
  /** How late the simulator's schedule ran at worst in this second (ms). */
  lateMs: number;
  /** Cycles started in this second that took longer than `slowMs`. */
  slowCycles: number;
  /** The longest cycle started in this second (ms). */
  maxCycleMs: number;
  /** The most cycles in flight seen in this second. */
  inFlight: number;
}

/** An enrolled simulated appliance. */
export interface SimAppliance {
  uid: string;
  key: Ed25519Key;
  noc: string;
  seq: number;
  etag: string | null;
}

/**
 * Keys for `n` appliances: generated once and cached on disk (bench/.sim-keys/fleet-N.json) for
 * the benches' own NOCs, each on a new database; new ones each time with `fresh` (a NOC that
 * runs on: a key enrolled before is refused `key_in_use`).
 */
async function fleetKeys(
  n: number,
  fresh = false,
): Promise<Array<{ seed: string; pub: string; enc: string }>> {
  const dir = new URL("./.sim-keys/", import.meta.url);
  const file = new URL(`fleet-${n}.json`, dir);
  if (!fresh) {
    try {
      return JSON.parse(await Deno.readTextFile(file));
    } catch {
      // generate below
    }
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
  if (fresh) return keys;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(file, JSON.stringify(keys));
  return keys;
}

/**
 * `send()` again while it is answered 503 or 429 (an overloaded NOC): after its `Retry-After`,
 * at most 5 s (this is a load generator, not an agent), up to 30 times.
 */
async function retried(
  send: () => Promise<Response>,
  log: (line: string) => void,
): Promise<Response> {
  for (let i = 0;; i++) {
    const r = await send();
    if ((r.status !== 503 && r.status !== 429) || i >= 30) return r;
    await r.body?.cancel();
    const after = Number(r.headers.get("retry-after"));
    const waitS = Number.isFinite(after) && after > 0 ? Math.min(5, after) : 1;
    // Said, not silent (review 24b: a NOC with small limits looked hung for a minute).
    if (i === 0 || i % 10 === 9) {
      log(`enrolment: the NOC answered ${r.status}; retrying (${i + 1})`);
    }
    await new Promise((res) => setTimeout(res, waitS * 1000 * (0.5 + Math.random() / 2)));
  }
}

/**
 * An error's kind as counted: a timeout or an abort by its name, anything else with its message
 * and its cause's (review 24b: `{"TypeError":4}` hid "RawHttpClient speaks http: only").
 */
function errorKind(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e.name === "TimeoutError" || e.name === "AbortError") return e.name;
  const cause = e.cause instanceof Error ? ` (${e.cause.message})` : "";
  return `${e.name}: ${e.message}${cause}`.slice(0, 160);
}

/** Runs a simulation; returns what it measured. */
export async function simulate(options: {
  appliances: number;
  rate: number;
  durationS: number;
  nocs: string[];
  adminToken: string;
  silent?: number;
  /**
   * Open loop: most cycles in flight (by default one per appliance, as a real fleet: each
   * appliance runs one cycle at a time and waits for it however long it takes). Closed loop
   * (`rate` 0): cycles kept in flight (256 by default).
   */
  concurrency?: number;
  /** Closed loop only: stop after one cycle of every appliance (or at `durationS`). */
  onePass?: boolean;
  /**
   * One request per cycle, as the agent sends it to a NOC serving beats and catalogs together:
   * `POST /v1/checkin` with the beat and the catalog's ETag (its latencies count as `beat`, and
   * `catalog` has none). False by default: the beat, then `GET /v1/catalog`.
   */
  joined?: boolean;
  /** False: no enrolment, random UIDs (for a bare server measuring the HTTP ceiling). */
  enrol?: boolean;
  /**
   * Hostnames given at enrolment: this and the appliance's number (default `sim-`). Another
   * fleet enrolled on the same NOC needs its own: an enrolment with a known hostname and model
   * retires the appliance enrolled before (a re-imaged appliance).
   */
  hostnamePrefix?: string;
  /** New keys, not the cached ones (a NOC that runs on: see `fleetKeys`). */
  freshKeys?: boolean;
  /** Appliances enrolled by an earlier run on the same database (each is sent to `nocs` in turn). */
  fleet?: SimAppliance[];
  /** Called when the load starts and when it ends (after enrolment), to sample CPU time. */
  onLoad?: (phase: "start" | "end") => void;
  /**
   * How requests are sent: `fetch` (default), or `raw`, bench/raw_http.ts's kept-alive HTTP/1.1
   * client, which costs this process about 80 µs of CPU less per request (the overload rows, where
   * the simulator shares the cores with the NOC it measures). Enrolment always uses `fetch`.
   */
  client?: "fetch" | "raw";
  /**
   * With `client: "raw"`: connections kept across runs, one client per NOC URL, as `fetch` keeps
   * its pool across runs (the caller closes them). Without it, a run closes its own at its end.
   */
  rawPool?: Map<string, RawHttpClient>;
  /** A cycle slower than this counts as slow (default 250 ms). */
  slowMs?: number;
  /** Each request is abandoned, as an error, after this long (default 30 s, as the agent). */
  requestTimeoutMs?: number;
  log?: (line: string) => void;
  /**
   * Called at each answer: which request, its status, how long it took (ms) and when it was sent
   * (`Date.now()`). Not called for a request that failed or timed out (an error).
   */
  onAnswer?: (kind: "beat" | "catalog", status: number, ms: number, sentAt: number) => void;
}): Promise<SimulationResult> {
  const log = options.log ?? (() => {});
  const keys = options.fleet ? [] : await fleetKeys(options.appliances, options.freshKeys);
  const fleet: SimAppliance[] = options.fleet?.map((a, i) => ({
    ...a,
    noc: options.nocs[i % options.nocs.length]!,
  })) ?? [];
  const enrolStart = performance.now();
  // Enrolments at once: 50, or fewer with `concurrency`.
  const batch = Math.max(1, Math.min(50, options.concurrency ?? 50));
  for (let i = 0; i < keys.length && options.enrol === false; i++) {
    fleet.push({
      uid: crypto.randomUUID(),
      key: await signingKeyFromSeed(keys[i]!.seed),
      noc: options.nocs[i % options.nocs.length]!,
      seq: 0,
      etag: null,
    });
  }
  for (let i = 0; i < keys.length && options.enrol !== false; i += batch) {
    await Promise.all(
      keys.slice(i, i + batch).map(async (k, j) => {
        const noc = options.nocs[(i + j) % options.nocs.length]!;
        // A NOC not answering is named (review 24b: "fetch failed" alone named neither it nor why).
        const named = (e: unknown) => {
          const why = e instanceof Error ? e.message : String(e);
          return new Error(why.includes(noc) ? why : `${noc}: ${why}`, { cause: e });
        };
        const t = await retried(() =>
          fetch(`${noc}/v1/admin/enrollment-tokens`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${options.adminToken}`,
              "content-type": "application/json",
            },
            body: JSON.stringify({ label: "simulator" }),
          }).catch((e) => Promise.reject(named(e))), log);
        if (!t.ok) {
          throw new Error(
            `${noc} refused the admin token (POST /v1/admin/enrollment-tokens: ${t.status} ${await t
              .text()})`,
          );
        }
        const { token } = await t.json();
        const r = await retried(() =>
          fetch(`${noc}/v1/enroll`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              token,
              model: "sim-1",
              hostname: `${options.hostnamePrefix ?? "sim-"}${i + j}`,
              signingKey: k.pub,
              encryptionKey: k.enc,
            }),
          }).catch((e) => Promise.reject(named(e))), log);
        const e = await r.json();
        if (r.status !== 201) throw new Error(`enrolment failed: ${JSON.stringify(e)}`);
        fleet.push({
          uid: e.uid,
          key: await signingKeyFromSeed(k.seed),
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
  // A share of the fleet (below 1), or a number of appliances.
  const silentOpt = options.silent ?? 0;
  const silent = Math.min(
    fleet.length,
    silentOpt < 1 ? Math.floor(fleet.length * silentOpt) : Math.floor(silentOpt),
  );
  const active = fleet.slice(silent);
  const latencies = {
    beat: [] as number[],
    catalog: [] as number[],
    cycle: [] as number[],
    shed: [] as number[],
  };
  const errorKinds: Record<string, number> = {};
  const onAnswer = options.onAnswer ?? (() => {});
  let errors = 0, shed = 0, cycles = 0, inFlight = 0, next = 0, slowCycles = 0;
  const maxInFlight = options.concurrency ?? (options.rate > 0 ? Math.max(1, active.length) : 256);
  const busy = new Set<SimAppliance>();
  const slowMs = options.slowMs ?? 250;
  const joined = options.joined ?? false;
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const seconds = new Map<number, Stall>();
  const second = (at: number) => {
    const s = Math.floor(at / 1000);
    let x = seconds.get(s);
    if (!x) {
      x = {
        at: new Date(s * 1000).toISOString(),
        saturated: 0,
        errors: 0,
        lateMs: 0,
        slowCycles: 0,
        maxCycleMs: 0,
        inFlight: 0,
      };
      seconds.set(s, x);
    }
    return x;
  };
  const fail = (kind: string) => {
    errors++;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
    const s = second(Date.now());
    if (kind === "client saturated") s.saturated++;
    else s.errors++;
  };
  const raw = options.client === "raw" ? options.rawPool ?? new Map<string, RawHttpClient>() : null;
  /** A signed request sent (by `fetch` or the raw client) and its answer read whole. */
  const send = async (
    a: SimAppliance,
    r: { method: string; path: string; body?: unknown; now: Date; etag?: string | null },
  ): Promise<{ status: number; etag: string | null }> => {
    const signing = {
      baseUrl: a.noc,
      uid: a.uid,
      key: a.key,
      method: r.method,
      path: r.path,
      ...(r.body === undefined ? {} : { body: r.body }),
      now: r.now,
      ...(r.etag ? { headers: { "if-none-match": r.etag } } : {}),
    };
    // A timer per request, cleared when it answers (AbortSignal.timeout's timers stay until they
    // fire: 60,000 of them at 2,000 requests/s cost the simulator measurable time).
    const ac = new AbortController();
    const timer = setTimeout(
      () => ac.abort(new DOMException("The request timed out", "TimeoutError")),
      timeoutMs,
    );
    try {
      if (raw) {
        let client = raw.get(a.noc);
        if (!client) raw.set(a.noc, client = new RawHttpClient(a.noc));
        const { headers, body } = await signedParts(signing);
        return await client.send(
          { method: r.method, path: r.path, headers, ...(body ? { body } : {}) },
          ac.signal,
        );
      }
      const res = await fetch(await signedRequest(signing), { signal: ac.signal });
      await res.body?.cancel();
      return { status: res.status, etag: res.headers.get("etag") };
    } finally {
      clearTimeout(timer);
    }
  };
  const cycle = async (a: SimAppliance) => {
    const now = new Date();
    const began = performance.now();
    a.seq++;
    const beat = simBeat(a.seq, now);
    let t = performance.now();
    let sentAt = Date.now();
    const b = await send(a, {
      method: "POST",
      path: joined ? "/v1/checkin" : "/v1/beats",
      body: beat,
      now,
      ...(joined ? { etag: a.etag } : {}),
    });
    onAnswer("beat", b.status, performance.now() - t, sentAt);
    if (joined && b.status === 200) a.etag = b.etag ?? a.etag;
    if (b.status === 503) {
      shed++;
      latencies.shed.push(performance.now() - t);
      return;
    }
    latencies.beat.push(performance.now() - t);
    if (b.status !== 200) return fail(`beat ${b.status}`);
    if (joined) return done(now, began);
    t = performance.now();
    sentAt = Date.now();
    const c = await send(a, { method: "GET", path: "/v1/catalog", now, etag: a.etag });
    if (c.status === 200) a.etag = c.etag;
    onAnswer("catalog", c.status, performance.now() - t, sentAt);
    if (c.status === 503) {
      shed++;
      latencies.shed.push(performance.now() - t);
      return;
    }
    latencies.catalog.push(performance.now() - t);
    if (c.status !== 200 && c.status !== 304) return fail(`catalog ${c.status}`);
    done(now, began);
  };
  /** A cycle answered whole: counted, and timed. */
  const done = (now: Date, began: number) => {
    cycles++;
    const took = performance.now() - began;
    latencies.cycle.push(took);
    if (took > slowMs) {
      slowCycles++;
      const s = second(now.getTime());
      s.slowCycles++;
      s.maxCycleMs = Math.max(s.maxCycleMs, took);
    }
  };
  options.onLoad?.("start");
  const started = performance.now();
  const end = started + options.durationS * 1000;
  const pending = new Set<Promise<void>>();
  let due = started;
  if (options.rate <= 0) {
    // Closed loop: `concurrency` cycles kept in flight, each appliance in one lane only.
    await Promise.all(Array.from({ length: Math.min(maxInFlight, active.length) }, async (_, w) => {
      for (
        let i = w;
        performance.now() < end && !(options.onePass && i >= active.length);
        i += maxInFlight
      ) {
        await cycle(active[i % active.length]!).catch((e) => fail(errorKind(e)));
      }
    }));
  }
  while (options.rate > 0 && performance.now() < end && active.length > 0) {
    // Open loop: cycles are started on schedule, whether or not earlier ones finished.
    due += 1000 / options.rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const late = performance.now() - due;
    if (late > 50 || inFlight >= 256) {
      const s = second(Date.now());
      s.lateMs = Math.max(s.lateMs, late);
      s.inFlight = Math.max(s.inFlight, inFlight);
    }
    const a = active[next++ % active.length]!;
    if (busy.has(a)) {
      // Its previous cycle has not ended although its next is due (the fleet's whole round).
      fail("cycle overran its interval");
      continue;
    }
    if (inFlight >= maxInFlight) {
      fail("client saturated");
      continue;
    }
    inFlight++;
    busy.add(a);
    const p = cycle(a).catch((e) => fail(errorKind(e))).finally(() => {
      inFlight--;
      busy.delete(a);
      pending.delete(p);
    });
    pending.add(p);
  }
  await Promise.all(pending);
  if (!options.rawPool) { for (const c of raw?.values() ?? []) c.close(); }
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
    shed,
    shedMs: (() => {
      const s = latencies.shed.sort((a, b) => a - b);
      return { p50: percentile(s, 50), p99: percentile(s, 99), max: s.at(-1) ?? 0, n: s.length };
    })(),
    latencyMs: { beat: stats(latencies.beat), catalog: stats(latencies.catalog) },
    cycleMs: (() => {
      const s = latencies.cycle.sort((a, b) => a - b);
      return {
        p50: percentile(s, 50),
        p99: percentile(s, 99),
        p999: percentile(s, 99.9),
        max: s.at(-1) ?? 0,
      };
    })(),
    slowCycles,
    silent,
    stalls: [...seconds.values()].sort((x, y) => x.at.localeCompare(y.at)),
  };
}

/** Starts a NOC process for a simulation (PGlite, or TEST_DATABASE_URL in a fresh schema). */
export async function simulationNoc(
  extraEnv: Record<string, string> = {},
  denoFlags: string[] = [],
  /** A PostgreSQL Unix socket folder for the NOC's connections (its admin ones stay on TCP). */
  socketDir?: string,
  /** Which of the NOC's stdout lines to keep (by default, all but info-level log lines). */
  keep: (line: string) => boolean = (line) => !line.includes('"level":"info"'),
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
    keep,
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
  if (args.includes("--help") || args.includes("-h")) {
    console.log(`Usage: deno task simulate [-- OPTIONS]

Simulates a fleet of appliances (signed SecureBeats, then catalogs with If-None-Match) against a
NOC it starts itself on PGlite, or against --noc URL (repeatable) with --token.

  --appliances N   appliances to enrol (1000)
  --rate N         check-in cycles a second, open loop (200)
  --duration S     seconds to run (20)
  --silent N       appliances enrolled that never beat: a number, or a share below 1 such as
                   0.01 (0)
  --concurrency N  requests in flight at most
  --joined         one request per cycle (POST /v1/checkin), as the agent sends a NOC of role all
  --noc URL        a running NOC (repeat for several instances); its appliances get new keys
                   and the names PREFIX0, PREFIX1, … (a name enrolled again retires the one
                   before: each run uses its own prefix)
  --hostname-prefix PREFIX  with --noc: sim-<4 random hex digits>- by default
  --token TOKEN    its admin token (or NOC_TOKEN; for a NOC at a loopback address, the data
                   folder's admin-token file: NOC_DATA_DIR, default ./.noc-data)
  --client raw     send check-ins with a bare keep-alive HTTP/1.1 client (bench/raw_http.ts),
                   which costs this process less CPU than fetch (the default); plain http: only
  --json           print the result as JSON
  --help           this help

The simulator is a load generator: its cycles do not honour Retry-After (a 503 is counted as shed,
a 429 — an appliance past its rate limit, 120 a minute by default — as an error, and the schedule
goes on); its enrolments do (at most 5 s), so a NOC with small limits can
still be filled. Without --noc its keys are kept in bench/.sim-keys/ (one file per fleet size).
Its appliances stay enrolled on a --noc NOC, and are alerted as missing once it stops (revoke
them with noc appliances revoke <uid>, or the console's bulk actions), so run it against a NOC
kept for the purpose.

Exits 0 when at least one cycle completed (errors are counted in the result), 1 when none did
while some failed or were shed, or the NOC refused the token or did not answer, 2 without an admin
token, 64 for a malformed option.`);
    Deno.exit(0);
  }
  // Strict: a mistyped option is refused (exit 64), never run as the defaults (review 23k: an
  // unknown flag enrolled 1,000 appliances at 200 cycles a second on a dev NOC).
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        appliances: { type: "string" },
        rate: { type: "string" },
        duration: { type: "string" },
        silent: { type: "string" },
        concurrency: { type: "string" },
        joined: { type: "boolean" },
        noc: { type: "string", multiple: true },
        "hostname-prefix": { type: "string" },
        token: { type: "string" },
        client: { type: "string" },
        json: { type: "boolean" },
      },
    }));
  } catch (e) {
    console.error(`simulate: ${e instanceof Error ? e.message : e} (--help lists the options)`);
    Deno.exit(64);
  }
  const number = (name: string, fallback: number): number => {
    const raw = (values as Record<string, unknown>)[name] as string | undefined;
    const n = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(n) || n < 0) {
      console.error(`simulate: --${name} must be a number of 0 or more, not "${raw}"`);
      Deno.exit(64);
    }
    return n;
  };
  const appliances = number("appliances", 1000);
  const rate = number("rate", 200);
  const durationS = number("duration", 20);
  const silent = number("silent", 0);
  const concurrency = values.concurrency === undefined ? undefined : number("concurrency", 0);
  const joined = values.joined === true;
  const client = values.client ?? "fetch";
  if (client !== "fetch" && client !== "raw") {
    console.error(`simulate: --client must be fetch or raw, not "${client}"`);
    Deno.exit(64);
  }
  const given = values.noc ?? [];
  for (const u of given) {
    const url = URL.canParse(u) ? new URL(u) : null;
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
      console.error(`simulate: --noc must be an http: or https: URL, not "${u}"`);
      Deno.exit(64);
    }
    if (client === "raw" && url.protocol !== "http:") {
      console.error(`simulate: --client raw speaks plain http: only, not "${u}" (use fetch)`);
      Deno.exit(64);
    }
  }
  const own = given.length === 0 ? await simulationNoc() : null;
  try {
    let token = own?.token ?? values.token ?? Deno.env.get("NOC_TOKEN");
    if (!token && given.every((u) => URL.canParse(u) && isLoopbackHost(new URL(u).hostname))) {
      // As the seed: deno task dev keeps its admin token in its data folder; read only for a NOC
      // on this machine (review 23i: the simulator needed --token where the seed did not).
      const path = `${Deno.env.get("NOC_DATA_DIR") ?? "./.noc-data"}/admin-token`;
      token = (await Deno.readTextFile(path).catch(() => "")).trim() || undefined;
    }
    if (!token) {
      console.error(
        "simulate: no admin token for --noc: give --token, or set NOC_TOKEN (deno task dev prints " +
          "one, and keeps it in ./.noc-data/admin-token, read for a NOC on this machine)",
      );
      Deno.exit(2);
    }
    const r = await simulate({
      appliances,
      rate,
      durationS,
      nocs: own ? [own.url] : given,
      adminToken: token,
      silent,
      ...(concurrency !== undefined ? { concurrency } : {}),
      joined,
      client,
      // A NOC that runs on: new keys, and names of this run's own.
      ...(own ? {} : {
        freshKeys: true,
        hostnamePrefix: values["hostname-prefix"] ??
          `sim-${
            crypto.getRandomValues(new Uint8Array(2)).reduce((h, b) =>
              h + b.toString(16).padStart(2, "0"), "")
          }-`,
      }),
      log: (l) => console.error(l),
    });
    // Not the fleet's keys: thousands of lines nobody reads.
    if (values.json) console.log(JSON.stringify({ ...r, fleet: undefined }, null, 2));
    else {
      console.log(
        `${r.cycles} cycles in ${r.durationS.toFixed(1)} s: ${r.cyclesPerS.toFixed(0)}/s (${
          rate > 0 ? `target ${rate}/s` : "flat out"
        }), ${r.errors} errors ${JSON.stringify(r.errorKinds)}, ${r.shed} shed` +
          (r.shed > 0 ? ` (503, answered in p99 ${r.shedMs.p99.toFixed(1)} ms)` : ""),
      );
      for (const [k, v] of Object.entries(r.latencyMs)) {
        // A joined cycle is one request: its latencies are the beat's, and catalogs have none.
        if (v.n === 0) continue;
        console.log(
          `  ${(joined && k === "beat" ? "checkin" : k).padEnd(8)} p50 ${
            v.p50.toFixed(1)
          } ms  p95 ${v.p95.toFixed(1)} ms  p99 ${v.p99.toFixed(1)} ms  (${v.n})`,
        );
      }
      if (own) console.log(`  NOC: ${own.backend}, one instance started for the run`);
    }
    if (r.cycles === 0 && (r.errors > 0 || r.shed > 0)) {
      // Review 24b: every cycle failing exited 0.
      console.error(`simulate: no cycle completed (${r.errors} errors, ${r.shed} shed)`);
      Deno.exitCode = 1;
    }
  } catch (e) {
    // A refused token, a NOC not answering: said plainly, not as a stack trace (review 23k).
    // With its cause: "fetch failed" alone named neither the NOC nor why (review 24b).
    let message = e instanceof Error ? e.message : String(e);
    for (let c = e instanceof Error ? e.cause : undefined; c instanceof Error; c = c.cause) {
      if (!message.includes(c.message)) message += `: ${c.message}`;
    }
    console.error(`simulate: ${message}`);
    Deno.exitCode = 1;
  } finally {
    await own?.stop();
  }
}
