/**
 * Overload (issue 23 item 5): one NOC process (PostgreSQL from TEST_DATABASE_URL when set, else
 * PGlite; rate limits off, `NOC_REQUEST_LOG=errors`, admission at its defaults) driven by the
 * fleet simulator (bench/simulate.ts: real signed check-in cycles, one request each as agents send
 * this NOC, `POST /v1/checkin`; `BENCH_OVERLOAD_SPLIT=1` for two, the beat and then the catalog).
 * Capacity, overload and recovery send with the simulator's bare HTTP/1.1 client
 * (bench/raw_http.ts, `client: "raw"`), its connections kept from run to run: with `fetch`, the
 * simulator took 85 % of a core at 2× (2026-12-02 07:55Z), CPU the NOC is measured on; per cycle
 * the bare client costs it about 40 % less (207 against 359 µs, one NOC on PGlite).
 *
 * 1. **Capacity**, measured first in the same run: closed loop, 128 cycles in flight, 15 s (after
 *    one unmeasured cycle of every appliance, its first catalog, and 5 s of warm-up). The
 *    appliances enrolled for the overload get their unmeasured first cycle too.
 * 2. **2× capacity for 60 s**, open loop (cycles started on schedule whether or not earlier ones
 *    finished), over enough appliances that each has about 5 s between its cycles (at most 6,000
 *    appliances: a fast NOC gets a shorter round); a cycle still
 *    running when its appliance's next is due is not sent and is counted. Rows: goodput (cycles
 *    completed within the window, per second) against capacity; p99 of the answered (non-503)
 *    requests; how fast a 503 is answered (p99); the NOC's resident memory growth (peak over the
 *    run less the figure before it); the share shed; recovery — from the end of the overload, a
 *    normal rate (half the capacity, other appliances) runs for 30 s, and the recovery time is the
 *    first second from which every second has no 503 and an answered p99 under 1 s; and requests
 *    processed for a client that had given up (the simulator aborts each request at 30 s, as the
 *    agent does), at most: the NOC's `noc_finished_client_gone_total` plus the requests the
 *    simulator abandoned, which the NOC cannot see go (Deno.serve signals a client leaving only
 *    for a request without a body; a check-in has one).
 * 3. **A fleet told `Retry-After: N`**: a second NOC with `NOC_MAX_IN_FLIGHT=1`, `NOC_MAX_QUEUE=0`
 *    and `NOC_RETRY_AFTER_S=N` (it sends N to 1.5 N), kept busy by 8 simulator lanes, while 200
 *    appliances cycle with the agent's own back-pressure code in this process — its
 *    `BackPressure` gate (which parses `Retry-After` and refuses the rest of the cycle),
 *    `retryDelayS`/`cycleBackoffS` for the next cycle as agent/cycle.ts computes it, and
 *    agent/run.ts's rule (no cycle before the hold) — not 200 agent processes. Each appliance's
 *    first cycle falls at random in the first N seconds (a running fleet); every later one is the
 *    agent code's decision. The row: the most cycles of one appliance within any N seconds, and
 *    how the fleet's retries spread.
 *
 *   deno run -A bench/overload.ts       (TEST_DATABASE_URL for PostgreSQL)
 *
 * Environment: BENCH_OVERLOAD_S (60), BENCH_OVERLOAD_CAPACITY_S (15), BENCH_OVERLOAD_ROUND_S (5),
 * BENCH_RETRY_AFTER_S (10), BENCH_RETRY_FLEET_S (45: how long the Retry-After fleet runs);
 * BENCH_PROFILE_DIR: when set, the NOC runs with `--inspect` and the overload's window is
 * CPU-profiled in the NOC and in this process (the simulator), the profiles written there as
 * `.cpuprofile` files (Chrome DevTools opens them) and summarized on stderr (bench/cpu_profile.ts).
 * Profiling slows both: its figures are not the bench's. BENCH_NOC_V8_FLAGS: V8 flags for the NOC
 * (its `DENO_V8_FLAGS`), to try the garbage collector's settings.
 *
 * @module
 */
import {
  type SimAppliance,
  simBeat,
  simulate,
  simulationNoc,
  type SimulationResult,
} from "./simulate.ts";
import { cpuSeconds, type Figure, percentile, postgresCpu, rssMiB, rssSampler } from "./figure.ts";
import { type CpuProfile, profileRemote, profileSelf, summarizeProfile } from "./cpu_profile.ts";
import type { ProbeSample } from "./probe.ts";
import { RawHttpClient } from "./raw_http.ts";
import { signedRequest, signingKeyFromSeed } from "../protocol/client.ts";
import {
  exportEd25519Seed,
  exportRawPublic,
  generateEd25519,
  generateX25519,
} from "../protocol/crypto/ed25519.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import {
  BackPressure,
  BackPressureError,
  cycleBackoffS,
  DEFAULT_BACKOFF_BASE_S,
  retryDelayS,
} from "../agent/back_pressure.ts";
import { defaultIntervalS } from "../agent/state.ts";

