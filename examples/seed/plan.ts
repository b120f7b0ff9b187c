/**
 * The fleet `deno task seed` makes, decided before anything is sent: 17 sites, 4 models,
 * 3 channels, tags, the releases and their rollouts, and which appliances fail an install, stop
 * beating (scattered, and a share of one site: an outage), are late or are revoked. Pure and
 * deterministic: the same `seed` and count give the same plan (only the run label in host names
 * differs between runs).
 *
 * @module
 */

/** A small deterministic random source (mulberry32): numbers in [0, 1). */
export function randomSource(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Sites with their share of the fleet (weights) and region tag. */
export const sites: ReadonlyArray<{ name: string; weight: number; region: string }> = [
  { name: "fra-dc1", weight: 14, region: "emea" },
  { name: "ams-pop", weight: 10, region: "emea" },
  { name: "lon-hq", weight: 9, region: "emea" },
  { name: "nyc-dc2", weight: 9, region: "amer" },
  { name: "sin-pop", weight: 7, region: "apac" },
  { name: "par-pop", weight: 6, region: "emea" },
  { name: "chi-pop", weight: 6, region: "amer" },
  { name: "sfo-pop", weight: 6, region: "amer" },
  { name: "tyo-pop", weight: 5, region: "apac" },
  { name: "mad-pop", weight: 5, region: "emea" },
  { name: "sto-pop", weight: 4, region: "emea" },
  { name: "gru-pop", weight: 4, region: "amer" },
  { name: "syd-pop", weight: 4, region: "apac" },
  { name: "waw-pop", weight: 3, region: "emea" },
  { name: "hkg-pop", weight: 3, region: "apac" },
  { name: "mil-pop", weight: 3, region: "emea" },
  { name: "jnb-pop", weight: 2, region: "emea" },
];

/** The site whose appliances partly stop beating together (an outage). */
export const outageSite = "sin-pop";

/** Share of the outage site's appliances that stop beating. */
export const outageShare = 0.3;

/** Models, what they run, and their share of the fleet. */
export const models: ReadonlyArray<{ name: string; weight: number; kind: string }> = [
  { name: "vs-2000", weight: 40, kind: "mail scanner" },
  { name: "cf-500", weight: 30, kind: "content filter" },
  { name: "rt-100", weight: 20, kind: "router" },
  { name: "fs-300", weight: 10, kind: "file and print server" },
];

/** Release channels and their share. */
export const channels: ReadonlyArray<{ name: string; weight: number }> = [
  { name: "stable", weight: 80 },
  { name: "beta", weight: 12 },
  { name: "lts", weight: 8 },
];

/** Role tags an appliance may carry (besides its region tag). */
const roleTags = ["dmz", "pci", "core", "edge", "lab"];

/** A release: one package version, where it is assigned and how installs of it go. */
export interface Release {
  app: string;
  name: string;
  version: string;
  target: { type: "all" } | { type: "model" | "channel"; value: string };
  rolloutPercent: number;
  /** The health gate: pause when this share of outcomes failed, once `minSample` are in. */
  gate?: { failureThresholdPercent: number; minSample: number };
  /** Paused by the operator once the seed's installs are in. */
  pauseAfter?: string;
  /** Share of installs that fail (decided per appliance). */
  failureRate: number;
  /** What a failed install reports: outcome and message. */
  failures: ReadonlyArray<{ outcome: "failed" | "rolled_back"; message: string }>;
}

/** The releases, published and assigned in this order (a later one is the newer assignment). */
export const releases: readonly Release[] = [
  {
    app: "base",
    name: "ca-bundle",
    version: "2026.10",
    target: { type: "all" },
    rolloutPercent: 100,
    failureRate: 0.004,
    failures: [{
      outcome: "failed",
      message: "install exited 1: /opt/appliance/etc: Read-only file system",
    }],
  },
  {
    app: "base",
    name: "ca-bundle",
    version: "2026.11",
    target: { type: "channel", value: "beta" },
    rolloutPercent: 100,
    failureRate: 0.01,
    failures: [{
      outcome: "failed",
      message: "install exited 1: update-ca-certificates: 1 certificate could not be parsed",
    }],
  },
  {
    app: "mailscan",
    name: "mailscan-engine",
    version: "4.2.0",
    target: { type: "model", value: "vs-2000" },
    rolloutPercent: 100,
    failureRate: 0.02,
    failures: [
      {
        outcome: "failed",
        message: "install exited 1: cp: /opt/appliance/mailscan/lib: No space left on device",
      },
      {
        outcome: "failed",
        message: "install exited 2: mailscan-engine: signature database 2026-11-29 is corrupt",
      },
    ],
  },
  {
    app: "mailscan",
    name: "mailscan-engine",
    version: "4.3.0",
    target: { type: "model", value: "vs-2000" },
    rolloutPercent: 10,
    gate: { failureThresholdPercent: 25, minSample: 5 },
    failureRate: 0.08,
    failures: [{
      outcome: "rolled_back",
      message:
        "health check failed: scand did not answer on 127.0.0.1:10025 within 60 s; rolled back to 4.2.0",
    }],
  },
  {
    app: "webfilter",
    name: "urlfilter-db",
    version: "2026.11.1",
    target: { type: "model", value: "cf-500" },
    rolloutPercent: 100,
    failureRate: 0.01,
    failures: [{
      outcome: "failed",
      message: "install exited 1: urlfilter: database checksum mismatch after unpacking",
    }],
  },
  {
    app: "webfilter",
    name: "urlfilter-db",
    version: "2026.11.2",
    target: { type: "model", value: "cf-500" },
    rolloutPercent: 50,
    failureRate: 0.015,
    failures: [{
      outcome: "failed",
      message: "install exited 1: urlfilter: database checksum mismatch after unpacking",
    }],
  },
  {
    app: "router",
    name: "routerd",
    version: "7.0.1",
    target: { type: "model", value: "rt-100" },
    rolloutPercent: 100,
    failureRate: 0.01,
    failures: [{
      outcome: "failed",
      message: "install exited 1: routerd.conf: unknown option 'bfd-multihop' on line 48",
    }],
  },
  {
    app: "router",
    name: "routerd",
    version: "7.1.0",
    target: { type: "model", value: "rt-100" },
    rolloutPercent: 25,
    gate: { failureThresholdPercent: 20, minSample: 5 },
    failureRate: 0.45,
    failures: [
      {
        outcome: "rolled_back",
        message:
          "health check failed: routerd did not answer on 127.0.0.1:2601 within 60 s; rolled back to 7.0.1",
      },
      {
        outcome: "failed",
        message: "install exited 1: kernel module bfd_mh not found for 6.1.0-27-amd64",
      },
    ],
  },
  {
    app: "fileserv",
    name: "smbd",
    version: "3.4.2",
    target: { type: "model", value: "fs-300" },
    rolloutPercent: 100,
    failureRate: 0.02,
    failures: [{
      outcome: "failed",
      message: "install exited 1: smbd: cannot bind 0.0.0.0:445 (address in use)",
    }],
  },
  {
    app: "fileserv",
    name: "smbd",
    version: "3.5.0",
    target: { type: "model", value: "fs-300" },
    rolloutPercent: 50,
    pauseAfter: "print queue regressions reported by two sites",
    failureRate: 0.05,
    failures: [{
      outcome: "failed",
      message: "install exited 1: cupsd: printer driver hpcups 3.24 is missing",
    }],
  },
];

/** What happens to one appliance. */
export type Fate = "ok" | "late" | "missing" | "outage" | "revoked";

/** One appliance of the plan. */
export interface PlannedAppliance {
  hostname: string;
  model: string;
  site: string;
  channel: string;
  tags: string[];
  fate: Fate;
  agentVersion: string;
  /** A number in [0, 1) per appliance, from which its install outcomes are drawn. */
  luck: number;
}

function pick<T extends { weight: number }>(items: readonly T[], r: number): T {
  const total = items.reduce((s, i) => s + i.weight, 0);
  let at = r * total;
  for (const i of items) {
    if ((at -= i.weight) < 0) return i;
  }
  return items[items.length - 1]!;
}

/**
 * The appliances: `count` of them, spread over sites, models and channels by weight, host names
 * `<model>-<site>-<run>-<n>`. Fates: about 30 % of the outage site stop beating, 1.5 % elsewhere
 * go missing, 2 % are late, 0.5 % are revoked (at least one of each when `count` allows).
 */
export function planFleet(count: number, seed: number, run: string): PlannedAppliance[] {
  const rnd = randomSource(seed);
  const fleet: PlannedAppliance[] = [];
  for (let i = 0; i < count; i++) {
    const site = pick(sites, rnd());
    const model = pick(models, rnd());
    const channel = pick(channels, rnd());
    const tags = [site.region, ...roleTags.filter(() => rnd() < 0.15)];
    const r = rnd();
    const fate: Fate = site.name === outageSite
      ? (r < outageShare ? "outage" : "ok")
      : r < 0.015
      ? "missing"
      : r < 0.035
      ? "late"
      : r < 0.04
      ? "revoked"
      : "ok";
    fleet.push({
      hostname: `${model.name.replace("-", "")}-${site.name}-${run}-${String(i).padStart(4, "0")}`,
      model: model.name,
      site: site.name,
      channel: channel.name,
      tags,
      fate,
      agentVersion: rnd() < 0.85 ? "1.0.0" : "0.9.4",
      luck: rnd(),
    });
  }
  // A small fleet still shows every state: the first appliances outside the outage site take
  // the fates no draw gave.
  for (const fate of ["missing", "late", "revoked"] as const) {
    if (fleet.some((a) => a.fate === fate)) continue;
    const a = fleet.find((a) => a.fate === "ok" && a.site !== outageSite);
    if (a) a.fate = fate;
  }
  return fleet;
}

/** The outcome appliance `a` reports for `release`: installed, or one of its failures. */
export function outcomeOf(
  a: PlannedAppliance,
  release: Release,
): { outcome: "installed" | "failed" | "rolled_back"; message?: string } {
  // Per release: the appliance's luck, shifted by the release's place in the list.
  const at = releases.indexOf(release);
  const r = (a.luck * 9301 + at * 0.618033988749895) % 1;
  if (r >= release.failureRate) return { outcome: "installed" };
  const f = release.failures[Math.floor((r / release.failureRate) * release.failures.length)] ??
    release.failures[0]!;
  return { outcome: f.outcome, message: f.message };
}
