import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { startWebhook } from "./_webhook.ts";
import { ManualClock } from "../noc/clock.ts";
import { defaultSettings } from "../noc/config.ts";
import { memoryLogger } from "../protocol/util/log.ts";
import { newSeed } from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { createNotifier } from "../noc/services/notifier.ts";
import { createApp } from "../noc/app.ts";
import { createDeps } from "../noc/deps.ts";
import { ensureAdminToken } from "../noc/services/admin_tokens.ts";
import { enroll, generateApplianceKeys, signedCall } from "../protocol/client.ts";
import { sampleBeat } from "./_harness.ts";
import { createWakeHub } from "../noc/services/wakeups.ts";
import { createMetrics } from "../noc/services/metrics.ts";

dbTest(
  "over real HTTP: enrol, beat, ok; silence turns missing, one alert reaches the webhook; a beat recovers it",
  async ({ db }) => {
    const hook = startWebhook();
    const clock = new ManualClock();
    const log = memoryLogger();
    const notifier = await createNotifier({ db, clock, log, webhooks: [hook.url] });
    const deps = createDeps({
      db,
      clock,
      log,
      notifier,
      keys: await nocKeysFromSeed(newSeed()),
      settings: defaultSettings,
      wakeups: createWakeHub({ db, clock, log }),
      metrics: createMetrics(),
    });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      createApp(deps).fetch,
    );
    const url = `http://127.0.0.1:${server.addr.port}`;
    const token = "noc_adm_e2e-story-token-0123456789";
    await ensureAdminToken(db, token, "e2e", clock.now());
    const admin = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(url + path, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { "content-type": "application/json" } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return await res.json();
    };
    try {
      const { token: enrolToken } = await admin("POST", "/v1/admin/enrollment-tokens", {
        site: "hq",
      });
      const keys = await generateApplianceKeys();
      const e = await enroll(fetch, url, {
        token: enrolToken,
        model: "vs-2000",
        hostname: "mail-gw-1",
        keys,
      });
      const beat = (seq: number) =>
        signedCall(fetch, {
          baseUrl: url,
          uid: e.uid,
          key: keys.signing,
          method: "POST",
          path: "/v1/beats",
          body: sampleBeat(seq, clock.now()),
          now: clock.now(),
        });
      await beat(1);
      assert.equal((await admin("GET", `/v1/admin/appliances/${e.uid}`)).state, "ok");

      clock.advance(909 + defaultSettings.graceS + 1);
      const swept = await admin("POST", "/v1/admin/sweep");
      assert.deepEqual(swept.alerted, [e.uid]);
      await hook.waitFor(1);
      assert.equal(hook.received[0]!.kind, "missed_heartbeat");
      assert.match(String(hook.received[0]!.text), /Missed heartbeat: mail-gw-1/);
      assert.equal((await admin("GET", "/v1/admin/appliances?state=missing")).items[0].uid, e.uid);
      assert.equal((await admin("POST", "/v1/admin/sweep")).alerted.length, 0);

      clock.advance(60);
      await beat(2);
      assert.equal((await admin("GET", `/v1/admin/appliances/${e.uid}`)).state, "ok");
      const again = await admin("POST", "/v1/admin/sweep");
      assert.deepEqual(again.recovered, [e.uid]);
      await hook.waitFor(2);
      assert.equal(hook.received[1]!.kind, "recovered");
      assert.equal(hook.received.length, 2);
      const fleet = await admin("GET", "/v1/admin/fleet");
      assert.deepEqual(fleet.states, { ok: 1, late: 0, missing: 0, revoked: 0 });
      assert.equal(fleet.openAlerts, 0);
    } finally {
      await notifier.deliver();
      await server.shutdown();
      await hook.close();
    }
  },
);