const env = (name: string, fallback: number) => Number(Deno.env.get(name) ?? fallback);
const overloadS = env("BENCH_OVERLOAD_S", 60);
const capacityS = env("BENCH_OVERLOAD_CAPACITY_S", 15);
const retryAfterN = env("BENCH_RETRY_AFTER_S", 10);
const retryFleetS = env("BENCH_RETRY_FLEET_S", 45);
const recoveryS = 30;
/**
 * One request per cycle (`POST /v1/checkin`), as agents send a NOC of role `all`, which this is;
 * `BENCH_OVERLOAD_SPLIT=1` sends two (the beat, then the catalog), as to a NOC whose roles are
 * split: catalogs are then shed first, and a cycle whose catalog is shed is not completed.
 */
const joined = Deno.env.get("BENCH_OVERLOAD_SPLIT") !== "1";
const cycleKind = joined
  ? "one request per cycle (POST /v1/checkin, the beat's latency rows are its)"
  : "two requests per cycle (BENCH_OVERLOAD_SPLIT=1)";
/**
 * Seconds between two cycles of one appliance at the offered rate (the fleet's size), and the
 * most appliances enrolled for it (enrolment takes time: a fast NOC gets a shorter round).
 */
const overloadRoundS = Number(Deno.env.get("BENCH_OVERLOAD_ROUND_S") ?? 5);
const maxOverloadFleet = 6000;
const recoveryRoundS = 8;
const maxRecoveryFleet = 2000;
const agentTimeoutMs = 30_000;
/** Milliseconds between the latency probe's requests (bench/probe.ts): 20 a second at most. */
const probeGapMs = 50;

type Noc = Awaited<ReturnType<typeof simulationNoc>>;

/** `fleet` with each appliance that `after` holds (by UID) as `after` left it. */
function updated(fleet: SimAppliance[], after: SimAppliance[]): SimAppliance[] {
  const byUid = new Map(after.map((a) => [a.uid, a]));
  return fleet.map((a) => byUid.get(a.uid) ?? a);
}

/** A TCP port free on 127.0.0.1 now (for the NOC's inspector). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The NOC's counters and histogram counts from `/metrics`, keyed `name{labels}`. */
async function scrape(noc: Noc): Promise<Map<string, number>> {
  const res = await fetch(`${noc.url}/metrics`, {
    headers: { authorization: `Bearer ${noc.token}` },
  });
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return out;
}

/** The sum of series `name` whose labels contain `has` (a `key="value"` text), from a to b. */
function delta(a: Map<string, number>, b: Map<string, number>, name: string, has = ""): number {
  let d = 0;
  for (const [k, v] of b) {
    if ((k === name || k.startsWith(`${name}{`)) && k.includes(has)) d += v - (a.get(k) ?? 0);
  }
  return d;
}

const ms = (x: number) => Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : 1) : "n/a";

/** Client-side timeouts of a run (the simulator aborted the request at 30 s). */
function timeouts(r: SimulationResult): number {
  return (r.errorKinds["TimeoutError"] ?? 0) + (r.errorKinds["AbortError"] ?? 0);
}

