// deno-lint-ignore-file no-explicit-any
/**
 * The local component server end to end: a NOC over real HTTP (PGlite and
 * PostgreSQL), a real local server process with its own data folder and
 * self-signed HTTPS, and real agent processes of its site.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { type AgentBox, agentBox, type ServedNoc, serveNoc } from "./_agent.ts";
import { payload, upload } from "./_components.ts";
import { type LocalProcess, startLocal } from "./_local.ts";
import { sha256, toHex } from "../protocol/util/encoding.ts";

const installScript = `#!/bin/sh
set -e
mkdir -p "$NOC_ROOT/demo"
cp "$NOC_STAGING/payload.txt" "$NOC_ROOT/demo/payload.txt"
printf '%s' "$NOC_VERSION" > "$NOC_ROOT/demo/version"
`;

async function publish(
  noc: ServedNoc,
  version: string,
  name = "demo",
  extra: Record<string, string | Uint8Array> = {},
): Promise<number> {
  const up = await upload(
    noc,
    `/v1/admin/packages?app=demo&name=${name}&version=${version}`,
    await payload({ install: installScript, "payload.txt": `payload ${version}\n`, ...extra }),
    "application/gzip",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const as = await noc.admin("POST", "/v1/admin/assignments", {
    kind: "package",
    app: "demo",
    name,
    version,
    target: { type: "site", value: "lab" },
    allowUnknownTarget: true, // published before the lab has a token, server or appliance
  });
  assert.equal(as.status, 201, JSON.stringify(as.body));
  return up.body.id;
}

async function publishMotd(noc: ServedNoc, text: string): Promise<number> {
  const up = await upload(
    noc,
    `/v1/admin/files?app=demo&name=motd&version=1`,
    new TextEncoder().encode(text),
    "application/octet-stream",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const fi = await noc.admin("PUT", "/v1/admin/apps/demo/fileinfo/motd", {
    destination: "etc/motd",
    mode: "0644",
  });
  assert.equal(fi.status, 200, JSON.stringify(fi.body));
  const as = await noc.admin("POST", "/v1/admin/assignments", {
    kind: "file",
    app: "demo",
    name: "motd",
    version: "1",
    target: { type: "site", value: "lab" },
    allowUnknownTarget: true, // published before the lab has a token, server or appliance
  });
  assert.equal(as.status, 201, JSON.stringify(as.body));
  return up.body.id;
}

/** `deno task noc -- <args>` against `noc`. */
async function nocCli(noc: ServedNoc, args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "cli/noc.ts",
      ...args,
    ],
    cwd: new URL("..", import.meta.url),
    env: { NOC_URL: noc.url, NOC_TOKEN: noc.adminToken },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
  return text;
}

async function localServer(
  noc: ServedNoc,
  args: string[] = [],
  token?: string,
): Promise<LocalProcess> {
  token ??= await noc.enrollmentToken({ purpose: "local-server", site: "lab" });
  return await startLocal({
    dataDir: await Deno.makeTempDir({ prefix: "noc-local-" }),
    args: [
      "--upstream",
      noc.url,
      "--allow-http-upstream",
      "true",
      "--site",
      "lab",
      "--token",
      token,
      "--sync",
      "1",
      ...args,
    ],
  });
}

