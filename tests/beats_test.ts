import { fetchCatalog } from "./_components.ts";
import assert from "node:assert/strict";
import { count, dbTest, sampleBeat, testNoc } from "./_harness.ts";
import { signedRequest } from "../protocol/client.ts";
import { generateEd25519 } from "../protocol/crypto/ed25519.ts";
import { signRequest } from "../protocol/http/signature.ts";

dbTest(
  "a signed beat updates the status table and history and says when to report next",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mail-gw-1" });
    const reply = await a.beat();
    assert.equal(reply.intervalS, 909);
    assert.equal(reply.nextBeatInS, 909);
    assert.equal(reply.receivedAt, noc.clock.now().toISOString());
    assert.equal(reply.nextDueAt, new Date(noc.clock.now().getTime() + 909_000).toISOString());
    noc.clock.advance(900);
    await a.beat({ apps: { vscreen: { mailsScanned: 99 } } });
    const one = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(one.body.state, "ok");
    assert.equal(one.body.lastSeq, 2);
    assert.equal(one.body.lastBeatAt, noc.clock.now().toISOString());
    assert.deepEqual(one.body.lastReport.apps, { vscreen: { mailsScanned: 99 } });
    assert.equal(one.body.history.length, 2);
    assert.equal(one.body.history[0].seq, 2, "newest first");
    assert.equal(await count(db, "beats"), 2);
  },
);

dbTest(
  "a tampered body, path or covered header is refused with 401 and writes no beat",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const good = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()));
    const body = await good.clone().text();

    const tamperedBody = new Request(good.url, {
      method: "POST",
      headers: good.headers,
      body: body.replace('"seq":1', '"seq":7'),
    });
    const tamperedPath = new Request("http://noc.test/v1/beats?x=1", {
      method: "POST",
      headers: good.headers,
      body,
    });
    const h = new Headers(good.headers);
    h.set("content-digest", "sha-256=:" + btoa("x".repeat(32)) + ":");
    const tamperedHeader = new Request(good.url, { method: "POST", headers: h, body });
    const h2 = new Headers(good.headers);
    h2.set(
      "signature-input",
      h2.get("signature-input")!.replace(/created=\d+/, (m) => `created=${Number(m.slice(8)) - 1}`),
    );
    const tamperedParams = new Request(good.url, { method: "POST", headers: h2, body });

    for (
      const [what, req, code] of [
        ["body", tamperedBody, "bad_digest"],
        ["path", tamperedPath, "bad_signature"],
        // The digest header's value is covered: changing it breaks the signature.
        ["digest header", tamperedHeader, "bad_signature"],
        ["signature params", tamperedParams, "bad_signature"],
      ] as const
    ) {
      const res = await noc.app.request(req);
      const json = await res.json();
      assert.equal(res.status, 401, what);
      assert.equal(json.error, code, what);
    }
    assert.equal(await count(db, "beats"), 0);
    assert.equal(await count(db, "auth_failures"), 4);
    const res = await noc.app.request(good);
    assert.equal(res.status, 200, "the untampered request still passes");
  },
);

dbTest("a signature outside ±300 s of the NOC clock is refused", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  const now = noc.clock.now().getTime();
  for (const skew of [-301, 301]) {
    const req = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()), {
      now: new Date(now + skew * 1000),
    });
    const res = await noc.app.request(req);
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error, "clock_skew");
  }
  for (const skew of [-299, 299]) {
    const req = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()), {
      now: new Date(now + skew * 1000),
    });
    assert.equal((await noc.app.request(req)).status, 200, `skew ${skew} is inside the window`);
  }
});

dbTest("a replayed signature is refused", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  const req = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()));
  assert.equal((await noc.app.request(req.clone())).status, 200);
  const again = await noc.app.request(req.clone());
  assert.equal(again.status, 401);
  assert.equal((await again.json()).error, "replayed_signature");
  assert.equal(await count(db, "beats"), 1);
});