/** Appliances enrolled one at a time (a NOC that sheds everything concurrent still enrols them). */
async function enrolOneByOne(noc: Noc, n: number): Promise<SimAppliance[]> {
  const fleet: SimAppliance[] = [];
  for (let i = 0; i < n; i++) {
    const s = await generateEd25519();
    const x = await generateX25519();
    const t = await fetch(`${noc.url}/v1/admin/enrollment-tokens`, {
      method: "POST",
      headers: { authorization: `Bearer ${noc.token}`, "content-type": "application/json" },
      body: JSON.stringify({ label: "overload bench" }),
    });
    const { token } = await t.json();
    const r = await fetch(`${noc.url}/v1/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        token,
        model: "sim-1",
        hostname: `ra-${i}`,
        signingKey: toBase64Url(await exportRawPublic(s.publicKey)),
        encryptionKey: toBase64Url(await exportRawPublic(x.publicKey)),
      }),
    });
    const e = await r.json();
    if (r.status !== 201) throw new Error(`enrolment failed: ${r.status} ${JSON.stringify(e)}`);
    fleet.push({
      uid: e.uid,
      key: await signingKeyFromSeed(toBase64Url(await exportEd25519Seed(s.privateKey))),
      noc: noc.url,
      seq: 0,
      etag: null,
    });
  }
  return fleet;
}

/** Per second after `from` (ms): answered latencies and 503s of a run. */
class Timeline {
  readonly seconds = new Map<number, { answered: number[]; shed: number }>();
  constructor(readonly from: () => number) {}
  add(status: number, latencyMs: number, sentAt: number) {
    const s = Math.floor((sentAt - this.from()) / 1000);
    let x = this.seconds.get(s);
    if (!x) this.seconds.set(s, x = { answered: [], shed: 0 });
    if (status === 503) x.shed++;
    else x.answered.push(latencyMs);
  }
  /** The first second from which every second has no 503 and an answered p99 under `p99Ms`. */
  recoveredAt(p99Ms: number): number | null {
    const keys = [...this.seconds.keys()].sort((a, b) => a - b);
    let at: number | null = null;
    for (const k of keys) {
      const x = this.seconds.get(k)!;
      const p99 = percentile(x.answered.sort((a, b) => a - b), 99);
      const good = x.shed === 0 && (x.answered.length === 0 || p99 < p99Ms);
      if (!good) at = null;
      else if (at === null) at = k;
    }
    return at === null ? null : Math.max(0, at);
  }
}

/** Overload rows: capacity, then 2× capacity for 60 s, then recovery at half the capacity. */
async function overloadRows(rows: Figure[]): Promise<void> {
  // The bare client (bench/raw_http.ts), its connections kept from run to run as fetch's are: at
  // 2× capacity fetch made the simulator the machine's largest user of CPU (85 % of a core).
  const rawPool = new Map<string, RawHttpClient>();
  const raw = { client: "raw" as const, rawPool };
  const profileDir = Deno.env.get("BENCH_PROFILE_DIR");
  const inspectPort = profileDir ? freePort() : 0;
  const v8Flags = Deno.env.get("BENCH_NOC_V8_FLAGS");
  const noc = await simulationNoc(
    { NOC_REQUEST_LOG: "errors", ...(v8Flags ? { DENO_V8_FLAGS: v8Flags } : {}) },
    profileDir ? [`--inspect=127.0.0.1:${inspectPort}`] : [],
  );
  // CPU seconds so far of the NOC, this process (the simulator) and PostgreSQL.
  const cpuNow = () => ({ noc: cpuSeconds(noc.pid), sim: cpuSeconds("self"), pg: postgresCpu() });
  try {
    // Not measured: one cycle of every appliance (its first catalog built and signed, a cost
    // paid once per appliance and release), then a few seconds flat out (the NOC's code
    // compiled, its pool open).
    // One unmeasured cycle of each appliance of `fleet` (enrolled first when absent), again for
    // those shed until every one has its catalog. Returns the fleet as it stands after: a
    // simulation works on copies, and an appliance sent on with the sequence numbers and ETag
    // it had before would repeat its beats' numbers (marked a cloned identity, its notice
    // queued) and fetch its whole catalog each time.
    const firstCycles = async (fleet?: SimAppliance[]) => {
      const pass = (f?: SimAppliance[]) =>
        simulate({
          joined,
          ...raw,
          appliances: f?.length ?? 2000,
          ...(f ? { fleet: f } : {}),
          rate: 0,
          durationS: 300,
          nocs: [noc.url],
          adminToken: noc.token,
          concurrency: 128,
          onePass: true,
        });
      let all = (await pass(fleet)).fleet;
      for (let i = 0; i < 10; i++) {
        const missing = all.filter((a) => a.etag === null);
        if (missing.length === 0) return all;
        all = updated(all, (await pass(missing)).fleet);
      }
      throw new Error("appliances still without their first catalog after 10 passes");
    };
    const first = { fleet: await firstCycles() };
    const warm = await simulate({
      joined,
      ...raw,
      appliances: 2000,
      fleet: first.fleet,
      rate: 0,
      durationS: 5,
      nocs: [noc.url],
      adminToken: noc.token,
      concurrency: 128,
    });
    let capCpu = [cpuNow(), cpuNow()];
    const cap = await simulate({
      joined,
      ...raw,
      appliances: 2000,
      fleet: warm.fleet,
      rate: 0,
      durationS: capacityS,
      nocs: [noc.url],
      adminToken: noc.token,
      concurrency: 128,
      onLoad: (phase) => {
        if (phase === "start") capCpu = [cpuNow(), capCpu[1]!];
        else capCpu = [capCpu[0]!, cpuNow()];
      },
    });
    const capacity = cap.cyclesPerS;
    const capS = cap.durationS;
    const capShare = (k: "noc" | "sim" | "pg") =>
      `${((capCpu[1]![k] - capCpu[0]![k]) / capS * 100).toFixed(0)} %`;
    // The NOC's and PostgreSQL's CPU per completed cycle, ms.
    const capServerMs = (capCpu[1]!.noc - capCpu[0]!.noc + capCpu[1]!.pg - capCpu[0]!.pg) /
      cap.cycles * 1000;
    rows.push({
      name: `capacity: check-in cycles flat out, one NOC on ${noc.backend}`,
      value: capacity,
      unit: "cycles/s",
      note: `closed loop, 128 cycles in flight, ${capacityS} s after 5 s of warm-up; measured ` +
        `first, in this run; ${cycleKind}; ` +
        `${cap.errors} errors, ${cap.shed} shed; CPU (of one core): NOC ${capShare("noc")}, ` +
        `simulator ${capShare("sim")}, PostgreSQL ${capShare("pg")}; NOC + PostgreSQL ${
          capServerMs.toFixed(2)
        } ms of CPU per cycle; beat/catalog p99 ${ms(cap.latencyMs.beat.p99)}/${
          ms(cap.latencyMs.catalog.p99)
        } ms`,
    });
    if (!(capacity >= 1)) {
      throw new Error(`no capacity measured (${JSON.stringify(cap.errorKinds)})`);
    }
    const offered = 2 * capacity;
    const normal = capacity / 2;
    const overN = Math.min(maxOverloadFleet, Math.ceil(offered * overloadRoundS));
    const recN = Math.min(maxRecoveryFleet, Math.ceil(normal * recoveryRoundS));
    // Keys are cached per fleet size (bench/.sim-keys/): a size rounded up is generated once.
    const extraN = Math.ceil(Math.max(0, overN + recN - cap.fleet.length) / 2000) * 2000;
    const enrolled = performance.now();
    const extra = extraN > 0
      ? (await simulate({
        appliances: extraN,
        rate: 1,
        durationS: 0,
        nocs: [noc.url],
        adminToken: noc.token,
        hostnamePrefix: "overload-",
      })).fleet
      : [];
    // Warmed as the capacity's fleet was: the overload measures steady cycles, not each new
    // appliance's first catalog (which made it some three times the capacity's work).
    const extraWarm = extra.length > 0 ? await firstCycles(extra) : [];
    const enrolS = (performance.now() - enrolled) / 1000;
    const fleet = [...cap.fleet, ...extraWarm];
    let overFleet = fleet.slice(0, overN);
    let recFleet = fleet.slice(overN, overN + recN);
    // Each appliance of the overload and the recovery gets its connection open first, as a
    // running fleet's are (one cycle each, all at once; sheds allowed): a connection costs Deno's
    // HTTP server some 27 KiB whatever the load (a bare `Deno.serve` grows by 155–173 MiB with
    // 6,000 idle keep-alive connections), so the memory row measures what the overload adds.
    const rssBeforeConnections = await rssMiB(noc.pid);
    const connected = await simulate({
      joined,
      ...raw,
      appliances: overFleet.length + recFleet.length,
      fleet: [...overFleet, ...recFleet],
      rate: 0,
      durationS: 120,
      nocs: [noc.url],
      adminToken: noc.token,
      concurrency: overFleet.length + recFleet.length,
      onePass: true,
    });
    const connectionsMiB = (await rssMiB(noc.pid)) - rssBeforeConnections;
    overFleet = updated(overFleet, connected.fleet);
    recFleet = updated(recFleet, connected.fleet);

    // The latency probe (bench/probe.ts): a light client of its own, timing check-ins as an
    // appliance sees them, apart from the simulator (itself saturated at 2×).
    const probe = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./probe.ts", import.meta.url).pathname,
        noc.url,
        noc.token,
        String(overloadS),
        String(probeGapMs),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const probeOut = probe.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let probeText = "";
    while (!probeText.includes("ready\n")) {
      const { value, done } = await probeOut.read();
      if (done) throw new Error("the latency probe ended before it was ready");
      probeText += value;
    }
    probeText = probeText.slice(probeText.indexOf("ready\n") + 6);
    const probeIn = probe.stdin.getWriter();
    const rss0 = await rssMiB(noc.pid);
    const m0 = await scrape(noc);
    const sampler = rssSampler(noc.pid);
    let overStart = 0;
    let overEnd = 0;
    let completedInWindow = 0;
    const recTimeline = new Timeline(() => overEnd);
    let go!: () => void;
    const recoveryDue = new Promise<void>((resolve) => (go = resolve));
    // CPU seconds of the NOC, this process (the simulator) and PostgreSQL over the window.
    let cpu0 = { noc: 0, sim: 0, pg: 0 };
    let cpuOver = cpu0;
    let profiles: Promise<[CpuProfile, CpuProfile]> | null = null;
    const over = simulate({
      joined,
      ...raw,
      appliances: overFleet.length,
      fleet: overFleet,
      rate: offered,
      durationS: overloadS,
      nocs: [noc.url],
      adminToken: noc.token,
      requestTimeoutMs: agentTimeoutMs,
      onLoad: (phase) => {
        if (phase !== "start") return;
        overStart = Date.now();
        overEnd = overStart + overloadS * 1000;
        cpu0 = cpuNow();
        probeIn.write(new TextEncoder().encode("go\n")).then(() => probeIn.close());
        if (profileDir) {
          profiles = Promise.all([profileRemote(inspectPort), profileSelf()]).then(
            async ([n, s]) => {
              await new Promise((r) => setTimeout(r, overloadS * 1000));
              return Promise.all([n.stop(), s.stop()]);
            },
          );
        }
        setTimeout(() => {
          cpuOver = cpuNow();
          go();
        }, overloadS * 1000);
      },
      onAnswer: (kind, status, latency, sentAt) => {
        // A cycle is complete with its catalog: the joined request's answer, or the second one.
        const last = joined ? "beat" : "catalog";
        if (kind === last && (status === 200 || status === 304) && sentAt + latency <= overEnd) {
          completedInWindow++;
        }
      },
    });
    await recoveryDue;
    const rec = simulate({
      joined,
      ...raw,
      appliances: recFleet.length,
      fleet: recFleet,
      rate: normal,
      durationS: recoveryS,
      nocs: [noc.url],
      adminToken: noc.token,
      requestTimeoutMs: agentTimeoutMs,
      onAnswer: (_kind, status, latency, sentAt) => recTimeline.add(status, latency, sentAt),
    });
    const o = await over;
    const r = await rec;
    for (;;) {
      const { value, done } = await probeOut.read();
      if (done) break;
      probeText += value;
    }
    await probe.status;
    const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
    const probedAll = (JSON.parse(probeText.trim()) as { samples: ProbeSample[] }).samples;
    const probed = probedAll.filter((x) => x.kind === "checkin");
    const floor = sorted(
      probedAll.filter((x) => x.kind === "floor" && x.status === 404).map((x) => x.ms),
    );
    const probeAnswered = sorted(
      probed.filter((x) => x.status !== 0 && x.status !== 503).map((x) => x.ms),
    );
    const probeShed = sorted(probed.filter((x) => x.status === 503).map((x) => x.ms));
    const probeLost = probed.filter((x) => x.status === 0).length;
    const probeStatuses = JSON.stringify(
      probed.reduce<Record<string, number>>(
        (m, x) => (m[x.status] = (m[x.status] ?? 0) + 1, m),
        {},
      ),
    );
    const peak = await sampler.stop();
    const m1 = await scrape(noc);

    if (profiles) {
      const [n, s] = await (profiles as Promise<[CpuProfile, CpuProfile]>);
      await Deno.mkdir(profileDir!, { recursive: true });
      await Deno.writeTextFile(`${profileDir}/overload-noc.cpuprofile`, JSON.stringify(n));
      await Deno.writeTextFile(`${profileDir}/overload-simulator.cpuprofile`, JSON.stringify(s));
      console.error(`## the NOC over the overload\n${summarizeProfile(n)}`);
      console.error(`## the simulator over the overload\n${summarizeProfile(s)}`);
    }
    const cpuUse = (k: "noc" | "sim" | "pg") =>
      `${((cpuOver[k] - cpu0[k]) / overloadS * 100).toFixed(0)} %`;
    const overServerMs = (cpuOver.noc - cpu0.noc + cpuOver.pg - cpu0.pg) /
      Math.max(1, completedInWindow) * 1000;
    const cpuNote = `CPU over the window (of one core): NOC ${cpuUse("noc")}, simulator ${
      cpuUse("sim")
    }, PostgreSQL ${cpuUse("pg")} (${navigator.hardwareConcurrency} cores; capacity's: NOC ${
      capShare("noc")
    }, simulator ${capShare("sim")}, PostgreSQL ${capShare("pg")}); NOC + PostgreSQL ${
      overServerMs.toFixed(2)
    } ms of CPU per completed cycle, shedding included (capacity's ${capServerMs.toFixed(2)} ms)`;
    const overran = o.errorKinds["cycle overran its interval"] ?? 0;
    const saturated = o.errorKinds["client saturated"] ?? 0;
    const sent = o.cycles + o.shed + o.errors - overran - saturated;
    const goodput = completedInWindow / overloadS;
    const shedBy = (reason: string) => delta(m0, m1, "noc_shed_total", `reason="${reason}"`);
    const conditions = `offered ${offered.toFixed(0)} cycles/s (2× ${
      capacity.toFixed(0)
    }) open loop for ${overloadS} s over ${overFleet.length} appliances (${
      (overFleet.length / offered).toFixed(1)
    } s between an appliance's cycles; ${extraN} more enrolled for it in ${enrolS.toFixed(0)} s)`;
    rows.push({
      name: "overload at 2× capacity: goodput (cycles completed per second)",
      value: goodput,
      unit: "cycles/s",
      target: "≥ 90% of capacity",
      met: goodput >= 0.9 * capacity,
      note: `${(goodput / capacity * 100).toFixed(0)}% of capacity; ${conditions}; cycles ` +
        `completed within the window; ${sent} cycles sent, ${o.cycles} completed in all, ${o.shed} ` +
        `shed, ${o.errors - overran - saturated} failed ${
          JSON.stringify(o.errorKinds)
        }; ${overran} ` +
        `not sent because the appliance's previous cycle was still running; ${cpuNote}`,
    });
    const simAnsweredP99 = Math.max(o.latencyMs.beat.p99, o.latencyMs.catalog.p99);
    const answeredP99 = percentile(probeAnswered, 99);
    const shedP99 = percentile(probeShed, 99);
    // Check-ins that waited for admission more than 1 s (the histogram's buckets).
    const waited = delta(m0, m1, "noc_queue_wait_seconds_count", `class="checkin"`);
    const waitedUnder1 = delta(m0, m1, "noc_queue_wait_seconds_bucket", `class="checkin",le="1"`);
    // The NOC's own time for a check-in (from its handler's start: the queue's wait included).
    const route = joined ? "/v1/checkin" : "/v1/beats";
    const nocSide = (status: string, le: string) =>
      delta(
        m0,
        m1,
        "noc_http_request_duration_seconds_bucket",
        `route="${route}",status="${status}",le="${le}"`,
      );
    const nocAnswered = nocSide("2xx", "+Inf");
    const lost = timeouts(o);
    const simView = `the simulator's own timings (saturated: ${cpuUse("sim")} of a core, its ` +
      `event loop queueing its answers) p50/p99 ${ms(o.latencyMs.beat.p50)}/${
        ms(simAnsweredP99)
      } ms over ${o.latencyMs.beat.n} beats`;
    rows.push({
      name: "overload at 2× capacity: p99 of answered (non-503) check-in requests",
      value: answeredP99,
      unit: "ms",
      target: "≤ 1000",
      met: answeredP99 <= 1000 && lost === 0 && probeLost === 0,
      note: `timed by the latency probe (bench/probe.ts: a process of its own, signed check-ins, ` +
        `${1000 / probeGapMs} a second, open loop, through the same admission ` +
        `as the fleet's): ${probeAnswered.length} answered, p50 ${
          ms(percentile(probeAnswered, 50))
        } ms, max ${ms(probeAnswered.at(-1) ?? NaN)} ms, statuses ${probeStatuses}; the NOC's ` +
        `side (noc_http_request_duration_seconds, ${route} 2xx, its queue wait included): ${
          nocSide("2xx", "1")
        } of ${nocAnswered} within 1 s, ${nocSide("2xx", "0.5")} within 0.5 s; ${simView}, ` +
        `whole cycles max ${ms(o.cycleMs.max)} ms; ${lost + probeLost} ` +
        `requests unanswered after 30 s (met only if none); ${
          waited - waitedUnder1
        } of ${waited} beats waited over 1 s for admission (noc_queue_wait_seconds)`,
    });
    rows.push({
      name: "overload at 2× capacity: how fast a 503 is answered (p99)",
      value: shedP99,
      unit: "ms",
      target: "≤ 50",
      met: probeShed.length > 0 && shedP99 <= 50,
      note:
        `timed by the latency probe: ${probeShed.length} 503s, p50 ${
          ms(percentile(probeShed, 50))
        } ms, max ${ms(probeShed.at(-1) ?? NaN)} ms; beside it, a request that needs nothing ` +
        `(GET /probe-floor, 404 through the whole middleware chain, no database), the least any ` +
        `answer waits on the NOC's saturated machine: p50/p99 ${ms(percentile(floor, 50))}/${
          ms(percentile(floor, 99))
        } ms (${floor.length}); the NOC shed ${
          shedBy("queue_full") + shedBy("expected_wait")
        } at once (most as they arrived, before any other middleware: ${
          shedBy("queue_full")
        } with a full queue, ${shedBy("expected_wait")} with as many queued as its slots were ` +
        `expected to start within half of NOC_MAX_QUEUE_WAIT_MS), ${
          shedBy("queue_timeout")
        } after waiting NOC_MAX_QUEUE_WAIT_MS, ${
          shedBy("client_gone")
        } whose client had gone (answered to no one); the simulator's own timings: ${o.shedMs.n} ` +
        `503s, p50/p99 ${ms(o.shedMs.p50)}/${ms(o.shedMs.p99)} ms` +
        (probeShed.length === 0 ? "; the probe was never shed" : ""),
    });
    rows.push({
      name: "overload at 2× capacity: the NOC's memory growth",
      value: peak - rss0,
      unit: "MiB",
      target: "≤ 100",
      met: peak - rss0 <= 100,
      note: `resident memory ${rss0.toFixed(0)} MiB before, peak ${
        peak.toFixed(0)
      } MiB over the overload and the recovery (sampled every 20 ms); measured with the ${
        overFleet.length + recFleet.length
      } appliances' connections open already, which had added ${
        connectionsMiB.toFixed(0)
      } MiB (from ${rssBeforeConnections.toFixed(0)} MiB)`,
    });
    const shareShed = sent > 0 ? o.shed / sent * 100 : NaN;
    const checkinShed = delta(m0, m1, "noc_shed_total", `class="checkin"`);
    const fetchShed = delta(m0, m1, "noc_shed_total", `class="fetch"`);
    rows.push({
      name: "overload at 2× capacity: share of cycles shed (503)",
      value: shareShed,
      unit: "%",
      note: `${o.shed} of ${sent} cycles sent were answered 503 (beat or catalog); the NOC shed ` +
        `${checkinShed} beats and ${fetchShed} catalogs in all (overload and recovery)`,
    });
    const recAt = recTimeline.recoveredAt(1000);
    rows.push({
      name: "recovery after the overload (answered p99 < 1 s and no 503 at half the capacity)",
      value: recAt ?? NaN,
      unit: "s",
      note: (recAt === null
        ? `not recovered within ${recoveryS} s`
        : `from the end of the overload to the first second from which every second has no ` +
          `503 and an answered p99 under 1 s`) +
        `; ${normal.toFixed(0)} cycles/s open loop from other appliances (${recFleet.length}), ` +
        `started as the overload's schedule ended (its last cycles still draining); over the ` +
        `${recoveryS} s: ${r.cycles} cycles, ${r.shed} shed, beat/catalog p99 ${
          ms(r.latencyMs.beat.p99)
        }/${ms(r.latencyMs.catalog.p99)} ms, ${r.errors} errors ${JSON.stringify(r.errorKinds)}`,
    });
    const finishedGone = delta(m0, m1, "noc_finished_client_gone_total");
    // Review 24a: Deno.serve fires no abort for a request with a body (denoland/deno#21653), and
    // every check-in is a POST with one: the NOC cannot see those clients go, so the requests the
    // simulator abandoned count as processed (at most), not as none.
    const aborted = lost + timeouts(r);
    rows.push({
      name: "requests processed after their client had given up (overload and recovery)",
      value: finishedGone + aborted,
      unit: "requests (at most)",
      target: "0",
      met: finishedGone + aborted === 0,
      note: `the NOC's noc_finished_client_gone_total (${finishedGone}: a request admitted whose ` +
        `client left before its answer) plus the ${aborted} requests the simulator abandoned (at ` +
        `30 s, as the agent does), which the NOC cannot see go: Deno.serve signals a client ` +
        `leaving only for a request without a body, and a check-in is a POST with one; the NOC ` +
        `dropped ${shedBy("client_gone")} queued requests whose client had gone, unprocessed ` +
        `(noc_shed_total{reason="client_gone"})`,
    });
  } finally {
    for (const c of rawPool.values()) c.close();
    await noc.stop();
  }
}

