/**
 * Webhook targets are independent queues, and a slow receiver never stalls notices: real HTTP
 * receivers (tests/_webhook.ts), a real outbox on PGlite and PostgreSQL, an injected clock.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { startWebhook } from "./_webhook.ts";
import {
  attemptTimeoutMs,
  createNotifier,
  maxTimeouts,
  type Notifier,
} from "../noc/services/notifier.ts";
import { ManualClock } from "../noc/clock.ts";
import { memoryLogger } from "../protocol/util/log.ts";
import type { Db } from "../noc/db/db.ts";

async function queue(db: Db, notifier: Notifier, clock: ManualClock, n: number) {
  for (let i = 0; i < n; i++) {
    await db.begin((tx) =>
      notifier.enqueue(tx, { kind: "test", text: `notice ${i}`, payload: {} }, clock.now())
    );
  }
}

/** `p`, or a failure naming `what` when it has not settled after `ms` (a guard, not a wait). */
async function settles<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const ids = (bodies: Array<Record<string, unknown>>) => bodies.map((b) => b.noticeId as number);

dbTest("a slow webhook does not delay another webhook's notices", async ({ db }) => {
  const slow = startWebhook();
  const fast = startWebhook();
  // The delivery pass, awaited before the database closes whatever happens (left running, a
  // failed wait's pass wrote on a closed connection: an uncaught error hid the real failure).
  let pass: Promise<unknown> = Promise.resolve();
  try {
    const clock = new ManualClock();
    // The slow one first: targets used to be served one after the other, in this order.
    const notifier = await createNotifier({
      db,
      clock,
      log: memoryLogger(),
      webhooks: [slow.url, fast.url],
      autoDeliver: false,
    });
    slow.held = true;
    await queue(db, notifier, clock, 8);
    const delivering = notifier.deliver();
    pass = delivering;
    // The fast receiver gets all eight while the slow one still holds its answer to the first.
    await settles(fast.waitFor(8), 30_000, "the fast webhook's notices");
    assert.equal(slow.received.length, 1, "the slow one is still on its first notice");
    slow.held = false;
    slow.release();
    const report = await delivering;
    assert.equal(report.delivered, 8 * 3, "log, slow and fast: each notice once");
    assert.deepEqual(ids(slow.received), ids(fast.received), "same notices, same order");
    assert.equal(new Set(ids(slow.received)).size, 8);
  } finally {
    slow.held = false;
    slow.release();
    await pass.catch(() => {});
    await slow.close();
    await fast.close();
  }
});

dbTest(
  "a webhook slower than the timeout gets each notice a bounded number of times, and later notices still go",
  async ({ db }) => {
    const hook = startWebhook();
    try {
      const clock = new ManualClock();
      const log = memoryLogger();
      const baseMs = 40;
      const notifier = await createNotifier({
        db,
        clock,
        log,
        webhooks: [hook.url],
        autoDeliver: false,
        timeoutMs: baseMs,
      });
      assert.deepEqual([0, 1, 2, 5].map((t) => attemptTimeoutMs(baseMs, t)), [40, 80, 160, 160]);
      hook.stalled = true;
      await queue(db, notifier, clock, 3);
      let abandoned = 0;
      for (let pass = 0; pass < 30 && abandoned < 3; pass++) {
        abandoned += (await notifier.deliver()).abandoned;
        clock.advance(700);
      }
      assert.equal(abandoned, 3, "every notice given up after its attempts");
      const times = new Map<number, number>();
      for (const id of ids(hook.received)) times.set(id, (times.get(id) ?? 0) + 1);
      assert.equal(times.size, 3, "every notice reached the receiver");
      for (const [id, n] of times) assert.equal(n, maxTimeouts, `notice ${id} sent ${n} times`);
      assert.ok(log.lines.some((l) => l.event === "notice_delivery_abandoned"));

      // The receiver answers in time again: the next notice goes through at once, once.
      hook.stalled = false;
      await queue(db, notifier, clock, 1);
      const report = await notifier.deliver();
      assert.equal(report.delivered, 2, "the new notice, to the log and to the webhook");
      assert.equal(hook.received.length, 3 * maxTimeouts + 1);
      const rows = await db.sql<{ abandoned: number; delivered: number; pending: number }>`
        select count(*) filter (where abandoned_at is not null)::int as abandoned,
          count(*) filter (where delivered_at is not null)::int as delivered,
          count(*) filter (where delivered_at is null and abandoned_at is null)::int as pending
        from notice_deliveries where target like 'webhook:%'`;
      assert.deepEqual(rows[0], { abandoned: 3, delivered: 1, pending: 0 });
    } finally {
      await hook.close();
    }
  },
);

dbTest(
  "a webhook that redirects is not followed: the notice counts as not delivered",
  async ({ db }) => {
    const inner = startWebhook();
    let redirected = 0;
    const redirector = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
      redirected++;
      return new Response(null, { status: 307, headers: { location: inner.url } });
    });
    try {
      const clock = new ManualClock();
      const log = memoryLogger();
      const notifier = await createNotifier({
        db,
        clock,
        log,
        webhooks: [`http://127.0.0.1:${redirector.addr.port}/hook`],
        autoDeliver: false,
      });
      await queue(db, notifier, clock, 1);
      const report = await notifier.deliver();
      assert.equal(redirected, 1);
      assert.equal(inner.received.length, 0, "the POST went nowhere else");
      assert.equal(report.delivered, 1, "to the log only");
      const failed = log.lines.find((l) => l.event === "notice_delivery_failed");
      assert.match(String(failed?.error), /307: redirects are not followed/);
    } finally {
      await redirector.shutdown();
      await inner.close();
    }
  },
);
