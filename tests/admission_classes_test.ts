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
  "slow enrolment and sign-in bodies hold only their own classes: beats and operators are served",
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
      // Enrolments: 4 slots and 4 waiting (a quarter of each), 4 at once from one address.
      for (let i = 0; i < 8; i++) hold("/v1/enroll", `198.51.100.${i % 2 === 0 ? 1 : 2}`);
      await new Promise((r) => setTimeout(r, 0));
      const busy = await hold("/v1/enroll", "198.51.100.1");
      assert.equal(busy.status, 503, "a fifth from one address");
      assert.match((await busy.json()).message, /too many from this address/);
      const full = await hold("/v1/enroll", "198.51.100.3");
      assert.equal(full.status, 503, "the enrolment class is full");
      // Sign-in pages: 8 slots of their own, 4 from one address.
      for (let i = 0; i < 4; i++) hold("/ui/login", "203.0.113.9");
      await new Promise((r) => setTimeout(r, 0));
      const login = await hold("/ui/login", "203.0.113.9");
      assert.equal(login.status, 503);
      assert.ok(Number(login.headers.get("retry-after")) <= 7, "operators: a few seconds");

      // Meanwhile a returning appliance's beat, and the operators, are served.
      const beat = await noc.app.request(
        await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now())),
      );
      assert.equal(beat.status, 200, await beat.text());
      assert.equal((await noc.admin("GET", "/v1/admin/fleet")).status, 200);

      const metrics = await (await noc.app.request("/metrics", {
        headers: { authorization: `Bearer ${noc.adminToken}` },
      })).text();
      assert.match(metrics, /noc_shed_total\{class="enrol",reason="address_busy"\} 1/);
      assert.match(metrics, /noc_shed_total\{class="enrol",reason="queue_full"\} 1/);
      assert.match(metrics, /noc_shed_total\{class="public",reason="address_busy"\} 1/);
      assert.match(metrics, /noc_shed_total\{class="checkin",reason="queue_full"\} 0/);
      for (const h of held) h.release();
      await Promise.all(held.map((h) => h.answer));
      const load = noc.deps.admission.load();
      assert.deepEqual([load.enrol, load.public], [{ inFlight: 0, queued: 0 }, {
        inFlight: 0,
        queued: 0,
      }], "every slot given back");
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest("the overload counters are at 0 on /metrics before anything is shed", async ({ db }) => {
  const noc = await testNoc(db);
  try {
    const text = await (await noc.app.request("/metrics", {
      headers: { authorization: `Bearer ${noc.adminToken}` },
    })).text();
    for (const cls of ["checkin", "enrol", "fetch", "download", "admin", "public"]) {
      for (const reason of ["queue_full", "queue_timeout", "client_gone", "address_busy"]) {
        assert.ok(
          text.includes(`noc_shed_total{class="${cls}",reason="${reason}"} 0`),
          `${cls} ${reason}`,
        );
      }
      assert.ok(text.includes(`noc_finished_client_gone_total{class="${cls}"} 0`), cls);
    }
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
