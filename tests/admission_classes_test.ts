/**
 * Review 23a (attacker) against admission control: what unauthenticated clients can hold. Slow
 * enrolment and sign-in bodies (read before anything proves who sends them) held the check-in and
 * operator slots; downloads gave their slot back before their first byte; `/metrics` looked up
 * every guessed token unbounded. Each kind now has its bound; through the real app and middleware.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { dbTest, sampleBeat, testNoc } from "./_harness.ts";
import { createAdmission } from "../noc/services/admission.ts";
import { createMetrics } from "../noc/services/metrics.ts";
import { admission } from "../noc/http/middleware/admission.ts";
import type { AppEnv } from "../noc/http/env.ts";
import { memoryLogger } from "../protocol/util/log.ts";

/** A request body that sends nothing until `release` (a client trickling its upload). */
function stalled(): { body: ReadableStream<Uint8Array>; release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const body = new ReadableStream<Uint8Array>({
    async start(c) {
      await gate;
      c.enqueue(new TextEncoder().encode("{}"));
      c.close();
    },
  });
  return { body, release };
}

const from = (hostname: string) => ({ remoteAddr: { hostname } });

dbTest(
  "slow enrolment and sign-in bodies hold no slot: enrolments, beats and operators are served",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { maxInFlight: 16, maxQueue: 16 } });
    try {
      const a = await noc.enrollAppliance();
      const held: Array<{ release: () => void; answer: Promise<Response> }> = [];
      const hold = (path: string, address: string) => {
        const s = stalled();
        const answer = Promise.resolve(noc.app.request(
          new Request(`http://noc.test${path}`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: s.body,
          }),
          undefined,
          from(address),
        ));
        held.push({ release: s.release, answer });
        return answer;
      };
      // One address trickles 16 enrolments and 16 sign-ins (more than each class's slots): they
      // are read before any slot is asked for, 16 of one address at once.
      for (let i = 0; i < 16; i++) {
        hold("/v1/enroll", "198.51.100.1");
        hold("/ui/login", "198.51.100.1");
      }
      await new Promise((r) => setTimeout(r, 0));
      const load = noc.deps.admission.load();
      assert.deepEqual([load.enrol.inFlight, load.public.inFlight], [0, 0], "no slot held");
      const busy = await hold("/v1/enroll", "198.51.100.1");
      assert.equal(busy.status, 503, "a seventeenth from one address");
      assert.match((await busy.json()).message, /too many from this address/);
      const login = await hold("/ui/login", "198.51.100.1");
      assert.equal(login.status, 503);
      assert.ok(Number(login.headers.get("retry-after")) <= 7, "operators: a few seconds");

      // Meanwhile another appliance enrols, a returning appliance beats, and operators work.
      const other = await noc.enrollAppliance({ hostname: "while-trickled" });
      assert.ok(other.uid);
      const beat = await noc.app.request(
        await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now())),
      );
      assert.equal(beat.status, 200, await beat.text());
      assert.equal((await noc.admin("GET", "/v1/admin/fleet")).status, 200);
      const page = await noc.app.request("/ui/login", undefined, from("203.0.113.5"));
      assert.equal(page.status, 200);
      await page.body?.cancel();

      const metrics = await (await noc.app.request("/metrics", {
        headers: { authorization: `Bearer ${noc.adminToken}` },
      })).text();
      assert.match(metrics, /noc_shed_total\{class="enrol",reason="address_busy"\} 1/);
      assert.match(metrics, /noc_shed_total\{class="public",reason="address_busy"\} 1/);
      assert.match(metrics, /noc_shed_total\{class="checkin",reason="queue_full"\} 0/);
      for (const h of held) h.release();
      await Promise.all(held.map((h) => h.answer));
      const after = noc.deps.admission.load();
      assert.deepEqual([after.enrol, after.public], [{ inFlight: 0, queued: 0 }, {
        inFlight: 0,
        queued: 0,
      }], "every slot given back");
      // Every read counted back: the address may send 16 again.
      const again = noc.deps.admission.reading("enrol", "198.51.100.1");
      assert.ok(again, "the address's reads were all counted back");
      again();
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

