/** A request body that never finishes arriving is cut off with 408, and nothing is written. */
import assert from "node:assert/strict";
import { count, dbTest, sampleBeat, testNoc } from "./_harness.ts";

dbTest(
  "a body that stops arriving gets 408 after the body deadline and writes nothing",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { bodyTimeoutS: 0.3 } });
    const stalled = () =>
      new ReadableStream<Uint8Array>({
        start(ctrl) {
          ctrl.enqueue(new TextEncoder().encode('{"token":"noc_enr_'));
          // ...and nothing more, ever.
        },
      });
    const a = await noc.enrollAppliance();
    const signed = await a.request("POST", "/v1/beats", sampleBeat(1, noc.clock.now()));
    for (
      const [path, headers] of [
        ["/v1/enroll", { "content-type": "application/json" }],
        ["/v1/local/enroll", { "content-type": "application/json" }],
        // A signed beat: its signature verifies, then its body is read, and never arrives.
        ["/v1/beats", signed.headers],
      ] as const
    ) {
      const res = await noc.app.request(`http://noc.test${path}`, {
        method: "POST",
        headers,
        body: stalled(),
      });
      assert.equal(res.status, 408, path);
      assert.equal((await res.json()).error, "request_timeout");
    }
    assert.equal(await count(db, "appliances"), 1);
    assert.equal(await count(db, "beats"), 0);
  },
);

dbTest(
  "an unsigned request whose body never arrives is refused at once, without waiting for it",
  async ({ db }) => {
    // A day-long body deadline: the refusal cannot be the deadline's.
    const noc = await testNoc(db, { settings: { bodyTimeoutS: 86400 } });
    for (const path of ["/v1/beats", "/v1/installs", "/v1/local/sync"]) {
      const res = await noc.app.request(`http://noc.test${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: new ReadableStream<Uint8Array>({
          start(ctrl) {
            ctrl.enqueue(new Uint8Array(1024)); // some bytes, then nothing more, ever
          },
        }),
      });
      assert.equal(res.status, 401, path);
      assert.equal((await res.json()).error, "missing_signature", path);
    }
  },
);

dbTest(
  "an upload that stalls gets 408 after the upload idle limit and publishes nothing",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { uploadIdleS: 0.3 } });
    for (
      const path of [
        "/v1/admin/packages?app=a&name=n&version=1",
        "/v1/admin/files?app=a&name=f&version=1",
      ]
    ) {
      const res = await noc.app.request(`http://noc.test${path}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${noc.adminToken}`,
          "content-type": "application/octet-stream",
        },
        body: new ReadableStream<Uint8Array>({
          start(ctrl) {
            ctrl.enqueue(new Uint8Array(1024)); // some bytes, then nothing more, ever
          },
        }),
      });
      assert.equal(res.status, 408, path);
      assert.equal((await res.json()).error, "request_timeout");
    }
    const [left] = await db.sql<{ components: number; blobs: number }>`
      select (select count(*)::int from components) as components,
        (select count(*)::int from blobs) as blobs`;
    assert.deepEqual(
      left,
      { components: 0, blobs: 0 },
      "nothing published, the partial blob deleted",
    );
  },
);
