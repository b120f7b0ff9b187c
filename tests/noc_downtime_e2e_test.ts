// deno-lint-ignore-file no-explicit-any
/**
 * Issue 18, items 1 and 2, with real processes (tests/noc_downtime_test.ts and
 * tests/clock_jump_test.ts drive the same faults with injected clocks):
 *
 * - A real NOC process with real agents running `run` every 10 s (grace 5 s) is killed for longer
 *   than the interval and the grace, then restarted on the same database and port: the healthy
 *   agents are not alerted and the webhook gets no page for them; the agent that died with the
 *   NOC is alerted once its deadline, moved by the outage, has passed.
 * - A real NOC process whose clock `faketime` puts 25 minutes ahead shares a PostgreSQL database
 *   with the test's own app on the true clock: its status daemon (the admin API's sweep and its
 *   own minute cron job) alerts no healthy appliance, prunes no nonce, and one `clock_skew` notice
 *   is raised however many times it looks.
 *
 * Each runs once: the first on PostgreSQL when TEST_DATABASE_URL is set, else on PGlite; the
 * second needs PostgreSQL (two instances on one database) and `faketime` (Debian's; .ci/run
 * installs it).
 *
 * @module
 */
import assert from "node:assert/strict";
import { type NocProcess, startNoc, startNocRole } from "./_process.ts";
import { signedRequest } from "../protocol/client.ts";
import { type AgentBox, agentBox, type AgentProcess } from "./_agent.ts";
import { startWebhook } from "./_webhook.ts";
import { sampleBeat, scratchDatabase, type TestNoc, testNoc } from "./_harness.ts";
import { migrate } from "../noc/db/migrate.ts";
import { openPostgres } from "../noc/db/db.ts";
import { ManualClock } from "../noc/clock.ts";
import { sweep } from "../noc/jobs/status_daemon.ts";

const pgUrl = Deno.env.get("TEST_DATABASE_URL");