dbTest(
  "a signature accepted by one NOC instance is refused as a replay by another",
  async ({ db, another }) => {
    const noc = await testNoc(db);
    const second = await testNoc(another(), { clock: noc.clock });
    const a = await noc.enrollAppliance();
    const req = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()));
    assert.equal((await noc.app.request(req.clone())).status, 200);
    const elsewhere = await second.app.request(req.clone());
    assert.equal(elsewhere.status, 401);
    assert.equal((await elsewhere.json()).error, "replayed_signature");
    assert.equal(await count(db, "beats"), 1);
  },
  { instances: 2 },
);

dbTest(
  "unknown, revoked and mismatching identities get 401, are recorded, and notify at most once per window",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "victim" });
    const stranger = await generateEd25519();
    const forged = await signedRequest({
      baseUrl: "http://noc.test",
      uid: a.uid,
      key: stranger.privateKey,
      method: "POST",
      path: "/v1/beats",
      body: sampleBeat(1, noc.clock.now()),
      now: noc.clock.now(),
    });
    const unknown = await signedRequest({
      baseUrl: "http://noc.test",
      uid: crypto.randomUUID(),
      key: stranger.privateKey,
      method: "POST",
      path: "/v1/beats",
      body: sampleBeat(1, noc.clock.now()),
      now: noc.clock.now(),
    });
    const unsigned = new Request("http://noc.test/v1/beats", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(sampleBeat(1, noc.clock.now())),
    });
    const answers = [];
    for (const req of [forged, unknown.clone(), unsigned]) {
      const res = await noc.app.request(req);
      assert.equal(res.status, 401);
      assert.match(res.headers.get("www-authenticate") ?? "", /Signature/);
      answers.push((await res.json()).error);
    }
    assert.deepEqual(answers, ["bad_signature", "unknown_key", "missing_signature"]);

    const revoke = await noc.admin("POST", `/v1/admin/appliances/${a.uid}/revoke`, {
      reason: "stolen",
    });
    assert.equal(revoke.body.state, "revoked");
    const res = await noc.app.request(
      await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now())),
    );
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error, "revoked_key");

    const failures = await noc.admin("GET", "/v1/admin/auth-failures");
    assert.deepEqual(failures.body.items.map((f: { reason: string }) => f.reason).sort(), [
      "bad_signature",
      "missing_signature",
      "revoked_key",
      "unknown_key",
    ]);
    const notices = await db.sql<
      { kind: string; text: string }
    >`select kind, text from notices order by id`;
    // The revoked key's refusal is proven (its signature verified): a notice of its own.
    assert.equal(notices.length, 2, "three anonymous refusals in one window make one notice");
    assert.match(notices[0]!.text, /bad_signature/);
    assert.match(notices[1]!.text, /revoked_key/);

    noc.clock.advance(301);
    await noc.app.request(unknown);
    const after = await db.sql<{ text: string }>`select text from notices order by id`;
    assert.equal(after.length, 3, "a new window allows a new notice");
    assert.match(after[2]!.text, /2 more refused since the last notice/);
    assert.equal(await count(db, "beats"), 0);
  },
);

