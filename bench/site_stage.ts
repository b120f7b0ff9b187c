/**
 * The stage a local-server sync computes (POST /v1/local/sync → siteStage)
 * for a site of 1,000 appliances with 50 assignments over every target type
 * (partial and paused rollouts, delivery records with the catalog listings that
 * make them count, holds, revoked appliances):
 * the old way, each appliance's catalog resolved one by one (2–3 statements
 * each; kept here as the baseline), against the set-based
 * {@link siteStage}; milliseconds and statements, each inside a transaction
 * as the sync runs it. Both give the same stage (checked).
 *
 *   deno run -A bench/site_stage.ts
 *
 * Runs on an in-process PGlite, and on PostgreSQL too when TEST_DATABASE_URL
 * is set (in a fresh schema, dropped at the end).
 *
 * @module
 */
import type { Db, Sql } from "../noc/db/db.ts";
import { migrate } from "../noc/db/migrate.ts";
import { resolveCatalog } from "../noc/services/catalog_engine.ts";
import { siteStage } from "../noc/services/local_servers.ts";
import { componentVersionOf, type StageItem } from "../protocol/schemas.ts";
import { type Scenario, seedListings, seedScenario, siteScenario } from "../tests/_site.ts";
import { countingSql } from "../tests/_harness.ts";
import { type Figure, figureTable, percentile } from "./figure.ts";
import { type Backend, onEachBackend } from "./backends.ts";

/** Appliances of the measured site. */
const appliances = 1000;
/** Assignments (about half reach the site through shared targets, the rest are its own). */
const assignments = 50;
/** Appliances of the other sites sharing the database (their delivery records make the tables real). */
const elsewhere = 4000;
const oldRuns = 5;
const newRuns = 20;

/**
 * Seeds scenario `s` and a catalog listing for each of its delivery records: the catalog engine
 * counts a delivery record only for a version a catalog of the NOC's listed for that appliance
 * (issue 16), so without them every record would be ignored and the stage would measure less work
 * than a real site's (where each record follows a catalog that listed it).
 */
async function seedSite(sql: Sql, s: Scenario): Promise<void> {
  await seedScenario(sql, s);
  await seedListings(
    sql,
    s.deliveries.map(({ uid, kind, app, name, version }) => ({ uid, kind, app, name, version })),
  );
}

/** The stage as siteStage computed it before it was set-based: every appliance's catalog, one by one. */
async function siteStageOneByOne(tx: Sql, site: string): Promise<StageItem[]> {
  const rows = await tx<{ uid: string; model: string; channel: string; tags: string[] }>`
    select uid, model, channel, tags from appliances where site = ${site} and revoked_at is null`;
  const items = new Map<number, StageItem>();
  for (const a of rows) {
    for (const c of await resolveCatalog(tx, { ...a, site })) {
      if (items.has(c.id)) continue;
      items.set(c.id, componentVersionOf(c));
    }
  }
  return [...items.values()].sort((a, b) => a.id - b.id);
}

/** One stage computation in its own transaction: milliseconds, statements, the stage. */
async function once(
  db: Db,
  stage: (tx: Sql, site: string) => Promise<StageItem[]>,
): Promise<{ ms: number; statements: number; stage: StageItem[] }> {
  const t = performance.now();
  const { statements, stage: items } = await db.begin(async (tx) => {
    const counting = countingSql(tx);
    const items = await stage(counting.sql, "bench");
    return { statements: counting.statements(), stage: items };
  });
  return { ms: performance.now() - t, statements, stage: items };
}

async function measure(backend: Backend): Promise<Figure[]> {
  const { db, name: be } = backend;
  await migrate(db);
  const setup = performance.now();
  const site = siteScenario({ site: "bench", appliances, assignments, seed: 7 });
  await seedSite(db.sql, site);
  for (let i = 0; i < elsewhere / 1000; i++) {
    await seedSite(
      db.sql,
      siteScenario({ site: `other-${i}`, appliances: 1000, assignments: 0, seed: 100 + i }),
    );
  }
  await db.sql`analyze`;
  const setupS = (performance.now() - setup) / 1000;
  const [n] = await db.sql<
    { deliveries: number; listings: number; assignments: number; holds: number }
  >`
    select (select count(*)::int from deliveries) as deliveries,
      (select count(*)::int from catalog_listings) as listings,
      (select count(*)::int from assignments) as assignments,
      (select count(*)::int from holds h join appliances a using (uid) where a.site = 'bench') as holds`;

  await once(db, siteStageOneByOne); // warm-up, not timed
  const old = [];
  for (let i = 0; i < oldRuns; i++) old.push(await once(db, siteStageOneByOne));
  await once(db, siteStage);
  const now = [];
  for (let i = 0; i < newRuns; i++) now.push(await once(db, siteStage));
  if (JSON.stringify(old[0]!.stage) !== JSON.stringify(now[0]!.stage)) {
    throw new Error("the set-based stage differs from the per-appliance stage");
  }
  const oldMs = old.map((r) => r.ms).sort((a, b) => a - b);
  const newMs = now.map((r) => r.ms).sort((a, b) => a - b);
  const live = site.appliances.filter((a) => !a.revoked).length;
  const what = `${appliances.toLocaleString("en")}-appliance site (${live} not revoked, ` +
    `${n!.holds} holds), ${n!.assignments} assignments, ${n!.deliveries} delivery records ` +
    `(${n!.listings} catalog listings) in the database; stage of ${
      now[0]!.stage.length
    } component versions, identical both ways`;
  return [
    {
      name: `setup: seed the site and ${
        elsewhere.toLocaleString("en")
      } appliances elsewhere (${be})`,
      value: setupS,
      unit: "s",
      note: "one insert per table, and the delivery records' catalog listings (tests/_site.ts)",
    },
    {
      name: `site stage, 1,000 appliances, per appliance (old way) (${be})`,
      value: percentile(oldMs, 50),
      unit: "ms",
      note: `median of ${oldRuns} (min ${oldMs[0]!.toFixed(0)}, max ${
        oldMs[oldMs.length - 1]!.toFixed(0)
      } ms); resolveCatalog once per appliance, in one transaction; ${what}`,
    },
    {
      name: `site stage, 1,000 appliances, set-based siteStage (${be})`,
      value: percentile(newMs, 50),
      unit: "ms",
      note: `median of ${newRuns} (min ${newMs[0]!.toFixed(1)}, max ${
        newMs[newMs.length - 1]!.toFixed(1)
      } ms); ${(percentile(oldMs, 50) / percentile(newMs, 50)).toFixed(0)}× faster than one by one`,
    },
    {
      name: `site stage statements, per appliance (old way) (${be})`,
      value: old[0]!.statements,
      unit: "statements",
      note: "1 + 2 per appliance, + 1 per held appliance",
    },
    {
      name: `site stage statements, set-based (${be})`,
      value: now[0]!.statements,
      unit: "statements",
      note:
        "at most 4 whatever the number of appliances (tests/site_stage_test.ts checks 10 = 1,000)",
    },
  ];
}

/**
 * Measures a local-server sync's stage computation for a 1,000-appliance site,
 * one by one against set-based, on PGlite and on PostgreSQL when
 * TEST_DATABASE_URL is set; returns the figures.
 */
export async function siteStageBench(): Promise<Figure[]> {
  return await onEachBackend({
    name: "site stage (PostgreSQL)",
    value: NaN,
    unit: "ms",
    note: "skipped: set TEST_DATABASE_URL to measure on PostgreSQL",
  }, measure);
}

if (import.meta.main) {
  console.log(figureTable(await siteStageBench()));
}
