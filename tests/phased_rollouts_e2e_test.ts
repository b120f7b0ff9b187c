// deno-lint-ignore-file no-explicit-any
/**
 * Issue 20, "done when": four-phase rollouts run end to end with real agent processes
 * (`agent/main.ts` with `deno run` and the compile flags, one `once` cycle at a time, as the test
 * says) and a real post plug-in, against a NOC served over real HTTP whose clock is injected: the
 * soak times pass by moving it, and the test runs the rollout daemon's pass itself after each
 * move. Rollouts are created and read through the admin API over HTTP; packages are real
 * `tar czf` payloads published through it.
 *
 * One fleet of 13 appliances serves the three scenarios, in order:
 *
 * 1. a good release of `vscreen` to site east (6 appliances) advances through its four phases by
 *    itself, and every agent there ends on it;
 * 2. the next release of `vscreen`, whose scanner gets through 60 % fewer mails (the plug-in
 *    reports `vscreen.mailsScanned` from what the installed release does), fails the canary
 *    phase's metric gate against control, pages once however many passes follow, and with
 *    rollback the canaries' real agents install the good release again as an ordinary version
 *    change;
 * 3. a release of `filter` whose install program fails on 3 of its 10 canaries (a marker the
 *    test plants: a full disk) stops at its error threshold.
 *
 * Cost: every agent command is a `deno run` (about half a second of CPU), so the test runs only
 * the cycles a scenario needs — an appliance's catalog changes only when a phase takes it in, so
 * the appliances of phases not started yet, or of another target, are not cycled: 13 enrolments
 * and 32 cycles in all, those of a phase at the same time, and the 7 appliances only (c) needs
 * enrol while (a) runs. It runs on PGlite only (a slow test runs on one database, as
 * tests/orphan_install_e2e_test.ts): the agents' cost is the same on either, and the rollout
 * SQL runs on both in tests/phased_rollouts_test.ts.
 *
 * The NOC's clock runs ahead of the agents' by the soak times and daemon periods it skips (some
 * 45 minutes), so it accepts signatures up to an hour off (`maxSkewS`: the bound of
 * `NOC_MAX_SKEW_S`).
 */
import assert from "node:assert/strict";
import { migratedDb } from "./_harness.ts";
import { type AgentBox, type AgentRun, enrolledAgent, type ServedNoc, serveNoc } from "./_agent.ts";
import { run } from "./_process.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import { daemonActor } from "../noc/services/phased_rollouts.ts";

const once = ["once", "--allow-http-files"];

/**
 * vscreen's install program: puts the release's scan rate and version in place atomically and
 * keeps a history of what it did.
 */
const vscreenInstall = `#!/bin/sh
set -e
dir="$NOC_ROOT/vscreen"
mkdir -p "$dir"
cp "$NOC_STAGING/rate" "$dir/.rate.tmp"
mv "$dir/.rate.tmp" "$dir/rate"
printf '%s' "$NOC_VERSION" > "$dir/.version.tmp"
mv "$dir/.version.tmp" "$dir/version"
echo "$NOC_ACTION $NOC_VERSION from \${NOC_PREVIOUS_VERSION:-none}" >> "$dir/history"
`;

/**
 * vscreen's post plug-in (`post.d/50-vscreen.sh`: application `vscreen`): the mails the installed
 * scanner got through since the last cycle — its release's rate times this appliance's traffic
 * (a percentage planted per appliance, so no two report alike) — and that it runs. Nothing
 * before vscreen is installed.
 */
const vscreenPlugin = `#!/bin/sh
set -e
dir="$NOC_ROOT/vscreen"
[ -f "$dir/version" ] || exit 0
rate=$(cat "$dir/rate")
traffic=$(cat "$NOC_ROOT/traffic")
printf '{"mailsScanned": %s, "healthy": true, "version": "%s"}\\n' \\
  "$((rate * traffic / 100))" "$(cat "$dir/version")"
`;

/** filter's install program: fails where the disk is full (a marker the test plants). */
const filterInstall = `#!/bin/sh
set -e
if [ -e "$NOC_ROOT/disk-full" ]; then
  echo "cannot write the filter rules: no space left on device" >&2
  exit 1
fi
mkdir -p "$NOC_ROOT/filter"
printf '%s' "$NOC_VERSION" > "$NOC_ROOT/filter/version"
`;

