// Tests for the findings of the independent review of the foundation: each fails on the code before its fix.
import assert from "node:assert/strict";
import { count, dbTest, sampleBeat, testNoc } from "./_harness.ts";
import { contentDigest } from "../protocol/http/content_digest.ts";
import { enroll, generateApplianceKeys, NocError, signedRequest } from "../protocol/client.ts";
import { fromHex, toBase64Url } from "../protocol/util/encoding.ts";
import { createNotifier, slackText, webhookBody } from "../noc/services/notifier.ts";
import { memoryLogger } from "../protocol/util/log.ts";
import { bootstrapAdminToken } from "../noc/services/startup_secrets.ts";
import { loadConfig } from "../noc/config.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";

dbTest(
  "a covered component that is not a header name is refused as malformed, not a 500",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    for (const bogus of ['"a b"', '""', '"a\\"b"', '"Content-Digest"']) {
      const req = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()));
      const h = new Headers(req.headers);
      h.set(
        "signature-input",
        h.get("signature-input")!.replace('"content-digest")', `"content-digest" ${bogus})`),
      );
      const res = await noc.app.request(
        new Request(req.url, { method: "POST", headers: h, body: await req.text() }),
      );
      assert.equal(res.status, 401, bogus);
      assert.ok(["malformed_signature"].includes((await res.json()).error), bogus);
    }
    assert.equal(await count(db, "auth_failures"), 4);
  },
);

dbTest(
  "changing a covered header while keeping a valid digest breaks the signature",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const req = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()));
    const body = new Uint8Array(await req.arrayBuffer());
    const h = new Headers(req.headers);
    h.set("content-digest", `${h.get("content-digest")}, ${await contentDigest(body, "sha-512")}`);
    const res = await noc.app.request(new Request(req.url, { method: "POST", headers: h, body }));
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error, "bad_signature");
  },
);

dbTest("an attacker-chosen key id never reaches the operator's notice text", async ({ db }) => {
  const noc = await testNoc(db);
  const keys = await generateApplianceKeys();
  const req = await signedRequest({
    baseUrl: "http://noc.test",
    uid: "<!channel> rotate keys at <https://evil.example|noc.example.net/login>",
    key: keys.signing,
    method: "POST",
    path: "/v1/beats",
    body: sampleBeat(1, noc.clock.now()),
    now: noc.clock.now(),
  });
  assert.equal((await noc.app.request(req)).status, 401);
  const [notice] = await db.sql<{ text: string }>`select text from notices`;
  assert.ok(!notice!.text.includes("<!channel>"), notice!.text);
  assert.match(notice!.text, /\(not a UID\)/);
  assert.equal(slackText("a <b> & c"), "a &lt;b&gt; &amp; c");
  const body = webhookBody({
    id: 1,
    createdAt: new Date(),
    kind: "x",
    text: "<!here>",
    payload: {},
  });
  assert.equal(body.text, "&lt;!here&gt;");
});

dbTest("enrolment refuses small-order and non-canonically encoded keys", async ({ db }) => {
  const noc = await testNoc(db);
  const good = await generateApplianceKeys();
  const identity = toBase64Url(fromHex("01".padEnd(64, "0")));
  const order8 = toBase64Url(
    fromHex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
  );
  const alias = good.signingPublic.slice(0, -1) +
    String.fromCharCode(good.signingPublic.charCodeAt(42) + 1);
  const x25519Low = toBase64Url(
    fromHex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
  );
  for (
    const [field, keys] of [
      ["signingKey", { ...good, signingPublic: identity }],
      ["signingKey", { ...good, signingPublic: order8 }],
      ["signingKey", { ...good, signingPublic: alias }],
      ["encryptionKey", { ...good, encryptionPublic: x25519Low }],
    ] as const
  ) {
    await assert.rejects(
      enroll(noc.send, "http://noc.test", {
        token: await noc.enrollmentToken(),
        model: "m",
        hostname: "h",
        keys,
      }),
      (e: unknown) =>
        e instanceof NocError && e.status === 400 && (e.body.message ?? "").includes(field),
    );
  }
  assert.equal(await count(db, "appliances"), 0);
});

