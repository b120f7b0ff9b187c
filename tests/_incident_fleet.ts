/**
 * A fleet with a site outage, for the incident and maintenance tests: sites of appliances
 * enrolled over the protocol, all beating, then one site falls silent, time passes, the others
 * beat again, and the status daemon alerts the silent ones missing.
 */
import assert from "node:assert/strict";
import type { TestAppliance, TestNoc } from "./_harness.ts";
import { statusDaemon } from "../noc/jobs/status_daemon.ts";

/** The fleet: its appliances by site. */
export type SiteFleet = Record<string, TestAppliance[]>;

/** Enrols `perSite` appliances at each of `sites` (host names `<site>-<n>`); each beats once. */
export async function enrolSites(
  noc: TestNoc,
  sites: string[],
  perSite: number,
): Promise<SiteFleet> {
  const fleet: SiteFleet = {};
  for (const site of sites) {
    fleet[site] = [];
    for (let i = 0; i < perSite; i++) {
      const token = await noc.enrollmentToken({ site });
      const a = await noc.enrollAppliance({ hostname: `${site}-${i}`, token });
      await a.beat();
      fleet[site]!.push(a);
    }
  }
  return fleet;
}

/**
 * `silent` (appliances) stop beating; time passes past their due time and the grace while every
 * other appliance of `fleet` beats on; the sweep alerts the silent ones missing (asserted).
 */
export async function outage(
  noc: TestNoc,
  fleet: SiteFleet,
  silent: TestAppliance[],
): Promise<void> {
  const quiet = new Set(silent.map((a) => a.uid));
  const others = Object.values(fleet).flat().filter((a) => !quiet.has(a.uid));
  for (let step = 0; step < 4; step++) {
    noc.clock.advance(600);
    for (const a of others) await a.beat();
  }
  const r = await statusDaemon(noc.deps);
  assert.deepEqual(r.alerted.sort(), [...quiet].sort(), "the silent ones are alerted missing");
}
