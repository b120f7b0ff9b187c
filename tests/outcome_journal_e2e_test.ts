// deno-lint-ignore-file no-explicit-any
/**
 * Install outcomes survive a crash (issue 18, item 8). A real agent process
 * is SIGKILLed twice: once after its install succeeded and before it could
 * report it (a post plug-in holds the cycle), once after the NOC recorded
 * the report it sent but before the answer reached it (the NOC's answer is
 * held). After each restart the NOC shows the outcome, exactly once, and the
 * rollout counts it; `catalog.cur` says what was installed throughout.
 *
 * The agent's runs and the NOC share one PGlite database (a slow test runs on
 * one database); the NOC's part — an outcome's `reportId` is its idempotency
 * key: a re-send is recorded once, two alike outcomes with their own keys both,
 * a key reused for another outcome never overwrites the first — runs on both.
 */
import assert from "node:assert/strict";
import { dbTest, migratedDb, type TestAppliance, type TestNoc, testNoc } from "./_harness.ts";
import { REPORT_IDS_KEPT } from "../noc/http/v1/installs.ts";
import { enrolledAgent, type ServedNoc } from "./_agent.ts";
import { publishAndAssign } from "./_components.ts";
import { ManualClock } from "../noc/clock.ts";
import type { Db } from "../noc/db/db.ts";

const installScript = `#!/bin/sh
set -e
mkdir -p "$NOC_ROOT/demo"
printf '%s' "$NOC_VERSION" > "$NOC_ROOT/demo/.version.tmp"
mv "$NOC_ROOT/demo/.version.tmp" "$NOC_ROOT/demo/version"
echo "$NOC_ACTION $NOC_VERSION" >> "$NOC_ROOT/demo/history"
`;

/** A NOC served over real HTTP whose answer to the next `POST /v1/installs` can be held back. */
async function holdingNoc(db: Db) {
  const noc = await testNoc(db, {
    clock: new ManualClock(new Date()),
    settings: { allowPlainHttpFiles: true },
  });
  let hold: { recorded: (status: number) => void; release: Promise<void> } | null = null;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const res = await noc.app.fetch(req);
    if (hold && new URL(req.url).pathname === "/v1/installs") {
      // The NOC has committed the report; its answer waits.
      const h = hold;
      hold = null;
      h.recorded(res.status);
      await h.release;
    }
    return res;
  });
  noc.deps.authorities.listening({ hostname: "127.0.0.1", port: server.addr.port });
  const releases: Array<() => void> = [];
  return {
    ...noc,
    url: `http://127.0.0.1:${server.addr.port}`,
    /** Holds the next install report's answer; resolves with the NOC's status once it is recorded. */
    holdNextReport(): Promise<number> {
      const recorded = Promise.withResolvers<number>();
      const release = Promise.withResolvers<void>();
      releases.push(release.resolve);
      hold = { recorded: recorded.resolve, release: release.promise };
      return recorded.promise;
    },
    async close() {
      for (const r of releases) r();
      await noc.deps.wakeups.close();
      await server.shutdown();
    },
  } as unknown as ServedNoc & { holdNextReport(): Promise<number> };
}