Deno.test("a full class is refused before a stranger's body is read", async () => {
  const deps = {
    admission: createAdmission({ maxInFlight: 4, maxQueue: 0, maxQueueWaitMs: 50, retryAfterS: 9 }),
    metrics: createMetrics(),
    log: memoryLogger(),
    settings: { trustProxy: false },
  };
  let pulled = 0;
  const app = new Hono<AppEnv>()
    .use(admission(deps as never))
    .post("/v1/enroll", async (c) => c.json({ got: (await c.req.arrayBuffer()).byteLength }));
  const slot = await deps.admission.enter("enrol"); // the class's one slot, no queue
  assert.ok(slot.ok);
  const res = await app.request("/v1/enroll", {
    method: "POST",
    body: new ReadableStream<Uint8Array>({
      pull(c) {
        pulled++;
        c.enqueue(new Uint8Array(1024));
      },
    }),
  });
  assert.equal(res.status, 503);
  assert.ok(pulled <= 1, `pulled ${pulled} chunks`);
  if (slot.ok) slot.leave();
  const ok = await app.request("/v1/enroll", { method: "POST", body: "{}" });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { got: 2 });
});

dbTest("the overload counters are at 0 on /metrics before anything is shed", async ({ db }) => {
  const noc = await testNoc(db);
  try {
    const text = await (await noc.app.request("/metrics", {
      headers: { authorization: `Bearer ${noc.adminToken}` },
    })).text();
    for (const cls of ["checkin", "enrol", "fetch", "download", "admin", "public"]) {
      for (
        const reason of [
          "queue_full",
          "expected_wait",
          "queue_timeout",
          "client_gone",
          "address_busy",
        ]
      ) {
        assert.ok(
          text.includes(`noc_shed_total{class="${cls}",reason="${reason}"} 0`),
          `${cls} ${reason}`,
        );
      }
      assert.ok(text.includes(`noc_finished_client_gone_total{class="${cls}"} 0`), cls);
      // What admission holds now, and how long its queue may grow.
      assert.ok(text.includes(`noc_admission_in_flight{class="${cls}"} `), cls);
      assert.ok(text.includes(`noc_admission_queued{class="${cls}"} 0`), cls);
      assert.ok(text.includes(`noc_admission_service_seconds{class="${cls}"} `), cls);
    }
    assert.ok(text.includes(`noc_admission_queue_limit{class="checkin"} 512`));
  } finally {
    await noc.deps.wakeups.close();
  }
});

dbTest("/metrics guessed tokens count against the address until it gets 429", async ({ db }) => {
  const noc = await testNoc(db);
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 200; i++) {
      const res = await noc.app.request("/metrics", {
        headers: { authorization: `Bearer guess-${i}` },
      }, from("192.0.2.77"));
      await res.body?.cancel();
      statuses.push(res.status);
      if (res.status === 429) break;
    }
    assert.equal(statuses[0], 401);
    assert.equal(statuses.at(-1), 429, `refused ${statuses.length} guesses without a 429`);
    // Another address is not affected.
    const other = await noc.app.request("/metrics", {
      headers: { authorization: `Bearer ${noc.adminToken}` },
    }, from("192.0.2.78"));
    assert.equal(other.status, 200);
  } finally {
    await noc.deps.wakeups.close();
  }
});

/** A download route behind the admission middleware: a body of `chunks` chunks, sent as read. */
function downloads() {
  // The idle bound's timers, fired by hand.
  const armed = new Map<number, () => void>();
  let next = 0;
  const timers = {
    set: (fn: () => void) => {
      armed.set(++next, fn);
      return next;
    },
    clear: (h: unknown) => void armed.delete(h as number),
  };
  const deps = {
    admission: createAdmission({
      maxInFlight: 4, // one download slot
      maxQueue: 0,
      maxQueueWaitMs: 50,
      retryAfterS: 30,
    }),
    metrics: createMetrics(),
    log: memoryLogger(),
    settings: { trustProxy: false },
  };
  let cancelled = 0;
  const app = new Hono<AppEnv>()
    .use(admission(deps as never, { downloadIdleMs: 60_000, timers }))
    .get("/v1/components/:id", (c) => {
      let n = 0;
      return c.body(
        new ReadableStream<Uint8Array>({
          pull(ctrl) {
            if (n++ < 3) ctrl.enqueue(new Uint8Array(1024));
            else ctrl.close();
          },
          cancel() {
            cancelled++;
          },
        }),
      );
    });
  const fireIdle = () => {
    const fns = [...armed.values()];
    armed.clear();
    for (const fn of fns) fn();
    return fns.length;
  };
  return { app, deps, cancelled: () => cancelled, fireIdle };
}

