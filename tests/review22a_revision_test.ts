/**
 * Review 22a (attacker): a resource deleted and made again under the same name started again at
 * revision 1, so an If-Match read before the deletion matched the new resource (ABA). Revisions
 * now come from one sequence (migration 030): a re-created resource has one never seen before. Operator A read the
 * model's install window (ETag "1", 02:00–04:00). Operator B deleted it and made a new one
 * (revision 1 again, 22:00–23:00, "vendor change freeze"). A saves a widened window with
 * If-Match "1" — read from a resource that no longer exists — and B's new window is overwritten.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";

dbTest(
  "an If-Match read before a window was deleted does not match the one made again",
  async ({ db }) => {
    const noc = await testNoc(db);
    await noc.enrollAppliance({ model: "vs-2000" });
    const put = (body: unknown, ifMatch?: string) =>
      noc.app.request("http://noc.test/v1/admin/install-windows/model/vs-2000", {
        method: "PUT",
        headers: {
          authorization: `Bearer ${noc.adminToken}`,
          "content-type": "application/json",
          ...(ifMatch ? { "if-match": ifMatch } : {}),
        },
        body: JSON.stringify(body),
      });
    let r = await put({ start: "02:00", end: "04:00", timeZone: "UTC", reason: "night" });
    assert.ok(r.status < 300, await r.text());
    const etagA = r.headers.get("etag")!;
    // B deletes it and creates another (its revision is 1 again).
    const d = await noc.admin("DELETE", "/v1/admin/install-windows/model/vs-2000");
    assert.equal(d.status, 204);
    r = await put({
      start: "22:00",
      end: "23:00",
      timeZone: "UTC",
      reason: "vendor change freeze",
    });
    assert.ok(r.status < 300, await r.text());
    assert.notEqual(r.headers.get("etag"), etagA, "the new window's revision is new");
    // A saves against what it read.
    r = await put({ start: "00:00", end: "06:00", timeZone: "UTC", reason: "night, wider" }, etagA);
    const body = await r.json();
    assert.equal(r.status, 409, "A's change is against a window that was deleted: stale");
    assert.equal(body.error, "stale_revision");
    assert.equal(body.current.reason, "vendor change freeze", "B's window stands");
  },
);
