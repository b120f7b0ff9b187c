// deno-lint-ignore-file no-explicit-any
/**
 * Fresh catalogs and a schedule from signed data only (issue 16, items 7
 * and 8), with real agent processes against a NOC served over real HTTP
 * through a man in the middle that records, replays, strips and forges
 * answers. On PGlite and, with TEST_DATABASE_URL, PostgreSQL.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { type AgentBox, agentBox, type AgentRun } from "./_agent.ts";
import { payload, upload } from "./_components.ts";
import { ManualClock } from "../noc/clock.ts";
import type { Db } from "../noc/db/db.ts";
import { INTERVAL_RANGE_S } from "../protocol/catalog.ts";

/** A recorded catalog answer, as the NOC sent it. */
interface Recorded {
  /** The request: `/v1/catalog`, or `/v1/checkin` (the beat and the catalog in one). */
  path: string;
  status: number;
  headers: Headers;
  body: string;
  /** The catalog was unchanged: a 304, or a joined answer's `catalog: null`. */
  notModified: boolean;
}

/**
 * How the agent gets its catalog: with its beat in one request (`joined`, the default), or in a
 * request of its own (`split`: the man in the middle answers `POST /v1/checkin` 404, as a NOC
 * whose roles are split does). Every defence is tested both ways.
 */
type Transport = "joined" | "split";
const transports: Transport[] = ["joined", "split"];
const catalogPaths = ["/v1/catalog", "/v1/checkin"];

/** A NOC served over HTTP behind a man in the middle the test steers. */
interface Mitm {
  noc: TestNoc;
  url: string;
  /** Every catalog answer the NOC gave, in order. */
  catalogs: Recorded[];
  /** When set, answers a request instead of the NOC (null: pass it on). */
  intercept: ((req: Request) => Response | null) | null;
  close(): Promise<void>;
}