/** The NOC's install outcomes for `uid`, as its admin API shows them. */
async function outcomesOf(noc: ServedNoc, uid: string): Promise<any[]> {
  const r = await noc.admin("GET", `/v1/admin/appliances/${uid}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.installOutcomes;
}

/** Reads what a fifo's writer wrote; fails (instead of hanging) if `gone` settles first. */
async function readFifo(path: string, gone: Promise<unknown>): Promise<string> {
  return await Promise.race([
    Deno.readTextFile(path),
    gone.then((e) => {
      throw new Error(`the agent finished before the fifo was written: ${JSON.stringify(e)}`);
    }),
  ]);
}

Deno.test({
  name:
    "agent killed after an install succeeded, then again after the NOC recorded its report: the NOC shows the outcome exactly once",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await migratedDb();
    const noc = await holdingNoc(db);
    const box = await enrolledAgent(noc);
    const fifo = `${box.state}/../post.fifo`;
    let plugin = 0;
    try {
      const uid = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid;
      const { assignmentId } = await publishAndAssign(noc, {
        app: "demo",
        name: "demo",
        version: "1.0.0",
      }, {
        install: installScript,
      });
      // A post plug-in that, while the fifo exists, says it is running and then never ends: the
      // cycle is held after the install and before its report, where the test kills the agent.
      await Deno.mkdir(`${box.state}/post.d`);
      await Deno.writeTextFile(
        `${box.state}/post.d/demo`,
        `#!/bin/sh\nif [ -p "${fifo}" ]; then echo $$ > "${fifo}"; exec sleep 600; fi\n`,
        { mode: 0o755 },
      );
      await new Deno.Command("mkfifo", { args: [fifo] }).output();

      // 1. Killed after the install, before the report (a power loss).
      const first = box.spawn(["once", "--allow-http-files"]);
      const finished = first.waitFor((e) => e.event === "cycle_finished");
      plugin = Number((await readFifo(fifo, finished)).trim());
      finished.catch(() => {});
      await first.stop("SIGKILL");
      Deno.kill(-plugin, "SIGKILL");
      plugin = 0;
      await Deno.remove(fifo);
      assert.ok(first.events.some((e) => e.event === "installed"), JSON.stringify(first.events));
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      assert.equal((await box.catalogCur()).components[0].version, "1.0.0", "catalog.cur");
      assert.deepEqual(await outcomesOf(noc, uid), [], "nothing reported yet");
      assert.equal((await Array.fromAsync(Deno.readDir(`${box.state}/outcomes`))).length, 1);

      // 2. Restarted: the journalled outcome is sent first; the NOC records it and the agent is
      // killed before the answer reaches it.
      const recorded = noc.holdNextReport();
      const second = box.spawn(["once", "--allow-http-files"]);
      assert.equal(await recorded, 200);
      await second.stop("SIGKILL");
      assert.equal((await outcomesOf(noc, uid)).length, 1);
      assert.ok(!second.events.some((e) => e.event === "install_started"), "nothing reinstalled");

      // 3. Restarted again: the outcome (never acknowledged) is sent again and recorded once.
      const third = await box.run(["once", "--allow-http-files"]);
      assert.equal(third.code, 0, third.stdout + third.stderr);
      assert.ok(
        third.events.some((e) => e.event === "outcomes_sent" && e.count === 1),
        third.stdout,
      );
      assert.ok(!third.events.some((e) => e.event === "install_started"), "nothing reinstalled");
      const shown = await outcomesOf(noc, uid);
      assert.deepEqual(
        shown.map((o) => [o.kind, o.app, o.name, o.version, o.outcome]),
        [["package", "demo", "demo", "1.0.0", "installed"]],
        "the outcome, exactly once",
      );
      assert.deepEqual(await Array.fromAsync(Deno.readDir(`${box.state}/outcomes`)), []);
      const progress = (await noc.admin("GET", `/v1/admin/assignments/${assignmentId}`)).body
        .progress;
      assert.equal(progress.installed, 1, JSON.stringify(progress));
      assert.equal(await box.readRoot("demo/history"), "install 1.0.0\n", "installed once");
      assert.equal((await box.catalogCur()).components[0].version, "1.0.0");
    } finally {
      if (plugin) Deno.kill(-plugin, "SIGKILL");
      await box.remove();
      await Deno.remove(fifo).catch(() => {});
      await noc.close();
      await db.close();
    }
  },
});

/** Signs and sends `results` as appliance `a`'s install report; returns the status and answer. */
async function sendReport(noc: TestNoc, a: TestAppliance, results: unknown[]) {
  const res = await noc.app.request(await a.request("POST", "/v1/installs", { results }));
  return { status: res.status, body: await res.json() };
}

/** Appliance `uid`'s stored outcomes, oldest first: `outcome:message@reportId`. */
async function storedOf(db: Db, uid: string): Promise<string[]> {
  return (await db.sql<{ outcome: string; message: string | null; report_id: string | null }>`
    select outcome, message, report_id::text as report_id from install_outcomes
    where uid = ${uid} order by reported_at, id`).map((r) =>
    `${r.outcome}:${r.message ?? ""}@${r.report_id ?? "-"}`
  );
}

