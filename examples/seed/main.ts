/**
 * `deno task seed -- --appliances 3000`: fills a running NOC with a fleet to look at, through the
 * real protocol only — the admin API (enrolment tokens, packages, assignments, revocations,
 * report intervals, a sweep) and the appliance protocol (enrolment with each appliance's own
 * Ed25519 and X25519 keys, signed catalogs, downloads, install outcomes, SecureBeats). Nothing is
 * written to the NOC's database directly. What it made is read back from the admin API and
 * printed, never assumed from what it meant to make. See `--help`, and examples/seed/plan.ts for
 * the fleet itself.
 *
 * @module
 */
import { parseCommandLine, UsageError, usageExitCode } from "../../protocol/util/args.ts";
import { enroll, generateApplianceKeys, signedRequest } from "../../protocol/client.ts";
import type { Ed25519Key } from "../../protocol/crypto/ed25519.ts";
import { createTar, gzip } from "../../protocol/package/tar.ts";
import { collectBytes } from "../../protocol/util/bytes.ts";
import type { CatalogDocument, CatalogEnvelope } from "../../protocol/catalog.ts";
import {
  type Fate,
  outageSite,
  outcomeOf,
  planFleet,
  type PlannedAppliance,
  type Release,
  releases,
} from "./plan.ts";

const usage = `Usage: deno task seed -- [--appliances <n>] [flags]

Fills a running NOC (deno task dev) with a realistic fleet, through the admin API and the
appliance protocol only: 17 sites, 4 models, 3 channels, tags; each appliance enrolled with its
own keys; small real packages published and rolled out (100 %, 50 %, 10 % behind a health gate,
one the gate pauses by itself, one paused by the operator), installs that fail with messages;
revoked appliances, appliances that stop beating (scattered, and 30 % of ${outageSite}: an outage)
and late ones; a local component server for the largest site. Prints what the NOC then reports
and the console's URL.

Each run enrols new appliances (host names carry the run label), so runs add up.

Flags:
  --appliances <n>    how many appliances (default 300; 1 to 20000)
  --noc <url>         the NOC (NOC_URL; default http://localhost:8000, as deno task dev)
  --admin-token <t>   an admin token (NOC_ADMIN_TOKEN, NOC_TOKEN; for a NOC on this machine, the
                      data folder's admin-token file: NOC_DATA_DIR, default ./.noc-data)
  --seed <n>          the random seed: the same seed and count make the same fleet (default 1)
  --run <label>       the run label in host names (default: drawn from the time)
  --concurrency <n>   requests in flight (default 24)
  --wait              wait until the NOC reports the stopped appliances missing (their due time
                      plus the NOC's grace, NOC_GRACE_S, 300 s by default), sweep so their
                      alerts open, and only then make the late ones late
  -h, --help          this help

The NOC takes 300 enrolments a minute from one address by default (NOC_RATE_ENROLL_PER_MIN): the
seed keeps to it, and says so. For thousands of appliances quickly, start the NOC with
NOC_RATE_ENROLL_PER_MIN=0 deno task dev. Usage errors exit 64; a NOC that refuses exits 1.`;

/** What the command line asked for. */
interface Options {
  noc: string;
  token: string;
  tokenFrom: string;
  appliances: number;
  seed: number;
  run: string;
  concurrency: number;
  wait: boolean;
}

