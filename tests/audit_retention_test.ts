// deno-lint-ignore-file no-explicit-any
/**
 * The audit log is bounded, and only time passing on the database's clock shortens it: a write
 * deletes records past the retention in the same statement; records are stamped and pruned on the
 * database's clock, so an instance whose wall clock jumps 401 days ahead neither misdates records
 * nor prunes them (the review's F7: a restart under `faketime -f +401d` pruned 213 of 216); and an
 * instance whose clock the last check found off does not prune at all.
 */
import assert from "node:assert/strict";
import { dbTest, scratchDatabase, testNoc } from "./_harness.ts";
import { auditRetentionDays, listAudit, writeAudit } from "../noc/services/audit.ts";
import { shiftedClock } from "../noc/clock.ts";
import { checkClock } from "../noc/jobs/noc_time.ts";
import { openPostgres } from "../noc/db/db.ts";
import { migrate } from "../noc/db/migrate.ts";
import { type NocProcess, startNoc } from "./_process.ts";

const day = 86_400_000;
const entry = (at: Date | undefined, actor: string) => ({
  ...(at ? { at } : {}),
  actor,
  role: "admin" as const,
  via: "api" as const,
  method: "POST",
  route: "/v1/admin/sweep",
  path: "/v1/admin/sweep",
  targets: {},
  status: 200,
  error: null,
  summary: null,
  address: "192.0.2.1",
  userAgent: null,
});

dbTest(
  "each audit write prunes records older than the retention, 100 at a time",
  async ({ db }) => {
    const now = new Date("2026-11-30T12:00:00Z");
    const old = new Date(now.getTime() - (auditRetentionDays + 1) * day);
    const kept = new Date(now.getTime() - (auditRetentionDays - 1) * day);
    for (let i = 0; i < 150; i++) await writeAudit(db, entry(old, "old"));
    await writeAudit(db, entry(kept, "kept"));
    // Each of those writes pruned what was older than its own `at` less the retention: nothing.
    const count = async (actor: string) =>
      (await listAudit(db, { actor, limit: 1000 })).items.length;
    assert.equal(await count("old"), 150);
    await writeAudit(db, entry(now, "new"));
    assert.equal(await count("old"), 50, "100 pruned by one write");
    await writeAudit(db, entry(now, "new"));
    assert.equal(await count("old"), 0);
    assert.equal(await count("kept"), 1, "a record within the retention stays");
    assert.equal(await count("new"), 2);
  },
);

dbTest(
  "a wall clock 401 days ahead stamps records with the database's time and prunes none of this year's",
  async ({ db }) => {
    const [row] = await db.sql<{ db_now: Date }>`select clock_timestamp() as db_now`;
    const db_now = row!.db_now;
    for (let i = 0; i < 5; i++) {
      await writeAudit(db, entry(new Date(db_now.getTime() - (10 + i) * day), "recent"));
    }
    const jumped = shiftedClock(401 * 86_400);
    await writeAudit(db, entry(undefined, "after-jump"), { clock: jumped });
    const recent = await listAudit(db, { actor: "recent", limit: 100 });
    assert.equal(recent.items.length, 5, "nothing of this year is pruned");
    const [mine] = (await listAudit(db, { actor: "after-jump", limit: 1 })).items;
    const off = Date.parse(mine!.at) - db_now.getTime();
    assert.ok(off >= 0 && off < 60_000, `stamped on the database's clock (${off} ms after)`);
  },
);

dbTest(
  "an instance whose clock jumped stamps on the true timeline, and does not prune while its clock disagrees",
  async ({ db }) => {
    const noc = await testNoc(db);
    const trueNow = noc.clock.now();
    for (let i = 0; i < 5; i++) {
      await writeAudit(db, entry(new Date(trueNow.getTime() - (10 + i) * day), "recent"));
    }
    await writeAudit(db, entry(new Date(trueNow.getTime() - 401 * day), "stale"));
    noc.clock.jump(401 * 86_400);
    const r = await noc.admin("POST", "/v1/admin/enrollment-tokens", { label: "after the jump" });
    assert.equal(r.status, 201);
    const count = async (actor: string) =>
      (await listAudit(db, { actor, limit: 100 })).items.length;
    assert.equal(await count("recent"), 5, "the jump prunes nothing");
    assert.equal(await count("stale"), 0, "only what is past the retention on the true timeline");
    const [made] = (await listAudit(db, { actor: "test", limit: 1 })).items;
    assert.equal(made!.at, trueNow.toISOString(), "dated on the true timeline, not 401 days on");

    // Once the clock check finds the instance off, it prunes nothing at all.
    assert.equal((await checkClock(noc.deps)).ok, false);
    await writeAudit(db, entry(new Date(trueNow.getTime() - 402 * day), "stale"));
    assert.equal(
      (await noc.admin("POST", "/v1/admin/enrollment-tokens", { label: "skewed" })).status,
      201,
    );
    assert.equal(await count("stale"), 1, "no pruning while the clock disagrees");
    assert.equal(await count("recent"), 5);
  },
);

const pgUrl = Deno.env.get("TEST_DATABASE_URL");

/** The `LD_PRELOAD` value of Debian's `faketime` wrapper, or null where it is not installed. */
async function fakeTimePreload(): Promise<string | null> {
  try {
    const out = await new Deno.Command("faketime", {
      args: ["-f", "+0s", "sh", "-c", 'printf %s "$LD_PRELOAD"'],
      stdout: "piped",
      stderr: "null",
    }).output();
    const preload = new TextDecoder().decode(out.stdout);
    return out.success && preload.includes("faketime") ? preload : null;
  } catch {
    return null;
  }
}

const preload = await fakeTimePreload();
const skip = !pgUrl
  ? "it needs TEST_DATABASE_URL (on PGlite the database runs in the process, on its clock)"
  : !preload
  ? "it needs faketime (Debian's faketime package; .ci/run installs it)"
  : null;
if (skip) console.log(`audit faketime test skipped: ${skip}`);

async function write(noc: NocProcess, label: string): Promise<void> {
  const res = await fetch(`${noc.url}/v1/admin/enrollment-tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${noc.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ label }),
  });
  await res.body?.cancel();
  assert.equal(res.status, 201);
}

Deno.test({
  name:
    "a real NOC restarted under faketime +401d keeps every audit record and dates its own truly",
  ignore: skip !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const scratch = await scratchDatabase(pgUrl!, "audit_clock");
    const db = openPostgres(scratch.url, { max: 2 });
    const dataDir = await Deno.makeTempDir({ prefix: "noc-audit-clock-" });
    let noc: NocProcess | null = null;
    try {
      await migrate(db);
      noc = await startNoc({ DATABASE_URL: scratch.url, NOC_DATA_DIR: dataDir });
      for (let i = 0; i < 6; i++) await write(noc, `before ${i}`);
      await noc.stop();
      noc = await startNoc({
        DATABASE_URL: scratch.url,
        NOC_DATA_DIR: dataDir,
        LD_PRELOAD: preload!,
        FAKETIME: "+401d",
      });
      for (let i = 0; i < 3; i++) await write(noc, `after ${i}`);
      const rows = await db.sql<{ at: Date; summary: any }>`
        select at, summary from audit_log order by id`;
      assert.equal(rows.length, 9, "all six records of before the restart are kept");
      const newest = rows.at(-1)!.at.getTime();
      assert.ok(Math.abs(newest - Date.now()) < 120_000, `dated ${rows.at(-1)!.at.toISOString()}`);
    } finally {
      await noc?.stop().catch(() => {});
      await db.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      await scratch.drop();
    }
  },
});
