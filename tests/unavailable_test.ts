import assert from "node:assert/strict";
import { openPostgres } from "../noc/db/db.ts";
import { ManualClock } from "../noc/clock.ts";
import { defaultSettings } from "../noc/config.ts";
import { memoryLogger } from "../protocol/util/log.ts";
import { newSeed } from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { createNotifier } from "../noc/services/notifier.ts";
import { createApp } from "../noc/app.ts";
import { createDeps } from "../noc/deps.ts";
import { generateApplianceKeys, signedRequest } from "../protocol/client.ts";
import { sampleBeat } from "./_harness.ts";
import { createWakeHub } from "../noc/services/wakeups.ts";
import { createMetrics } from "../noc/services/metrics.ts";

Deno.test({
  name: "with the database unreachable the NOC answers 503 with Retry-After, never 500",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = openPostgres("postgres://postgres@127.0.0.1:1/none", { max: 1 });
    const clock = new ManualClock();
    const log = memoryLogger();
    const app = createApp(createDeps({
      db,
      clock,
      log,
      keys: await nocKeysFromSeed(newSeed()),
      notifier: await createNotifier({ db, clock, log, autoDeliver: false }),
      settings: defaultSettings,
      wakeups: createWakeHub({ db, clock, log }),
      metrics: createMetrics(),
    }));
    try {
      const health = await app.request("http://noc.test/healthz");
      assert.equal(health.status, 503);
      assert.ok(Number(health.headers.get("retry-after")) > 0);
      assert.equal((await health.json()).database, "unreachable");
      const keys = await generateApplianceKeys();
      const beat = await app.request(
        await signedRequest({
          baseUrl: "http://noc.test",
          uid: crypto.randomUUID(),
          key: keys.signing,
          method: "POST",
          path: "/v1/beats",
          body: sampleBeat(1, clock.now()),
          now: clock.now(),
        }),
      );
      assert.equal(beat.status, 503);
      assert.equal(beat.headers.get("retry-after"), "30");
      assert.equal((await beat.json()).error, "unavailable");
      const admin = await app.request("http://noc.test/v1/admin/appliances", {
        headers: { authorization: "Bearer noc_adm_whatever" },
      });
      assert.equal(admin.status, 503);
      assert.ok(!log.lines.some((l) => l.event === "unhandled_error"));
    } finally {
      await db.close();
    }
  },
});