/** Calls the admin API of a NOC process. */
async function admin(
  noc: NocProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${noc.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${noc.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Runs the status daemon of `noc` now (POST /v1/admin/sweep); returns the UIDs it alerted. */
async function sweepVia(noc: NocProcess): Promise<string[]> {
  const r = await admin(noc, "POST", "/v1/admin/sweep");
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.alerted;
}

/** Resolves once `check` holds, polling every 200 ms; throws after `timeoutMs`. */
async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** JSON log lines a NOC process wrote to stdout. */
function nocEvents(noc: NocProcess): any[] {
  return noc.output().split("\n").flatMap((l) => {
    try {
      return l.startsWith("{") ? [JSON.parse(l)] : [];
    } catch {
      return [];
    }
  });
}

const cycleDone = (outcome: string) => (e: any) =>
  e.event === "cycle_finished" && e.outcome === outcome;

Deno.test({
  name:
    "a real NOC killed for longer than interval plus grace and restarted pages none of its running agents, and still pages the one that died",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const intervalS = 10;
    const graceS = 5;
    const hook = startWebhook();
    const dataDir = await Deno.makeTempDir({ prefix: "noc-downtime-e2e-" });
    const scratch = pgUrl ? await scratchDatabase(pgUrl, "downtime_e2e") : null;
    const env: Record<string, string> = {
      NOC_DATA_DIR: dataDir,
      NOC_REPORT_INTERVAL_S: String(intervalS),
      NOC_GRACE_S: String(graceS),
      NOC_WEBHOOK_URLS: hook.url,
      ...(scratch ? { DATABASE_URL: scratch.url } : {}),
    };
    const boxes: AgentBox[] = [];
    const agents: AgentProcess[] = [];
    let noc: NocProcess | null = null;
    try {
      noc = await startNoc(env);
      const first = noc;
      const port = new URL(noc.url).port;
      const names = ["healthy-a", "healthy-b", "dies-with-noc"];
      for (const _ of names) boxes.push(await agentBox());
      const uids = await Promise.all(names.map(async (hostname, i) => {
        const box = boxes[i]!;
        const t = await admin(first, "POST", "/v1/admin/enrollment-tokens", {});
        assert.equal(t.status, 201, JSON.stringify(t.body));
        const r = await box.run([
          "enroll",
          "--noc",
          first.url,
          "--token",
          t.body.token,
          "--model",
          "vs-2000",
          "--hostname",
          hostname,
        ]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        return JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid as string;
      }));
      const [healthyA, healthyB, doomed] = uids as [string, string, string];
      const healthy = [healthyA, healthyB];
      for (const box of boxes) agents.push(box.spawn(["run", "--wake-wait", "0"]));
      await Promise.all(agents.map((a) => a.waitFor(cycleDone("ok"), 0, 60_000)));
      assert.deepEqual(await sweepVia(noc), [], "every agent beats: nobody is alerted");

      // The NOC crashes, and one appliance dies with it (power lost on its site, say).
      const lastOk = Math.max(
        ...agents.map((a) => Date.parse(a.events.filter(cycleDone("ok")).at(-1)!.time)),
      );
      const seen = agents.map((a) => a.events.length);
      const stoppedAt = Date.now();
      await Promise.all([noc.stop("SIGKILL"), agents[2]!.stop("SIGKILL")]);
      noc = null;
      // Down for longer than interval + grace: every appliance's deadline passes in the outage,
      // and the running agents find the NOC unreachable.
      await Promise.all(
        [0, 1].map((i) => agents[i]!.waitFor(cycleDone("failed"), seen[i], 60_000)),
      );
      await until(
        "every deadline has passed",
        () => Date.now() > lastOk + (intervalS + graceS) * 1000 + 500,
        60_000,
      );

      noc = await startNoc({ ...env, PORT: port });
      const restarted = noc;
      const restartedAt = Date.now();
      assert.deepEqual(await sweepVia(noc), [], "the first sweep after the restart pages nobody");
      // The sweep could have failed the test: appliances whose beats it judged were overdue.
      const list = await admin(noc, "GET", "/v1/admin/appliances?limit=100");
      assert.equal(list.status, 200, JSON.stringify(list.body));
      const overdue = list.body.items.filter((a: any) =>
        healthy.includes(a.uid) && Date.parse(a.lastBeatAt) < stoppedAt
      );
      assert.ok(
        overdue.length >= 1,
        `a healthy appliance had not beaten again when the sweep ran (${overdue.length})`,
      );
      await until(
        "the restarted NOC logs the credit",
        () => nocEvents(restarted).some((e) => e.event === "noc_downtime_credited"),
        10_000,
      );
      const credit = nocEvents(restarted).find((e) => e.event === "noc_downtime_credited");
      assert.ok(credit.seconds >= intervalS + graceS - 1, JSON.stringify(credit));
      assert.ok(credit.appliances >= 1 + overdue.length, JSON.stringify(credit));

      // Crediting is no amnesty: the dead appliance is alerted once its deadline, moved by the
      // outage, has passed; the running agents never are.
      const alerted: string[] = [];
      const alertedUids = async () =>
        (await admin(restarted, "GET", "/v1/admin/alerts?status=all")).body.items.map((
          a: any,
        ) => a.uid);
      await until("the dead appliance is alerted", async () => {
        alerted.push(...await sweepVia(restarted));
        return (await alertedUids()).includes(doomed);
      }, 60_000).catch(async (e) => {
        const list = await admin(restarted, "GET", "/v1/admin/appliances?limit=100");
        throw new Error(`${e.message}; appliances: ${JSON.stringify(list.body)}`);
      });
      assert.ok(alerted.every((uid) => uid === doomed), JSON.stringify(alerted));
      // Both running agents beat the restarted NOC; a last sweep still pages neither.
      const afterRestart = (e: any) => cycleDone("ok")(e) && Date.parse(e.time) > restartedAt;
      await Promise.all([0, 1].map((i) => agents[i]!.waitFor(afterRestart, 0)));
      assert.deepEqual(await sweepVia(noc), []);
      await until("the page is delivered", () => hook.received.length >= 1, 30_000);

      const pages = hook.received.filter((b) =>
        /^(missed_heartbeat|recovered)/.test(String(b.kind))
      );
      assert.deepEqual(
        pages.map((b) => [b.kind, b.uid]),
        [["missed_heartbeat", doomed]],
        "one page, for the dead appliance; no page and no recovered notice for the others",
      );
      assert.deepEqual(await alertedUids(), [doomed], "one alert, for the dead appliance");
    } finally {
      await Promise.all(agents.map((a) => a.stop().catch(() => {})));
      await noc?.stop().catch(() => {});
      await hook.close();
      for (const box of boxes) await box.remove();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      await scratch?.drop();
    }
  },
});

/** The `LD_PRELOAD` value of Debian's `faketime` wrapper, or null where it is not installed. */
async function fakeTimePreload(): Promise<string | null> {
  try {
    const out = await new Deno.Command("faketime", {
      args: ["-f", "+0s", "sh", "-c", 'printf %s "$LD_PRELOAD"'],
      stdout: "piped",
      stderr: "null",
    }).output();
    const preload = new TextDecoder().decode(out.stdout);
    return out.success && preload.includes("faketime") ? preload : null;
  } catch {
    return null;
  }
}

const preload = await fakeTimePreload();
const clockSkip = !pgUrl
  ? "it needs TEST_DATABASE_URL (two NOC instances on one database)"
  : !preload
  ? "it needs faketime (Debian's faketime package; .ci/run installs it)"
  : null;
if (clockSkip) console.log(`clock jump e2e test skipped: ${clockSkip}`);

Deno.test({
  name:
    "a real NOC running 25 min ahead under faketime alerts no healthy appliance, prunes no nonce, answers no appliance, and raises one clock_skew notice",
  ignore: clockSkip !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const scratch = await scratchDatabase(pgUrl!, "clock_e2e");
    const db = openPostgres(scratch.url, { max: 4 });
    const dataDir = await Deno.makeTempDir({ prefix: "noc-clock-e2e-" });
    let shifted: NocProcess | null = null;
    let catalogRole: NocProcess | null = null;
    let good: TestNoc | null = null;
    try {
      await migrate(db);
      // The instance on the true clock: the test's own app (default interval and grace).
      const clock = new ManualClock(new Date());
      good = await testNoc(db, { clock });
      const own = good;
      const graceS = own.deps.settings.graceS;
      const fleet = [];
      for (let i = 0; i < 10; i++) {
        clock.set(new Date());
        fleet.push(await own.enrollAppliance({ hostname: `gw-${i}` }));
      }
      for (const a of fleet) {
        clock.set(new Date());
        await a.beat();
      }
      clock.set(new Date());
      const signed = await fleet[0]!.request("POST", "/v1/beats", sampleBeat(99, clock.now()));
      assert.equal((await own.app.request(signed.clone())).status, 200);
      const nonces = async () =>
        (await db.sql<{ n: number }>`select count(*)::int as n from request_nonces`)[0]!.n;
      const noncesBefore = await nonces();
      assert.ok(noncesBefore >= fleet.length, `${noncesBefore} nonces`);

      // 25 min ahead (±30 s, so that its clock's next minute, when its cron job sweeps and
      // prunes, comes a few seconds after it starts).
      const leadS = 6;
      const nowS = Math.floor(Date.now() / 1000);
      let offsetS = 1500 - ((nowS + 1500 + leadS) % 60);
      if (offsetS < 1470) offsetS += 60;
      // The shifted clock would find every appliance overdue and every nonce expired.
      const [would] = await db.sql<{ overdue: number; expired: number }>`
        select
          (select count(*)::int from appliances
            where next_due_at + make_interval(secs => ${graceS})
              < clock_timestamp() + make_interval(secs => ${offsetS})) as overdue,
          (select count(*)::int from request_nonces
            where expires_at < clock_timestamp() + make_interval(secs => ${offsetS})) as expired`;
      assert.deepEqual(would, { overdue: fleet.length, expired: noncesBefore });

      shifted = await startNoc({
        DATABASE_URL: scratch.url,
        NOC_DATA_DIR: dataDir,
        LD_PRELOAD: preload!,
        FAKETIME: `+${offsetS}s`,
      });
      const proc = shifted;
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await sweepVia(proc), [], "the shifted instance alerts nobody");
      }
      // Its own minute job: a sweep and the nonce pruning, both refused.
      await until(
        "the shifted instance's cron job has run",
        () => nocEvents(proc).some((e) => e.event === "sweep"),
        90_000,
      );
      const job = nocEvents(proc).find((e) => e.event === "sweep");
      assert.equal(job.skipped, "clock_skew", JSON.stringify(job));
      assert.equal(job.alerted, 0);
      assert.equal(job.noncesPruned, 0);
      const skewLog = nocEvents(proc).filter((e) => e.event === "clock_skew");
      assert.ok(skewLog.length >= 5, `it looked at least 5 times (${skewLog.length})`);
      assert.ok(Math.abs(skewLog[0].skewS - offsetS) < 5, JSON.stringify(skewLog[0]));

      assert.equal(await nonces(), noncesBefore, "no nonce was pruned");
      // It answers no appliance, nor does an instance of another role on that clock (every role
      // checks its clock before it listens): a fresh signed request gets 503 noc_clock_skew.
      catalogRole = await startNocRole("catalog", {
        DATABASE_URL: scratch.url,
        NOC_DATA_DIR: dataDir,
        LD_PRELOAD: preload!,
        FAKETIME: `+${offsetS}s`,
      }, ["--dev"]);
      for (const [path, server] of [["/v1/beats", proc], ["/v1/installs", catalogRole]] as const) {
        const res: Response = await fetch(
          await signedRequest({
            baseUrl: server.url,
            uid: fleet[1]!.uid,
            key: fleet[1]!.keys.signing,
            method: "POST",
            path,
            body: path === "/v1/beats" ? sampleBeat(100, new Date()) : { results: [] },
          }),
        );
        assert.equal(res.status, 503, `${path}: ${res.status}`);
        assert.equal((await res.json()).error, "noc_clock_skew");
      }
      clock.set(new Date());
      const replay = await own.app.request(signed.clone());
      assert.equal(replay.status, 401);
      assert.equal((await replay.json()).error, "replayed_signature");
      // The instance on the true clock sweeps as usual: nobody is due.
      const r = await sweep({ ...own.deps, graceS });
      assert.equal(r.skipped, undefined);
      assert.deepEqual(r.alerted, []);
      assert.equal(
        (await db.sql<{ n: number }>`select count(*)::int as n from alerts`)[0]!.n,
        0,
      );
      const notices = await db.sql<{ kind: string; payload: { skewS: number } }>`
        select kind, payload from notices where kind <> 'identity_failure' order by id`;
      assert.deepEqual(notices.map((n) => n.kind), ["clock_skew"], "one notice for the episode");
      assert.ok(Math.abs(notices[0]!.payload.skewS - offsetS) < 5);
    } finally {
      await shifted?.stop().catch(() => {});
      await catalogRole?.stop().catch(() => {});
      await good?.deps.wakeups.close();
      await db.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      await scratch.drop();
    }
  },
});
