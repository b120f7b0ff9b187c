/** `/metrics` and request-scoped log lines. */
import { loadConfig } from "../noc/config.ts";
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { fetchCatalog, publishAndAssign } from "./_components.ts";

dbTest(
  "/metrics counts beats, catalogs and 304s, downloads, sweeps and latencies, and needs a token",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { metricsToken: "m".repeat(32) } });
    await publishAndAssign(noc, { app: "demo", name: "demo", version: "1" });
    const a = await noc.enrollAppliance();
    await a.beat();
    const first = await fetchCatalog(noc, a);
    assert.equal((await fetchCatalog(noc, a, { etag: first.etag! })).status, 304);
    const url = first.doc!.components[0]!.urls[0]!.replace("http://", "https://");
    assert.equal((await noc.app.request(url)).status, 200);
    noc.clock.advance(3600);
    assert.equal((await noc.admin("POST", "/v1/admin/sweep")).status, 200);

    const scrape = async (token?: string) =>
      await noc.app.request("http://noc.test/metrics", {
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    assert.equal((await scrape()).status, 401);
    assert.equal((await scrape("n".repeat(32))).status, 401);
    const res = await scrape("m".repeat(32));
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (
      const line of [
        "noc_beats_total 1",
        'noc_catalogs_total{status="200"} 1',
        'noc_catalogs_total{status="304"} 1',
        'noc_downloads_total{kind="package"} 1',
        "noc_sweeps_total 1",
        "noc_alerts_raised_total 1",
        'noc_appliances{state="missing"} 1',
        "noc_appliances_overdue 1",
        "noc_alerts_open 1",
        'noc_http_request_duration_seconds_count{method="POST",route="/v1/beats",status="2xx"} 1',
      ]
    ) assert.ok(text.includes(line + "\n"), `missing "${line}" in:\n${text}`);
    assert.match(text, /noc_download_bytes_total\{kind="package"\} [1-9]\d*/);
    assert.match(text, /noc_sweep_duration_seconds_count 1/);
    // An admin token reads it too.
    assert.equal((await scrape(noc.adminToken)).status, 200);
  },
);

dbTest(
  "every log line written while a request is handled carries its request id",
  async ({ db }) => {
    const noc = await testNoc(db);
    const log = noc.deps.log as unknown as { lines: Array<Record<string, unknown>> };
    const res = await noc.app.request("http://noc.test/v1/beats", {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "req-42" },
      body: "{}",
    });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("x-request-id"), "req-42");
    const lines = log.lines.filter((l) => l.requestId === "req-42").map((l) => l.event);
    assert.ok(lines.includes("identity_refused"), JSON.stringify(log.lines));
    assert.ok(lines.includes("request"));
    // A request id that is not a plain token is replaced.
    const odd = await noc.app.request("http://noc.test/healthz", {
      headers: { "x-request-id": "a b;c" },
    });
    assert.match(odd.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
  },
);

dbTest(
  "NOC_REQUEST_LOG=errors logs refused requests and not successful ones",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { requestLog: "errors" } });
    const log = noc.deps.log as unknown as { lines: Array<Record<string, unknown>> };
    assert.equal((await noc.app.request("http://noc.test/healthz")).status, 200);
    const refused = await noc.app.request("http://noc.test/v1/beats", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(refused.status, 401);
    const logged = log.lines.filter((l) => l.event === "request").map((l) => l.status);
    assert.deepEqual(logged, [401]);
    assert.equal(
      loadConfig({ NOC_REQUEST_LOG: "errors" }).settings.requestLog,
      "errors",
    );
    assert.throws(() => loadConfig({ NOC_REQUEST_LOG: "some" }), /NOC_REQUEST_LOG/);
  },
);
