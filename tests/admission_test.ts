// deno-lint-ignore-file no-explicit-any
/**
 * Issue 23 item 1: admission control (noc/services/admission.ts, noc/http/middleware/admission.ts).
 * Bounded work in flight and queues per class; past them, 503 `overloaded` with `Retry-After` at
 * once, before the body is read or the signature checked; a request whose client has gone is not
 * processed; the admin API keeps its own slots during an appliance overload; the wait is measured.
 */
import assert from "node:assert/strict";
import { dbTest, holdCheckinSlot, sampleBeat, testNoc } from "./_harness.ts";
import { classBounds, createAdmission } from "../noc/services/admission.ts";
import { defaultSettings } from "../noc/config.ts";
import { admissionClass, shedAtOnce, type Timers } from "../noc/http/middleware/admission.ts";
import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import { createMetrics } from "../noc/services/metrics.ts";
import { memoryLogger } from "../protocol/util/log.ts";
import { ManualClock } from "../noc/clock.ts";

const settings = { maxInFlight: 2, maxQueue: 1, maxQueueWaitMs: 60_000, retryAfterS: 30 };

Deno.test("createAdmission() grants slots, queues one, refuses past the queue at once", async () => {
  const a = createAdmission(settings);
  const one = await a.enter("checkin");
  const two = await a.enter("checkin");
  assert.ok(one.ok && two.ok);
  const waiting = a.enter("checkin");
  assert.deepEqual(a.load().checkin, { inFlight: 2, queued: 1 });
  const full = await a.enter("checkin");
  assert.deepEqual(full, { ok: false, reason: "queue_full", queuedMs: 0 });
  // Another class is not affected.
  const admin = await a.enter("admin");
  assert.ok(admin.ok);
  if (one.ok) one.leave();
  const third = await waiting;
  assert.ok(third.ok, "the slot passed to the one waiting");
  assert.ok(third.queuedMs >= 0);
  assert.deepEqual(a.load().checkin, { inFlight: 2, queued: 0 });
  if (one.ok) one.leave(); // twice: no effect
  assert.equal(a.load().checkin.inFlight, 2);
});

Deno.test("createAdmission() drops a waiter whose client went away, and one that waited too long", async () => {
  const a = createAdmission({ ...settings, maxInFlight: 1, maxQueue: 2, maxQueueWaitMs: 20 });
  const held = await a.enter("fetch");
  assert.ok(held.ok);
  const gone = new AbortController();
  const w = a.enter("fetch", gone.signal);
  gone.abort();
  assert.equal((await w as any).reason, "client_gone");
  assert.equal(a.load().fetch.queued, 0);
  const slow = await a.enter("fetch");
  assert.equal((slow as any).reason, "queue_timeout");
  if (held.ok) held.leave();
  assert.equal(a.load().fetch.inFlight, 0, "nothing leaked");
  const aborted = new AbortController();
  aborted.abort();
  assert.equal((await a.enter("fetch", aborted.signal) as any).reason, "client_gone");
});

Deno.test("createAdmission() refuses at once what could not start within the wait", async () => {
  let t = 0;
  const a = createAdmission(
    { ...settings, maxInFlight: 1, maxQueue: 10, maxQueueWaitMs: 200 },
    () => t,
  );
  // Nothing measured yet: the queue's bound alone.
  const first = await a.enter("checkin");
  assert.ok(first.ok);
  const early = [a.enter("checkin"), a.enter("checkin"), a.enter("checkin")];
  assert.equal(a.load().checkin.queued, 3);
  t += 50;
  if (first.ok) first.leave(); // held 50 ms: the class's service time
  const granted = await early[0]!;
  assert.ok(granted.ok);
  // Two ahead at 50 ms each on one slot: 100 ms, within half the wait; a third, 150 ms, is not.
  assert.equal(a.load().checkin.queued, 2);
  assert.equal(a.full("checkin"), "expected_wait");
  assert.deepEqual(await a.enter("checkin"), { ok: false, reason: "expected_wait", queuedMs: 0 });
  // The queue's bound now, by the service time: two within half of 200 ms at 50 ms each.
  assert.deepEqual(a.pace().checkin, { serviceMs: 50, queueLimit: 2 });
  if (granted.ok) granted.leave();
  const next = await early[1]!;
  assert.equal(a.full("checkin"), null, "one ahead: 100 ms");
  const queued = a.enter("checkin");
  assert.equal(a.load().checkin.queued, 2);
  if (next.ok) next.leave();
  const third = await early[2]!;
  if (third.ok) third.leave();
  const last = await queued;
  assert.ok(next.ok && third.ok && last.ok, "every one queued within the wait got its slot");
  last.leave();
  assert.deepEqual(a.load().checkin, { inFlight: 0, queued: 0 });
});

