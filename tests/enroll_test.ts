import assert from "node:assert/strict";
import { count, dbTest, testNoc } from "./_harness.ts";
import { enroll, generateApplianceKeys, NocError } from "../protocol/client.ts";

async function enrollWith(noc: Awaited<ReturnType<typeof testNoc>>, token: string) {
  return await enroll(noc.send, "http://noc.test", {
    token,
    model: "vs-2000",
    hostname: "gw-1",
    keys: await generateApplianceKeys(),
  });
}

async function refused(p: Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof NocError, String(e));
    assert.equal(e.status, status);
    assert.equal(e.body.error, code);
    return true;
  });
}

dbTest("enrol answers with a UID, the 909 s interval and the NOC's public key", async ({ db }) => {
  const noc = await testNoc(db);
  const token = await noc.enrollmentToken({ site: "hq", channel: "beta", tags: ["edge"] });
  const e = await enrollWith(noc, token);
  assert.match(e.uid, /^[0-9a-f-]{36}$/);
  assert.equal(e.intervalS, 909);
  assert.deepEqual(e.nocKeys, noc.deps.keys.published);
  assert.equal(e.site, "hq");
  assert.equal(e.channel, "beta");
  assert.deepEqual(e.tags, ["edge"]);
  const one = await noc.admin("GET", `/v1/admin/appliances/${e.uid}`);
  assert.equal(one.status, 200);
  assert.equal(one.body.site, "hq");
  assert.equal(one.body.state, "ok");
});

dbTest("an enrolment token works once; reuse is refused and recorded", async ({ db }) => {
  const noc = await testNoc(db);
  const token = await noc.enrollmentToken();
  await enrollWith(noc, token);
  await refused(enrollWith(noc, token), 401, "token_used");
  assert.equal(await count(db, "appliances"), 1);
  assert.equal(await count(db, "auth_failures"), 1);
  const tokens = await noc.admin("GET", "/v1/admin/enrollment-tokens");
  assert.equal(tokens.body.items[0].status, "used");
  assert.equal(tokens.body.items[0].token, undefined, "plaintext is never listed");
});

dbTest("an expired, revoked or unknown enrolment token is refused", async ({ db }) => {
  const noc = await testNoc(db);
  const token = await noc.enrollmentToken({ ttlS: 60 });
  noc.clock.advance(61);
  await refused(enrollWith(noc, token), 401, "token_expired");
  const revoked = await noc.enrollmentToken();
  const list = await noc.admin("GET", "/v1/admin/enrollment-tokens");
  const del = await noc.admin("DELETE", `/v1/admin/enrollment-tokens/${list.body.items[0].id}`);
  assert.equal(del.body.status, "revoked");
  await refused(enrollWith(noc, revoked), 401, "token_revoked");
  await refused(enrollWith(noc, "noc_enr_nope"), 401, "invalid_token");
  assert.equal(await count(db, "appliances"), 0);
});

dbTest("enrolment tokens are stored only as hashes", async ({ db }) => {
  const noc = await testNoc(db);
  const token = await noc.enrollmentToken();
  const rows = await db.sql<{ token_hash: string }>`select token_hash from enrollment_tokens`;
  assert.equal(rows.length, 1);
  assert.notEqual(rows[0]!.token_hash, token);
  assert.ok(!JSON.stringify(rows).includes(token.slice(8)));
});

dbTest("two appliances cannot enrol the same signing key", async ({ db }) => {
  const noc = await testNoc(db);
  const keys = await generateApplianceKeys();
  const args = { model: "vs-2000", hostname: "gw-1", keys };
  await enroll(noc.send, "http://noc.test", { ...args, token: await noc.enrollmentToken() });
  const second = await noc.enrollmentToken();
  await refused(enroll(noc.send, "http://noc.test", { ...args, token: second }), 409, "key_in_use");
  const tokens = await noc.admin("GET", "/v1/admin/enrollment-tokens");
  assert.equal(
    tokens.body.items[0].status,
    "unused",
    "a refused enrolment does not spend the token",
  );
});

dbTest("enrolment bad input gets a 4xx naming the field and writes nothing", async ({ db }) => {
  const noc = await testNoc(db);
  const token = await noc.enrollmentToken();
  const keys = await generateApplianceKeys();
  const good = {
    token,
    model: "vs-2000",
    hostname: "gw-1",
    signingKey: keys.signingPublic,
    encryptionKey: keys.encryptionPublic,
  };
  const cases: Array<[string, BodyInit, Record<string, string>, number, string, string?]> = [
    ["malformed json", "{nope", { "content-type": "application/json" }, 400, "malformed_json"],
    [
      "wrong content type",
      JSON.stringify(good),
      { "content-type": "text/plain" },
      415,
      "unsupported_media_type",
    ],
    [
      "missing model",
      JSON.stringify({ ...good, model: undefined }),
      { "content-type": "application/json" },
      400,
      "invalid_body",
      "model",
    ],
    [
      "short key",
      JSON.stringify({ ...good, signingKey: "AAAA" }),
      { "content-type": "application/json" },
      400,
      "invalid_body",
      "signingKey",
    ],
    [
      "zero key",
      JSON.stringify({ ...good, encryptionKey: "A".repeat(43) }),
      { "content-type": "application/json" },
      400,
      "invalid_body",
      "encryptionKey",
    ],
    [
      "bad hostname",
      JSON.stringify({ ...good, hostname: "a b" }),
      { "content-type": "application/json" },
      400,
      "invalid_body",
      "hostname",
    ],
    [
      "unknown field",
      JSON.stringify({ ...good, admin: true }),
      { "content-type": "application/json" },
      400,
      "invalid_body",
    ],
    ["array body", "[]", { "content-type": "application/json" }, 400, "invalid_body"],
    [
      "huge body",
      JSON.stringify({ ...good, hostname: "a".repeat(20000) }),
      { "content-type": "application/json" },
      413,
      "body_too_large",
    ],
  ];
  for (const [what, body, headers, status, code, field] of cases) {
    const res = await noc.app.request("http://noc.test/v1/enroll", {
      method: "POST",
      body,
      headers,
    });
    const json = await res.json();
    assert.equal(res.status, status, `${what}: ${JSON.stringify(json)}`);
    assert.equal(json.error, code, what);
    assert.equal(typeof json.message, "string");
    if (field) {
      assert.ok(
        JSON.stringify(json).includes(field),
        `${what} names ${field}: ${JSON.stringify(json)}`,
      );
    }
  }
  assert.equal(await count(db, "appliances"), 0);
  const tokens = await noc.admin("GET", "/v1/admin/enrollment-tokens");
  assert.equal(tokens.body.items[0].status, "unused");
});
