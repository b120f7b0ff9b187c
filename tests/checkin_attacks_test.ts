// deno-lint-ignore-file no-explicit-any
/**
 * POST /v1/checkin against an attacker (issue 23, the review of the joined check-in): a man in the
 * middle between real agent processes and a NOC served over HTTP — a beat he lets through and then
 * answers 404 or 413 himself must not be sent again under the same seq (a false clone alarm) —
 * and odd inputs to the route in process.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, type TestNoc, testNoc } from "./_harness.ts";
import { type AgentBox, agentBox } from "./_agent.ts";
import { createApp } from "../noc/app.ts";
import { ManualClock } from "../noc/clock.ts";
import type { Db } from "../noc/db/db.ts";
import { signRequest } from "../protocol/http/signature.ts";
import { newNonce } from "../protocol/client.ts";

interface Mitm {
  noc: TestNoc;
  url: string;
  /** Paths the agent requested, in order. */
  seen: string[];
  /** Answers a request (given the NOC's own answer to it, when forwarded) or null to pass it on. */
  intercept: ((req: Request, forward: () => Promise<Response>) => Promise<Response | null>) | null;
  close(): Promise<void>;
}

async function mitmNoc(db: Db): Promise<Mitm> {
  const noc = await testNoc(db, {
    clock: new ManualClock(new Date()),
    settings: { allowPlainHttpFiles: true },
  });
  const m: Mitm = { noc, url: "", seen: [], intercept: null, close: async () => {} };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req, info) => {
      m.seen.push(`${req.method} ${new URL(req.url).pathname}`);
      const forward = () => noc.app.fetch(req, info) as Promise<Response>;
      const forged = m.intercept ? await m.intercept(req, forward) : null;
      return forged ?? await forward();
    },
  );
  m.url = `http://127.0.0.1:${server.addr.port}`;
  noc.deps.authorities.listening({ hostname: "127.0.0.1", port: server.addr.port });
  m.close = async () => {
    await noc.deps.wakeups.close();
    await server.shutdown();
  };
  return m;
}

