/** A request body that never finishes arriving is cut off with 408, and nothing is written. */
import assert from "node:assert/strict";
import { count, dbTest, testNoc } from "./_harness.ts";

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
    for (const path of ["/v1/enroll", "/v1/beats", "/v1/local/enroll"]) {
      const res = await noc.app.request(`http://noc.test${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: stalled(),
      });
      assert.equal(res.status, 408, path);
      assert.equal((await res.json()).error, "request_timeout");
    }
    assert.equal(await count(db, "appliances"), 0);
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
