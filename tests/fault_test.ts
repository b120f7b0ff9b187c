/**
 * Fault tests with real processes and real sockets: a webhook that never
 * answers, the NOC killed in the middle of a publish, PostgreSQL stopped while
 * appliances check in, and the agent's disk filling up during a download.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { createNotifier } from "../lib/notifier.ts";
import { memoryLogger } from "../lib/log.ts";
import { ManualClock } from "../lib/clock.ts";
import { sweep } from "../lib/sweep.ts";

/** A TCP server that accepts connections and never answers. */
function silentServer(): { url: string; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const c of listener) conns.push(c);
    } catch {
      // closed
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/hook`,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
    },
  };
}

dbTest(
  "a webhook that never answers times out, is retried later, and never holds up the sweep",
  async ({ db }) => {
    const hook = silentServer();
    try {
      const clock = new ManualClock(new Date());
      const notifier = await createNotifier({
        db,
        clock,
        log: memoryLogger(),
        webhooks: [hook.url],
        timeoutMs: 300,
        autoDeliver: false,
      });
      const noc = await testNoc(db, { clock, notifier });
      const a = await noc.enrollAppliance({ hostname: "gw-a" });
      const b = await noc.enrollAppliance({ hostname: "gw-b" });
      await a.beat();
      await b.beat();
      const overdue = async (uid: string) =>
        await db.sql`update appliances set next_due_at = ${new Date(
          clock.now().getTime() - 3600_000,
        )} where uid = ${uid}`;
      await overdue(a.uid);
      assert.deepEqual((await sweep({ ...noc.deps, graceS: 300 })).alerted, [a.uid]);

      // A delivery pass is under way, stuck on the silent webhook; a sweep meanwhile still finishes.
      let passDone = false;
      const pass = notifier.deliver().finally(() => passDone = true);
      await overdue(b.uid);
      const during = await sweep({ ...noc.deps, graceS: 300 });
      assert.deepEqual(during.alerted, [b.uid]);
      assert.equal(passDone, false, "the sweep finished while the delivery was still waiting");
      const report = await pass;
      assert.ok(report.failed >= 1, JSON.stringify(report));
      const [row] = await db.sql<{ attempts: number; last_error: string; next_attempt_at: Date }>`
      select attempts, last_error, next_attempt_at from notice_deliveries
      where target like 'webhook:%' and delivered_at is null order by notice_id limit 1`;
      assert.equal(row!.attempts, 1);
      assert.match(row!.last_error, /time|abort/i);
      assert.ok(row!.next_attempt_at.getTime() > clock.now().getTime(), "retried later, not now");
      // Nothing is lost: both notices wait for the webhook, and the log target has them.
      const [waiting] = await db.sql<{ n: number }>`
      select count(*)::int as n from notice_deliveries where target like 'webhook:%' and delivered_at is null`;
      assert.equal(waiting!.n, 2);
    } finally {
      hook.close();
    }
  },
);
