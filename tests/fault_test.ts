/**
 * Fault tests with real processes and real sockets: a webhook that never
 * answers, the NOC killed in the middle of a publish, PostgreSQL stopped while
 * appliances check in, and the agent's disk filling up during a download.
 */
import { canRunOwnPostgres, ownPostgres } from "./_own_postgres.ts";
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { createNotifier } from "../noc/services/notifier.ts";
import { memoryLogger } from "../protocol/util/log.ts";
import { ManualClock } from "../noc/clock.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";

/** A TCP server that accepts connections and never answers. */
function silentServer(): { url: string; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const c of listener) conns.push(c);
    } catch {
      // closed
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/hook`,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
    },
  };
}

dbTest(
  "a webhook that never answers times out, is retried later, and never holds up the sweep",
  async ({ db }) => {
    const hook = silentServer();
    try {
      const clock = new ManualClock(new Date());
      const notifier = await createNotifier({
        db,
        clock,
        log: memoryLogger(),
        webhooks: [hook.url],
        timeoutMs: 300,
        autoDeliver: false,
      });
      const noc = await testNoc(db, { clock, notifier });
      const a = await noc.enrollAppliance({ hostname: "gw-a" });
      const b = await noc.enrollAppliance({ hostname: "gw-b" });
      await a.beat();
      await b.beat();
      const overdue = async (uid: string) =>
        await db.sql`update appliances set next_due_at = ${new Date(
          clock.now().getTime() - 3600_000,
        )} where uid = ${uid}`;
      await overdue(a.uid);
      assert.deepEqual((await sweep({ ...noc.deps, graceS: 300 })).alerted, [a.uid]);

      // A delivery pass is under way, stuck on the silent webhook; a sweep meanwhile still finishes.
      let passDone = false;
      const pass = notifier.deliver().finally(() => passDone = true);
      await overdue(b.uid);
      const during = await sweep({ ...noc.deps, graceS: 300 });
      assert.deepEqual(during.alerted, [b.uid]);
      assert.equal(passDone, false, "the sweep finished while the delivery was still waiting");
      const report = await pass;
      assert.ok(report.failed >= 1, JSON.stringify(report));
      const [row] = await db.sql<{ attempts: number; last_error: string; next_attempt_at: Date }>`
      select attempts, last_error, next_attempt_at from notice_deliveries
      where target like 'webhook:%' and delivered_at is null order by notice_id limit 1`;
      assert.equal(row!.attempts, 1);
      assert.match(row!.last_error, /time|abort/i);
      assert.ok(row!.next_attempt_at.getTime() > clock.now().getTime(), "retried later, not now");
      // Nothing is lost: both notices wait for the webhook, and the log target has them.
      const [waiting] = await db.sql<{ n: number }>`
      select count(*)::int as n from notice_deliveries where target like 'webhook:%' and delivered_at is null`;
      assert.equal(waiting!.n, 2);
    } finally {
      hook.close();
    }
  },
);

/**
 * Makes a folder holding a valid package: an executable `install` and `mib` MiB of random (so
 * incompressible) bytes in `payload.bin`, which tar puts after `install`.
 */
async function largePackageDir(mib: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "noc-fault-pkg-" });
  await Deno.writeTextFile(`${dir}/install`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  using f = await Deno.open(`${dir}/payload.bin`, { write: true, create: true });
  const chunk = new Uint8Array(1024 * 1024);
  for (let i = 0; i < mib; i++) {
    for (let j = 0; j < chunk.length; j += 65536) {
      crypto.getRandomValues(chunk.subarray(j, j + 65536));
    }
    await f.write(chunk);
  }
  return dir;
}

Deno.test("the NOC killed (SIGKILL) in the middle of a publish never serves a half-published component", async () => {
  const { startNoc } = await import("./_process.ts");
  const { payload } = await import("./_components.ts");
  const { createTar, gzip } = await import("../protocol/package/tar.ts");
  const mib = 64;
  const killAt = 24 * 2 ** 20;
  const dataDir = await Deno.makeTempDir({ prefix: "noc-fault-" });
  const pkgDir = await largePackageDir(mib);
  try {
    let noc = await startNoc({ NOC_DATA_DIR: dataDir });
    const q = "app=big&name=big&version=1.0.0";
    // A valid payload (the NOC's check passes as it streams by), gzip'd tar made as it is sent.
    const gz = gzip(createTar(pkgDir))[Symbol.asyncIterator]();
    let sent = 0;
    let sentAtKill = -1;
    let ended = false;
    let killed = null as Promise<Deno.CommandStatus> | null;
    const body = new ReadableStream<Uint8Array>({
      async pull(ctrl) {
        // Killed once 24 MiB are on their way: the NOC is checking and storing chunks as they arrive.
        if (sent >= killAt && !killed) {
          sentAtKill = sent;
          killed = noc.stop("SIGKILL");
        }
        const next = await gz.next();
        if (next.done) {
          ended = true;
          ctrl.close();
          return;
        }
        sent += next.value.length;
        ctrl.enqueue(next.value);
      },
      async cancel() {
        await gz.return?.();
      },
    });
    const upload = await fetch(`${noc.url}/v1/admin/packages?${q}`, {
      method: "POST",
      headers: { authorization: `Bearer ${noc.adminToken}`, "content-type": "application/gzip" },
      body,
    }).then(async (r) => `${r.status} ${await r.text()}`, (e) => e as Error);
    // The NOC neither refused the payload nor finished it before the kill: the kill landed mid-upload.
    assert.ok(upload instanceof Error, `the upload did not complete: ${upload}`);
    assert.ok(killed, `the NOC was killed mid-upload (${sent} bytes sent)`);
    assert.equal((await killed!).signal, "SIGKILL");
    assert.equal(ended, false, "the payload was not all sent");
    assert.ok(sentAtKill >= killAt && sentAtKill < mib * 2 ** 20, `killed at byte ${sentAtKill}`);
    await gz.return?.();

    noc = await startNoc({ NOC_DATA_DIR: dataDir });
    try {
      const list = await fetch(`${noc.url}/v1/admin/components?app=big`, {
        headers: { authorization: `Bearer ${noc.adminToken}` },
      });
      assert.deepEqual((await list.json()).items, [], "nothing half-published is listed");
      // The same name and version publishes cleanly afterwards.
      const again = await fetch(`${noc.url}/v1/admin/packages?${q}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${noc.adminToken}`,
          "content-type": "application/gzip",
        },
        body: await payload({ install: "#!/bin/sh\nexit 0\n" }),
      });
      assert.equal(again.status, 201, await again.text());
    } finally {
      await noc.stop();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(pkgDir, { recursive: true });
  }
});

const canStopPostgres = canRunOwnPostgres();
if (!canStopPostgres) {
  console.log(
    "PostgreSQL fault test skipped: it needs the PostgreSQL server binaries to run a cluster of its own",
  );
}

Deno.test({
  name:
    "PostgreSQL stopped and restarted while an appliance checks in: 503 meanwhile, nothing lost or doubled",
  ignore: !canStopPostgres,
  fn: async () => {
    const postgres = (await import("postgres")).default;
    const { startNoc } = await import("./_process.ts");
    const { agentBox } = await import("./_agent.ts");
    const { payload } = await import("./_components.ts");
    // A cluster of this test's own on a random port: the shared one is never stopped.
    const pg = await ownPostgres();
    const url = new URL(pg.url);
    const dataDir = await Deno.makeTempDir({ prefix: "noc-fault-" });
    const box = await agentBox();
    let noc: Awaited<ReturnType<typeof startNoc>> | null = null;
    try {
      // Every beat kept in history (no gap), so "nothing lost or doubled" can be counted there.
      noc = await startNoc({
        NOC_DATA_DIR: dataDir,
        DATABASE_URL: url.href,
        NOC_HISTORY_MIN_GAP_S: "0",
      });
      const base = noc.url;
      const adminHeaders = { authorization: `Bearer ${noc.adminToken}` };
      const up = await fetch(`${base}/v1/admin/packages?app=demo&name=demo&version=1.0.0`, {
        method: "POST",
        headers: { ...adminHeaders, "content-type": "application/gzip" },
        body: await payload({ install: "#!/bin/sh\nexit 0\n" }),
      });
      assert.equal(up.status, 201, await up.text());
      const as = await fetch(`${base}/v1/admin/assignments`, {
        method: "POST",
        headers: { ...adminHeaders, "content-type": "application/json" },
        body: JSON.stringify({
          kind: "package",
          app: "demo",
          name: "demo",
          version: "1.0.0",
          target: { type: "all" },
        }),
      });
      assert.equal(as.status, 201);
      const enrolled = await box.run(["enroll", "--noc", base, "--token", noc.enrollmentToken]);
      assert.equal(enrolled.code, 0, enrolled.stderr);
      assert.equal((await box.run(["once"])).code, 0);

      await pg.stop();
      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 503);
      await health.body?.cancel();
      const during = await box.run(["once"]);
      assert.equal(during.code, 1, during.stdout);
      // The NOC answers 503 unavailable with Retry-After: the agent honours it (issue 23 item 2)
      // and sends nothing more this cycle, rather than working from its stored catalog.
      const backing = during.events.find((e) => e.event === "backing_off");
      assert.ok(backing?.retryAfterS > 0, during.stdout);

      await pg.start();
      for (let i = 0; i < 100; i++) {
        const r = await fetch(`${base}/healthz`).catch(() => null);
        await r?.body?.cancel();
        if (r?.status === 200) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      const after = await box.run(["once"]);
      assert.equal(after.code, 0, after.stdout + after.stderr);

      const db = postgres(url.href, { max: 1, onnotice: () => {} });
      try {
        const [beats] =
          await db`select count(*)::int as n, count(distinct seq)::int as seqs from beats`;
        assert.equal(beats!.n, 2, "the beat before the outage and the one after; none doubled");
        assert.equal(beats!.seqs, 2);
        const [d] = await db`select count(*)::int as n, max(times)::int as times from deliveries`;
        assert.deepEqual([d!.n, d!.times], [1, 1], "one download recorded, once");
        const [o] = await db`select count(*)::int as n from install_outcomes`;
        assert.equal(o!.n, 1, "the install reported once");
        const [al] = await db`select count(*)::int as n from alerts`;
        assert.equal(al!.n, 0, "no alert for an appliance that kept trying");
      } finally {
        await db.end();
      }
    } finally {
      await noc?.stop();
      await box.remove();
      await Deno.remove(dataDir, { recursive: true });
      await pg.drop();
    }
  },
  sanitizeOps: false,
  sanitizeResources: false,
});

dbTest(
  "the agent's disk full during a download: a clear error, the old version intact, and recovery once there is room",
  async ({ db }) => {
    const { agentBox, mountTmpfs, serveNoc } = await import("./_agent.ts");
    const { payload, upload } = await import("./_components.ts");
    const noc = await serveNoc(db);
    const box = await agentBox();
    const mounted = await mountTmpfs(box.state, 8);
    try {
      if (!mounted) {
        console.log("disk-full fault test skipped: it needs root to mount a small tmpfs");
        return;
      }
      const install = `#!/bin/sh
set -e
mkdir -p "$NOC_ROOT/demo"
printf '%s' "$NOC_VERSION" > "$NOC_ROOT/demo/version"
`;
      const publish = async (version: string, files: Record<string, string | Uint8Array>) => {
        const up = await upload(
          noc,
          `/v1/admin/packages?app=demo&name=demo&version=${version}`,
          await payload({ install, ...files }),
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
        assert.equal(as.status, 201);
      };
      const enrolled = await box.run([
        "enroll",
        "--noc",
        noc.url,
        "--token",
        await noc.enrollmentToken(),
      ]);
      assert.equal(enrolled.code, 0, enrolled.stderr);
      await publish("1.0.0", {});
      assert.equal((await box.run(["once"])).code, 0);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");

      // 2.0.0 carries 3 MiB that do not compress; the state disk is filled to within 1 MiB.
      const bulk = new Uint8Array(3 * 1024 * 1024);
      for (let i = 0; i < bulk.length; i += 65536) {
        crypto.getRandomValues(bulk.subarray(i, i + 65536));
      }
      await publish("2.0.0", { "bulk.bin": bulk });
      const free = () =>
        new Deno.Command("df", { args: ["-B1", "--output=avail", box.state], stdout: "piped" })
          .output().then((o) => Number(new TextDecoder().decode(o.stdout).trim().split("\n")[1]));
      await Deno.writeFile(
        `${box.state}/filler`,
        new Uint8Array(Math.max(0, (await free()) - 1024 * 1024)),
      );

      const full = await box.run(["once"]);
      assert.equal(full.code, 2, full.stdout + full.stderr);
      const failed = full.events.find((e) => e.event === "install_failed");
      assert.equal(failed?.reason, "write_failed", full.stdout);
      assert.match(failed.message, /space|No space/i);
      assert.equal(await box.readRoot("demo/version"), "1.0.0", "the old version is intact");

      // Room again: the next cycle (its backoff cleared) finishes the job.
      await Deno.remove(`${box.state}/filler`);
      const st = JSON.parse(await Deno.readTextFile(`${box.state}/state.json`));
      st.failures = {};
      await Deno.writeTextFile(`${box.state}/state.json`, JSON.stringify(st));
      const again = await box.run(["once"]);
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.equal(await box.readRoot("demo/version"), "2.0.0");
    } finally {
      if (mounted) {
        await new Deno.Command("umount", { args: [box.state], stdout: "null", stderr: "null" })
          .output();
      }
      await box.remove();
      await noc.close();
    }
  },
);