dbTest(
  "an install report sent again with the same reportId is recorded once; two identical outcomes with different ids are both recorded",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "2" });
    const pkg = { kind: "package", app: "app", name: "pkg", version: "2" };
    const failed = { ...pkg, outcome: "failed", message: "install_failed: exited with 1" };
    const [k1, k2, k3, k4] = [1, 2, 3, 4].map(() => crypto.randomUUID());
    const report = async (results: unknown[]) => {
      const r = await sendReport(noc, a, results);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.recorded;
    };
    assert.equal(await report([{ ...failed, reportId: k1 }]), 1);
    assert.equal(await report([{ ...failed, reportId: k1 }]), 0, "the same report again");
    // Its key in capitals is the same key.
    assert.equal(await report([{ ...failed, reportId: k1!.toUpperCase() }]), 0);
    // The same failure again (a retry that failed the same way): a new outcome, stored.
    assert.equal(await report([{ ...failed, reportId: k2 }]), 1);
    // A batch that repeats both and carries a new one: only the new one is stored.
    const installed = { ...pkg, outcome: "installed", reportId: k3 };
    const batch = [{ ...failed, reportId: k1 }, { ...failed, reportId: k2 }, installed];
    assert.equal(await report(batch), 1);
    assert.equal(await report(batch), 0);
    // Two copies of a report at once, their outcomes in either order: each stored once.
    const again = { ...pkg, outcome: "installed", reportId: k4 };
    const [x, y] = await Promise.all([
      sendReport(noc, a, [again, { ...failed, reportId: k2 }]),
      sendReport(noc, a, [{ ...failed, reportId: k2 }, again]),
    ]);
    assert.deepEqual([x.status, y.status], [200, 200], JSON.stringify([x.body, y.body]));
    assert.equal(x.body.recorded + y.body.recorded, 1);
    assert.deepEqual(await storedOf(db, a.uid), [
      `failed:${failed.message}@${k1}`,
      `failed:${failed.message}@${k2}`,
      `installed:@${k3}`,
      `installed:@${k4}`,
    ]);
    // An older agent's outcomes (no reportId) are stored as they come, repeats included.
    assert.equal(await report([failed]), 1);
    assert.equal(await report([failed]), 1);
    assert.equal((await storedOf(db, a.uid)).filter((o) => o.endsWith("@-")).length, 2);
    // Another appliance may use the same key: keys are per appliance.
    const b = await noc.enrollAppliance();
    assert.equal((await sendReport(noc, b, [{ ...failed, reportId: k1 }])).body.recorded, 1);
  },
);

dbTest(
  "a reportId reused for a different outcome is not stored and does not overwrite the first",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const pkg = { kind: "package", app: "app", name: "pkg", version: "2" };
    const key = crypto.randomUUID();
    const first = await sendReport(noc, a, [{ ...pkg, outcome: "installed", reportId: key }]);
    assert.equal(first.body.recorded, 1);
    for (
      const other of [
        { ...pkg, outcome: "failed", message: "install_failed: exited with 1" },
        { ...pkg, version: "3", outcome: "installed" },
        { ...pkg, outcome: "installed", message: "" },
      ]
    ) {
      const r = await sendReport(noc, a, [{ ...other, reportId: key }]);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.recorded, 0, JSON.stringify(other));
    }
    assert.deepEqual(await storedOf(db, a.uid), [`installed:@${key}`]);
    const log = noc.deps.log as unknown as { lines: Array<Record<string, unknown>> };
    const warned = log.lines.filter((l) => l.event === "install_report_id_reused");
    assert.equal(warned.length, 3);
    assert.deepEqual(warned[0]!.reportIds, [key]);
    // The same outcome under its key again is a plain re-send: no warning.
    await sendReport(noc, a, [{ ...pkg, outcome: "installed", reportId: key }]);
    assert.equal(
      log.lines.filter((l) => l.event === "install_report_id_reused").length,
      3,
    );
    // Bad keys are refused whole, naming the problem: not a UUID, or twice in one report.
    const bad = await sendReport(noc, a, [{ ...pkg, outcome: "installed", reportId: "r-1" }]);
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /results\.0\.reportId|reportId/);
    const twice = crypto.randomUUID();
    const dup = await sendReport(noc, a, [
      { ...pkg, outcome: "failed", reportId: twice },
      { ...pkg, outcome: "installed", reportId: twice },
    ]);
    assert.equal(dup.status, 400);
    assert.match(JSON.stringify(dup.body), /repeats results\[0\]\.reportId with another outcome/);
    assert.deepEqual(await storedOf(db, a.uid), [`installed:@${key}`], "nothing written");
    // Two copies of one outcome in one report (an agent killed between journalling it and saving
    // its state holds it twice) are one outcome: accepted, stored once.
    const copied = crypto.randomUUID();
    const copies = await sendReport(noc, a, [
      { ...pkg, outcome: "failed", message: "disk full", reportId: copied },
      { ...pkg, outcome: "failed", message: "disk full", reportId: copied.toUpperCase() },
    ]);
    assert.equal(copies.status, 200, JSON.stringify(copies.body));
    assert.equal(copies.body.recorded, 1);
    assert.equal((await storedOf(db, a.uid)).filter((o) => o.includes(copied)).length, 1);
  },
);