/** Calls the admin API over HTTP; returns status and JSON. */
async function api(
  noc: ServedNoc,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${noc.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${noc.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/**
 * Publishes package `app`/`app`@`version` through the admin API: a payload made by real
 * `tar czf p.tgz -C dir .` of `files` (each executable).
 */
async function publish(
  noc: ServedNoc,
  app: string,
  version: string,
  files: Record<string, string>,
): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "noc-rollout-pkg-" });
  try {
    await Deno.mkdir(`${work}/pkg`);
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${work}/pkg/${name}`, text, { mode: 0o755 });
    }
    const tar = await run("tar", ["czf", `${work}/p.tgz`, "-C", `${work}/pkg`, "."]);
    assert.equal(tar.code, 0, tar.err);
    const res = await fetch(
      `${noc.url}/v1/admin/packages?app=${app}&name=${app}&version=${version}`,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${noc.adminToken}`,
          "content-type": "application/gzip",
        },
        body: await Deno.readFile(`${work}/p.tgz`),
      },
    );
    const text = await res.text();
    assert.equal(res.status, 201, text);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** An enrolled appliance of the fleet. */
interface Appliance {
  /** Its UID. */
  uid: string;
  /** Its site. */
  site: string;
  /** Its agent's folders. */
  box: AgentBox;
}

/** Runs one `once` cycle of each of `fleet` at the same time; asserts each exited `code`. */
async function cycle(fleet: readonly Appliance[], code = 0): Promise<AgentRun[]> {
  const runs = await Promise.all(fleet.map((a) => a.box.run(once)));
  for (const [i, r] of runs.entries()) {
    assert.equal(r.code, code, `${fleet[i]!.uid}: ${r.stderr}${r.stdout}`);
  }
  return runs;
}

/** The version of `app`/`app` in the agent's internal catalog (catalog.cur), or null. */
async function installed(a: Appliance, app: string): Promise<string | null> {
  const cur = await a.box.catalogCur().catch(() => null);
  const list: any[] = Array.isArray(cur) ? cur : cur?.components ?? [];
  return list.find((c) => c.app === app && c.name === app)?.version ?? null;
}

