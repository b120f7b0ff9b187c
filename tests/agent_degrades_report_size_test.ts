// deno-lint-ignore-file no-explicit-any
/**
 * Issue 21, items 1 and 2 (the agent's side): the report is fitted to the NOC's limits before it
 * goes, a refusal of size or shape (400, 413) is answered with the smallest valid beat, and more
 * installed components than a beat may list are named in `dropped`. Real agent processes, a real
 * `init.d` folder, a NOC served over HTTP (docs/agent.md, "When the report outgrows the NOC's
 * limits").
 */
import assert from "node:assert/strict";
import { enrolledAgent } from "./_agent.ts";
import { bulkyPlugins, detail, withServedNoc } from "./_degrades.ts";
import {
  type BeatBody,
  componentsDropped,
  fitBeat,
  jsonBytes,
  reportLimits,
  smallestBeat,
} from "../agent/beat.ts";
import { beatSchema } from "../protocol/schemas.ts";
import { DEFAULT_REPORT_LIMITS } from "../protocol/catalog.ts";

const once = ["once", "--allow-http-files"];
const opts = { sanitizeOps: false, sanitizeResources: false };

function bareBeat(over: Partial<BeatBody> = {}): BeatBody {
  return {
    seq: 7,
    sentAt: new Date(0).toISOString(),
    agentVersion: "1.0.0",
    instanceId: crypto.randomUUID(),
    hostname: "mx-01",
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

const blob = (n: number) => ({ blob: "x".repeat(n) });

Deno.test("fitBeat: an app over its limit goes first, then the largest until the body fits", () => {
  const apps: Record<string, Record<string, unknown>> = {};
  for (let i = 0; i < 18; i++) apps[`app${i}`] = blob(15_000 + i);
  apps["huge"] = blob(20_000);
  const { beat, dropped } = fitBeat(bareBeat({ apps }), DEFAULT_REPORT_LIMITS);
  assert.ok(jsonBytes(beat) <= DEFAULT_REPORT_LIMITS.bodyBytes);
  assert.match(dropped[0]!, /^apps\.huge \(20,011 bytes, over 16,384\)$/);
  // The largest of the rest went next: app17, then app16.
  assert.match(dropped[1]!, /^apps\.app17 \(15,028 bytes\)$/);
  assert.equal(dropped.length, 2);
  assert.equal(Object.keys(beat.apps).length, 17);
  assert.deepEqual(beat.dropped, dropped);
  assert.ok(beatSchema(DEFAULT_REPORT_LIMITS.appDataBytes).safeParse(beat).success);
});

Deno.test("fitBeat: components past the limit, then problems past 10, then components, reasons last", () => {
  const components = Array.from({ length: 2_001 }, (_, i) => ({
    kind: "file" as const,
    app: "demo",
    name: `f${i}`,
    version: "1.0.0",
  }));
  const { beat, dropped } = fitBeat(bareBeat({ components }), DEFAULT_REPORT_LIMITS);
  assert.equal(beat.components.length, 2_000);
  assert.deepEqual(dropped, [componentsDropped(2_001, 2_000)]);
  assert.equal(dropped[0], "components: 2,001 installed, 2,000 listed");
  assert.ok(beatSchema(DEFAULT_REPORT_LIMITS.appDataBytes).safeParse(beat).success);

  const problems = Array.from({ length: 100 }, (_, i) => ({
    code: "bad",
    message: `${i} ${"m".repeat(1999)}`,
  }));
  const small = reportLimits({ bodyBytes: 8 * 1024 });
  const fitted = fitBeat(bareBeat({ components, lastCycle: { outcome: "ok", problems } }), small);
  assert.ok(jsonBytes(fitted.beat) <= small.bodyBytes, String(jsonBytes(fitted.beat)));
  assert.ok(fitted.beat.components.length > 0 && fitted.beat.components.length < 2_000);
  // The first 10 reasons are kept: components go before them (review 21c).
  assert.deepEqual(fitted.dropped.slice(0, 2), [
    "lastCycle.problems: messages cut to 200 characters",
    "lastCycle.problems: 100 reported, 10 kept",
  ]);
  assert.equal(fitted.beat.lastCycle.problems?.length, 10);
  assert.equal(
    fitted.dropped.at(-1),
    componentsDropped(2_001, fitted.beat.components.length),
  );
  // Still too large with no component at all: then the reasons go too.
  const tiny = reportLimits({ bodyBytes: 1024 });
  const last = fitBeat(bareBeat({ components, lastCycle: { outcome: "ok", problems } }), tiny);
  assert.equal(last.beat.components.length, 0);
  assert.equal(last.beat.lastCycle.problems, undefined);
  assert.ok(
    last.dropped.includes("lastCycle.problems: 100 reported, none kept"),
    last.dropped.join("; "),
  );
});

Deno.test("smallestBeat: no apps; the reasons kept, then the outcome alone, then no components", () => {
  const problems = Array.from(
    { length: 12 },
    (_, i) => ({ code: `p${i}`, message: "m".repeat(900) }),
  );
  const components = [{ kind: "file" as const, app: "demo", name: "f", version: "1" }];
  const { beat } = fitBeat(
    bareBeat({
      apps: { a: blob(10), b: blob(10) },
      components,
      lastCycle: { outcome: "partial", finishedAt: new Date(0).toISOString(), problems },
    }),
    DEFAULT_REPORT_LIMITS,
  );
  const reasons = smallestBeat(beat, "why", { step: "reasons", installed: 1 });
  assert.deepEqual(reasons.apps, {});
  assert.equal(reasons.lastCycle.problems?.length, 10);
  assert.equal(reasons.lastCycle.problems?.[0]?.message.length, 200);
  assert.equal(reasons.lastCycle.finishedAt, new Date(0).toISOString());
  assert.deepEqual(reasons.dropped, [
    "why",
    "apps: all 2 (a, b)",
    "lastCycle.problems: 12 reported, 10 kept",
    "lastCycle: messages cut to 200 characters",
  ]);
  const outcome = smallestBeat(beat, "why", { step: "outcome", installed: 1 });
  assert.deepEqual(outcome.lastCycle, { outcome: "partial" });
  assert.deepEqual(outcome.components, components);
  assert.deepEqual(outcome.dropped, [
    "why",
    "apps: all 2 (a, b)",
    "lastCycle: all but its outcome (12 problems)",
  ]);
  const bare = smallestBeat(beat, "why", { step: "bare", installed: 1 });
  assert.deepEqual(bare.components, []);
  assert.equal(bare.dropped?.at(-1), "components: 1 installed, 0 listed");
  for (const b of [reasons, outcome, bare]) assert.ok(beatSchema(1).safeParse(b).success);
});

Deno.test({
  name: "18 plug-ins of 15 KB: every beat reaches the NOC, and `dropped` names the apps left out",
  ...opts,
  fn: () =>
    withServedNoc({}, async (noc) => {
      const box = await enrolledAgent(noc);
      try {
        await bulkyPlugins(box.state, 18, 15_000);
        for (const seq of [1, 2]) {
          const r = await box.run(once);
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.ok(!r.events.some((e) => e.event === "beat_refused"), r.stdout);
          const fitted = r.events.find((e) => e.event === "beat_fitted");
          assert.ok(fitted, "the report was fitted before it went");
          assert.ok(fitted.bytes <= 256 * 1024);
          const report = (await detail(noc, box)).lastReport;
          assert.equal(report.seq, seq, "this cycle's beat landed");
          const kept = Object.keys(report.apps);
          const left = report.dropped.map((d: string) => /^apps\.(\w+) \(/.exec(d)?.[1]);
          assert.ok(kept.length >= 15 && left.length >= 1, JSON.stringify(report.dropped));
          assert.deepEqual(
            [...kept, ...left].sort(),
            [...Array(18).keys()].map((i) => `app${i + 10}`),
          );
        }
        // Limits came from the signed catalog the first cycle stored.
        const stored = JSON.parse(await Deno.readTextFile(`${box.state}/catalog.json`));
        assert.equal(JSON.parse(stored.catalog).limits?.bodyBytes, 256 * 1024);
      } finally {
        await box.remove();
      }
    }),
});

Deno.test({
  name:
    "a NOC with a smaller body limit answers 413: the next request is the smallest beat, and it lands",
  ...opts,
  fn: () =>
    withServedNoc({ maxBodyBytes: 64 * 1024 }, async (noc) => {
      const box = await enrolledAgent(noc);
      try {
        await bulkyPlugins(box.state, 18, 15_000);
        // No catalog stored yet: the agent assumes the default 256 KiB, and the NOC says 413.
        const r = await box.run(once);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const refused = r.events.find((e) => e.event === "beat_refused");
        assert.equal(refused?.status, 413);
        const smallest = r.events.find((e) => e.event === "beat_smallest");
        assert.equal(smallest?.status, 200, "the smallest beat landed");
        assert.equal(smallest?.step, "reasons", "at the first step: the reasons kept");
        const events = r.events.map((e) => e.event);
        assert.equal(events.indexOf("beat_smallest"), events.indexOf("beat_refused") + 1);
        // Under a seq of its own: the NOC may have recorded the refused one's (review 23).
        let report = (await detail(noc, box)).lastReport;
        assert.equal(report.seq, 2);
        assert.deepEqual(report.apps, {});
        assert.deepEqual(report.lastCycle, { outcome: "none" });
        assert.match(
          report.dropped[0],
          /^the NOC refused the full report \(413 body_too_large\): a smaller one, without$/,
        );
        // The fitted report had dropped one app (equal sizes: by name), the smallest one the rest.
        assert.equal(report.dropped[1], "apps.app10 (15,011 bytes)");
        assert.match(report.dropped.join("\n"), /^apps: all 17 \(app11, app12, .*app27\)$/m);

        // The catalog it fetched announced 64 KiB: the next report is fitted to it, and says why
        // the last one was cut.
        const r2 = await box.run(once);
        assert.equal(r2.code, 0, r2.stdout + r2.stderr);
        assert.ok(!r2.events.some((e) => e.event === "beat_refused"), r2.stdout);
        report = (await detail(noc, box)).lastReport;
        assert.equal(report.seq, 3);
        assert.ok(Object.keys(report.apps).length >= 1 && Object.keys(report.apps).length <= 4);
        assert.ok(report.dropped.length >= 14);
        assert.ok(
          report.lastCycle.problems.some((p: any) =>
            p.code === "beat_refused" && /413/.test(p.message)
          ),
        );
      } finally {
        await box.remove();
      }
    }),
});

Deno.test({
  name: "more installed components than a beat lists: it lists 2,000, `dropped` says so, it lands",
  ...opts,
  fn: () =>
    withServedNoc({}, async (noc) => {
      const box = await enrolledAgent(noc);
      try {
        // 2,001 installed small files, as catalog.cur records them.
        const components = Array.from({ length: 2_001 }, (_, i) => ({
          kind: "file",
          app: "demo",
          name: `f${String(i).padStart(4, "0")}`,
          version: "1.0.0",
          sha256: "0".repeat(64),
          installedAt: new Date().toISOString(),
          destination: `demo/f${i}`,
        }));
        await Deno.writeTextFile(
          `${box.state}/catalog.cur`,
          JSON.stringify({ format: "noc-catalog-cur/1", components }),
        );
        const r = await box.run(once);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.ok(!r.events.some((e) => e.event === "beat_refused"), r.stdout);
        const report = (await detail(noc, box)).lastReport;
        assert.equal(report.seq, 1);
        assert.equal(report.components.length, 2_000);
        assert.deepEqual(report.dropped, ["components: 2,001 installed, 2,000 listed"]);
      } finally {
        await box.remove();
      }
    }),
});