Deno.test("createAdmission() keeps its queue when one key keeps trickling beats", async () => {
  let t = 0;
  const a = createAdmission(
    { ...settings, maxInFlight: 4, maxQueue: 100, maxQueueWaitMs: 500 },
    () => t,
  );
  // A steady 10 ms per check-in: the queue may hold 4 × 250 ÷ 10 = 100 (its bound).
  const fleet = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const e = await a.enter("checkin");
      t += 10;
      if (e.ok) e.leave();
    }
  };
  await fleet(64);
  assert.deepEqual(a.pace().checkin, { serviceMs: 10, queueLimit: 100 });
  // Review 23e: two bodies trickled for 30 s; review 23g: then two held 500 ms for every five of
  // the fleet's check-ins, without end (a moving average went to ten times the fleet's holds).
  const trickle = async () => {
    const two = [await a.enter("checkin"), await a.enter("checkin")];
    t += 30_000;
    for (const e of two) if (e.ok) e.leave();
  };
  await trickle();
  assert.deepEqual(a.pace().checkin, { serviceMs: 10, queueLimit: 100 });
  for (let round = 0; round < 40; round++) {
    await trickle();
    await fleet(5);
  }
  assert.deepEqual(a.pace().checkin, { serviceMs: 10, queueLimit: 100 });
  // A real slowdown — most holds 200 ms — does move it: the queue shrinks to what starts in time.
  for (let i = 0; i < 64; i++) {
    const e = await a.enter("checkin");
    t += 200;
    if (e.ok) e.leave();
  }
  assert.deepEqual(a.pace().checkin, { serviceMs: 200, queueLimit: 5 });
});

Deno.test("createAdmission() tells of sheds at the first, then at most once a minute", () => {
  const a = createAdmission(settings);
  assert.deepEqual(a.shedSummary("checkin", "queue_full", 1_000), {
    sinceMs: 0,
    counts: { "checkin queue_full": 1 },
  });
  assert.equal(a.shedSummary("checkin", "queue_full", 30_000), null);
  assert.equal(a.shedSummary("fetch", "expected_wait", 60_999), null);
  assert.deepEqual(a.shedSummary("checkin", "queue_full", 61_000), {
    sinceMs: 60_000,
    counts: { "checkin queue_full": 2, "fetch expected_wait": 1 },
  });
});

Deno.test("admissionClass() puts check-ins first, exempts health, metrics and wake-ups", () => {
  assert.equal(admissionClass("POST", "/v1/beats"), "checkin");
  assert.equal(admissionClass("POST", "/v1/checkin"), "checkin");
  // Bodies read before anything proves who sends them: a class of their own (review 23a).
  assert.equal(admissionClass("POST", "/v1/enroll"), "enrol");
  assert.equal(admissionClass("POST", "/v1/local/enroll"), "enrol");
  assert.equal(admissionClass("GET", "/v1/catalog"), "fetch");
  assert.equal(admissionClass("GET", "/v1/components/7"), "download");
  assert.equal(admissionClass("GET", "/v1/local/components/7"), "download");
  assert.equal(admissionClass("GET", "/v1/admin/fleet"), "admin");
  assert.equal(admissionClass("POST", "/ui/releases"), "admin");
  assert.equal(admissionClass("POST", "/ui/login"), "public");
  assert.equal(admissionClass("GET", "/ui/static/console.css"), "public");
  for (const p of ["/healthz", "/metrics", "/openapi.json", "/v1/wake"]) {
    assert.equal(admissionClass("GET", p), null, p);
  }
});