Deno.test({
  name:
    "four-phase rollouts with real agents and plug-ins: a good release goes all the way, a metric 60 % below control stops the canary and rolls it back, 3 of 10 failed installs stop at the threshold",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await migratedDb();
    const noc = await serveNoc(db, { maxSkewS: 3600 });
    const fleet: Appliance[] = [];
    let west: Promise<Appliance[]> | null = null;
    try {
      /** Enrols the `i`th appliance at `site`, with vscreen's plug-in and its traffic. */
      const enrol = async (site: string, i: number): Promise<Appliance> => {
        const box = await enrolledAgent(noc, { site });
        const uid = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid;
        const a = { uid, site, box };
        fleet.push(a);
        await Deno.mkdir(`${box.state}/post.d`);
        await Deno.writeTextFile(`${box.state}/post.d/50-vscreen.sh`, vscreenPlugin, {
          mode: 0o755,
        });
        await Deno.writeTextFile(`${box.root}/traffic`, `${90 + (i * 7) % 21}\n`);
        return a;
      };
      await publish(noc, "vscreen", "1.0.0", { install: vscreenInstall, rate: "1000\n" });
      await publish(noc, "vscreen", "1.1.0", { install: vscreenInstall, rate: "400\n" });
      await publish(noc, "filter", "3.0.0", { install: filterInstall });
      const east = await Promise.all(Array.from({ length: 6 }, (_, i) => enrol("east", i)));
      // West (7) is needed only in (c): it enrols while (a) runs, whose cycles leave a CPU idle.
      west = Promise.all(Array.from({ length: 7 }, (_, i) => enrol("west", 6 + i)));
      west.catch(() => {}); // Reported where (c) awaits it, not as an unhandled rejection.
      const byUid = new Map(east.map((a) => [a.uid, a]));
      const pass = async () => {
        noc.clock.advance(60);
        const p = await rolloutPass(noc.deps);
        assert.deepEqual(p.errors, []);
        return p;
      };
      const rollout = async (id: number) => {
        const r = await api(noc, "GET", `/v1/admin/rollouts/${id}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return r.body;
      };
      /** The appliances that joined rollout `id` with `phase`. */
      const joined = async (id: number, phase: number): Promise<Appliance[]> => {
        const r = await api(noc, "GET", `/v1/admin/rollouts/${id}/appliances?phase=${phase}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return r.body.items.map((m: any) => byUid.get(m.uid)!);
      };
      const notices = async (id: number) =>
        await db.sql<{ text: string }>`
          select text from notices
          where kind = 'rollout_failed' and (payload->>'rolloutId')::bigint = ${id}`;

      // (a) A good release, site east, 1 → 2 → 4 → 6 appliances, 10 minutes' soak each.
      // Phases smaller than the minimum sample (5) are judged on all their appliances.
      const gated = { soakS: 600, gates: { pluginHealth: { maxUnhealthyPercent: 0 } } };
      const created = await api(noc, "POST", "/v1/admin/rollouts", {
        component: { kind: "package", app: "vscreen", name: "vscreen", version: "1.0.0" },
        target: { type: "site", value: "east" },
        phases: [{ count: 1, ...gated }, { count: 2, ...gated }, { count: 4, ...gated }, {
          percent: 100,
          ...gated,
          soakS: 0,
        }],
        note: "vscreen 1.0.0 to east",
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const good = created.body.id as number;
      const phases: Appliance[][] = [];
      for (let phase = 0; phase < 4; phase++) {
        const members = await joined(good, phase);
        phases.push(members);
        assert.equal(members.length, [1, 1, 2, 2][phase], `phase ${phase + 1}'s newcomers`);
        // The first cycle installs the release; the second beats it with the plug-in's report.
        const first = await cycle(members);
        for (const r of first) {
          assert.ok(r.events.some((e) => e.event === "installed"), r.stdout);
        }
        await cycle(members);
        for (const a of members) assert.equal(await installed(a, "vscreen"), "1.0.0");
        let p = await pass();
        if (phase === 3) {
          // No soak: held, and completed, at once.
          assert.deepEqual(p.completed, [good]);
          break;
        }
        assert.deepEqual([p.advanced, p.failed], [[], []]);
        const held = await rollout(good);
        assert.equal(held.phase, phase);
        assert.ok(held.heldSince, JSON.stringify(held.evaluation?.judgement));
        assert.equal(held.evaluation.figures.healthy, members.length);
        assert.deepEqual(
          held.evaluation.judgement.gates.map((g: any) => [g.gate, g.judged, g.fails]),
          [["stop", true, false], ["pluginHealth", true, false]],
          "both judged on the whole phase, however small",
        );
        noc.clock.advance(600 - 60);
        p = await pass();
        assert.deepEqual(p.advanced, [good], `phase ${phase + 1} soaked: it advances`);
      }
      const done = await rollout(good);
      assert.equal(done.state, "completed");
      assert.deepEqual(done.phases.map((p: any) => p.members), [1, 1, 2, 2]);
      assert.deepEqual(
        done.events.filter((e: any) => e.kind === "advanced").map((
          e: any,
        ) => [e.actor, e.detail.auto]),
        Array(3).fill([daemonActor, true]),
        "advanced by the daemon each time",
      );
      assert.equal(done.events.at(-1).kind, "completed");
      assert.deepEqual(
        new Set(phases.flat().map((a) => a.uid)),
        new Set(east.map((a) => a.uid)),
        "each appliance of east in one phase",
      );
      for (const a of east) {
        assert.equal(await installed(a, "vscreen"), "1.0.0");
        assert.equal(await a.box.readRoot("vscreen/version"), "1.0.0");
      }
      assert.equal((await notices(good)).length, 0);

      // (b) The next release scans 60 % fewer mails: the canary phase (2 of east) is judged on
      // vscreen.mailsScanned against control (the 4 others, still on 1.0.0) and fails.
      const bad = await api(noc, "POST", "/v1/admin/rollouts", {
        component: { kind: "package", app: "vscreen", name: "vscreen", version: "1.1.0" },
        target: { type: "site", value: "east" },
        phases: [
          {
            count: 2,
            soakS: 3600,
            gates: {
              metric: {
                path: "vscreen.mailsScanned",
                maxDropPercent: 30,
                minAppliances: 2,
                minBeats: 1,
              },
            },
          },
          { count: 3, soakS: 3600 },
          { count: 4, soakS: 3600 },
          { percent: 100, soakS: 0 },
        ],
        rollback: true,
      });
      assert.equal(bad.status, 201, JSON.stringify(bad.body));
      const badId = bad.body.id as number;
      assert.equal(bad.body.previousVersion, "1.0.0", "the completed rollout's release");
      const canaries = await joined(badId, 0);
      assert.equal(canaries.length, 2);
      const control = east.filter((a) => !canaries.includes(a));
      // Everyone in east cycles: the canaries install 1.1.0, control beats its mails on 1.0.0.
      await cycle(east);
      let p = await pass();
      assert.deepEqual(p.failed, []);
      let got = await rollout(badId);
      assert.equal(got.evaluation.figures.metric.control.appliances, 4);
      assert.equal(got.evaluation.figures.metric.phase.appliances, 0, "not on 1.1.0 yet");
      assert.equal(got.heldSince, null, "a gate not judged yet holds nothing");
      // The canaries beat 1.1.0 with what its scanner got through.
      await cycle(canaries);
      for (const a of canaries) assert.equal(await installed(a, "vscreen"), "1.1.0");
      p = await pass();
      assert.deepEqual(p.failed, [badId]);
      got = await rollout(badId);
      assert.equal(got.state, "failed");
      assert.equal(got.phase, 0, "stopped at the canary phase");
      const metric = got.evaluation.figures.metric;
      assert.deepEqual([metric.phase.appliances, metric.control.appliances], [2, 4]);
      assert.ok(metric.ratio > 0.3 && metric.ratio < 0.5, `phase/control ${metric.ratio}`);
      assert.deepEqual(got.events.slice(-2).map((e: any) => e.kind), ["failed", "rolled_back"]);
      for (let i = 0; i < 2; i++) assert.deepEqual((await pass()).failed, []);
      const paged = await notices(badId);
      assert.equal(paged.length, 1, "one notice, however many passes");
      assert.match(paged[0]!.text, /failed on metric: vscreen\.mailsScanned: median \d+/);
      assert.match(paged[0]!.text, /% below control; at most 30 % below\)/);
      assert.match(paged[0]!.text, /go back to 1\.0\.0$/);
      // The canaries' agents install 1.0.0 again, as any version change; control never left it.
      for (const r of await cycle(canaries)) {
        assert.ok(
          r.events.some((e) => e.event === "installed" && e.component === "vscreen/vscreen@1.0.0"),
          r.stdout,
        );
      }
      for (const a of canaries) {
        assert.equal(await installed(a, "vscreen"), "1.0.0");
        const history = (await a.box.readRoot("vscreen/history"))!.trim().split("\n");
        assert.deepEqual(history.slice(-2), [
          "install 1.1.0 from 1.0.0",
          "install 1.0.0 from 1.1.0",
        ]);
      }
      for (const a of control) {
        assert.equal(await installed(a, "vscreen"), "1.0.0");
        assert.equal(await a.box.readRoot("vscreen/history"), "install 1.0.0 from none\n");
      }

      // (c) filter 3.0.0 to all 13: 10 canaries, 3 of them with a full disk.
      for (const a of await west) byUid.set(a.uid, a);
      const filter = await api(noc, "POST", "/v1/admin/rollouts", {
        component: { kind: "package", app: "filter", name: "filter", version: "3.0.0" },
        target: { type: "all" },
        phases: [{ count: 10, soakS: 600 }, { count: 11, soakS: 600 }, {
          count: 12,
          soakS: 600,
        }, { percent: 100, soakS: 0 }],
      });
      assert.equal(filter.status, 201, JSON.stringify(filter.body));
      const filterId = filter.body.id as number;
      const tens = await joined(filterId, 0);
      assert.equal(tens.length, 10);
      const full = tens.slice(0, 3);
      for (const a of full) await Deno.writeTextFile(`${a.box.root}/disk-full`, "");
      await Promise.all([cycle(full, 2), cycle(tens.slice(3))]);
      p = await pass();
      assert.deepEqual(p.failed, [filterId]);
      got = await rollout(filterId);
      assert.equal(got.state, "failed");
      assert.equal(got.phase, 0);
      assert.deepEqual(got.phases.map((ph: any) => ph.members), [10, 0, 0, 0]);
      const failedEvent = got.events.find((e: any) => e.kind === "failed");
      assert.equal(failedEvent.detail.gate, "stop");
      const failedMembers = await api(
        noc,
        "GET",
        `/v1/admin/rollouts/${filterId}/appliances?state=failed`,
      );
      assert.deepEqual(
        failedMembers.body.items.map((m: any) => m.uid).sort(),
        full.map((a) => a.uid).sort(),
      );
      assert.deepEqual((await pass()).failed, []);
      const stopped = await notices(filterId);
      assert.equal(stopped.length, 1);
      assert.match(stopped[0]!.text, /failed on stop: 3 of 10 failed \(30 %; threshold 20 %/);
      for (const a of tens.slice(3)) assert.equal(await a.box.readRoot("filter/version"), "3.0.0");
      for (const a of full) assert.equal(await a.box.readRoot("filter/version"), null);
    } finally {
      await west?.catch(() => {});
      for (const a of fleet) await a.box.remove();
      await noc.close();
      await db.close();
    }
  },
});
