/**
 * The local-server stage, resolved for a whole site at once: on random sites
 * (fast-check) it equals, appliance by appliance, what {@link resolveCatalog}
 * gives each one, and the stage is their union; and it costs the same number
 * of statements for 10 appliances as for 1,000. Rollout buckets keep their
 * definition, so an upgrade never reshuffles a rollout.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { countingSql, dbTest } from "./_harness.ts";
import {
  clearScenario,
  type Scenario,
  type ScenarioAppliance,
  type ScenarioAssignment,
  type ScenarioComponent,
  seedListings,
  seedScenario,
  siteScenario,
} from "./_site.ts";
import type { Sql } from "../noc/db/db.ts";
import {
  type Chosen,
  resolveCatalog,
  resolveSiteCatalogs,
  rolloutBucket,
  type TargetType,
} from "../noc/services/catalog_engine.ts";
import { siteStage } from "../noc/services/local_servers.ts";
import type { StageItem } from "../protocol/schemas.ts";

const models = ["m1", "m2", "m3"];
const channels = ["stable", "beta"];
const tags = ["t1", "t2", "t3", "t4"];
const sites = ["s1", "s2"];
const apps = ["a1", "a2"];
const components = (["package", "file"] as const).flatMap((kind) =>
  apps.flatMap((app) =>
    ["n1", "n2"].flatMap((name) => ["1", "2", "3"].map((version) => ({ kind, app, name, version })))
  )
);
const start = Date.parse("2026-03-01T00:00:00Z");
/** Small offsets, so created_at and last_sent_at ties are frequent. */
const instant = fc.integer({ min: 0, max: 3 }).map((s) => new Date(start + s * 1000));
const weighted = (pTrue: number) => fc.integer({ min: 0, max: 99 }).map((n) => n < pTrue * 100);

const applianceArb: fc.Arbitrary<ScenarioAppliance> = fc.record({
  uid: fc.uuid().map((u) => u.toLowerCase()),
  model: fc.constantFrom(...models),
  channel: fc.constantFrom(...channels),
  site: fc.constantFrom<string | null>("s1", "s1", "s2", null),
  tags: fc.subarray(tags),
  revoked: weighted(0.2),
});

/** An assignment; its target value is an index into the pool of its type (one past it: no match). */
function assignmentArb(appliances: ScenarioAppliance[]): fc.Arbitrary<ScenarioAssignment> {
  return fc.record({
    component: fc.constantFrom(...components),
    targetType: fc.constantFrom<TargetType>("appliance", "tag", "site", "channel", "model", "all"),
    value: fc.nat(),
    rolloutPercent: fc.oneof(fc.constantFrom(0, 100, 100, 50), fc.integer({ min: 0, max: 100 })),
    paused: weighted(0.25),
    createdAt: instant,
  }).map(({ component, targetType, value, rolloutPercent, paused, createdAt }) => {
    const pool = {
      all: [null],
      model: models,
      channel: channels,
      site: sites,
      tag: tags,
      appliance: appliances.map((a) => a.uid),
    }[targetType];
    const targetValue = targetType === "all"
      ? null
      : value % (pool.length + 1) < pool.length
      ? pool[value % (pool.length + 1)]!
      : `no-such-${targetType}`;
    return { ...component, targetType, targetValue, rolloutPercent, paused, createdAt };
  });
}

/** A scenario, and which appliances the NOC's catalogs listed which versions for. */
type ListedScenario = Scenario & {
  listings: Array<ScenarioComponent & { uid: string }>;
};

