/**
 * Review of issue 21, the agent's leftovers (unit level, no processes, no clock):
 *
 * 1. the debris sweep removes only the agent's own temporary files, inside the state folder or the
 *    appliance root; any other path `temps.json` lists is left alone and logged;
 * 2. an `attempts.json` record whose path-forming fields are not of their shape is ignored;
 * 3. one application's data the NOC would refuse for its shape (NUL, unpaired surrogate, too deep)
 *    drops that application alone, named in `dropped`;
 * 4. problems cut to fit are counted in `dropped`, and that line survives the cap on `dropped`.
 */
import assert from "node:assert/strict";
import { sweepDebris, tempsPath } from "../agent/debris.ts";
import { attemptsPath, loadAttempts } from "../agent/install_attempts.ts";
import {
  type BeatBody,
  cappedDropped,
  fitBeat,
  problemsDropped,
  smallestBeat,
} from "../agent/beat.ts";
import { silentLog } from "../agent/log.ts";
import { BEAT_MAX_DROPPED, beatSchema } from "../protocol/schemas.ts";
import { DEFAULT_REPORT_LIMITS } from "../protocol/catalog.ts";

const exists = (p: string) => Deno.lstat(p).then(() => true, () => false);

Deno.test("debris: only the agent's own temporary files inside the state folder or root go", async () => {
  const top = await Deno.makeTempDir();
  try {
    const state = `${top}/state`;
    const root = `${top}/root`;
    const outside = `${top}/outside`;
    for (const d of [state, `${root}/etc`, outside]) await Deno.mkdir(d, { recursive: true });
    await Deno.symlink(outside, `${root}/escape`);
    const paths = {
      rootTemp: `${root}/etc/.app.conf.noc-1a2b3c4d`,
      stateTemp: `${state}/state.json.tmp-deadbeef`,
      dotted: `${root}/etc/../etc/.other.noc-0f0f0f0f`,
      outsideTemp: `${outside}/.x.noc-12345678`,
      upAndOut: `${root}/etc/../../outside/.y.noc-87654321`,
      viaLink: `${root}/escape/.z.noc-abcdef12`,
      notTemp: `${root}/etc/passwd`,
      wrongHex: `${root}/etc/.app.conf.noc-XYZ12345`,
      rootLink: `${root}/etc/.link.noc-aaaaaaaa`,
    };
    for (
      const p of [
        paths.rootTemp,
        paths.stateTemp,
        `${root}/etc/.other.noc-0f0f0f0f`,
        paths.outsideTemp,
        `${outside}/.y.noc-87654321`,
        `${outside}/.z.noc-abcdef12`,
        paths.notTemp,
        paths.wrongHex,
      ]
    ) await Deno.writeTextFile(p, "x");
    // A link inside the root, named as a temp, to a file outside: the link goes, never its target.
    await Deno.writeTextFile(`${outside}/target`, "keep");
    await Deno.symlink(`${outside}/target`, paths.rootLink);
    await Deno.writeTextFile(
      tempsPath(state),
      JSON.stringify({ format: "noc-agent-temps/1", paths: Object.values(paths) }),
    );
    const refused: unknown[] = [];
    const log = { ...silentLog, warn: (e: string, f?: unknown) => refused.push([e, f]) };

    const removed = await sweepDebris(state, { root, log });

    assert.deepEqual(removed.sort(), [
      `${root}/etc/.app.conf.noc-1a2b3c4d`,
      `${root}/etc/.link.noc-aaaaaaaa`,
      `${root}/etc/.other.noc-0f0f0f0f`,
      `${state}/state.json.tmp-deadbeef`,
    ]);
    for (
      const kept of [
        `${outside}/.x.noc-12345678`,
        `${outside}/.y.noc-87654321`,
        `${outside}/.z.noc-abcdef12`,
        `${outside}/target`,
        paths.notTemp,
        paths.wrongHex,
      ]
    ) assert.ok(await exists(kept), kept);
    assert.equal(refused.length, 5);
    assert.ok(refused.every((r) => (r as [string])[0] === "debris_refused"));
    // The list is emptied either way.
    assert.deepEqual(JSON.parse(await Deno.readTextFile(tempsPath(state))).paths, []);

    // Without a root, only the state folder counts.
    await Deno.writeTextFile(paths.rootTemp, "x");
    await Deno.writeTextFile(
      tempsPath(state),
      JSON.stringify({ format: "noc-agent-temps/1", paths: [paths.rootTemp] }),
    );
    assert.deepEqual(await sweepDebris(state), []);
    assert.ok(await exists(paths.rootTemp));
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("attempts: records with a bad digest, name or staging folder are ignored", async () => {
  const state = await Deno.makeTempDir();
  try {
    const good = {
      kind: "package",
      app: "mail",
      name: "filter",
      version: "1.0.0",
      sha256: "a".repeat(64),
      runs: 1,
      phase: "running",
      bootId: null,
      staging: `${state}/staging/0a1b2c3d-0000-4000-8000-00000000abcd`,
      startedAt: new Date(0).toISOString(),
      updatedAt: new Date(0).toISOString(),
    };
    const installs = [
      good,
      { ...good, name: "a", sha256: "../../../etc/passwd" },
      { ...good, name: "b", sha256: "A".repeat(64) },
      { ...good, name: "c", sha256: "a".repeat(63) },
      { ...good, app: "../x" },
      { ...good, name: "d", staging: "/etc" },
      { ...good, name: "e", staging: `${state}/staging/../../etc` },
      { ...good, name: "f", staging: null },
      { junk: true },
    ];
    await Deno.writeTextFile(
      attemptsPath(state),
      JSON.stringify({ format: "noc-agent-attempts/1", installs }),
    );
    const loaded = await loadAttempts(state);
    assert.deepEqual(loaded.map((a) => a.name), ["filter", "f"]);

    // A damaged file reads as empty, as before.
    await Deno.writeTextFile(attemptsPath(state), "{not json");
    assert.deepEqual(await loadAttempts(state), []);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

function beat(over: Partial<BeatBody> = {}): BeatBody {
  return {
    seq: 1,
    sentAt: new Date(0).toISOString(),
    agentVersion: "1.0.0",
    health: {
      load: [0, 0, 0],
      memory: { totalBytes: 1, availableBytes: 1 },
      disks: [],
      uptimeS: 1,
    },
    components: [],
    lastCycle: { outcome: "ok" },
    apps: {},
    ...over,
  };
}

Deno.test("beat: one app's NUL, lone surrogate or depth drops that app alone, named", () => {
  let deep: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < 20; i++) deep = { d: deep };
  const apps = {
    scanner: { text: "a\u0000b" },
    lone: { text: "\ud800" },
    badkey: { ["k\u0000"]: 1 },
    deep,
    fine: { queue: 3, nested: { ok: "yes" } },
  };
  const fitted = fitBeat(beat({ apps }), DEFAULT_REPORT_LIMITS);
  assert.deepEqual(Object.keys(fitted.beat.apps), ["fine"]);
  assert.deepEqual(fitted.dropped, [
    "apps.scanner (contains NUL)",
    "apps.lone (contains unpaired surrogates)",
    "apps.badkey (a key contains NUL or unpaired surrogates)",
    "apps.deep (nests deeper than 16 levels)",
  ]);
  // The NOC's own schema accepts what is left, so the other apps still arrive.
  assert.ok(beatSchema(DEFAULT_REPORT_LIMITS.appDataBytes).safeParse(fitted.beat).success);
  // Without the check, the NOC refuses the whole beat.
  assert.ok(!beatSchema(DEFAULT_REPORT_LIMITS.appDataBytes).safeParse(beat({ apps })).success);
});

Deno.test("beat: problems cut to fit are counted in `dropped`, even past its cap", () => {
  const problems = Array.from({ length: 21 }, (_, i) => ({
    code: `p${i}`,
    message: `${i} ${"m".repeat(150)}`,
  }));
  // Cut to fit the body.
  const fitted = fitBeat(
    beat({ lastCycle: { outcome: "partial", problems } }),
    { ...DEFAULT_REPORT_LIMITS, bodyBytes: 2500 },
  );
  assert.equal(fitted.beat.lastCycle.problems?.length, 10);
  assert.ok(fitted.dropped.includes("lastCycle.problems: 21 reported, 10 kept"));
  assert.equal(problemsDropped(21, 10), "lastCycle.problems: 21 reported, 10 kept");

  // After a refusal: 10 sent, the count said, even when many apps crowd `dropped`.
  const apps: Record<string, Record<string, unknown>> = {};
  for (let i = 0; i < 64; i++) apps[`a${String(i).padStart(2, "0")}`] = { n: i };
  const full = fitBeat(
    beat({ apps, lastCycle: { outcome: "partial", problems } }),
    DEFAULT_REPORT_LIMITS,
  );
  const many = [...Array.from({ length: 70 }, (_, i) => `apps.x${i} (1 bytes)`)];
  const smallest = smallestBeat({ ...full.beat, dropped: many }, "the NOC refused", {
    step: "reasons",
    installed: 0,
  });
  assert.equal(smallest.lastCycle.problems?.length, 10);
  assert.equal(smallest.dropped?.length, BEAT_MAX_DROPPED);
  assert.equal(smallest.dropped?.[0], "the NOC refused");
  assert.ok(smallest.dropped?.includes("lastCycle.problems: 21 reported, 10 kept"));
  assert.match(smallest.dropped!.at(-1)!, /^and \d+ more$/);
  assert.ok(beatSchema(1).safeParse(smallest).success);

  // cappedDropped keeps order and leaves short lists alone.
  assert.deepEqual(cappedDropped(["a", "b"]), ["a", "b"]);
});
