// deno-lint-ignore-file no-explicit-any
/**
 * Issue 18, items 6 and 7: a rollout's progress and its health gate come from what the appliances
 * it was sent to run (their latest beats), with install outcomes only as the explanation; and
 * appliances that were sent a release and went silent count against its gate.
 */
import assert from "node:assert/strict";
import { countingDb, dbTest, type TestAppliance, type TestNoc, testNoc } from "./_harness.ts";
import { fetchCatalog, publishAndAssign } from "./_components.ts";
import { gateRollouts } from "../noc/services/rollouts.ts";
import { signIn } from "./_console.ts";

/** Short beats, so going missing takes little manual time: due every 60 s, missing 30 s later. */
const settings = { reportIntervalS: 60, graceS: 30 };

const pkg = (version: string) => ({ kind: "package", app: "app", name: "pkg", version });

/** `a` asks for its catalog and downloads the first entry: the NOC records the delivery. */
async function download(noc: TestNoc, a: TestAppliance): Promise<string> {
  const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
  const res = await noc.app.request(entry.urls[0]!.replace("http://", "https://"));
  assert.equal(res.status, 200);
  await res.body?.cancel();
  return entry.version;
}

/** `a` reports one outcome for app/pkg@`version`. */
async function report(noc: TestNoc, a: TestAppliance, version: string, outcome: string) {
  const res = await noc.app.request(
    await a.request("POST", "/v1/installs", {
      results: [{
        ...pkg(version),
        outcome,
        ...(outcome === "installed" ? {} : { message: "install exited 1" }),
      }],
    }),
  );
  assert.equal(res.status, 200);
  return await res.json();
}

/** `a` beats, saying it runs app/pkg@`version` (nothing of it when null). */
async function beat(a: TestAppliance, version: string | null) {
  const r = await a.beat({ components: version === null ? [] : [pkg(version)] });
  assert.ok(r.uid, JSON.stringify(r));
}