dbTest(
  "a re-sent outcome whose row was pruned is not stored again; each appliance keeps its newest 1000 report ids",
  async ({ db }) => {
    // One outcome kept per appliance: a report of three prunes two of them at once.
    const noc = await testNoc(db, { settings: { installOutcomesPerAppliance: 1 } });
    const a = await noc.enrollAppliance();
    const pkg = { kind: "package", app: "app", name: "pkg" };
    const three = ["1", "2", "3"].map((version) => ({
      ...pkg,
      version,
      outcome: "installed",
      reportId: crypto.randomUUID(),
    }));
    assert.equal((await sendReport(noc, a, three)).body.recorded, 3);
    assert.deepEqual(await storedOf(db, a.uid), [`installed:@${three[2]!.reportId}`]);
    assert.equal(
      (await sendReport(noc, a, three)).body.recorded,
      0,
      "pruned ones not stored again",
    );
    assert.deepEqual(await storedOf(db, a.uid), [`installed:@${three[2]!.reportId}`]);
    // The keys are bounded: after 1,001 more, the oldest is forgotten and the newest kept.
    const more = Array.from({ length: REPORT_IDS_KEPT + 1 }, (_, i) => ({
      ...pkg,
      version: `v${i}`,
      outcome: "installed",
      reportId: crypto.randomUUID(),
    }));
    for (let i = 0; i < more.length; i += 500) {
      noc.clock.advance(1);
      const r = await sendReport(noc, a, more.slice(i, i + 500));
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const kept = await db.sql<{ id: string }>`
      select report_id::text as id from install_report_ids where uid = ${a.uid}`;
    assert.equal(kept.length, REPORT_IDS_KEPT);
    const ids = new Set(kept.map((k) => k.id));
    assert.ok(ids.has(more.at(-1)!.reportId) && !ids.has(three[0]!.reportId));
  },
);

dbTest(
  "docs/protocol.md's install report is accepted as written, and recorded once when sent again",
  async ({ db }) => {
    const doc = await Deno.readTextFile(new URL("../docs/protocol.md", import.meta.url));
    const section = doc.slice(doc.indexOf("## Install outcomes: `POST /v1/installs`"));
    const example = JSON.parse(/```json\n([\s\S]*?)\n```/.exec(section)![1]!);
    assert.ok(example.results.every((r: any) => typeof r.reportId === "string"), "has reportIds");
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const first = await sendReport(noc, a, example.results);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.recorded, 2);
    assert.ok(section.includes('`{ "recorded": 2,'), "the doc shows the first answer");
    const second = await sendReport(noc, a, example.results);
    assert.equal(second.body.recorded, 0);
    assert.ok(section.includes('`{ "recorded": 0,'), "the doc shows the re-send's answer");
  },
);