dbTest(
  "X-Forwarded-For is believed only behind a configured proxy, and then its last hop",
  async ({ db }) => {
    for (const [trustProxy, expected] of [[false, null], [true, "10.9.8.7"]] as const) {
      const noc = await testNoc(db, { settings: { trustProxy } });
      const a = await noc.enrollAppliance();
      const req = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()));
      const h = new Headers(req.headers);
      h.set("x-forwarded-for", "1.2.3.4, 10.9.8.7");
      assert.equal(
        (await noc.app.request(
          new Request(req.url, { method: "POST", headers: h, body: await req.text() }),
        )).status,
        200,
      );
      assert.equal(
        (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.lastAddress,
        expected,
      );
    }
  },
);

dbTest("a rotated NOC_ADMIN_TOKEN revokes the previous one", async ({ db }) => {
  const noc = await testNoc(db);
  const oldToken = "noc_adm_old-token-0123456789abcdef";
  const newToken = "noc_adm_new-token-0123456789abcdef";
  for (const token of [oldToken, newToken]) {
    await bootstrapAdminToken(
      noc.deps,
      loadConfig({ DATABASE_URL: "postgres://x", NOC_ADMIN_TOKEN: token }),
    );
  }
  const call = (t: string) =>
    noc.app.request("http://noc.test/v1/admin/fleet", {
      headers: { authorization: `Bearer ${t}` },
    });
  assert.equal((await call(oldToken)).status, 401);
  assert.equal((await call(newToken)).status, 200);
});

dbTest(
  "text with NUL, unpaired surrogates, year-0 dates or deep nesting gets a 400, never a 500",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const now = noc.clock.now();
    let deep: unknown = 1;
    for (let i = 0; i < 60_000; i++) deep = [deep];
    const beats: Array<[string, Record<string, unknown>]> = [
      ["NUL in message", sampleBeat(1, now, { lastCycle: { outcome: "ok", message: "a\u0000b" } })],
      ["NUL in app key", sampleBeat(1, now, { apps: { vscreen: { "a\u0000": 1 } } })],
      ["lone surrogate", sampleBeat(1, now, { lastCycle: { outcome: "ok", message: "\ud800" } })],
      ["year 0", sampleBeat(1, now, { sentAt: "0000-01-01T00:00:00Z" })],
      ["deep app data", sampleBeat(1, now, { apps: { vscreen: { deep } } })],
    ];
    for (const [what, body] of beats) {
      const res = await noc.app.request(await a.request("POST", "/v1/beats", body));
      assert.equal(res.status, 400, `${what}: ${await res.clone().text()}`);
    }
    const admin: Array<[string, string, unknown]> = [
      ["POST", "/v1/admin/enrollment-tokens", { label: "a\u0000" }],
      ["GET", "/v1/admin/appliances?q=%00", undefined],
      [
        "GET",
        `/v1/admin/appliances?cursor=${
          toBase64Url(new TextEncoder().encode(JSON.stringify(["a", "-".repeat(36)])))
        }`,
        undefined,
      ],
      ["POST", "/v1/admin/maintenance", {
        site: "hq",
        startsAt: "0000-01-01T00:00:00Z",
        endsAt: "2030-01-01T00:00:00Z",
        reason: "x",
      }],
      ["POST", `/v1/admin/appliances/${a.uid}/revoke`, { reason: "a\u0000" }],
    ];
    for (const [method, path, body] of admin) {
      const r = await noc.admin(method, path, body);
      assert.equal(r.status, 400, `${method} ${path}: ${JSON.stringify(r.body)}`);
    }
    const keys = await generateApplianceKeys();
    await assert.rejects(
      enroll(noc.send, "http://noc.test", {
        token: await noc.enrollmentToken(),
        model: "m",
        hostname: "h",
        keys,
        agentVersion: "1\u0000",
      }),
      (e: unknown) => e instanceof NocError && e.status === 400,
    );
    assert.equal(await count(db, "beats"), 0);
  },
);