function intFlag(v: string | undefined, name: string, min: number, max: number, d: number) {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, not "${v}"`);
  }
  return n;
}

function isLoopback(url: URL): boolean {
  return ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname) ||
    /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
}

async function parseOptions(args: string[]): Promise<Options | null> {
  const { values } = parseCommandLine(args, {
    appliances: { type: "string" },
    noc: { type: "string" },
    "admin-token": { type: "string" },
    seed: { type: "string" },
    run: { type: "string" },
    concurrency: { type: "string" },
    wait: { type: "boolean" },
  });
  if (values.help) return null;
  const noc = (values.noc ?? Deno.env.get("NOC_URL") ?? "http://localhost:8000").replace(/\/$/, "");
  if (!URL.canParse(noc) || !/^https?:$/.test(new URL(noc).protocol)) {
    throw new UsageError(`--noc "${noc}" is not an http(s) URL`);
  }
  let token = values["admin-token"];
  let tokenFrom = "--admin-token";
  for (const name of ["NOC_ADMIN_TOKEN", "NOC_TOKEN"]) {
    if (token) break;
    token = Deno.env.get(name);
    tokenFrom = name;
  }
  if (!token && isLoopback(new URL(noc))) {
    // deno task dev keeps its admin token in its data folder; read only for a NOC on this
    // machine, so a token of this machine's NOC is never sent elsewhere.
    const path = `${Deno.env.get("NOC_DATA_DIR") ?? "./.noc-data"}/admin-token`;
    token = (await Deno.readTextFile(path).catch(() => "")).trim() || undefined;
    tokenFrom = path;
  }
  if (!token) {
    throw new UsageError(
      "No admin token: give --admin-token, or set NOC_ADMIN_TOKEN (deno task dev prints one, " +
        "and keeps it in ./.noc-data/admin-token)",
    );
  }
  const run = values.run ?? Date.now().toString(36).slice(-4);
  if (!/^[a-z0-9]{1,8}$/.test(run)) {
    throw new UsageError(`--run must be 1 to 8 lower-case letters or digits, not "${run}"`);
  }
  return {
    noc,
    token,
    tokenFrom,
    appliances: intFlag(values.appliances, "appliances", 1, 20000, 300),
    seed: intFlag(values.seed, "seed", 0, 2 ** 31 - 1, 1),
    run,
    concurrency: intFlag(values.concurrency, "concurrency", 1, 256, 24),
    wait: values.wait === true,
  };
}

/** A refusal of the NOC that ends the seed. */
class NocRefused extends Error {}

/**
 * Sending with the NOC's rate limits kept: a 429 holds every request back for its Retry-After
 * (one shared pause), then the request is made again (signed afresh: a nonce is used once).
 */
function sender(say: (line: string) => void) {
  let until = 0;
  const told = new Set<string>();
  return async (make: () => Request | Promise<Request>): Promise<Response> => {
    for (;;) {
      const wait = until - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const req = await make();
      const res = await fetch(req);
      if (res.status !== 429) return res;
      const body = await res.json().catch(() => ({}));
      const retry = Math.min(120, Math.max(1, Number(res.headers.get("retry-after")) || 5));
      until = Math.max(until, Date.now() + retry * 1000);
      const path = new URL(req.url).pathname;
      if (!told.has(path)) {
        told.add(path);
        say(
          `  the NOC limits ${path}: ${body.message ?? "rate limited"}; keeping to it` +
            (path === "/v1/enroll"
              ? " (for a fast seed, start the NOC with NOC_RATE_ENROLL_PER_MIN=0)"
              : ""),
        );
      }
    }
  };
}

type Send = ReturnType<typeof sender>;

/** Runs `work` over `items`, at most `n` at a time. */
async function pool<T>(items: readonly T[], n: number, work: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** An enrolled appliance of this run. */
interface Enrolled {
  plan: PlannedAppliance;
  uid: string;
  key: Ed25519Key;
  seq: number;
  /** What it runs (kind/app/name → version). */
  running: Map<string, { kind: "package" | "file"; app: string; name: string; version: string }>;
}

async function main(o: Options): Promise<void> {
  const say = (line: string) => console.log(line);
  const send = sender(say);
  const started = performance.now();
  const admin = async (method: string, path: string, body?: unknown, type?: string) => {
    const res = await send(() =>
      new Request(`${o.noc}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${o.token}`,
          ...(body === undefined ? {} : { "content-type": type ?? "application/json" }),
        },
        ...(body === undefined
          ? {}
          : { body: body instanceof Uint8Array ? body as BodyInit : JSON.stringify(body) }),
      })
    );
    const json = await res.json().catch(() => null);
    return { status: res.status, json };
  };
  const must = async (method: string, path: string, body?: unknown, type?: string) => {
    const r = await admin(method, path, body, type);
    if (r.status >= 300) {
      throw new NocRefused(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
    }
    return r.json;
  };

  // The NOC answers, and takes the token.
  const first = await admin("GET", "/v1/admin/fleet").catch((e) => {
    throw new NocRefused(
      `no NOC answers at ${o.noc} (${e instanceof Error ? e.message : e}): start one with ` +
        "deno task dev, or give --noc",
    );
  });
  if (first.status === 401 || first.status === 403) {
    throw new NocRefused(`${o.noc} refuses the admin token from ${o.tokenFrom} (${first.status})`);
  }
  if (first.status !== 200) throw new NocRefused(`GET /v1/admin/fleet: ${first.status}`);

  const plan = planFleet(o.appliances, o.seed, o.run);
  say(`Seeding ${o.noc} with ${plan.length} appliances (seed ${o.seed}, run "${o.run}")`);

  // 1. Enrolment: a one-time token each (site, channel, tags), the appliance's own keys.
  let t = performance.now();
  const fleet: Enrolled[] = [];
  await pool(plan, o.concurrency, async (p) => {
    const { token } = await must("POST", "/v1/admin/enrollment-tokens", {
      label: `seed ${o.run}`,
      site: p.site,
      channel: p.channel,
      tags: p.tags,
      ttlS: 3600,
    });
    const keys = await generateApplianceKeys();
    const e = await enroll((req) => send(() => req.clone()), o.noc, {
      token,
      model: p.model,
      hostname: p.hostname,
      keys,
      agentVersion: p.agentVersion,
    });
    fleet.push({ plan: p, uid: e.uid, key: keys.signing, seq: 0, running: new Map() });
  });
  say(`  enrolled ${fleet.length} in ${secs(t)}`);

  // 2. Releases: small real packages (gzip'd tar with an install program), assigned in order.
  t = performance.now();
  const assignments = new Map<Release, number>();
  const inRun = ({ target }: Release) =>
    target.type === "all" ||
    plan.some((p) => (target.type === "model" ? p.model : p.channel) === target.value);
  for (const r of releases) {
    if (!inRun(r)) {
      // The NOC refuses a target no appliance has (a small fleet may have no beta appliance).
      say(
        `  ${r.app}/${r.name} ${r.version}: not assigned, no appliance of this run is in its target`,
      );
      continue;
    }
    const pub = await admin(
      "POST",
      `/v1/admin/packages?app=${r.app}&name=${r.name}&version=${r.version}`,
      await packageOf(r),
      "application/gzip",
    );
    // 409: published by an earlier run (with other bytes: a tar records times); that one stays.
    if (pub.status !== 201 && pub.status !== 200 && pub.status !== 409) {
      throw new NocRefused(
        `publishing ${r.app}/${r.name} ${r.version}: ${JSON.stringify(pub.json)}`,
      );
    }
    const existing = (await must("GET", `/v1/admin/assignments?app=${r.app}&name=${r.name}`))
      .items.find((a: { version: string; target: { type: string; value?: string } }) =>
        a.version === r.version && a.target.type === r.target.type &&
        (a.target as { value?: string }).value ===
          ("value" in r.target ? r.target.value : undefined)
      );
    const id = existing?.id ?? (await must("POST", "/v1/admin/assignments", {
      kind: "package",
      app: r.app,
      name: r.name,
      version: r.version,
      target: r.target,
      rolloutPercent: r.rolloutPercent,
      ...(r.gate ?? {}),
    })).id;
    assignments.set(r, id);
  }
  say(`  published and assigned ${assignments.size} releases in ${secs(t)}`);

  // 3. A cycle each, as an agent runs it: catalog, downloads, install outcomes, SecureBeat.
  t = performance.now();
  const signed = (a: Enrolled, method: string, path: string, body?: unknown) =>
    send(() =>
      signedRequest({
        baseUrl: o.noc,
        uid: a.uid,
        key: a.key,
        method,
        path,
        ...(body === undefined ? {} : { body }),
      })
    );
  const byRef = new Map(releases.map((r) => [`${r.app}/${r.name}/${r.version}`, r]));
  let failed = 0;
  await pool(fleet, o.concurrency, async (a) => {
    const c = await signed(a, "GET", "/v1/catalog");
    if (c.status !== 200) {
      throw new NocRefused(`catalog for ${a.uid}: ${c.status} ${await c.text()}`);
    }
    const doc = JSON.parse((await c.json() as CatalogEnvelope).catalog) as CatalogDocument;
    const results = [];
    for (const entry of doc.components) {
      const got = await send(() => new Request(entry.urls[0]!));
      await got.body?.cancel();
      if (got.status !== 200) throw new NocRefused(`download ${entry.urls[0]}: ${got.status}`);
      const release = byRef.get(`${entry.app}/${entry.name}/${entry.version}`);
      const o = release ? outcomeOf(a.plan, release) : { outcome: "installed" as const };
      if (o.outcome === "installed") {
        a.running.set(`${entry.kind}/${entry.app}/${entry.name}`, {
          kind: entry.kind,
          app: entry.app,
          name: entry.name,
          version: entry.version,
        });
      } else failed++;
      results.push({
        kind: entry.kind,
        app: entry.app,
        name: entry.name,
        version: entry.version,
        ...o,
        reportId: crypto.randomUUID(),
      });
    }
    if (results.length > 0) await mustOk(await signed(a, "POST", "/v1/installs", { results }));
    await beat(a, signed);
  });
  say(
    `  ran ${fleet.length} cycles (catalog, downloads, outcomes, beat) in ${secs(t)}: ` +
      `${failed} installs reported failed`,
  );

  // 4. A local component server for the largest site, enrolled after the cycles (from now on
  // that site's catalogs list it first), with one sync report on itself.
  await localServer(o, plan, send, must);

  // 5. The operator pauses one rollout; some appliances are revoked; some stop beating.
  // (A release whose target holds none of this run's appliances was not assigned.)
  for (const r of releases.filter((r) => r.pauseAfter && assignments.has(r))) {
    await must("PATCH", `/v1/admin/assignments/${assignments.get(r)}`, { paused: true });
  }
  const of = (fate: Fate) => fleet.filter((a) => a.plan.fate === fate);
  for (const a of of("revoked")) {
    await must("POST", `/v1/admin/appliances/${a.uid}/revoke`, {
      reason: a.plan.luck < 0.5 ? "decommissioned" : "RMA: replaced after a disk failure",
    });
  }
  // A few of them try again, as a forgotten box would: refused, and recorded under its identity.
  for (const a of of("revoked").slice(0, 3)) await beat(a, signed, true);
  // Stopped: their interval shortened to 10 s after their last beat, and no beat since. A new
  // interval counts from the appliance's next catalog (docs/operations.md, "Operator changes
  // never page a healthy appliance"): each fetches one, as an agent woken by the change would.
  const stopped = [...of("missing"), ...of("outage")];
  let lastDue = 0;
  let last = stopped[0];
  await pool(stopped, o.concurrency, async (a) => {
    await must("PATCH", `/v1/admin/appliances/${a.uid}`, { intervalS: 10 });
    await learnInterval(a, signed);
    const j = await must("GET", `/v1/admin/appliances/${a.uid}`);
    if (Date.parse(j.nextDueAt) >= lastDue) [lastDue, last] = [Date.parse(j.nextDueAt), a];
  });
  if (o.wait && last) {
    say(`  waiting until the NOC reports the ${stopped.length} stopped appliances missing…`);
    const uid = last.uid;
    await until(
      async () => (await must("GET", `/v1/admin/appliances/${uid}`)).state === "missing",
      1800,
    );
    await until(async () => {
      await must("POST", "/v1/admin/sweep");
      const j = await must("GET", `/v1/admin/alerts?status=open&uid=${uid}`);
      return j.items.length > 0;
    }, 120);
  }
  // Late: a last beat now, then an interval of 10 s: overdue in 10 s, missing after the grace.
  const late = of("late");
  let lateDue = 0;
  await pool(late, o.concurrency, async (a) => {
    await beat(a, signed);
    await must("PATCH", `/v1/admin/appliances/${a.uid}`, { intervalS: 10 });
    await learnInterval(a, signed);
    const j = await must("GET", `/v1/admin/appliances/${a.uid}`);
    lateDue = Math.max(lateDue, Date.parse(j.nextDueAt));
  });
  if (late.length > 0) {
    await new Promise((r) => setTimeout(r, Math.max(0, lateDue - Date.now()) + 500));
  }
  const took = secs(started);

  // What the NOC reports now.
  const mine = await runStates(o, must);
  const fleetNow = await must("GET", "/v1/admin/fleet");
  const rollouts = (await must("GET", "/v1/admin/assignments")).items as AssignmentJson[];
  say(`\nDone in ${took}. What the NOC reports for this run's ${fleet.length} appliances:`);
  say(`  states: ${fmt(mine)}`);
  say(`  whole fleet: ${fmt(fleetNow.states)}; open alerts: ${fleetNow.openAlerts}`);
  say(`  rollouts:`);
  for (const r of releases) {
    const j = rollouts.find((x) => x.id === assignments.get(r));
    if (!j) continue;
    const target = j.target.type === "all" ? "all" : `${j.target.type} ${j.target.value}`;
    say(
      `    ${j.app}/${j.name} ${j.version} → ${target} ${j.rolloutPercent} %` +
        `${j.failureThresholdPercent ? ` (gate ${j.failureThresholdPercent} %)` : ""}: sent ` +
        `${j.progress.sent}, installed ${j.progress.installed}, failed ${j.progress.failed}` +
        (j.paused ? `; PAUSED: ${j.pausedReason}` : ""),
    );
  }
  if (!o.wait && stopped.length > 0) {
    const at = new Date(lastDue);
    say(
      `  ${stopped.length} appliances stopped beating (${of("outage").length} of them at ` +
        `${outageSite}): late since ${
          at.toISOString().slice(11, 19)
        }Z, missing once the NOC's grace ` +
        "(NOC_GRACE_S, 300 s by default) has passed too; the status daemon's sweep (every minute) " +
        "then opens their alerts. --wait waits for that.",
    );
  }
  say(
    `  the ${late.length} late ones turn missing after the grace as well, and the others late ` +
      "after their report interval: the seed beats once, it is not a running fleet.",
  );
  say(`\nConsole: ${o.noc}/ui (sign in with the admin token from ${o.tokenFrom})`);
}