/** One appliance's record in the Retry-After fleet. */
interface AgentLog {
  /** When each cycle started (ms). */
  starts: number[];
  /** Each 503 with a Retry-After: when it was answered (ms) and the delay asked (s). */
  told: Array<{ at: number; retryAfterS: number }>;
  /** Cycles that failed otherwise (no Retry-After): the back-off, not the hold. */
  otherFailures: number;
  ok: number;
}

/**
 * One appliance on the agent's back-pressure code until `until` (ms): a cycle is a signed beat
 * and, when it is accepted, the catalog, each through the cycle's gate; the next cycle is due as
 * agent/cycle.ts's `finish` computes it, and not before the gate's hold (agent/run.ts).
 */
async function agentLoop(a: SimAppliance, firstAt: number, until: number, log: AgentLog) {
  const interval = defaultIntervalS; // no signed catalog yet: the agent's default
  const base = DEFAULT_BACKOFF_BASE_S;
  const pressure = new BackPressure(Date.now, Math.random, base);
  pressure.capS = interval;
  let failures = 0;
  let nextDue = firstAt;
  const send = (req: Request, gate: ReturnType<BackPressure["forCycle"]>) =>
    gate.fetch(req, { signal: AbortSignal.timeout(agentTimeoutMs) });
  while (true) {
    const due = Math.max(nextDue, pressure.until);
    if (due >= until) return;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    const gate = pressure.forCycle(fetch);
    const now = new Date();
    log.starts.push(now.getTime());
    let ok = false;
    try {
      a.seq++;
      const b = await send(
        await signedRequest({
          baseUrl: a.noc,
          uid: a.uid,
          key: a.key,
          method: "POST",
          path: "/v1/beats",
          body: simBeat(a.seq, now),
          now,
        }),
        gate,
      );
      await b.body?.cancel();
      if (b.status === 200) {
        const c = await send(
          await signedRequest({
            baseUrl: a.noc,
            uid: a.uid,
            key: a.key,
            method: "GET",
            path: "/v1/catalog",
            now,
          }),
          gate,
        );
        await c.body?.cancel();
        ok = c.status === 200 || c.status === 304;
      }
    } catch (e) {
      // The gate's refusal (tripped says so) or a failure (the back-off).
      if (!(e instanceof BackPressureError)) ok = false;
    }
    const tripped = gate.tripped;
    if (tripped) log.told.push({ at: Date.now(), retryAfterS: tripped.retryAfterS });
    let delayS: number;
    if (tripped || !ok) {
      failures++;
      if (!tripped) log.otherFailures++;
      delayS = tripped
        ? retryDelayS(tripped.retryAfterS, failures, interval, base)
        : cycleBackoffS(failures, interval, base);
    } else {
      log.ok++;
      failures = 0;
      delayS = Math.max(1, Math.round(interval * (1 - 0.1 * Math.random())));
    }
    nextDue = Date.now() + delayS * 1000;
  }
}