async function assignment(noc: TestNoc, id: number): Promise<any> {
  const r = await noc.admin("GET", `/v1/admin/assignments/${id}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

/** State → UIDs (sorted), from `GET /v1/admin/assignments/:id/appliances`. */
async function byState(noc: TestNoc, id: number): Promise<Record<string, string[]>> {
  const r = await noc.admin("GET", `/v1/admin/assignments/${id}/appliances`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const out: Record<string, string[]> = {};
  for (const x of r.body.items) (out[x.state] ??= []).push(x.uid);
  for (const k of Object.keys(out)) out[k]!.sort();
  return out;
}

/** Moves manual time on in 30 s steps, each appliance of `alive` beating with its version, and a sweep at each step. */
async function passTime(
  noc: TestNoc,
  seconds: number,
  alive: Array<[TestAppliance, string | null]>,
): Promise<{ alerted: string[]; recovered: string[] }> {
  const out = { alerted: [] as string[], recovered: [] as string[] };
  for (let t = 0; t < seconds; t += 30) {
    noc.clock.advance(30);
    for (const [a, v] of alive) await beat(a, v);
    const r = await noc.admin("POST", "/v1/admin/sweep");
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.alerted.push(...r.body.alerted);
    out.recovered.push(...r.body.recovered);
  }
  return out;
}

async function fleetVersions(noc: TestNoc): Promise<string[]> {
  const r = await noc.admin("GET", "/v1/admin/fleet");
  return (r.body.versions as Array<{ app: string; name: string; version: string; n: number }>)
    .filter((v) => v.app === "app").map((v) => `${v.version}×${v.n}`).sort();
}

/** v1 everywhere (delivered, reported, running), then v2 assigned to all with `gate`. */
async function onVersionOne(noc: TestNoc, fleet: TestAppliance[], gate: Record<string, unknown>) {
  await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" });
  for (const a of fleet) {
    assert.equal(await download(noc, a), "1");
    await report(noc, a, "1", "installed");
    noc.clock.advance(1);
    await beat(a, "1");
  }
  noc.clock.advance(1);
  const { assignmentId } = await publishAndAssign(
    noc,
    { app: "app", name: "pkg", version: "2" },
    undefined,
    { type: "all" },
    gate,
  );
  return assignmentId;
}

dbTest(
  "an appliance that reports v2 installed and then beats with v1 running counts as running v1, as the fleet's versions say",
  async ({ db }) => {
    const noc = await testNoc(db, { settings });
    const a = await noc.enrollAppliance({ hostname: "gw-revert" });
    const id = await onVersionOne(noc, [a], { failureThresholdPercent: 50, minSample: 1 });
    assert.equal(await download(noc, a), "2");
    await report(noc, a, "2", "installed");
    // Reported, not yet confirmed by a beat: counted as installed, shown as unconfirmed.
    let p = (await assignment(noc, id)).progress;
    assert.deepEqual([p.sent, p.installed, p.failed, p.states.unconfirmed], [1, 1, 0, 1]);
    noc.clock.advance(60);
    await beat(a, "1");
    const got = await assignment(noc, id);
    p = got.progress;
    assert.deepEqual(
      [p.sent, p.installed, p.failed, p.states.running, p.states.reverted],
      [1, 0, 1, 0, 1],
      JSON.stringify(p),
    );
    assert.deepEqual(await fleetVersions(noc), ["1×1"]);
    const list = await noc.admin("GET", `/v1/admin/assignments/${id}/appliances`);
    assert.equal(list.body.items.length, 1);
    const [row] = list.body.items;
    assert.equal(row.state, "reverted");
    assert.equal(row.runningVersion, "1");
    assert.equal(row.outcome.outcome, "installed", "the outcome is kept as the explanation");
    // The console's Releases page says the same.
    const page = await (await (await signIn(noc)).get("/ui/releases")).text();
    const tr = page.slice(page.indexOf(`data-assignment="${id}"`));
    assert.match(tr, /data-installed[^>]*>0</);
    assert.match(tr, /data-states[^>]*>1 reverted</);
    // The gate counts it as failed: 1 of 1 is over 50%. The next sweep pauses it, though it
    // raised no alert: the appliance is up, on the old version.
    assert.equal(got.paused, false);
    const swept = await noc.admin("POST", "/v1/admin/sweep");
    assert.deepEqual(swept.body.alerted, []);
    const after = await assignment(noc, id);
    assert.equal(after.paused, true);
    assert.match(after.pausedReason, /100% of 1 appliances .*1 reverted/);
  },
);

dbTest(
  "ten appliances download a gated release, three install it and seven go silent: the sweep that alerts them pauses it",
  async ({ db }) => {
    const noc = await testNoc(db, { settings });
    const fleet: TestAppliance[] = [];
    for (let i = 0; i < 10; i++) fleet.push(await noc.enrollAppliance({ hostname: `gw-${i}` }));
    for (const a of fleet) await beat(a, null);
    const { assignmentId: id } = await publishAndAssign(
      noc,
      { app: "app", name: "pkg", version: "2" },
      undefined,
      { type: "all" },
      { failureThresholdPercent: 30, minSample: 5 },
    );
    for (const a of fleet) assert.equal(await download(noc, a), "2");
    const up = fleet.slice(0, 3);
    for (const a of up) {
      assert.deepEqual((await report(noc, a, "2", "installed")).pausedAssignments, []);
    }
    noc.clock.advance(1);
    for (const a of up) await beat(a, "2");
    let p = (await assignment(noc, id)).progress;
    assert.deepEqual([p.sent, p.installed, p.failed, p.states.pending], [10, 3, 0, 7]);
    // Before anyone is alerted, the seven silent ones are pending: due, not yet missing.
    const { alerted } = await passTime(noc, 120, up.map((a) => [a, "2"]));
    assert.deepEqual(alerted.sort(), fleet.slice(3).map((a) => a.uid).sort());
    const got = await assignment(noc, id);
    p = got.progress;
    assert.deepEqual([p.installed, p.failed, p.states.running, p.states.missing], [3, 7, 3, 7]);
    assert.equal(got.paused, true, "the sweep that raised the alerts re-checked the gate");
    assert.match(got.pausedReason, /70% of 10 appliances .*7 missing.*threshold 30%/);
    const notices = await db.sql<{ payload: any }>`
      select payload from notices where kind = 'rollout_paused'`;
    assert.equal(notices.length, 1);
    assert.equal(notices[0]!.payload.states.missing, 7);
    // Paused: an appliance that was never sent it does not get it now.
    const late = await noc.enrollAppliance({ hostname: "gw-late" });
    assert.deepEqual((await fetchCatalog(noc, late)).doc!.components, []);
  },
);

dbTest(
  "each appliance sent a release is shown by what it runs: rolled back, a third version, silent, recovered, moved on",
  async ({ db }) => {
    const noc = await testNoc(db, { settings });
    const names = [
      "running",
      "rolledBack",
      "third",
      "custom",
      "failed",
      "quiet",
      "silent",
      "recovered",
      "movedOn",
    ] as const;
    const a = {} as Record<(typeof names)[number], TestAppliance>;
    for (const n of names) a[n] = await noc.enrollAppliance({ hostname: `gw-${n}` });
    const id = await onVersionOne(noc, Object.values(a), {});
    for (const n of names) assert.equal(await download(noc, a[n]), "2");
    // v3 is published after v2 and sent to movedOn alone; "third" runs it without being sent it.
    noc.clock.advance(1);
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "3" }, undefined, {
      type: "appliance",
      value: a.movedOn.uid,
    });
    assert.equal(await download(noc, a.movedOn), "3");
    noc.clock.advance(1);
    for (const n of ["running", "rolledBack", "third", "custom", "recovered"] as const) {
      await report(noc, a[n], "2", "installed");
    }
    await report(noc, a.failed, "2", "failed");
    await report(noc, a.movedOn, "3", "installed");
    const running: Record<(typeof names)[number], string | null> = {
      running: "2",
      rolledBack: "1",
      third: "3",
      custom: "2-custom",
      failed: "1",
      quiet: "1",
      silent: "1",
      recovered: "2",
      movedOn: "3",
    };
    noc.clock.advance(1);
    for (const n of names) await beat(a[n], running[n]);
    // silent and recovered stop beating; the others go on.
    const alive = names.filter((n) => n !== "silent" && n !== "recovered")
      .map((n) => [a[n], running[n]] as [TestAppliance, string | null]);
    const { alerted } = await passTime(noc, 120, alive);
    assert.deepEqual(alerted.sort(), [a.silent.uid, a.recovered.uid].sort());
    let p = (await assignment(noc, id)).progress;
    assert.equal(p.states.missing, 2);
    // recovered beats again with v2: its alert is resolved and it counts as running it.
    await beat(a.recovered, "2");
    const r = await passTime(noc, 30, [...alive, [a.recovered, "2"]]);
    assert.deepEqual(r.recovered, [a.recovered.uid]);
    p = (await assignment(noc, id)).progress;
    assert.deepEqual(p.states, {
      running: 2,
      unconfirmed: 0,
      pending: 1,
      failed: 1,
      reverted: 1,
      other: 2,
      missing: 1,
      superseded: 1,
    });
    assert.deepEqual([p.sent, p.installed, p.failed], [9, 2, 5]);
    assert.deepEqual(await byState(noc, id), {
      running: [a.running.uid, a.recovered.uid].sort(),
      pending: [a.quiet.uid],
      failed: [a.failed.uid],
      reverted: [a.rolledBack.uid],
      other: [a.third.uid, a.custom.uid].sort(),
      missing: [a.silent.uid],
      superseded: [a.movedOn.uid],
    });
    // The ones shown as other carry the version they run; one state, paged by UID.
    const other = await noc.admin(
      "GET",
      `/v1/admin/assignments/${id}/appliances?state=other&limit=1`,
    );
    assert.equal(other.body.items.length, 1);
    const second = await noc.admin(
      "GET",
      `/v1/admin/assignments/${id}/appliances?state=other&limit=1&after=${other.body.nextAfter}`,
    );
    const versions = [...other.body.items, ...second.body.items].map((x: any) => x.runningVersion);
    assert.deepEqual(versions.sort(), ["2-custom", "3"]);
    // The fleet's versions say the same.
    assert.deepEqual(await fleetVersions(noc), ["1×4", "2-custom×1", "2×2", "3×2"]);
    // Bad input is a clear 400.
    const bad = await noc.admin("GET", `/v1/admin/assignments/${id}/appliances?state=diverged`);
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /state/);
  },
);

dbTest(
  "a release that moved on to a newer one is not failed by the appliances that run the newer one",
  async ({ db }) => {
    const noc = await testNoc(db, { settings });
    const fleet: TestAppliance[] = [];
    for (let i = 0; i < 3; i++) fleet.push(await noc.enrollAppliance({ hostname: `gw-${i}` }));
    const two = await onVersionOne(noc, fleet, { failureThresholdPercent: 10, minSample: 1 });
    for (const a of fleet) {
      assert.equal(await download(noc, a), "2");
      await report(noc, a, "2", "installed");
    }
    noc.clock.advance(1);
    for (const a of fleet) await beat(a, "2");
    noc.clock.advance(1);
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "3" });
    for (const a of fleet) assert.equal(await download(noc, a), "3");
    noc.clock.advance(1);
    for (const a of fleet) await beat(a, "3");
    const p = (await assignment(noc, two)).progress;
    assert.deepEqual([p.sent, p.installed, p.failed, p.states.superseded], [3, 0, 0, 3]);
    assert.deepEqual(await gateRollouts(noc.deps), []);
  },
);

dbTest(
  "rollout figures take a fixed number of statements however many assignments and appliances",
  async ({ db }) => {
    const counted = countingDb(db, (t) => t.includes("deliveries"));
    const noc = await testNoc(counted.db, { settings });
    const statements = async (fleetSize: number) => {
      const fleet: TestAppliance[] = [];
      for (let i = 0; i < fleetSize; i++) fleet.push(await noc.enrollAppliance());
      for (const v of ["a", "b", "c"].map((x) => `${x}${fleetSize}`)) {
        await publishAndAssign(noc, { app: "app", name: `p${v}`, version: "1" }, undefined, {
          type: "all",
        }, { failureThresholdPercent: 50, minSample: 100 });
      }
      for (const a of fleet) {
        for (const e of (await fetchCatalog(noc, a)).doc!.components) {
          const res = await noc.app.request(e.urls[0]!.replace("http://", "https://"));
          await res.body?.cancel();
        }
      }
      const before = counted.count();
      const list = await noc.admin("GET", "/v1/admin/assignments");
      assert.ok(list.body.items.every((x: any) => x.progress.sent >= fleetSize));
      await gateRollouts(noc.deps);
      return counted.count() - before;
    };
    const small = await statements(1);
    const large = await statements(4);
    assert.equal(small, large, "one statement for the list and one for the gate, at any size");
    assert.ok(large <= 2, `${large} statements`);
  },
);