Deno.test("a download holds its slot until its last byte is taken, or its client goes", async () => {
  const { app, deps } = downloads();
  const first = await app.request("/v1/components/a");
  assert.equal(first.status, 200);
  assert.equal(deps.admission.load().download.inFlight, 1, "held while its body is unread");
  const second = await app.request("/v1/components/b");
  assert.equal(second.status, 503, "the only slot is the first's");
  assert.equal((await first.arrayBuffer()).byteLength, 3 * 1024);
  assert.equal(deps.admission.load().download.inFlight, 0, "given back at the last byte");
  const third = await app.request("/v1/components/c");
  assert.equal(third.status, 200);
  await third.body!.cancel();
  assert.equal(deps.admission.load().download.inFlight, 0, "given back when its client went");
  // Review 23c: a HEAD (Hono runs the GET handler and drops its body unread) held it 60 s.
  for (let i = 0; i < 3; i++) {
    const head = await app.request("/v1/components/d", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(deps.admission.load().download.inFlight, 0, "a HEAD gives it back at once");
  }
});

Deno.test("a download whose client takes nothing is cut and gives its slot back", async () => {
  const { app, deps, cancelled, fireIdle } = downloads();
  const stuck = await app.request("/v1/components/a");
  assert.equal(stuck.status, 200);
  const reader = stuck.body!.getReader();
  await reader.read(); // one chunk, then nothing more is taken
  assert.equal(deps.admission.load().download.inFlight, 1);
  assert.equal(fireIdle(), 1, "one idle bound armed");
  assert.equal(deps.admission.load().download.inFlight, 0);
  assert.equal(cancelled(), 1, "the source stream was cancelled");
  await assert.rejects(async () => {
    while (!(await reader.read()).done) { /* drain */ }
  });
});

dbTest(
  "a body that breaks off mid-upload is 400 body_unreadable, not a server error",
  async ({ db }) => {
    const noc = await testNoc(db);
    try {
      const res = await noc.app.request(
        new Request("http://noc.test/v1/enroll", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: new ReadableStream<Uint8Array>({
            start(c) {
              c.enqueue(new TextEncoder().encode('{"token":'));
              c.error(new Error("connection reset"));
            },
          }),
        }),
      );
      assert.equal(res.status, 400);
      assert.equal((await res.json()).error, "body_unreadable");
      const log = noc.deps.log as unknown as { lines: Array<{ level: string }> };
      assert.ok(!log.lines.some((l) => l.level === "error"), "no error-level line");
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest(
  "one enrolled key trickling its beats' bodies holds at most two check-in slots",
  async ({ db }) => {
    // Review 23c: one key's 64 trickled beats took every check-in slot; the 65th check-in was
    // shed, and the shed held every overdue appliance's alert for three intervals.
    const noc = await testNoc(db, { settings: { maxInFlight: 4, maxQueue: 0 } });
    try {
      const a = await noc.enrollAppliance({ hostname: "trickler" });
      const b = await noc.enrollAppliance({ hostname: "honest" });
      const trickled: Array<{ release: () => void; answer: Promise<Response> }> = [];
      for (let i = 0; i < 3; i++) {
        const req = await a.request("POST", "/v1/beats", sampleBeat(10 + i, noc.clock.now()));
        const bytes = new Uint8Array(await req.arrayBuffer());
        let release!: () => void;
        const gate = new Promise<void>((r) => release = r);
        let reading!: () => void;
        const read = new Promise<void>((r) => reading = r);
        const answer = Promise.resolve(noc.app.request(
          new Request(req.url, {
            method: "POST",
            headers: req.headers,
            body: new ReadableStream<Uint8Array>({
              async pull(c) {
                reading(); // the NOC reads its body: authenticated, counted
                await gate;
                c.enqueue(bytes);
                c.close();
              },
            }, { highWaterMark: 0 }),
          }),
        ));
        trickled.push({ release, answer });
        // The first two are being read before the third is sent.
        if (i < 2) await read;
      }
      const third = await trickled[2]!.answer;
      assert.equal(third.status, 429, "a third in flight, before its body is read");
      assert.equal((await third.json()).error, "rate_limited");
      assert.equal(noc.deps.admission.load().checkin.inFlight, 2, "the key holds two slots");
      const honest = await noc.app.request(
        await b.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now())),
      );
      assert.equal(honest.status, 200, "another appliance is served");
      for (const t of trickled) t.release();
      assert.deepEqual(
        [(await trickled[0]!.answer).status, (await trickled[1]!.answer).status],
        [200, 200],
      );
      assert.equal(noc.deps.admission.beating(a.uid) !== null, true, "counted back");
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);