async function mitmNoc(db: Db, transport: Transport): Promise<Mitm> {
  const noc = await testNoc(db, {
    clock: new ManualClock(new Date()),
    settings: { allowPlainHttpFiles: true },
  });
  const m: Mitm = {
    noc,
    url: "",
    catalogs: [],
    intercept: null,
    close: async () => {},
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req, info) => {
      const path = new URL(req.url).pathname;
      if (transport === "split" && path === "/v1/checkin") {
        return Response.json({ error: "not_found", message: "split roles" }, { status: 404 });
      }
      const forged = m.intercept?.(req) ?? null;
      if (forged) return forged;
      const res = await noc.app.fetch(req, info);
      if (!catalogPaths.includes(path)) return res;
      const body = await res.text();
      m.catalogs.push({
        path,
        status: res.status,
        headers: new Headers(res.headers),
        body,
        notModified: res.status === 304 ||
          (path === "/v1/checkin" && res.status === 200 && JSON.parse(body).catalog === null),
      });
      return new Response(res.status === 304 ? null : body, {
        status: res.status,
        headers: res.headers,
      });
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

const installScript = `#!/bin/sh
set -e
mkdir -p "$NOC_ROOT/demo"
printf '%s' "$NOC_VERSION" > "$NOC_ROOT/demo/.version.tmp"
mv "$NOC_ROOT/demo/.version.tmp" "$NOC_ROOT/demo/version"
`;

async function release(noc: TestNoc, version: string): Promise<void> {
  const up = await upload(
    noc,
    `/v1/admin/packages?app=demo&name=demo&version=${version}`,
    await payload({ install: installScript }),
    "application/gzip",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const as = await noc.admin("POST", "/v1/admin/assignments", {
    kind: "package",
    app: "demo",
    name: "demo",
    version,
    target: { type: "all" },
  });
  assert.equal(as.status, 201, JSON.stringify(as.body));
}

async function enrolled(m: Mitm): Promise<AgentBox> {
  const box = await agentBox();
  const r = await box.run([
    "enroll",
    "--noc",
    m.url,
    "--token",
    await m.noc.enrollmentToken(),
  ]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return box;
}

const once = (box: AgentBox) => box.run(["once", "--allow-http-files"]);

function refusal(r: AgentRun): any {
  return r.events.find((e) => e.event === "catalog_refused");
}

/**
 * Answers the catalog requests with `rec` (a recorded answer, whole: a joined one with its
 * receipt) instead of the NOC's.
 */
function replay(m: Mitm, rec: Recorded, edit: (h: Headers) => void = () => {}): void {
  m.intercept = (req) => {
    if (new URL(req.url).pathname !== rec.path) return null;
    const headers = new Headers(rec.headers);
    edit(headers);
    return new Response(rec.status === 304 ? null : rec.body, { status: rec.status, headers });
  };
}

/** Refuses every catalog request 403 (a joined one: the beat's receipt, and no catalog). */
function refuseCatalogs(req: Request, receipt: Record<string, unknown> = {}): Response | null {
  const path = new URL(req.url).pathname;
  if (path === "/v1/catalog") {
    return Response.json({ error: "forbidden", message: "no" }, { status: 403 });
  }
  // The receipt alone: the agent then asks GET /v1/catalog, refused above.
  if (path === "/v1/checkin") return Response.json({ receipt });
  return null;
}

for (const transport of transports) {
  dbTest(
    `after the documented restore (all but identity.json wiped), a replayed older catalog is refused and the appliance stays on its version (${transport})`,
    async ({ db }) => {
      const m = await mitmNoc(db, transport);
      const box = await enrolled(m);
      try {
        await release(m.noc, "1.0.0");
        let r = await once(box);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(await box.readRoot("demo/version"), "1.0.0");
        const old = m.catalogs.findLast((c) => c.status === 200 && !c.notModified)!;
        assert.equal(old.path, transport === "joined" ? "/v1/checkin" : "/v1/catalog");
        assert.ok(old.headers.get("catalog-binding"), "every answer carries its binding");

        await release(m.noc, "2.0.0");
        r = await once(box);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(await box.readRoot("demo/version"), "2.0.0");

        // The restore docs/agent.md documents, then the attacker replays the 1.0.0 catalog: signed,
        // unexpired, and no serial left on the appliance to compare it with.
        await box.wipe();
        await Deno.mkdir(`${box.root}/demo`, { recursive: true });
        await Deno.writeTextFile(`${box.root}/demo/version`, "2.0.0");
        replay(m, old);
        r = await once(box);
        assert.equal(r.code, 1, r.stdout);
        assert.equal(refusal(r)?.reason, "bad_binding", r.stdout);
        assert.equal(await box.readRoot("demo/version"), "2.0.0", "not taken back to 1.0.0");
        assert.ok(!r.events.some((e) => e.event === "install_started"));

        // The same answer with its binding stripped: refused as unbound.
        replay(m, old, (h) => h.delete("catalog-binding"));
        r = await once(box);
        assert.equal(refusal(r)?.reason, "unbound", r.stdout);

        // A fresh answer from the NOC is accepted: the restore completes on 2.0.0.
        m.intercept = null;
        r = await once(box);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(await box.readRoot("demo/version"), "2.0.0");
      } finally {
        await box.remove();
        await m.close();
      }
    },
  );

  dbTest(
    `a 304 is bound to its request too: a replayed 304 cannot freeze the appliance on its cached catalog (${transport})`,
    async ({ db }) => {
      const m = await mitmNoc(db, transport);
      const box = await enrolled(m);
      try {
        await release(m.noc, "1.0.0");
        assert.equal((await once(box)).code, 0);
        let r = await once(box);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const notModified = m.catalogs.at(-1)!;
        assert.ok(notModified.notModified, "the second cycle's catalog was unchanged (a 304)");
        assert.ok(notModified.headers.get("catalog-binding"));

        // 2.0.0 is released; the attacker answers with the earlier 304 (its binding is for another
        // request's nonce).
        await release(m.noc, "2.0.0");
        replay(m, notModified);
        r = await once(box);
        assert.equal(refusal(r)?.reason, "bad_binding", r.stdout);
        m.intercept = null;
        r = await once(box);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(await box.readRoot("demo/version"), "2.0.0");
      } finally {
        await box.remove();
        await m.close();
      }
    },
  );

  dbTest(
    `a man in the middle answering a beat with intervalS 2000000 and refusing the catalog cannot put the agent to sleep past the NOC's range (${transport})`,
    async ({ db }) => {
      const m = await mitmNoc(db, transport);
      const box = await enrolled(m);
      const nextDue = async () => {
        const s = JSON.parse(await Deno.readTextFile(`${box.state}/state.json`));
        return { inS: (Date.parse(s.nextDueAt) - Date.now()) / 1000, intervalS: s.intervalS };
      };
      try {
        const lie = { intervalS: 2_000_000, nextBeatInS: 2_000_000 };
        m.intercept = (req) =>
          new URL(req.url).pathname === "/v1/beats" ? Response.json(lie) : refuseCatalogs(req, lie);
        const r = await once(box);
        assert.equal(r.code, 1, r.stdout);
        const due = await nextDue();
        assert.ok(due.inS <= 909, `next cycle in ${due.inS} s`);
        assert.notEqual(due.intervalS, 2_000_000);

        // The interval the NOC sets reaches the agent in the signed catalog, and only there.
        m.intercept = null;
        const uid = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid;
        const patched = await m.noc.admin("PATCH", `/v1/admin/appliances/${uid}`, {
          intervalS: 600,
        });
        assert.equal(patched.status, 200, JSON.stringify(patched.body));
        assert.equal((await once(box)).code, 0);
        assert.equal((await nextDue()).intervalS, 600);
        assert.ok((await nextDue()).inS <= 600);

        // A state file saying otherwise (tampered, or from an older agent) is held to the range.
        const s = JSON.parse(await Deno.readTextFile(`${box.state}/state.json`));
        await Deno.writeTextFile(
          `${box.state}/state.json`,
          JSON.stringify({ ...s, intervalS: 2_000_000 }),
        );
        m.intercept = (req) => refuseCatalogs(req);
        assert.equal((await once(box)).code, 1);
        assert.ok((await nextDue()).inS <= INTERVAL_RANGE_S.max);
      } finally {
        await box.remove();
        await m.close();
      }
    },
  );
}