/** The Retry-After fleet row. */
async function retryAfterRow(rows: Figure[]): Promise<void> {
  const n = retryAfterN;
  const noc = await simulationNoc({
    NOC_REQUEST_LOG: "errors",
    NOC_MAX_IN_FLIGHT: "1",
    NOC_MAX_QUEUE: "0",
    NOC_RETRY_AFTER_S: String(n),
  });
  try {
    const agents = 200;
    const fleet = await enrolOneByOne(noc, agents + 32);
    const started = Date.now();
    const until = started + retryFleetS * 1000;
    const logs = fleet.slice(0, agents).map((): AgentLog => ({
      starts: [],
      told: [],
      otherFailures: 0,
      ok: 0,
    }));
    // Other traffic keeps the NOC's one check-in slot busy, so the fleet is answered 503.
    const flood = simulate({
      appliances: 32,
      fleet: fleet.slice(agents),
      rate: 0,
      concurrency: 8,
      durationS: retryFleetS + 1,
      nocs: [noc.url],
      adminToken: noc.token,
    });
    await Promise.all(
      fleet.slice(0, agents).map((a, i) =>
        agentLoop(a, started + Math.random() * n * 1000, until, logs[i]!)
      ),
    );
    const f = await flood;
    // The most cycles of one appliance in any N seconds (a window starting at each cycle).
    let most = 0;
    let cycles = 0;
    const gapsOver: number[] = [];
    let early = 0;
    for (const l of logs) {
      cycles += l.starts.length;
      for (let i = 0; i < l.starts.length; i++) {
        const inWindow = l.starts.filter((t) => t >= l.starts[i]! && t < l.starts[i]! + n * 1000);
        most = Math.max(most, inWindow.length);
      }
      for (const t of l.told) {
        const next = l.starts.find((s) => s > t.at);
        if (next === undefined) continue;
        const over = (next - t.at) / 1000 - t.retryAfterS;
        gapsOver.push(over);
        if (over < 0) early++;
      }
    }
    gapsOver.sort((a, b) => a - b);
    const told = logs.reduce((s, l) => s + l.told.length, 0);
    const asked = logs.flatMap((l) => l.told.map((t) => t.retryAfterS));
    const other = logs.reduce((s, l) => s + l.otherFailures, 0);
    const ok = logs.reduce((s, l) => s + l.ok, 0);
    // The fleet's cycles per second: peak against mean (after the first N s of spread starts).
    const perSecond = new Map<number, number>();
    for (const l of logs) {
      for (const t of l.starts) {
        if (t < started + n * 1000) continue;
        const s = Math.floor((t - started) / 1000);
        perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
      }
    }
    const later = [...perSecond.values()];
    const meanPerS = later.reduce((s, x) => s + x, 0) / Math.max(1, retryFleetS - n);
    const meanPerN = cycles / agents / (retryFleetS / n);
    rows.push({
      name: `a fleet answered 503 with Retry-After: N (N = ${n} s): cycles per appliance per N s`,
      value: most,
      unit: "cycles (most)",
      target: "≤ 1, with jitter",
      met: told > 0 && most <= 1 && early === 0 && gapsOver.length > 1 &&
        percentile(gapsOver, 90) - percentile(gapsOver, 10) >= 1,
      note: `real NOC (NOC_MAX_IN_FLIGHT=1, NOC_MAX_QUEUE=0, NOC_RETRY_AFTER_S=${n}: it sends ` +
        `${
          asked.length ? `${Math.min(...asked)}–${Math.max(...asked)}` : "no"
        } s) kept busy by 8 simulator lanes (${f.shed} ` +
        `of their cycles shed); ${agents} appliances for ${retryFleetS} s on the agent's ` +
        `back-pressure code in one process (BackPressure gate, retryDelayS/cycleBackoffS, run.ts's ` +
        `hold), not ${agents} agent processes; mean ${meanPerN.toFixed(2)} cycles per appliance ` +
        `per N s (${cycles} cycles: ${told} answered 503 with Retry-After, ${ok} completed, ` +
        `${other} failed otherwise); next cycle after a Retry-After came ${
          ms(gapsOver[0] ?? NaN)
        } s (min), ${ms(percentile(gapsOver, 50))} s (median), ${
          ms(percentile(gapsOver, 90))
        } s (p90) past the delay asked, ${early} sooner; the fleet's busiest second after the ` +
        `first N s had ${Math.max(0, ...later)} cycle starts against a mean of ${
          meanPerS.toFixed(1)
        }`,
    });
  } finally {
    await noc.stop();
  }
}

/** Runs the overload section; returns its figures. */
export async function overloadBench(): Promise<Figure[]> {
  const rows: Figure[] = [];
  const fail = (name: string, e: unknown): Figure => ({
    name,
    value: NaN,
    unit: "",
    note: `failed: ${e instanceof Error ? e.message : String(e)}`.slice(0, 400),
  });
  await overloadRows(rows).catch((e) => rows.push(fail("overload at 2× capacity", e)));
  await retryAfterRow(rows).catch((e) => rows.push(fail("a fleet answered Retry-After", e)));
  return rows;
}

if (import.meta.main) {
  for (const f of await overloadBench()) {
    console.log(
      `${f.name}: ${Number.isFinite(f.value) ? f.value.toFixed(1) : "n/a"} ${f.unit}` +
        `${f.target ? ` (target ${f.target}: ${f.met ? "met" : "NOT met"})` : ""}  ${f.note}`,
    );
  }
  Deno.exit(0);
}
