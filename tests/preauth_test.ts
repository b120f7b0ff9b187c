/**
 * Issue 16, item 10: nothing is read before authentication. Over real HTTP,
 * each route that takes a body is sent an unauthenticated request whose body
 * never finishes arriving (chunked, no length to refuse it by): every one is
 * answered at once — the NOC did not wait to read the body. (Memory under
 * large posts is measured in bench/preauth_memory.ts.)
 */
import assert from "node:assert/strict";
import { count, dbTest } from "./_harness.ts";
import { serveNoc } from "./_agent.ts";
import { sendEndlessBody } from "./_raw_http.ts";

const json = { "content-type": "application/json" };
const form = { "content-type": "application/x-www-form-urlencoded" };
const multipart = { "content-type": "multipart/form-data; boundary=x" };

/** Every route that takes a body, with the answer it gives unauthenticated. */
const routes: Array<[string, string, Record<string, string>, number]> = [
  // Console (no session): refused before the body limit or the form is read.
  ["POST", "/ui/releases/publish", multipart, 401],
  ["POST", "/ui/releases/assign", form, 401],
  ["POST", "/ui/tokens", form, 401],
  ["POST", "/ui/apps/a/fileinfo", form, 401],
  ["POST", "/ui/appliances/00000000-0000-4000-8000-000000000000/revoke", form, 401],
  ["POST", "/ui/logout", form, 401],
  // Admin API (no token): refused before its body limits.
  [
    "POST",
    "/v1/admin/packages?app=a&name=n&version=1",
    { "content-type": "application/gzip" },
    401,
  ],
  [
    "POST",
    "/v1/admin/files?app=a&name=n&version=1",
    { "content-type": "application/octet-stream" },
    401,
  ],
  ["POST", "/v1/admin/enrollment-tokens", json, 401],
  ["POST", "/v1/admin/assignments", json, 401],
  ["POST", "/v1/admin/release-keys", json, 401],
  // Appliance and local-server protocol (no signature): refused before the body is read.
  ["POST", "/v1/beats", json, 401],
  ["POST", "/v1/installs", json, 401],
  ["POST", "/v1/local/sync", json, 401],
  ["POST", "/v1/local/deliveries", json, 401],
  ["GET", "/v1/catalog", json, 401],
  ["GET", "/v1/wake", json, 401],
  ["GET", "/v1/components/1", json, 401],
  // Operations.
  ["GET", "/metrics", json, 401],
];

dbTest(
  "unauthenticated requests are answered before their body arrives, on every route that takes one",
  async ({ db }) => {
    // Day-long body deadlines: an answer cannot come from a deadline.
    const noc = await serveNoc(db, { bodyTimeoutS: 86400, uploadIdleS: 86400 });
    try {
      const port = Number(new URL(noc.url).port);
      for (const [method, path, headers, want] of routes) {
        const sent = await sendEndlessBody(port, method, path, headers);
        try {
          const answer = await Promise.race([
            sent.answer,
            // A guard, not a measurement: a NOC that reads first never answers at all.
            new Promise<"waited">((r) => setTimeout(() => r("waited"), 15_000)),
          ]);
          assert.notEqual(answer, "waited", `${method} ${path}: the NOC waited for the body`);
          if (answer === "waited") return;
          assert.equal(answer.status, want, `${method} ${path}: ${answer.text.slice(0, 200)}`);
        } finally {
          sent.close();
        }
      }
      assert.equal(await count(db, "auth_failures") > 0, true);
    } finally {
      await noc.close();
    }
  },
);
