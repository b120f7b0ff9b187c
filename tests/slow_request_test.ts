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