const scenarioArb: fc.Arbitrary<ListedScenario> = fc
  .uniqueArray(applianceArb, { selector: (a) => a.uid, minLength: 1, maxLength: 16 })
  .chain((appliances) =>
    fc.record({
      appliances: fc.constant(appliances),
      components: fc.constant(components),
      assignments: fc.array(assignmentArb(appliances), { maxLength: 24 }),
      deliveries: fc.array(
        fc.record({
          a: fc.constantFrom(...appliances),
          c: fc.constantFrom(...components),
          lastSentAt: instant,
        }).map(({ a, c, lastSentAt }) => ({ ...c, uid: a.uid, lastSentAt })),
        { maxLength: 40 },
      ),
      holds: fc.array(
        fc.record({
          a: fc.constantFrom(...appliances),
          app: fc.constantFrom<string | null>(null, ...apps),
        }).map(({ a, app }) => ({ uid: a.uid, app })),
        { maxLength: 5 },
      ),
      // Deliveries the NOC never listed (forged or pre-upgrade records) must not count.
      listings: fc.array(
        fc.record({ a: fc.constantFrom(...appliances), c: fc.constantFrom(...components) })
          .map(({ a, c }) => ({ ...c, uid: a.uid })),
        { maxLength: 40 },
      ),
    })
  ).chain((s) =>
    // Most deliveries were listed first, as the NOC now requires; some were not.
    fc.array(weighted(0.7), { minLength: s.deliveries.length, maxLength: s.deliveries.length })
      .map((listed) => ({
        ...s,
        listings: [
          ...s.listings,
          ...s.deliveries.filter((_, i) => listed[i]).map(({ lastSentAt: _, ...d }) => d),
        ],
      }))
  );

/** What the stage was before it was set-based: each appliance's own catalog, one by one. */
async function perApplianceCatalogs(sql: Sql, site: string): Promise<Map<string, Chosen[]>> {
  const rows = await sql<{ uid: string; model: string; channel: string; tags: string[] }>`
    select uid, model, channel, tags from appliances where site = ${site} and revoked_at is null
    order by uid`;
  const out = new Map<string, Chosen[]>();
  for (const a of rows) out.set(a.uid, await resolveCatalog(sql, { ...a, site }));
  return out;
}

function union(catalogs: Iterable<Chosen[]>): StageItem[] {
  const items = new Map<number, StageItem>();
  for (const catalog of catalogs) {
    for (const { id, kind, app, name, version, size, sha256 } of catalog) {
      items.set(id, { id, kind, app, name, version, size, sha256 });
    }
  }
  return [...items.values()].sort((a, b) => a.id - b.id);
}

dbTest(
  "a site's catalogs resolved at once equal each appliance's own catalog, and the stage is their union",
  async ({ db }) => {
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (scenario) => {
        await clearScenario(db.sql);
        await seedScenario(db.sql, scenario);
        await seedListings(db.sql, scenario.listings);
        for (const site of sites) {
          const expected = await perApplianceCatalogs(db.sql, site);
          const actual = await resolveSiteCatalogs(db.sql, site);
          assert.deepEqual(actual, expected, `catalogs of ${site}`);
          assert.deepEqual(await siteStage(db.sql, site), union(expected.values()));
          const revoked = scenario.appliances.filter((a) => a.revoked && a.site === site);
          for (const a of revoked) assert.equal(actual.has(a.uid), false, "revoked left out");
          checked += expected.size;
        }
      }),
      { numRuns: 60 },
    );
    assert.ok(checked > 100, `only ${checked} appliances compared`);
  },
);

