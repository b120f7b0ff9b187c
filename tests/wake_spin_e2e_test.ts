/**
 * What a man in the middle can do with the agent's unsigned answers (issue 16, key review F4 and
 * F5): wake-up answers are hints held to a floor, and a beat answer's catalogUrl only says where
 * to ask first. Real agent processes behind a proxy that passes every signed byte through.
 */
// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { agentBox, type ServedNoc, serveNoc } from "./_agent.ts";
import { payload, upload } from "./_components.ts";

/** A transparent proxy in front of `noc` (its address is one of the NOC's names); `answer` may
 * answer a request itself, or rewrite the NOC's answer. */
function proxy(
  noc: ServedNoc,
  answer: (req: Request, forward: () => Promise<Response>) => Promise<Response>,
) {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req, info) => answer(req, async () => await (noc.app.fetch as any)(req, info)),
  );
  noc.deps.authorities.listening({ hostname: "127.0.0.1", port: server.addr.port });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

dbTest(
  "a man in the middle answering every wake-up poll at once cannot make the agent spin: early cycles are held to the wake floor",
  async ({ db }) => {
    const noc = await serveNoc(db, {});
    let wakes = 0;
    const mitm = proxy(noc, async (req, forward) => {
      if (new URL(req.url).pathname !== "/v1/wake") return await forward();
      wakes++;
      return Response.json({ wake: true, cursor: wakes });
    });
    const box = await agentBox();
    try {
      const token = await noc.enrollmentToken();
      const en = await box.run(["enroll", "--noc", mitm.url, "--token", token, "--model", "m"]);
      assert.equal(en.code, 0, en.stderr + en.stdout);
      const agent = box.spawn(["run", "--wake-wait", "30"]);
      // The poller answers itself about once a second: wait for six forged wake-ups.
      while (wakes < 6) await new Promise((r) => setTimeout(r, 50));
      await agent.stop("SIGTERM");
      const cycles = agent.events.filter((e: any) => e.event === "cycle_finished");
      // The first cycle, and one cycle a wake-up started early; the rest wait for the floor.
      assert.ok(cycles.length <= 2, `${cycles.length} cycles for ${wakes} forged wake-ups`);
      assert.ok(agent.events.some((e: any) => e.event === "wake_deferred"));
      assert.equal(agent.events.filter((e: any) => e.event === "woken").length, 1);
    } finally {
      await box.remove();
      await mitm.close();
      await noc.close();
    }
  },
);

dbTest(
  "a catalogUrl a man in the middle puts in the beat answer gets no install report: the agent falls back to the NOC for its catalog and reports",
  async ({ db }) => {
    const noc = await serveNoc(db, {});
    const rogueHits: string[] = [];
    const rogue = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      rogueHits.push(`${req.method} ${new URL(req.url).pathname}`);
      return Response.json({ ok: true }, {
        status: new URL(req.url).pathname === "/v1/installs" ? 200 : 503,
      });
    });
    const rogueUrl = `http://127.0.0.1:${rogue.addr.port}`;
    const mitm = proxy(noc, async (req, forward) => {
      const res = await forward();
      const path = new URL(req.url).pathname;
      if (!res.ok || (path !== "/v1/beats" && path !== "/v1/checkin")) return res;
      const body = await res.json();
      // The beat's answer, alone or as the receipt of a joined one (its catalog left as it is).
      if (path === "/v1/checkin") body.receipt = { ...body.receipt, catalogUrl: rogueUrl };
      else body.catalogUrl = rogueUrl;
      return Response.json(body, { status: res.status, headers: res.headers });
    });
    const box = await agentBox();
    try {
      const up = await upload(
        noc,
        "/v1/admin/packages?app=demo&name=demo&version=1.0.0",
        await payload({ install: '#!/bin/sh\necho 1.0.0 > "$NOC_ROOT/v"\n' }),
        "application/gzip",
      );
      assert.equal(up.status, 201, JSON.stringify(up.body));
      const as = await noc.admin("POST", "/v1/admin/assignments", {
        kind: "package",
        app: "demo",
        name: "demo",
        version: "1.0.0",
        target: { type: "all" },
      });
      assert.equal(as.status, 201, JSON.stringify(as.body));
      const token = await noc.enrollmentToken();
      const en = await box.run(["enroll", "--noc", mitm.url, "--token", token, "--model", "m"]);
      assert.equal(en.code, 0, en.stderr + en.stdout);
      const r = await box.run(["once", "--allow-http-files"]);
      assert.equal(await box.readRoot("v"), "1.0.0\n", r.stdout + r.stderr);
      assert.ok(r.events.some((e: any) => e.event === "catalog_server_failed"));
      assert.deepEqual(rogueHits, ["GET /v1/catalog"], "the rogue server got no install report");
      const [o] = await db.sql<{ n: number }>`select count(*)::int as n from install_outcomes`;
      assert.equal(o!.n, 1, "the install outcome reached the NOC");
    } finally {
      await box.remove();
      await mitm.close();
      await rogue.shutdown();
      await noc.close();
    }
  },
);
