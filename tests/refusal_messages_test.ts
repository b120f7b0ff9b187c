/**
 * What a refused appliance is told, and what its agent says: a `wrong_authority`
 * refusal names the authority the NOC checked (the request's own, from `Host`
 * or a trusted proxy's `X-Forwarded-Host`), and an agent enrolled under a name
 * the NOC does not accept says so in its cycle's message and log, as a
 * refusal, not an outage.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat } from "./_harness.ts";
import { agentBox, serveNoc } from "./_agent.ts";
import { sendWithHost } from "./_raw_http.ts";
import { signedRequest } from "../protocol/client.ts";
import { beatFailure } from "../agent/cycle.ts";
import { NocError } from "../protocol/client.ts";

function beatFor(
  a: { uid: string; keys: { signing: unknown } },
  baseUrl: string,
  now: Date,
): Promise<Request> {
  return signedRequest({
    baseUrl,
    uid: a.uid,
    key: a.keys.signing as never,
    method: "POST",
    path: "/v1/beats",
    body: sampleBeat(1, now),
    now,
  });
}

dbTest(
  "a wrong_authority refusal names the authority the request was sent to, and which header gave it",
  async ({ db }) => {
    const direct = await serveNoc(db, { publicHosts: ["vm:18081"] });
    const proxied = await serveNoc(db, { publicHosts: ["vm:18081"], trustProxy: true });
    try {
      const a = await direct.enrollAppliance();
      const portOf = (n: { url: string }) => Number(new URL(n.url).port);
      // Signed for vm:18081, sent with Host 127.0.0.1:<port>: the NOC checks the Host it received.
      const res = await sendWithHost(
        portOf(direct),
        await beatFor(a, "http://vm:18081", direct.clock.now()),
        `127.0.0.1:${portOf(direct)}`,
      );
      assert.equal(res.status, 401, res.text);
      const body = JSON.parse(res.text);
      assert.equal(body.error, "wrong_authority");
      assert.match(
        body.message,
        new RegExp(`^Request sent to authority "127\\.0\\.0\\.1:${portOf(direct)}" \\(its Host\\)`),
      );
      assert.doesNotMatch(body.message, /Signature is for/);
      // Behind a trusted proxy, the authority checked is X-Forwarded-Host's, and it says so.
      const b = await proxied.enrollAppliance();
      const fwd = await sendWithHost(
        portOf(proxied),
        await beatFor(b, "http://other.example", proxied.clock.now()),
        `127.0.0.1:${portOf(proxied)}`,
        { "x-forwarded-host": "other.example" },
      );
      assert.match(
        JSON.parse(fwd.text).message,
        /^Request sent to authority "other\.example" \(its X-Forwarded-Host\)/,
      );
    } finally {
      await direct.close();
      await proxied.close();
    }
  },
);

Deno.test("beatFailure() names a 4xx refusal's code and message, and calls the rest an outage", () => {
  const wrong = beatFailure(
    new NocError(401, { error: "wrong_authority", message: 'Request sent to authority "x"' }),
    "http://localhost:18081",
  );
  assert.match(wrong, /^NOC refused the beat: 401 wrong_authority: Request sent to authority "x"/);
  assert.match(wrong, /signs for localhost:18081/);
  assert.match(wrong, /"noc" in agent\.json/);
  assert.equal(
    beatFailure(new NocError(403, { error: "revoked", message: "Revoked" }), "http://n"),
    "NOC refused the beat: 403 revoked: Revoked",
  );
  assert.match(
    beatFailure(new NocError(503, { error: "unavailable" }), "http://n"),
    /^NOC unreachable/,
  );
  assert.match(
    beatFailure(new TypeError("connection refused"), "http://n"),
    /^NOC unreachable: connection refused/,
  );
});

dbTest(
  "an agent enrolled under a name the NOC does not accept logs the NOC's wrong_authority refusal, not an outage",
  async ({ db }) => {
    // The NOC's name is vm:<port>; the agent enrols at http://127.0.0.1:<port> (enrolment is
    // not signed, so that works), and every signed request is then refused.
    const noc = await serveNoc(db, { publicHosts: ["vm.example:1"] });
    const box = await agentBox();
    try {
      const token = await noc.enrollmentToken();
      const e = await box.run(["enroll", "--noc", noc.url, "--token", token]);
      assert.equal(e.code, 0, e.stderr + e.stdout);
      const r = await box.run(["once", "--allow-http-files"]);
      assert.equal(r.code, 1, r.stdout);
      const refused = r.events.find((x) => x.event === "beat_refused_by_noc");
      assert.ok(refused, r.stdout);
      assert.equal(refused.status, 401);
      assert.equal(refused.reason, "wrong_authority");
      assert.ok(!r.events.some((x) => x.event === "noc_unreachable"), r.stdout);
      const finished = r.events.find((x) => x.event === "cycle_finished");
      assert.match(finished.message, /^NOC refused the beat: 401 wrong_authority: Request sent to/);
      assert.match(
        finished.message,
        new RegExp(`signs for 127\\.0\\.0\\.1:${new URL(noc.url).port}`),
      );
      // `status` shows the same message.
      const s = await box.run(["status", "--json"]);
      assert.match(JSON.parse(s.stdout).lastCycle.message, /wrong_authority/);
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);
