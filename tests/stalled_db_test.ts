/**
 * A PostgreSQL server that stops answering (SIGSTOP: not closed, just silent) must not hang the
 * NOC: requests and /healthz answer 503 with Retry-After within the database bound
 * (NOC_DB_TIMEOUT_S), and the NOC recovers by itself once the server runs again (SIGCONT).
 * The cluster is this test's own (tests/_own_postgres.ts), never the shared one.
 */
import assert from "node:assert/strict";
import { canRunOwnPostgres, ownPostgres } from "./_own_postgres.ts";
import { enroll, generateApplianceKeys, signedRequest } from "../protocol/client.ts";
import { sampleBeat } from "./_harness.ts";

/** The bound the NOC is started with, seconds. */
const boundS = 2;
/** How long a request may take before the test calls it hung: far above the bound. */
const hungMs = 6 * boundS * 1000;

Deno.test({
  name:
    "a stalled PostgreSQL (SIGSTOP) gets 503 with Retry-After within the bound, and recovers after SIGCONT",
  ignore: !canRunOwnPostgres(),
  fn: async () => {
    const { startNoc } = await import("./_process.ts");
    const pg = await ownPostgres();
    const dataDir = await Deno.makeTempDir({ prefix: "noc-stall-" });
    let noc: Awaited<ReturnType<typeof startNoc>> | null = null;
    let stopped = false;
    try {
      noc = await startNoc({
        NOC_DATA_DIR: dataDir,
        DATABASE_URL: pg.url,
        NOC_DB_TIMEOUT_S: String(boundS),
      });
      const base = noc.url;
      const admin = { authorization: `Bearer ${noc.adminToken}` };
      const keys = await generateApplianceKeys();
      const { uid } = await enroll(fetch, base, {
        token: noc.enrollmentToken,
        model: "mx-100",
        hostname: "gw-stall",
        keys,
      });
      let seq = 0;
      const beat = async () =>
        await fetch(
          await signedRequest({
            baseUrl: base,
            uid,
            key: keys.signing,
            method: "POST",
            path: "/v1/beats",
            body: sampleBeat(++seq, new Date()),
          }),
          { signal: AbortSignal.timeout(hungMs) },
        );
      const get = (path: string, headers: Record<string, string> = {}) =>
        fetch(`${base}${path}`, { headers, signal: AbortSignal.timeout(hungMs) });
      const first = await beat();
      assert.ok(first.ok, `beat before the stall: ${first.status} ${await first.text()}`);

      await pg.signal("SIGSTOP");
      stopped = true;
      // Twice: the first round meets the pool's open (now stuck) connections, the second the
      // fresh ones it opens to a server that accepts TCP but never answers.
      for (const round of [1, 2]) {
        const answers = await Promise.all([
          beat(),
          get("/v1/admin/appliances", admin),
          get("/healthz"),
        ]);
        for (const [i, res] of answers.entries()) {
          const what = `round ${round}, ${["beat", "admin list", "/healthz"][i]}`;
          assert.equal(res.status, 503, what);
          assert.ok(Number(res.headers.get("retry-after")) > 0, `${what}: Retry-After`);
          const body = await res.json();
          if (i === 2) assert.equal(body.database, "unreachable", what);
          else assert.equal(body.error, "unavailable", what);
        }
      }

      await pg.signal("SIGCONT");
      stopped = false;
      // No restart: the same process answers 200 again once the server runs.
      let health = 0;
      for (let i = 0; i < 100 && health !== 200; i++) {
        const r = await get("/healthz");
        health = r.status;
        await r.body?.cancel();
        if (health !== 200) await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(health, 200, "healthy again after SIGCONT");
      const after = await beat();
      assert.ok(after.ok, `beat after SIGCONT: ${after.status} ${await after.text()}`);
      const list = await get("/v1/admin/appliances", admin);
      assert.equal(list.status, 200);
      const items = (await list.json()).items as Array<{ uid: string }>;
      assert.ok(items.some((a) => a.uid === uid));
    } finally {
      if (stopped) await pg.signal("SIGCONT");
      await noc?.stop();
      await pg.drop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