/** An agent of site `lab` that trusts the local server's certificate. */
async function siteAgent(noc: ServedNoc, local: LocalProcess): Promise<AgentBox> {
  const box = await agentBox();
  await Deno.writeTextFile(`${box.state}/ca.pem`, local.certPem);
  const token = await noc.enrollmentToken({ site: "lab" });
  const r = await box.run(["enroll", "--noc", noc.url, "--token", token, "--model", "vs-2000"]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return box;
}

/** Waits (polling, bounded) until `check` holds. */
async function until<T>(
  what: string,
  check: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function deliveries(noc: ServedNoc) {
  return await noc.deps.db.sql<
    { uid: string; component_id: number; times: number; via: string | null }
  >`
    select uid, component_id, times, via from deliveries order by uid, component_id`;
}

async function nocFetches(noc: ServedNoc) {
  return await noc.deps.db.sql<{ component_id: number; times: number }>`
    select component_id, times from local_server_fetches order by component_id`;
}

/** Removes what an appliance installed and its record of it, keeping identity, catalog and state. */
async function loseInstalls(box: AgentBox): Promise<void> {
  await Deno.remove(`${box.state}/catalog.cur`).catch(() => {});
  await Deno.remove(`${box.state}/downloads`, { recursive: true }).catch(() => {});
  await Deno.remove(`${box.state}/packages`, { recursive: true }).catch(() => {});
  await Deno.remove(box.root, { recursive: true });
  await Deno.mkdir(box.root);
}

dbTest(
  "a site's appliances are served from its local server; the NOC serves each component to the site once",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const boxes: AgentBox[] = [];
    let local: LocalProcess | null = null;
    try {
      const pkg = await publish(noc, "1.0.0");
      const file = await publishMotd(noc, "welcome to the lab\n");
      // The operator's way: a token from the CLI, then the site's server started with it.
      const printed = await nocCli(noc, ["local-servers", "token", "--site", "lab"]);
      local = await localServer(noc, [], printed.match(/--token (\S+)/)![1]!);
      for (let i = 0; i < 3; i++) boxes.push(await siteAgent(noc, local));
      // Staged before any appliance asks.
      await until("staging", async () => (await local!.health() as any).cache.entries === 2);
      assert.equal((await nocFetches(noc)).length, 2);

      for (const box of boxes) {
        const r = await box.run(["once"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(await box.readRoot("demo/version"), "1.0.0");
        assert.equal(await box.readRoot("etc/motd"), "welcome to the lab\n");
        assert.ok(!r.events.some((e) => e.event === "download_failed"), r.stdout);
      }
      // Catalogs list the local server first, the NOC after.
      const catalog = JSON.parse(
        JSON.parse(await Deno.readTextFile(`${boxes[0]!.state}/catalog.json`)).catalog,
      );
      for (const c of catalog.components) {
        assert.ok(c.urls[0].startsWith(`${local.url}/v1/components/`), c.urls[0]);
        assert.ok(c.urls[1].startsWith(`${noc.url}/v1/components/`), c.urls[1]);
      }
      // The NOC sent each component to the site once; every download reached its records, via the local server.
      assert.deepEqual(
        (await nocFetches(noc)).map((f) => [f.component_id, f.times]),
        [[pkg, 1], [file, 1]].sort((a, b) => a[0]! - b[0]!),
      );
      const rows = await until("download records", async () => {
        const d = await deliveries(noc);
        return d.length === 6 ? d : null;
      });
      assert.ok(rows.every((d) => d.via === local!.id && d.times === 1), JSON.stringify(rows));

      // The operator sees it: site, last contact, cache size and hit rate.
      const listed = await until("hits reported", async () => {
        const r = await noc.admin("GET", "/v1/admin/local-servers?site=lab");
        const s = r.body.items[0];
        return s?.hits === 6 && s.pendingRecords === 0 ? s : null;
      });
      assert.equal(listed.id, local.id);
      assert.equal(listed.state, "ok");
      assert.equal(listed.cache.entries, 2);
      assert.ok(listed.cache.bytes > 0 && listed.cache.bytes <= listed.cache.limit);
      assert.equal(listed.hitRate, 1);
      assert.equal(listed.pendingRecords, 0);
      const shown = await nocCli(noc, ["local-servers", "--site", "lab"]);
      assert.match(shown, /lab\t\S+\tok\thttps:\/\/127\.0\.0\.1:\d+/);
      assert.match(shown, /hit rate 100% \(6 hits, 0 misses\), 0 records pending/);
    } finally {
      for (const b of boxes) await b.remove();
      await local?.stop();
      await noc.close();
    }
  },
);

dbTest(
  "with the NOC down, the local server keeps serving staged components and its records arrive later",
  async ({ db }) => {
    const noc = await serveNoc(db);
    let local: LocalProcess | null = null;
    let box: AgentBox | null = null;
    try {
      const pkg = await publish(noc, "1.0.0");
      local = await localServer(noc);
      box = await siteAgent(noc, local);
      await until("staging", async () => (await local!.health() as any).cache.entries === 1);
      assert.equal((await box.run(["once"])).code, 0);
      await until("first record", async () => (await deliveries(noc)).length === 1);

      await noc.stop();
      // The appliance loses its installation while the NOC is away: its stored catalog and the
      // local server restore it.
      await loseInstalls(box);
      const r = await box.run(["once"]);
      assert.equal(r.code, 1, "a cycle without the NOC is not ok");
      assert.ok(r.events.some((e) => e.event === "offline"), r.stdout);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      await until(
        "record kept on disk",
        async () => (await local!.health() as any).pendingRecords === 1,
      );

      noc.start();
      const [row] = await until("record delivered after the outage", async () => {
        const d = await deliveries(noc);
        return d[0]?.times === 2 ? d : null;
      });
      assert.equal(row!.component_id, pkg);
      assert.equal(row!.via, local.id);
      const config = await noc.admin("GET", `/v1/admin/appliances/${row!.uid}/configuration`);
      assert.equal(config.body.items[0].via.localServer, local.id);
      await until(
        "journal emptied",
        async () => (await local!.health() as any).pendingRecords === 0,
      );
    } finally {
      await box?.remove();
      await local?.stop();
      await noc.close();
    }
  },
);

dbTest("with the local server down, appliances fall back to the NOC", async ({ db }) => {
  const noc = await serveNoc(db);
  let local: LocalProcess | null = null;
  let box: AgentBox | null = null;
  try {
    const pkg = await publish(noc, "1.0.0");
    local = await localServer(noc);
    box = await siteAgent(noc, local);
    await until("staging", async () => (await local!.health() as any).cache.entries === 1);
    await local.stop();
    const r = await box.run(["once"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await box.readRoot("demo/version"), "1.0.0");
    assert.ok(r.events.some((e) => e.event === "download_failed"), "the local URL was tried first");
    const d = await deliveries(noc);
    assert.deepEqual(d.map((x) => [x.component_id, x.via]), [[pkg, null]]);
  } finally {
    await box?.remove();
    await local?.stop();
    await noc.close();
  }
});

dbTest(
  "a cached package changed on the local server's disk is refused by the local server and by the agent",
  async ({ db }) => {
    const noc = await serveNoc(db);
    let local: LocalProcess | null = null;
    let box: AgentBox | null = null;
    let mirror: Deno.HttpServer | null = null;
    try {
      const pkg = await publish(noc, "1.0.0");
      local = await localServer(noc);
      box = await siteAgent(noc, local);
      await until("staging", async () => (await local!.health() as any).cache.entries === 1);
      const cached = `${local.dataDir}/cache/${pkg}.bin`;
      const good = await Deno.readFile(cached);
      const bad = good.slice();
      bad[bad.length - 100]! ^= 0x01;
      await Deno.writeFile(cached, bad);

      // The local server checks before it serves: the changed copy is dropped, a good one fetched again.
      const r = await box.run(["once"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      const refused = local.events.find((e) => e.event === "cache_refused");
      assert.equal(refused?.reason, "digest_mismatch", JSON.stringify(local.events));
      assert.deepEqual((await nocFetches(noc)).map((f) => f.times), [2]);
      assert.deepEqual(await Deno.readFile(cached), good);
      const listed = await until("problem reported", async () => {
        const s = (await noc.admin("GET", `/v1/admin/local-servers/${local!.id}`)).body;
        return s.problems.length > 0 ? s : null;
      });
      assert.equal(listed.problems[0].code, "cache_digest_mismatch");
      assert.equal(listed.problems[0].componentId, pkg);

      // A mirror that serves the changed bytes anyway (one that skips the check, or is not ours):
      // the agent refuses them against the signed catalog and takes the NOC's copy.
      const port = Number(new URL(local.url).port);
      await local.stop();
      mirror = Deno.serve({
        hostname: "127.0.0.1",
        port,
        cert: await Deno.readTextFile(`${local.dataDir}/tls/cert.pem`),
        key: await Deno.readTextFile(`${local.dataDir}/tls/key.pem`),
        onListen: () => {},
      }, () => new Response(bad, { headers: { "content-length": String(bad.length) } }));
      await loseInstalls(box);
      const again = await box.run(["once"]);
      assert.equal(again.code, 0, again.stdout + again.stderr);
      const failed = again.events.find((e) => e.event === "download_failed");
      assert.equal(failed?.reason, "digest_mismatch", again.stdout);
      assert.ok(failed.url.startsWith(local.url), failed.url);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      const [d] = await deliveries(noc);
      assert.equal(d!.via, null, "the NOC served it itself");
    } finally {
      await mirror?.shutdown();
      await box?.remove();
      await local?.stop();
      await noc.close();
    }
  },
);

dbTest(
  "the local server's cache stays under its budget and never evicts what the site runs for a newcomer",
  async ({ db }) => {
    const noc = await serveNoc(db);
    let local: LocalProcess | null = null;
    let box: AgentBox | null = null;
    try {
      // Incompressible payloads: each package is a little over 80 KiB; the budget holds two.
      const bulk = () => ({
        "bulk.bin": new Uint8Array([
          ...crypto.getRandomValues(new Uint8Array(40 * 1024)),
          ...crypto.getRandomValues(new Uint8Array(40 * 1024)),
        ]),
      });
      const a1 = await publish(noc, "1.0.0", "a", bulk());
      const b1 = await publish(noc, "1.0.0", "b", bulk());
      local = await localServer(noc, ["--cache", "200K"]);
      box = await siteAgent(noc, local);
      const limit = 200 * 1024;
      const health = async () => {
        const h = await local!.health() as any;
        assert.ok(h.cache.bytes <= limit, `cache holds ${h.cache.bytes} bytes, over ${limit}`);
        return h;
      };
      await until("a and b staged", async () => (await health()).cache.entries === 2);

      // a 2.0.0 replaces a 1.0.0 in the site's catalogs: the old one is the one evicted.
      const a2 = await publish(noc, "2.0.0", "a", bulk());
      await until(
        "a 2.0.0 staged",
        () => local!.events.some((e) => e.event === "cached" && e.id === a2),
      );
      const evicted = local.events.filter((e) => e.event === "cache_evicted").map((e) => e.id);
      assert.deepEqual(evicted, [a1]);
      assert.equal((await health()).cache.entries, 2);

      // c is referenced too, but there is no room left that the site does not need: it is not
      // staged, the refusal is reported, and the appliance gets it from the NOC.
      const c1 = await publish(noc, "1.0.0", "c", bulk());
      await until("cache_full reported", async () => {
        const s = (await noc.admin("GET", `/v1/admin/local-servers/${local!.id}`)).body;
        return s.problems.some((p: any) => p.code === "cache_full" && p.componentId === c1);
      });
      const r = await box.run(["once"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const h = await health();
      assert.equal(h.cache.entries, 2);
      assert.equal(local.events.filter((e) => e.event === "cache_evicted").length, 1);
      const d = await until("records", async () => {
        const rows = await deliveries(noc);
        return rows.length === 3 && rows.every((x) => x.component_id !== c1 || x.via === null) &&
            rows.some((x) => x.via !== null)
          ? rows
          : null;
      });
      assert.deepEqual(
        d.map((x) => [x.component_id, x.via === null ? "noc" : "local"]).sort((x, y) =>
          Number(x[0]) - Number(y[0])
        ),
        [[b1, "local"], [a2, "local"], [c1, "noc"]].sort((x, y) => Number(x[0]) - Number(y[0])),
      );
    } finally {
      await box?.remove();
      await local?.stop();
      await noc.close();
    }
  },
);

dbTest(
  "a local server checks grants itself, and fills a miss from the NOC once however many ask",
  async ({ db }) => {
    const noc = await serveNoc(db);
    let local: LocalProcess | null = null;
    const boxes: AgentBox[] = [];
    try {
      const pkg = await publish(noc, "1.0.0");
      // Its only sync comes before the site has appliances: nothing is staged when they ask.
      local = await localServer(noc, ["--sync", "3600"]);
      await until("first sync", async () => (await local!.health() as any).lastSyncAt !== null);
      for (let i = 0; i < 3; i++) boxes.push(await siteAgent(noc, local));
      assert.equal((await local.health() as any).cache.entries, 0);
      const runs = await Promise.all(boxes.map((b) => b.run(["once"])));
      for (const r of runs) assert.equal(r.code, 0, r.stdout + r.stderr);
      for (const b of boxes) assert.equal(await b.readRoot("demo/version"), "1.0.0");
      assert.deepEqual((await nocFetches(noc)).map((f) => [f.component_id, f.times]), [[pkg, 1]]);
      const rows = await until("records", async () => {
        const d = await deliveries(noc);
        return d.length === 3 ? d : null;
      });
      assert.ok(rows.every((d) => d.via === local!.id), JSON.stringify(rows));

      // Grants, checked with the NOC's keys alone.
      const catalog = JSON.parse(
        JSON.parse(await Deno.readTextFile(`${boxes[0]!.state}/catalog.json`)).catalog,
      );
      const url = new URL(catalog.components[0].urls[0]);
      const grant = url.searchParams.get("grant")!;
      const get = async (path: string) => {
        const res = await local!.fetch(`${local!.url}${path}`);
        const body = await res.arrayBuffer();
        return { status: res.status, body: new Uint8Array(body) };
      };
      const error = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)).error;
      const none = await get(`/v1/components/${pkg}`);
      assert.deepEqual([none.status, error(none.body)], [401, "grant_required"]);
      const forged = grant.slice(0, -4) + (grant.endsWith("AAAA") ? "BBBB" : "AAAA");
      const bad = await get(`/v1/components/${pkg}?grant=${forged}`);
      assert.deepEqual([bad.status, error(bad.body)], [403, "bad_grant"]);
      const other = await get(`/v1/components/${pkg + 1}?grant=${grant}`);
      assert.deepEqual([other.status, error(other.body)], [403, "wrong_component"]);
      const ok = await get(`/v1/components/${pkg}?grant=${grant}`);
      assert.equal(ok.status, 200);
      assert.equal(toHex(await sha256(ok.body)), catalog.components[0].sha256);
      const ranged = await local.fetch(`${local.url}/v1/components/${pkg}?grant=${grant}`, {
        headers: { range: "bytes=10-19" },
      });
      assert.equal(ranged.status, 206);
      assert.deepEqual(new Uint8Array(await ranged.arrayBuffer()), ok.body.slice(10, 20));
    } finally {
      for (const b of boxes) await b.remove();
      await local?.stop();
      await noc.close();
    }
  },
);