dbTest(
  "an overloaded NOC answers 503 with Retry-After before reading or checking; admin still served",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { maxInFlight: 1, maxQueue: 0 } });
    try {
      const a = await noc.enrollAppliance();
      // One beat in flight: its body trickles in, so it holds the only check-in slot.
      let release!: () => void;
      const gate = new Promise<void>((r) => release = r);
      const req = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()));
      const bytes = new Uint8Array(await req.arrayBuffer());
      const slowBody = new ReadableStream<Uint8Array>({
        async start(c) {
          await gate;
          c.enqueue(bytes);
          c.close();
        },
      });
      const first = noc.app.request(
        new Request(req.url, { method: "POST", headers: req.headers, body: slowBody }),
      );
      await new Promise((r) => setTimeout(r, 0));
      const nonces = async () =>
        (await db.sql<{ n: number }>`select count(*)::int as n from request_nonces`)[0]!.n;
      const before = await nonces();
      const shed = await noc.app.request(
        await a.request("POST", "/v1/beats", sampleBeat(2, noc.clock.now())),
      );
      assert.equal(shed.status, 503);
      const body = await shed.json();
      assert.equal(body.error, "overloaded");
      const retry = Number(shed.headers.get("retry-after"));
      assert.ok(retry >= 60 && retry < 90, `Retry-After ${retry}`);
      assert.equal(await nonces(), before, "nothing read or written for it");
      // The admin API has slots of its own.
      assert.equal((await noc.admin("GET", "/v1/admin/fleet")).status, 200);
      release();
      assert.equal((await first).status, 200, "the one in flight completes");
      const metrics = await (await noc.app.request("/metrics", {
        headers: { authorization: `Bearer ${noc.adminToken}` },
      })).text();
      assert.match(metrics, /noc_shed_total\{class="checkin",reason="queue_full"\} 1/);
      assert.match(metrics, /noc_queue_wait_seconds_count\{class="checkin"\} [1-9]/);
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

Deno.test("classBounds(): check-ins and fetches wait the setting; operators at least 10 s", () => {
  const b = classBounds({ ...settings, maxQueueWaitMs: 500 });
  assert.deepEqual(
    Object.fromEntries(Object.entries(b).map(([c, x]) => [c, x.waitMs])),
    { checkin: 500, enrol: 500, fetch: 500, download: 500, admin: 10_000, public: 10_000 },
  );
  // A share of the queue may be none; of the slots, at least one.
  const none = classBounds({ ...settings, maxInFlight: 1, maxQueue: 0 });
  assert.deepEqual([none.fetch.inFlight, none.fetch.queue, none.download.queue], [1, 0, 0]);
  assert.equal(classBounds({ ...settings, maxQueueWaitMs: 30_000 }).admin.waitMs, 30_000);
  assert.equal(defaultSettings.maxQueueWaitMs, 500, "the default bounds an answered check-in");
});

for (const requestLog of ["errors", "all"] as const) {
  dbTest(
    `a request refused as it arrives is answered before the middleware chain (${`NOC_REQUEST_LOG=${requestLog}`})`,
    async ({ db }) => {
      const noc = await testNoc(db, { settings: { maxInFlight: 1, maxQueue: 0, requestLog } });
      try {
        const a = await noc.enrollAppliance();
        const { answer: first, release } = await holdCheckinSlot(noc, a, "/v1/checkin", 1);
        const shed = await noc.app.request(
          await a.request("POST", "/v1/checkin", sampleBeat(2, noc.clock.now())),
        );
        assert.equal(shed.status, 503);
        assert.equal((await shed.json()).error, "overloaded");
        assert.ok(Number(shed.headers.get("retry-after")) >= 60);
        assert.equal(shed.headers.get("x-content-type-options"), "nosniff");
        // The secure headers as on every answer (review 23e: the first hand-built 503 lacked them).
        assert.match(shed.headers.get("strict-transport-security") ?? "", /max-age=/);
        assert.equal(shed.headers.get("x-frame-options"), "SAMEORIGIN");
        assert.equal(
          noc.deps.checkins.instance.checkinShedAt !== null,
          true,
          "the shed hold knows",
        );
        const log = noc.deps.log as unknown as {
          lines: Array<{ event: string; status?: number }>;
        };
        const logged = log.lines.some((l) => l.event === "request" && l.status === 503);
        // With `all` each shed request has its line (and its request id): the chain ran.
        assert.equal(logged, requestLog === "all");
        assert.equal(shed.headers.get("x-request-id") !== null, requestLog === "all");
        // Whatever the request log's setting, the instance says it sheds (then once a minute).
        const told = log.lines.filter((l) => l.event === "requests_shed");
        assert.equal(told.length, 1);
        assert.deepEqual((told[0] as { counts?: unknown }).counts, { "checkin queue_full": 1 });
        release();
        assert.equal((await first).status, 200);
        const metrics = await (await noc.app.request("/metrics", {
          headers: { authorization: `Bearer ${noc.adminToken}` },
        })).text();
        assert.match(metrics, /noc_shed_total\{class="checkin",reason="queue_full"\} 1/);
      } finally {
        await noc.deps.wakeups.close();
      }
    },
  );
}