async function enrolled(m: Mitm): Promise<AgentBox> {
  const box = await agentBox();
  const r = await box.run(["enroll", "--noc", m.url, "--token", await m.noc.enrollmentToken()]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return box;
}

const once = (box: AgentBox) => box.run(["once", "--allow-http-files"]);

dbTest(
  "a man in the middle who forwards POST /v1/checkin and answers 404 must not make the NOC see a cloned identity",
  async ({ db }) => {
    const m = await mitmNoc(db);
    const box = await enrolled(m);
    try {
      // One honest cycle: the appliance has reported an instance and a seq.
      let r = await once(box);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      // The attacker lets the joined request reach the NOC (the beat is recorded), then tells the
      // agent "404": the agent falls back to POST /v1/beats with the same beat, the same seq.
      m.intercept = async (req, forward) => {
        if (new URL(req.url).pathname !== "/v1/checkin") return null;
        const res = await forward();
        await res.body?.cancel();
        return Response.json({ error: "not_found", message: "x" }, { status: 404 });
      };
      r = await once(box);
      assert.ok(m.seen.includes("POST /v1/beats"), m.seen.join(", "));
      const [row] = await m.noc.deps.db.sql<{ identity_conflict: unknown }>`
        select identity_conflict from appliances`;
      assert.equal(
        row!.identity_conflict,
        null,
        `a MITM-made 404 marked the appliance as cloned: ${JSON.stringify(row!.identity_conflict)}`,
      );
    } finally {
      await box.remove();
      await m.close();
    }
  },
);

for (const path of ["/v1/checkin", "/v1/beats"]) {
  dbTest(
    `a man in the middle who forwards ${path} and answers 413 must not make the NOC see a cloned identity`,
    async ({ db }) => {
      const m = await mitmNoc(db);
      const box = await enrolled(m);
      try {
        let r = await once(box);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        let done = false;
        m.intercept = async (req, forward) => {
          const p = new URL(req.url).pathname;
          // Split transport for the /v1/beats case: the joined request is answered 404 unforwarded.
          if (path === "/v1/beats" && p === "/v1/checkin") {
            return Response.json({ error: "not_found", message: "x" }, { status: 404 });
          }
          if (p !== path || done) return null;
          done = true;
          const res = await forward();
          await res.body?.cancel();
          return Response.json({ error: "too_large", message: "x" }, { status: 413 });
        };
        r = await once(box);
        const [row] = await m.noc.deps.db.sql<{ identity_conflict: unknown }>`
          select identity_conflict from appliances`;
        assert.equal(
          row!.identity_conflict,
          null,
          `a MITM-made 413 on ${path} marked the appliance as cloned: ${
            JSON.stringify(row!.identity_conflict)
          }`,
        );
      } finally {
        await box.remove();
        await m.close();
      }
    },
  );
}

dbTest(
  "a joined answer with catalog null (or not a string) to an agent holding no catalog is not taken: the catalog is asked for on its own",
  async ({ db }) => {
    const m = await mitmNoc(db);
    const box = await enrolled(m);
    try {
      for (const forged of [null, 42, { a: 1 }, ["x"], true, "keep"]) {
        m.seen = [];
        m.intercept = async (req, forward) => {
          if (new URL(req.url).pathname !== "/v1/checkin") return null;
          const res = await forward();
          const body = await res.json();
          // "keep": the NOC's own catalog, but a receipt naming a catalog server elsewhere.
          const edited = forged === "keep"
            ? { ...body, receipt: { ...body.receipt, catalogUrl: "http://127.0.0.1:9" } }
            : { ...body, catalog: forged };
          return new Response(JSON.stringify(edited), {
            status: 200,
            headers: res.headers,
          });
        };
        const r = await once(box);
        assert.equal(r.code, 0, `${JSON.stringify(forged)}: ${r.stdout}${r.stderr}`);
        assert.ok(m.seen.includes("GET /v1/catalog"), `${forged}: ${m.seen.join(", ")}`);
        // The first round leaves the agent with a catalog: wipe it for the next.
        await Deno.remove(`${box.state}/catalog.json`).catch(() => {});
      }
    } finally {
      await box.remove();
      await m.close();
    }
  },
);

dbTest("POST /v1/checkin: odd inputs are 4xx or 200, never 500", async ({ db }) => {
  const noc = await testNoc(db);
  const a = await noc.enrollAppliance();
  let seq = 0;
  const send = async (
    opts: { inm?: string; ct?: string },
  ): Promise<{ status: number; body: any }> => {
    seq += 1;
    const req = await a.request("POST", "/v1/checkin", sampleBeat(seq, noc.clock.now()));
    const h = new Headers(req.headers);
    if (opts.inm !== undefined) h.set("if-none-match", opts.inm);
    if (opts.ct !== undefined) h.set("content-type", opts.ct);
    const res = await noc.app.request(
      new Request(req.url, { method: "POST", headers: h, body: await req.text() }),
    );
    return { status: res.status, body: await res.json().catch(() => null) };
  };
  /** A request signed over raw bytes (not JSON-encoded). */
  const raw = async (text: string): Promise<Request> => {
    const url = "http://noc.test/v1/checkin";
    const headers = new Headers({ "content-type": "application/json" });
    const bytes = new TextEncoder().encode(text);
    await signRequest({ method: "POST", url, headers, body: bytes }, {
      privateKey: a.keys.signing,
      keyid: a.uid,
      created: Math.floor(noc.clock.now().getTime() / 1000),
      nonce: newNonce(),
    });
    return new Request(url, { method: "POST", headers, body: bytes });
  };
  for (
    const inm of [
      "*",
      'W/"abc"',
      '"' + "a".repeat(64) + '", "' + "b".repeat(64) + '"',
      "x".repeat(7000),
      '"\u00e9"',
      ",,,,",
      '"',
      "",
    ]
  ) {
    const r = await send({ inm });
    assert.ok(r.status < 500, `If-None-Match ${inm.slice(0, 40)}: ${r.status}`);
    assert.equal(r.status, 200, `${inm.slice(0, 40)}: ${JSON.stringify(r.body)}`);
  }
  // Wrong content type: still the signed body; whatever it answers, not a 500.
  const ct = await send({ ct: "text/plain" });
  assert.ok(ct.status < 500, `content-type text/plain: ${ct.status}`);

  // Non-JSON body, signed properly (a signature over its digest).
  for (const text of ["not json", "[]", "null", "{", '"x"', "", "\u0000"]) {
    const res = await noc.app.request(await raw(text));
    const body = await res.json();
    assert.ok(res.status === 400, `${text}: ${res.status} ${JSON.stringify(body)}`);
    assert.equal(typeof body.error, "string");
  }
  // Too big: 413 before any beat.
  const huge = sampleBeat(1000, noc.clock.now(), {
    apps: { x: { blob: "y".repeat(noc.deps.settings.maxBodyBytes + 10) } },
  });
  const big = await noc.app.request(await a.request("POST", "/v1/checkin", huge));
  assert.equal(big.status, 413, await big.text());

  // Revoked: 401 revoked_key, nothing recorded, no catalog.
  const rv = await noc.admin("POST", `/v1/admin/appliances/${a.uid}/revoke`, { reason: "x" });
  assert.ok(rv.status < 300, JSON.stringify(rv.body));
  const [before] = await noc.deps.db.sql<{ last_seq: number }>`
    select last_seq from appliances where uid = ${a.uid}`;
  const revoked = await noc.app.request(
    await a.request("POST", "/v1/checkin", sampleBeat(2000, noc.clock.now())),
  );
  assert.equal(revoked.status, 401);
  assert.equal((await revoked.json()).error, "revoked_key");
  assert.equal(revoked.headers.get("catalog-binding"), null);
  const [after] = await noc.deps.db.sql<{ last_seq: number }>`
    select last_seq from appliances where uid = ${a.uid}`;
  assert.equal(after!.last_seq, before!.last_seq);
});

dbTest(
  "a signed POST /v1/checkin replayed to another NOC instance, or its nonce on another route, is refused",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const other = createApp(noc.deps, { role: "all" });
    const req = await a.request("POST", "/v1/checkin", sampleBeat(1, noc.clock.now()));
    const copy = req.clone();
    assert.equal((await noc.app.request(req)).status, 200);
    const again = await other.request(copy);
    assert.equal(again.status, 401);
    assert.equal((await again.json()).error, "replayed_signature");
    // The nonce a GET /v1/catalog spent, on a checkin: refused.
    const nonce = crypto.randomUUID();
    assert.equal(
      (await noc.app.request(await a.request("GET", "/v1/catalog", undefined, { nonce }))).status,
      200,
    );
    const reused = await other.request(
      await a.request("POST", "/v1/checkin", sampleBeat(2, noc.clock.now()), { nonce }),
    );
    assert.equal(reused.status, 401);
    assert.equal((await reused.json()).error, "replayed_signature");
  },
);