dbTest(
  "rollouts, pauses and holds on a site decide each appliance as its own catalog does",
  async ({ db }) => {
    // A fixed case that exercises every rule at once, so a failure names it plainly.
    const uids = Array.from({ length: 6 }, (_, i) => `00000000-0000-4000-8000-00000000000${i}`);
    const at = (s: number) => new Date(start + s * 1000);
    const c = (app: string, version: string) => ({
      kind: "package" as const,
      app,
      name: "n1",
      version,
    });
    await seedScenario(db.sql, {
      appliances: uids.map((uid, i) => ({
        uid,
        model: "m1",
        channel: "stable",
        site: "s1",
        tags: i % 2 ? ["t1"] : [],
        revoked: i === 5,
      })),
      components,
      assignments: [
        {
          ...c("a1", "1"),
          targetType: "all",
          targetValue: null,
          rolloutPercent: 100,
          paused: false,
          createdAt: at(0),
        },
        {
          ...c("a1", "2"),
          targetType: "model",
          targetValue: "m1",
          rolloutPercent: 50,
          paused: false,
          createdAt: at(1),
        },
        {
          ...c("a1", "3"),
          targetType: "tag",
          targetValue: "t1",
          rolloutPercent: 100,
          paused: true,
          createdAt: at(2),
        },
        {
          ...c("a2", "1"),
          targetType: "site",
          targetValue: "s1",
          rolloutPercent: 100,
          paused: false,
          createdAt: at(0),
        },
        {
          ...c("a2", "2"),
          targetType: "site",
          targetValue: "s1",
          rolloutPercent: 100,
          paused: false,
          createdAt: at(0),
        },
        {
          ...c("a2", "3"),
          targetType: "appliance",
          targetValue: uids[5]!,
          rolloutPercent: 100,
          paused: false,
          createdAt: at(0),
        },
      ],
      deliveries: [
        { ...c("a1", "3"), uid: uids[1]!, lastSentAt: at(5) },
        { ...c("a2", "1"), uid: uids[2]!, lastSentAt: at(5) },
        { ...c("a2", "3"), uid: uids[2]!, lastSentAt: at(5) },
        // Records of versions the NOC never listed for these appliances (forged, say).
        { ...c("a1", "3"), uid: uids[3]!, lastSentAt: at(5) },
        { ...c("a1", "2"), uid: uids[4]!, lastSentAt: at(6) },
      ],
      holds: [{ uid: uids[2]!, app: "a2" }, { uid: uids[4]!, app: null }],
    });
    await seedListings(db.sql, [
      { ...c("a1", "3"), uid: uids[1]! },
      { ...c("a2", "1"), uid: uids[2]! },
      { ...c("a2", "3"), uid: uids[2]!, current: false },
    ]);
    const expected = await perApplianceCatalogs(db.sql, "s1");
    const actual = await resolveSiteCatalogs(db.sql, "s1");
    assert.deepEqual(actual, expected);
    assert.deepEqual([...actual.keys()], uids.slice(0, 5), "the revoked appliance is left out");
    const versions = (uid: string) => actual.get(uid)!.map((x) => `${x.app}@${x.version}`);
    // The paused tag rollout reaches only the appliance already sent it after a catalog listed it;
    // a record alone (uids[3]) does not open a paused rollout.
    assert.ok(versions(uids[1]!).includes("a1@3"));
    assert.ok(!versions(uids[3]!).includes("a1@3"));
    // Held on a2: pinned to the a2 version its latest catalog lists, not the newer a2@3 a record
    // and an earlier listing name (records play no part in a hold).
    assert.deepEqual(versions(uids[2]!).filter((v) => v.startsWith("a2")), ["a2@1"]);
    // Held on everything, never sent anything a catalog listed: an empty catalog (its record of
    // a1@2, never listed for it, pins nothing).
    assert.deepEqual(actual.get(uids[4]!), []);
  },
);

dbTest(
  "a sync's stage costs the same number of statements for 10 appliances as for 1,000",
  async ({ db }) => {
    await seedScenario(
      db.sql,
      siteScenario({ site: "small", appliances: 10, assignments: 25, seed: 1 }),
    );
    await seedScenario(
      db.sql,
      siteScenario({ site: "big", appliances: 1000, assignments: 25, seed: 2 }),
    );
    const counts: number[] = [];
    for (const site of ["small", "big"]) {
      const counting = countingSql(db.sql);
      const stage = await siteStage(counting.sql, site);
      assert.ok(stage.length > 0);
      counts.push(counting.statements());
    }
    assert.equal(counts[0], counts[1], `statements: ${counts.join(" vs ")}`);
    assert.ok(counts[1]! <= 4, `${counts[1]} statements`);
    // The big site's catalogs are still each appliance's own.
    const old = countingSql(db.sql);
    const expected = await perApplianceCatalogs(old.sql, "big");
    assert.ok(
      old.statements() > 2 * expected.size,
      "the per-appliance way costs 2–3 per appliance",
    );
    assert.deepEqual(await resolveSiteCatalogs(db.sql, "big"), expected);
  },
);

Deno.test(
  "a rollout bucket is the first 4 bytes of SHA-256 of uid\\nkind/app/name, big-endian, mod 100",
  async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uuid(),
        fc.constantFrom("package", "file"),
        fc.string({ unit: "grapheme" }),
        fc.string({ unit: "grapheme" }),
        async (uid, kind, app, name) => {
          const digest = await crypto.subtle.digest(
            "SHA-256",
            new TextEncoder().encode(`${uid}\n${kind}/${app}/${name}`),
          );
          assert.equal(
            rolloutBucket(uid, kind, app, name),
            new DataView(digest).getUint32(0) % 100,
          );
        },
      ),
    );
  },
);