Deno.test("requests_shed: a short overload's count is told a minute after its first line, with no later shed", async () => {
  const log = memoryLogger();
  const deps = {
    admission: createAdmission({ maxInFlight: 1, maxQueue: 0, maxQueueWaitMs: 50, retryAfterS: 9 }),
    metrics: createMetrics(),
    log,
    settings: { requestLog: "errors" },
    clock: new ManualClock(),
    checkins: { instance: { checkinShedAt: null } },
  };
  const pending: { fn: () => void; ms: number }[] = [];
  let nowMs = 1_000;
  const timers: Timers = {
    set: (fn, ms) => pending.push({ fn, ms }),
    clear: () => {},
    now: () => nowMs,
  };
  const app = new Hono()
    .use(shedAtOnce(deps as never, secureHeaders(), timers))
    .post("/v1/checkin", (c) => c.json({ ok: true }));
  const slot = await deps.admission.enter("checkin");
  assert.ok(slot.ok);
  for (let i = 0; i < 5; i++) {
    const res = await app.request("/v1/checkin", { method: "POST", body: "{}" });
    assert.equal(res.status, 503);
  }
  const lines = () => log.lines.filter((l) => l.event === "requests_shed") as any[];
  // The first at once; the four after it are withheld, and one timer (not four) is armed for the
  // end of the minute since that line.
  assert.deepEqual(lines().map((l) => l.counts), [{ "checkin queue_full": 1 }]);
  assert.equal(pending.length, 1);
  assert.equal(pending[0]!.ms, 60_000);
  nowMs += 60_000;
  pending.shift()!.fn();
  assert.deepEqual(lines().map((l) => l.counts), [
    { "checkin queue_full": 1 },
    { "checkin queue_full": 4 },
  ], "the overload's whole count, without waiting for the next one");
  // Nothing withheld since: nothing armed, nothing more told.
  assert.equal(deps.admission.shedFlush(nowMs), null);
  await app.request("/v1/checkin", { method: "POST", body: "{}" });
  assert.equal(pending.length, 1, "a shed withheld after the closing line arms the next one");
  if (slot.ok) slot.leave();
});

Deno.test("shedFlush(): a shed's own line just before the timer is not followed by a second", () => {
  const a = createAdmission(settings);
  const line = (nowMs: number) => a.shedSummary("checkin", "queue_full", nowMs);
  assert.ok(line(0), "the first shed is told at once");
  assert.equal(line(10_000), null);
  assert.equal(a.shedFlushIn(10_000), 50_000);
  // A busy loop: a shed past the minute writes its line before the timer runs.
  assert.deepEqual(line(60_001)?.counts, { "checkin queue_full": 2 });
  assert.equal(line(60_002), null);
  assert.equal(a.shedFlushIn(60_002), null, "armed already");
  // Review 23n: the timer then wrote a second line a few ms after it. Not yet; armed again.
  assert.equal(a.shedFlush(60_005), null);
  assert.equal(a.shedFlushIn(60_005), 59_996);
  assert.deepEqual(a.shedFlush(120_001), { sinceMs: 60_000, counts: { "checkin queue_full": 1 } });
  assert.equal(a.shedFlushIn(120_002), null, "nothing withheld");
});