interface AssignmentJson {
  id: number;
  app: string;
  name: string;
  version: string;
  target: { type: string; value?: string };
  rolloutPercent: number;
  paused: boolean;
  pausedReason: string | null;
  failureThresholdPercent: number | null;
  progress: { sent: number; installed: number; failed: number };
}

/**
 * This run's appliances' states as the NOC reports them: the list's count of each state among the
 * host names carrying the run label.
 */
async function runStates(
  o: Options,
  must: (m: string, p: string) => Promise<{ total?: number }>,
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const s of ["ok", "late", "missing", "revoked"]) {
    const j = await must(
      "GET",
      `/v1/admin/appliances?q=${encodeURIComponent(`-${o.run}-`)}&state=${s}&count=true&limit=1`,
    );
    if (typeof j.total !== "number") throw new NocRefused("the appliance list gave no total");
    counts[s] = j.total;
  }
  return counts;
}

function fmt(counts: Record<string, number>): string {
  return ["ok", "late", "missing", "revoked"].map((s) => `${s} ${counts[s] ?? 0}`).join(", ");
}

async function until(check: () => Promise<boolean>, maxS: number): Promise<void> {
  const end = Date.now() + maxS * 1000;
  while (!(await check())) {
    if (Date.now() > end) throw new NocRefused(`gave up waiting after ${maxS} s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function mustOk(res: Response): Promise<void> {
  if (res.ok) {
    await res.body?.cancel();
    return;
  }
  throw new NocRefused(`${new URL(res.url).pathname}: ${res.status} ${await res.text()}`);
}

/** Enrols a local component server for the run's largest site, and sends one sync report. */
async function localServer(
  o: Options,
  plan: PlannedAppliance[],
  send: Send,
  must: (m: string, p: string, b?: unknown) => Promise<{ token: string }>,
): Promise<void> {
  const bySite = new Map<string, number>();
  for (const p of plan) bySite.set(p.site, (bySite.get(p.site) ?? 0) + 1);
  const site = [...bySite].sort((a, b) => b[1] - a[1])[0]![0];
  const { token } = await must("POST", "/v1/admin/enrollment-tokens", {
    label: `seed ${o.run} local server`,
    purpose: "local-server",
    site,
    ttlS: 3600,
  });
  const keys = await generateApplianceKeys();
  const url = `https://cache-${o.run}.${site}.example.net:8443`;
  const res = await send(() =>
    new Request(`${o.noc}/v1/local/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        token,
        name: `cache-${site}-${o.run}`,
        url,
        signingKey: keys.signingPublic,
        version: "1.0.0",
      }),
    })
  );
  if (res.status !== 201) {
    throw new NocRefused(`local server enrolment: ${res.status} ${await res.text()}`);
  }
  const { id } = await res.json() as { id: string };
  const mib = 1024 * 1024;
  await mustOk(
    await send(() =>
      signedRequest({
        baseUrl: o.noc,
        uid: id,
        key: keys.signing,
        method: "POST",
        path: "/v1/local/sync",
        body: {
          url,
          version: "1.0.0",
          cache: { bytes: 412 * mib, limit: 2048 * mib, entries: 9 },
          hits: 1873,
          misses: 12,
          servedBytes: 3100 * mib,
          pendingRecords: 0,
          problems: [],
        },
      })
    ),
  );
}

/**
 * `a` fetches its catalog, as its agent does after a beat or a wake-up: from then on the NOC counts
 * its due time with the interval that catalog carries.
 */
async function learnInterval(
  a: Enrolled,
  signed: (a: Enrolled, method: string, path: string, body?: unknown) => Promise<Response>,
): Promise<void> {
  const res = await signed(a, "GET", "/v1/catalog");
  await res.body?.cancel();
  if (!res.ok) throw new NocRefused(`catalog for ${a.uid}: ${res.status}`);
}

/** A SecureBeat for `a` (`refusedOk`: a revoked appliance's, expected to be refused). */
async function beat(
  a: Enrolled,
  signed: (a: Enrolled, method: string, path: string, body?: unknown) => Promise<Response>,
  refusedOk = false,
): Promise<void> {
  a.seq++;
  const gib = 1024 ** 3;
  const mem = { "vs-2000": 16, "cf-500": 8, "rt-100": 4, "fs-300": 32 }[a.plan.model] ?? 8;
  const busy = a.plan.luck;
  const res = await signed(a, "POST", "/v1/beats", {
    seq: a.seq,
    sentAt: new Date().toISOString(),
    agentVersion: a.plan.agentVersion,
    health: {
      load: [busy * 3, busy * 2.5, busy * 2].map((x) => Math.round(x * 100) / 100),
      memory: { totalBytes: mem * gib, availableBytes: Math.round(mem * gib * (0.8 - busy * 0.6)) },
      disks: [{
        mount: "/",
        totalBytes: 120 * gib,
        freeBytes: Math.round(120 * gib * (0.9 - busy * 0.85)),
      }],
      uptimeS: Math.round(86400 * (1 + busy * 60)),
    },
    components: [...a.running.values()],
    lastCycle: { outcome: "ok" },
    apps: a.plan.model === "vs-2000"
      ? {
        mailscan: { mailsScanned: Math.round(busy * 90000), spamCaught: Math.round(busy * 21000) },
      }
      : a.plan.model === "cf-500"
      ? { webfilter: { requests: Math.round(busy * 2e6), blocked: Math.round(busy * 41000) } }
      : {},
  });
  if (refusedOk) {
    await res.body?.cancel();
    if (res.status !== 401 && res.status !== 403) {
      throw new NocRefused(`a revoked appliance's beat was answered ${res.status}`);
    }
    return;
  }
  await mustOk(res);
}

/** A small real package: a gzip'd tar with an install program and a VERSION file. */
async function packageOf(r: Release): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "noc-seed-" });
  try {
    await Deno.writeTextFile(
      `${dir}/install`,
      `#!/bin/sh\n# ${r.app}/${r.name} ${r.version}\nset -e\nmkdir -p "$NOC_ROOT/${r.app}"\n` +
        `printf '%s\\n' "$NOC_VERSION" > "$NOC_ROOT/${r.app}/${r.name}.version"\n`,
      { mode: 0o755 },
    );
    await Deno.writeTextFile(`${dir}/VERSION`, `${r.version}\n`);
    return await collectBytes(gzip(createTar(dir)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function secs(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

if (import.meta.main) {
  try {
    const o = await parseOptions(Deno.args);
    if (o === null) console.log(usage);
    else await main(o);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`seed: ${e.message}\n\n${usage}`);
      Deno.exit(usageExitCode);
    }
    console.error(`seed: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