dbTest("bad beat bodies get a 4xx naming the field and write nothing", async ({ db }) => {
  const noc = await testNoc(db, { settings: { maxAppDataBytes: 1000 } });
  const a = await noc.enrollAppliance();
  const now = noc.clock.now();
  const cases: Array<[string, unknown, number, string, string]> = [
    ["negative seq", sampleBeat(-1, now), 400, "invalid_body", "seq"],
    [
      "load not a triple",
      sampleBeat(1, now, { health: { ...(sampleBeat(1, now).health as object), load: [1] } }),
      400,
      "invalid_body",
      "health.load",
    ],
    [
      "string memory",
      sampleBeat(1, now, {
        health: {
          ...(sampleBeat(1, now).health as object),
          memory: { totalBytes: "4G", availableBytes: 1 },
        },
      }),
      400,
      "invalid_body",
      "health.memory.totalBytes",
    ],
    [
      "bad component kind",
      sampleBeat(1, now, { components: [{ kind: "rpm", app: "a", name: "b", version: "1" }] }),
      400,
      "invalid_body",
      "components.0.kind",
    ],
    [
      "missing lastCycle",
      { ...sampleBeat(1, now), lastCycle: undefined },
      400,
      "invalid_body",
      "lastCycle",
    ],
    ["bad time", sampleBeat(1, now, { sentAt: "yesterday" }), 400, "invalid_body", "sentAt"],
    [
      "oversized app data",
      sampleBeat(1, now, { apps: { vscreen: { blob: "x".repeat(2000) } } }),
      400,
      "invalid_body",
      "apps.vscreen",
    ],
    [
      "bad app name",
      sampleBeat(1, now, { apps: { "../x": { a: 1 } } }),
      400,
      "invalid_body",
      "apps",
    ],
  ];
  for (const [what, body, status, code, field] of cases) {
    const res = await noc.app.request(await a.request("POST", "/v1/beats", body));
    const json = await res.json();
    assert.equal(res.status, status, `${what}: ${JSON.stringify(json)}`);
    assert.equal(json.error, code, what);
    assert.ok(
      json.issues.some((i: { path: string }) => i.path.startsWith(field)),
      `${what} names ${field}: ${JSON.stringify(json)}`,
    );
  }
  // Not JSON at all, but correctly signed.
  const signedGarbage = await (async () => {
    const bytes = new TextEncoder().encode("{not json");
    const req = {
      method: "POST",
      url: "http://noc.test/v1/beats",
      headers: new Headers({ "content-type": "application/json" }),
      body: bytes,
    };
    await signRequest(req, {
      privateKey: a.keys.signing,
      keyid: a.uid,
      created: Math.floor(now.getTime() / 1000),
      nonce: crypto.randomUUID(),
    });
    return new Request(req.url, { method: "POST", headers: req.headers, body: bytes });
  })();
  const res = await noc.app.request(signedGarbage);
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, "malformed_json");
  const big = await noc.app.request("http://noc.test/v1/beats", {
    method: "POST",
    headers: { "content-type": "application/json", "content-length": String(10 * 1024 * 1024) },
    body: "x",
  });
  // Unsigned, it is refused before anything of it is read, whatever length it declares; a signed
  // one declaring more than the limit gets 413 before its body is read.
  assert.equal(big.status, 401);
  assert.equal(await count(db, "beats"), 0);
});

dbTest(
  "an admin changes an appliance's interval: its due time follows once its agent learns it",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    await a.beat();
    const due = (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body.nextDueAt;
    const r = await noc.admin("PATCH", `/v1/admin/appliances/${a.uid}`, {
      intervalS: 3600,
      site: "branch-7",
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.intervalS, 3600);
    assert.equal(r.body.site, "branch-7");
    // The agent takes its interval from its catalog (tests/schedule_changes_test.ts).
    assert.equal(r.body.nextDueAt, due);
    noc.clock.advance(10);
    assert.equal((await fetchCatalog(noc, a)).doc?.intervalS, 3600);
    const learned = (await noc.admin("GET", `/v1/admin/appliances/${a.uid}`)).body;
    assert.equal(learned.knownIntervalS, 3600);
    assert.equal(learned.nextDueAt, new Date(noc.clock.now().getTime() + 3600_000).toISOString());
    const reply = await a.beat();
    assert.equal(reply.intervalS, 3600);
    const bad = await noc.admin("PATCH", `/v1/admin/appliances/${a.uid}`, { intervalS: 1 });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.issues[0].path, "intervalS");
    const missing = await noc.admin("PATCH", `/v1/admin/appliances/${crypto.randomUUID()}`, {
      intervalS: 60,
    });
    assert.equal(missing.status, 404);
  },
);