dbTest(
  "a beat delayed behind a newer one counts as life but does not replace the newer report",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const t0 = noc.clock.now();
    const older = await a.request(
      "POST",
      "/v1/beats",
      sampleBeat(7, t0, { apps: { vscreen: { n: "old" } } }),
    );
    noc.clock.advance(30);
    await a.beat({ seq: 8, apps: { vscreen: { n: "new" } } });
    noc.clock.advance(30);
    assert.equal((await noc.app.request(older)).status, 200);
    const one = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.deepEqual(one.body.lastReport.apps, { vscreen: { n: "new" } });
    assert.equal(
      one.body.lastBeatAt,
      noc.clock.now().toISOString(),
      "the late beat still moved the due time",
    );
    assert.equal(
      one.body.history.length,
      1,
      "the late beat came within the history gap of the newer one: no second history row",
    );
  },
);

dbTest(
  "a delivery pass longer than a lease keeps its lease: another instance never sends the same notice",
  async ({ db }) => {
    const noc = await testNoc(db);
    const received: number[] = [];
    const peer: { second?: Awaited<ReturnType<typeof createNotifier>> } = {};
    // What the second instance sends to the webhook. (Its log target is another target, with a
    // lease of its own: the first instance's log pass, whose renewals the clock jumps below
    // outrun, may be taken over meanwhile without any notice logged twice.)
    const secondSent: number[] = [];
    let secondAsked = false;
    const slowFetch: typeof fetch = async (_url, init) => {
      noc.clock.advance(90); // each send takes 90 s of NOC time; the lease lasts 120 s
      if (received.length === 4) {
        await peer.second!.deliver();
        secondAsked = true;
      }
      received.push(JSON.parse(String(init!.body)).noticeId);
      return new Response(null, { status: 204 });
    };
    const secondFetch: typeof fetch = (_url, init) => {
      secondSent.push(JSON.parse(String(init!.body)).noticeId);
      return Promise.resolve(new Response(null, { status: 204 }));
    };
    const first = await createNotifier({
      db,
      clock: noc.clock,
      log: memoryLogger(),
      webhooks: ["https://hook.test/x"],
      fetch: slowFetch,
      autoDeliver: false,
    });
    peer.second = await createNotifier({
      db,
      clock: noc.clock,
      log: memoryLogger(),
      webhooks: ["https://hook.test/x"],
      fetch: secondFetch,
      autoDeliver: false,
    });
    for (let i = 0; i < 5; i++) await (await noc.enrollAppliance({ hostname: `gw-${i}` })).beat();
    noc.clock.advance(909 + 301);
    await sweep({ ...noc.deps, notifier: first, graceS: 300, digestAbove: 100 });
    await first.deliver();
    assert.ok(secondAsked, "the second instance tried during the first's long pass");
    assert.deepEqual(secondSent, [], "the second instance found the webhook leased");
    assert.equal(received.length, 5);
    assert.deepEqual(received, [...received].sort((x, y) => x - y), "in order");
    assert.equal(new Set(received).size, 5, "each once");
  },
);

dbTest(
  "notices are delivered in commit order, even when ids were taken in another order",
  async ({ db, another }) => {
    const noc = await testNoc(db);
    const received: string[] = [];
    const notifier = await createNotifier({
      db,
      clock: noc.clock,
      log: memoryLogger(),
      webhooks: ["https://hook.test/x"],
      autoDeliver: false,
      fetch: (_url, init) => {
        received.push(JSON.parse(String(init!.body)).kind);
        return Promise.resolve(new Response(null, { status: 204 }));
      },
    });
    const dbB = another();
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    let enqueued!: () => void;
    const aEnqueued = new Promise<void>((r) => enqueued = r);
    const txA = db.begin(async (tx) => {
      await notifier.enqueue(tx, { kind: "first", text: "A", payload: {} }, noc.clock.now());
      enqueued();
      await held;
    });
    await aEnqueued;
    const txB = dbB.begin((tx) =>
      notifier.enqueue(tx, { kind: "second", text: "B", payload: {} }, noc.clock.now())
    );
    // Wait (without sleeping, and for a bounded number of polls) until B is queued behind A's outbox lock.
    for (let poll = 0; poll < 2000; poll++) {
      const [w] = await dbB.sql<
        { n: number }
      >`select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`;
      if (w!.n > 0) break;
    }
    await notifier.deliver();
    release();
    await txA;
    await txB;
    await notifier.deliver();
    assert.deepEqual(received, ["first", "second"]);
  },
  { instances: 2 },
);
