import assert from "node:assert/strict";
import { startNoc } from "./_process.ts";
import { enroll, generateApplianceKeys, signedCall } from "../protocol/client.ts";
import { sampleBeat } from "./_harness.ts";

Deno.test({
  name:
    "deno task dev on PGlite: a new user enrols, beats, sees the appliance ok, and it survives a restart",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const top = await Deno.makeTempDir({ prefix: "noc-e2e-" });
    // A data folder the NOC makes itself: it holds the signing key, so it is its owner's alone.
    const dataDir = `${top}/data`;
    try {
      let noc = await startNoc({ NOC_DATA_DIR: dataDir });
      assert.equal((await Deno.stat(dataDir)).mode! & 0o777, 0o700, "data folder owner-only");
      const keys = await generateApplianceKeys();
      const e = await enroll(fetch, noc.url, {
        token: noc.enrollmentToken,
        model: "vs-2000",
        hostname: "mail-gw-1",
        keys,
      });
      assert.equal(e.intervalS, 909);
      const reply = await signedCall<{ nextBeatInS: number }>(fetch, {
        baseUrl: noc.url,
        uid: e.uid,
        key: keys.signing,
        method: "POST",
        path: "/v1/beats",
        body: sampleBeat(1, new Date()),
      });
      assert.equal(reply.nextBeatInS, 909);
      const admin = (url: string, token: string) =>
        fetch(`${url}/v1/admin/appliances?state=ok`, {
          headers: { authorization: `Bearer ${token}` },
        });
      const list = await (await admin(noc.url, noc.adminToken)).json();
      assert.deepEqual(list.items.map((a: { hostname: string }) => a.hostname), ["mail-gw-1"]);
      assert.equal((await fetch(`${noc.url}/healthz`).then((r) => r.json())).status, "ok");
      const unauth = await fetch(`${noc.url}/v1/admin/appliances`);
      assert.equal(unauth.status, 401);
      await unauth.body?.cancel();
      assert.match(noc.output(), /"event":"request"/, "JSON request logs");
      const first = { admin: noc.adminToken, enrol: noc.enrollmentToken };
      const status = await noc.stop("SIGINT");
      assert.equal(status.code, 0);

      noc = await startNoc({ NOC_DATA_DIR: dataDir });
      let stopped = false;
      try {
        assert.equal(noc.adminToken, first.admin, "the admin token is kept in the data folder");
        assert.notEqual(noc.enrollmentToken, first.enrol, "a used enrolment token is replaced");
        const again = await (await admin(noc.url, noc.adminToken)).json();
        assert.deepEqual(
          again.items.map((a: { uid: string }) => a.uid),
          [e.uid],
          "PGlite persisted the fleet",
        );
        const keysDoc = await fetch(`${noc.url}/v1/keys`).then((r) => r.json());
        assert.deepEqual(keysDoc.keys, e.nocKeys, "the NOC signing key is kept too");
        // Service managers and `kill` stop it with SIGTERM: as cleanly as Ctrl-C.
        stopped = true;
        const term = await noc.stop("SIGTERM");
        assert.equal(term.code, 0, "SIGTERM closes the NOC (and PGlite) cleanly");
      } finally {
        if (!stopped) await noc.stop();
      }
    } finally {
      await Deno.remove(top, { recursive: true });
    }
  },
});
