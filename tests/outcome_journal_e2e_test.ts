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
 * one database); the NOC's part — a repeated report is recorded once — runs
 * on both.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { enrolledAgent, type ServedNoc } from "./_agent.ts";
import { payload, publishAndAssign, upload } from "./_components.ts";
import { ManualClock } from "../noc/clock.ts";
import { type Db, openPglite } from "../noc/db/db.ts";
import { migrate } from "../noc/db/migrate.ts";

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
    const db = await openPglite();
    await migrate(db);
    const noc = await holdingNoc(db);
    const box = await enrolledAgent(noc);
    const fifo = `${box.state}/../post.fifo`;
    let plugin = 0;
    try {
      const uid = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid;
      const up = await upload(
        noc,
        "/v1/admin/packages?app=demo&name=demo&version=1.0.0",
        await payload({ install: installScript }),
        "application/gzip",
      );
      assert.equal(up.status, 201, JSON.stringify(up.body));
      const as = await noc.admin("POST", "/v1/admin/assignments", {
        kind: "package",
        app: "demo",
        name: "demo",
        version: "1.0.0",
        target: { type: "all" },
      });
      assert.equal(as.status, 201, JSON.stringify(as.body));
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
      const progress = (await noc.admin("GET", `/v1/admin/assignments/${as.body.id}`)).body
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

dbTest(
  "an install report sent again is recorded once; a new outcome after it, or the same one later, is recorded",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "2" });
    const pkg = { kind: "package", app: "app", name: "pkg", version: "2" };
    const report = async (results: unknown[]) => {
      const res = await noc.app.request(await a.request("POST", "/v1/installs", { results }));
      assert.equal(res.status, 200);
      return (await res.json()).recorded;
    };
    const rows = async () =>
      (await db.sql<{ outcome: string }>`
        select outcome from install_outcomes where uid = ${a.uid} order by id`).map((r) =>
        r.outcome
      );
    const failed = { ...pkg, outcome: "failed", message: "install_failed: exited with 1" };
    assert.equal(await report([failed]), 1);
    assert.equal(await report([failed]), 0, "the same report again (its answer was lost)");
    assert.deepEqual(await rows(), ["failed"]);
    // A batch that repeats the last outcome and carries new ones: only the new ones are stored.
    assert.equal(await report([failed, { ...pkg, outcome: "installed" }]), 1);
    assert.equal(await report([failed, { ...pkg, outcome: "installed" }]), 0);
    assert.deepEqual(await rows(), ["failed", "installed"]);
    // The same outcome after another one is a new event: stored.
    assert.equal(await report([failed]), 1);
    // A retry that fails the same way names its attempt (the agent does so): stored.
    assert.equal(await report([{ ...failed, message: `${failed.message} (attempt 2)` }]), 1);
    assert.deepEqual(await rows(), ["failed", "installed", "failed", "failed"]);
  },
);
