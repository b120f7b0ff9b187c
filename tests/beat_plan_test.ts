/**
 * The check-in statements' plans (issue 23: a quiet rate's beats cost PostgreSQL 4–6 ms each).
 * The beat statement joined the batch to `appliances` on the input alone; with statistics from
 * before the fleet enrolled (autovacuum had not analysed the table yet; PGlite never does), the
 * planner hashed every appliance for each batch, and with a key list it still read the whole
 * partial index of active names. These tests make the statistics say "one appliance" and the
 * table hold thousands, then read the plans the NOC's own statements get, custom and generic.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import type { Db, Param, Sql } from "../noc/db/db.ts";

/** A plan node of `explain (format json)`. */
interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}

/**
 * `db`, whose statements matching `pick` are first explained (`explain (format json)`, custom and
 * generic plans) into `plans` under the name `pick` gives, then run.
 */
function explaining(
  db: Db,
  pick: (text: string) => string | null,
  plans: Map<string, PlanNode[]>,
): Db {
  const explain = (strings: TemplateStringsArray) =>
    Object.assign(["explain (format json) " + strings[0], ...strings.slice(1)], {
      raw: ["explain (format json) " + strings.raw[0], ...strings.raw.slice(1)],
    }) as unknown as TemplateStringsArray;
  const sql = (async (strings: TemplateStringsArray, ...values: Param[]) => {
    const name = pick(strings.join("$"));
    if (name) {
      for (const mode of ["force_custom_plan", "force_generic_plan"]) {
        await db.begin(async (tx) => {
          await tx`select set_config('plan_cache_mode', ${mode}, true)`;
          const [row] = await tx<Record<string, unknown>>(explain(strings), ...values);
          const value = Object.values(row!)[0];
          const doc = (typeof value === "string" ? JSON.parse(value) : value) as {
            Plan: PlanNode;
          }[];
          plans.set(name, [...plans.get(name) ?? [], doc[0]!.Plan]);
        });
      }
    }
    return await db.sql(strings, ...values);
  }) as Sql;
  Object.assign(sql, { script: (text: string) => db.sql.script(text) });
  return {
    kind: db.kind,
    sql,
    begin: (fn) => db.begin(fn),
    listen: (channel, fn) => db.listen(channel, fn),
    close: () => db.close(),
  };
}

/** Every node of `plan` that reads `relation`, with the index nodes under a bitmap scan. */
function readsOf(plan: PlanNode, relation: string): string[] {
  const out: string[] = [];
  const walk = (n: PlanNode) => {
    if (n["Relation Name"] === relation) {
      const indexes = n["Node Type"] === "Bitmap Heap Scan"
        ? bitmapIndexes(n).map((i) => `Bitmap Index Scan on ${i}`)
        : [`${n["Node Type"]}${n["Index Name"] ? ` on ${n["Index Name"]}` : ""}`];
      out.push(...indexes);
    }
    for (const c of n.Plans ?? []) walk(c);
  };
  walk(plan);
  return out;
}

function bitmapIndexes(n: PlanNode): string[] {
  return (n.Plans ?? []).flatMap((c) =>
    c["Node Type"] === "Bitmap Index Scan" ? [c["Index Name"]!] : bitmapIndexes(c)
  );
}

/**
 * Fills `appliances` with `n` copies of its one row (new UIDs and names) after analysing it with
 * that one row: the statistics say one appliance, the table holds n + 1.
 */
async function staleStatistics(db: Db, n: number): Promise<void> {
  await db.sql`analyze appliances`;
  await db.begin(async (tx) => {
    await tx`create temporary table clone on commit drop as
      select a.* from appliances a, generate_series(1, ${n}::int) g`;
    await tx`update clone set uid = gen_random_uuid(), hostname = 'clone-' || gen_random_uuid(),
      sign_key = 'clone-' || gen_random_uuid()`;
    await tx`insert into appliances select * from clone`;
  });
}

/**
 * Asserts that `plans` (custom and generic) hold statement `what`, and read `appliances` only by
 * its primary key (or update it: the ModifyTable node).
 */
function assertReadsByKey(plans: PlanNode[] | undefined, what: string): void {
  assert.equal(plans?.length, 2, `custom and generic plans of the ${what}`);
  for (const plan of plans!) {
    const reads = readsOf(plan, "appliances");
    assert(reads.length > 0, `the ${what} reads appliances`);
    for (const r of reads) {
      assert(
        /^((Index Scan|Index Only Scan|Bitmap Index Scan) on appliances_pkey|ModifyTable)$/.test(r),
        `the ${what} reads appliances by key only, got: ${reads.join(", ")}`,
      );
    }
  }
}

dbTest(
  "recordBeat() reads a batch's appliances by key when statistics are stale",
  async ({ db }) => {
    const plans = new Map<string, PlanNode[]>();
    const noc = await testNoc(
      explaining(db, (t) => t.includes("with raw as (") ? "beat" : null, plans),
    );
    const a = await noc.enrollAppliance();
    await staleStatistics(db, 3000);
    plans.clear();
    await a.beat();
    assertReadsByKey(plans.get("beat"), "beat statement");
  },
);

dbTest(
  "touchCatalog() locks a batch's appliances by key when statistics are stale",
  async ({ db }) => {
    const plans = new Map<string, PlanNode[]>();
    const noc = await testNoc(
      explaining(db, (t) => t.includes("locked as (") ? "touch" : null, plans),
    );
    const a = await noc.enrollAppliance();
    await staleStatistics(db, 3000);
    plans.clear();
    const res = await noc.send(await a.request("GET", "/v1/catalog"));
    await res.body?.cancel();
    assert(res.status === 200 || res.status === 304, `catalog answered ${res.status}`);
    assertReadsByKey(plans.get("touch"), "catalog statement");
  },
);
