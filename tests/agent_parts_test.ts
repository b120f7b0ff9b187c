import assert from "node:assert/strict";
import { ConfigError, loadAgentConfig, parseAgentArgs } from "../agent/config.ts";
import { pluginApp, runPlugins } from "../agent/plugins.ts";
import { download } from "../agent/download.ts";
import { silentLog } from "../agent/log.ts";
import { AgentError } from "../agent/errors.ts";
import { backoffS } from "../agent/cycle.ts";
import { writeFileAtomic } from "../protocol/util/atomic_file.ts";
import { agentPermissionFlags, compileCommand } from "../agent/permissions.ts";
import { sha256, toHex } from "../protocol/util/encoding.ts";
import { agentBox } from "./_agent.ts";
import { servingRanges } from "./_range_server.ts";
import { runProgram } from "../agent/proc.ts";
import {
  parseProcStats,
  procStats,
  programGuard,
  settleLeftovers,
} from "../agent/install_guard.ts";
import { journalled, journalOutcome, MAX_JOURNALLED } from "../agent/outcome_journal.ts";
import { loadState, saveState } from "../agent/state.ts";

Deno.test("agent configuration: flags win over environment, which wins over agent.json", async () => {
  const state = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${state}/agent.json`,
      JSON.stringify({ root: "/from-file", model: "file-model", pluginTimeoutS: 5 }),
    );
    const { flags } = parseAgentArgs(["--state", state, "--root=/from-flag"]);
    const c = await loadAgentConfig(flags, {
      NOC_AGENT_ROOT: "/from-env",
      NOC_AGENT_MODEL: "env-model",
    });
    assert.equal(c.root, "/from-flag");
    assert.equal(c.model, "env-model");
    assert.equal(c.pluginTimeoutS, 5);
    assert.equal(c.installTimeoutS, 600);
    assert.deepEqual(c.mounts, ["/from-flag", state]);
    const fromEnvState = await loadAgentConfig({}, { NOC_AGENT_STATE: state });
    assert.equal(fromEnvState.root, "/from-file");
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("agent configuration: a bad value is refused with a message naming it", async () => {
  const state = await Deno.makeTempDir();
  try {
    await assert.rejects(
      loadAgentConfig({ state, "plugin-timeout": "soon" }, {}),
      (e) => e instanceof ConfigError && /plugin-timeout.*"soon"/.test(e.message),
    );
    await assert.rejects(
      loadAgentConfig({ state }, { NOC_AGENT_NOC: "ftp://x" }),
      (e) => e instanceof ConfigError && /NOC_AGENT_NOC/.test(e.message),
    );
    await Deno.writeTextFile(`${state}/agent.json`, JSON.stringify({ wakeWaitS: 600 }));
    await assert.rejects(
      loadAgentConfig({ state }, {}),
      (e) => e instanceof ConfigError && /agent\.json.*wakeWaitS/.test(e.message),
    );
    assert.throws(() => parseAgentArgs(["--root"]), /"--root" needs a value/);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("plug-ins run in name order; JSON becomes app data; failing and hanging ones are reported", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const put = (name: string, body: string, mode = 0o755) =>
      Deno.writeTextFile(`${dir}/${name}`, `#!/bin/sh\n${body}\n`, { mode });
    await put("10-vscreen.sh", `echo '{"mailsScanned": 42}'`);
    await put("20-broken", `echo oops >&2; exit 3`);
    await put("30-hang", `exec sleep 30`);
    await put("40-chatty", `echo not json`);
    await put("50-disabled", `echo '{"x":1}'`, 0o644);
    const r = await runPlugins(dir, { timeoutMs: 500, env: {} });
    assert.deepEqual(r.ran, ["10-vscreen.sh", "20-broken", "30-hang", "40-chatty"]);
    assert.deepEqual(r.apps, { vscreen: { mailsScanned: 42 } });
    assert.deepEqual(r.problems.map((p) => `${p.app}:${p.code}`), [
      "broken:plugin_failed",
      "hang:plugin_timeout",
      "chatty:plugin_output",
    ]);
    assert.match(r.problems[0]!.message, /exited with 3: oops/);
    assert.equal(pluginApp("05_collector.py"), "collector");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a download cut short resumes with Range and is accepted only with the catalog's digest", async () => {
  const bytes = new Uint8Array(200_000).map((_, i) => (i * 7) % 251);
  const digest = toHex(await sha256(bytes));
  await servingRanges(bytes, async (url, ranges) => {
    const dir = await Deno.makeTempDir();
    try {
      const dest = `${dir}/blob.part`;
      await Deno.writeFile(dest, bytes.slice(0, 123_456));
      const spec = { urls: [url], size: bytes.length, sha256: digest, label: "blob" };
      await download(dest, spec, { idleMs: 10_000, log: silentLog });
      assert.deepEqual(ranges, ["bytes=123456-"]);
      assert.deepEqual(await Deno.readFile(dest), bytes);

      // A first URL that fails is skipped for the next; a wrong digest is refused and dropped.
      await Deno.remove(dest);
      await assert.rejects(
        download(dest, { ...spec, urls: ["http://127.0.0.1:1/x", url], sha256: "0".repeat(64) }, {
          idleMs: 10_000,
          log: silentLog,
        }),
        (e) => e instanceof AgentError && e.code === "digest_mismatch",
      );
      await assert.rejects(Deno.stat(dest), Deno.errors.NotFound);
      await assert.rejects(
        download(dest, { ...spec, size: 1000 }, { idleMs: 10_000, log: silentLog }),
        (e) => e instanceof AgentError && e.code === "size_mismatch",
      );

      // A mirror that sends a short run of wrong bytes: the next URL resumes on top of them, the
      // digest fails, and that URL gets a whole attempt of its own.
      const liar = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        () => new Response(new Uint8Array(50_000).fill(9)),
      );
      try {
        ranges.length = 0;
        await download(dest, { ...spec, urls: [`http://127.0.0.1:${liar.addr.port}/x`, url] }, {
          idleMs: 10_000,
          log: silentLog,
        });
        assert.deepEqual(ranges, ["bytes=50000-", null]);
        assert.deepEqual(await Deno.readFile(dest), bytes);
      } finally {
        await liar.shutdown();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("failed installs back off exponentially, capped at six hours", () => {
  assert.equal(backoffS(1, () => 0.5), 60);
  assert.equal(backoffS(2, () => 0.5), 120);
  assert.equal(backoffS(30, () => 0.5), 6 * 3600);
  assert.ok(backoffS(1, () => 0) >= 45 && backoffS(1, () => 1) <= 75);
});

Deno.test("an atomic write leaves the old content or the new, never a temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFileAtomic(`${dir}/f`, "old");
    await writeFileAtomic(`${dir}/f`, "new", 0o640);
    assert.equal(await Deno.readTextFile(`${dir}/f`), "new");
    assert.equal((await Deno.stat(`${dir}/f`)).mode! & 0o777, 0o640);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["f"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent CLI: --help on every command, usage errors exit 64, once before enrolment says how", async () => {
  const box = await agentBox();
  try {
    for (const cmd of ["enroll", "run", "once", "status"]) {
      const r = await box.run([cmd, "--help"]);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`Usage: noc-agent ${cmd}`));
    }
    assert.match((await box.run(["--help"])).stdout, /Commands:/);
    const unknown = await box.run(["frobnicate"]);
    assert.equal(unknown.code, 64);
    assert.match(unknown.stderr, /Unknown command "frobnicate"/);
    const noToken = await box.run(["enroll", "--noc", "http://127.0.0.1:1"]);
    assert.equal(noToken.code, 64);
    assert.match(noToken.stderr, /needs --token/);
    const notEnrolled = await box.run(["once"]);
    assert.equal(notEnrolled.code, 64);
    assert.match(notEnrolled.stderr, /run "enroll --noc <url> --token <token>" first/);
    const status = await box.run(["status"]);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /not enrolled/);
    // Outside its folders the agent has no permission at all.
    const outside = await box.run(["status", "--state", "/etc"]);
    assert.equal(outside.code, 64, outside.stderr);
    assert.match(outside.stderr, /read access to "\/etc\/agent\.json"/);
  } finally {
    await box.remove();
  }
});

Deno.test("compile:agent is exactly deno compile with the agent's least permissions", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)))
    .tasks;
  assert.equal(tasks["compile:agent"], compileCommand());
  assert.deepEqual(agentPermissionFlags("/s", "/r").slice(0, 3), [
    "--allow-net",
    "--allow-read=/s,/r",
    "--allow-write=/s,/r",
  ]);
});

Deno.test("compile:agent builds a working binary (needs DENORT_BIN)", async () => {
  const denort = Deno.env.get("DENORT_BIN");
  if (!denort) {
    console.log("skipped: DENORT_BIN is not set, so deno compile cannot get its runtime here");
    return;
  }
  const repo = new URL("..", import.meta.url).pathname;
  const build = await new Deno.Command(Deno.execPath(), {
    args: ["task", "compile:agent"],
    cwd: repo,
    env: { DENORT_BIN: denort },
  }).output();
  assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));
  const help = await new Deno.Command(`${repo}dist/noc-agent`, { args: ["--help"] }).output();
  assert.equal(help.code, 0);
  assert.match(new TextDecoder().decode(help.stdout), /noc-agent/);
});

Deno.test("a download dripping a byte at a time is given up at its overall deadline", async () => {
  const size = 2000;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    let sent = 0;
    let timer: ReturnType<typeof setInterval> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(ctrl) {
        // 20 bytes a second: never idle for long, far too slow to finish.
        timer = setInterval(() => {
          if (sent++ >= size) return clearInterval(timer);
          try {
            ctrl.enqueue(new Uint8Array([1]));
          } catch {
            clearInterval(timer);
          }
        }, 50);
      },
      cancel() {
        clearInterval(timer);
      },
    });
    return new Response(body, { headers: { "content-length": String(size) } });
  });
  const dir = await Deno.makeTempDir();
  try {
    const started = Date.now();
    await assert.rejects(
      download(`${dir}/slow`, {
        urls: [`http://127.0.0.1:${server.addr.port}/slow`],
        size,
        sha256: "0".repeat(64),
        label: "slow",
      }, { idleMs: 5000, log: silentLog, minBytesPerS: 1000, graceS: 0.5 }),
      (e) => e instanceof AgentError && /too slow/.test(e.message),
    );
    assert.ok(
      Date.now() - started < 5000,
      "given up at the deadline (2.5 s), not the idle timeout",
    );
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("/proc/<pid>/stat records parse past a command name holding spaces, parentheses and newlines", () => {
  const tail = "S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
  const forged = "S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 1 1000 200";
  const stats = parseProcStats(
    `4242 (sh) ${tail}\n\x0077 (a) (b c) ${tail}\n\x0078 (x\n4242 (y) ${forged}) ${tail}\n\0garbage\n\0`,
  );
  assert.deepEqual(stats.map((s) => s.pid), [4242, 77, 78]);
  assert.deepEqual(stats[0], {
    pid: 4242,
    state: "S",
    pgrp: 4242,
    session: 4242,
    startTicks: 987654n,
  });
  assert.equal(stats[1]!.startTicks, 987654n);
  assert.equal(stats[2]!.startTicks, 987654n, "a name cannot make a record of its own");
});

Deno.test("procStats() of every process cannot be misled by a process naming itself like a record", async () => {
  // Any process may write its own name: this one forges a record for the test's own pid with
  // another start time, as one hiding a leftover install from the agent would.
  const forger = new Deno.Command("/bin/sh", {
    args: [
      "-c",
      `printf 'x\\n%s (y) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1' ${Deno.pid} > /proc/self/comm; echo ready; read x`,
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  try {
    const reader = forger.stdout.getReader();
    await reader.read();
    reader.releaseLock();
    const [own] = await procStats(Deno.pid);
    const all = await procStats();
    assert.ok(all.some((p) => p.pid === forger.pid), "the forger was read");
    // Its state (R, S) may change between the two reads (ok2 of session 24 saw R, then S): the
    // identity fields are what a forger would have to match.
    const identity = ({ state: _, ...rest }: { state: string }) => rest;
    assert.deepEqual(all.filter((p) => p.pid === Deno.pid).map(identity), [identity(own!)]);
  } finally {
    await forger.stdin.close();
    await forger.status;
    await forger.stdout.cancel().catch(() => {});
  }
});

Deno.test("an install program starts only once its process group is recorded, and never if that fails", async () => {
  const state = await Deno.makeTempDir();
  try {
    const marker = `${state}/ran`;
    const argv = ["/bin/sh", "-c", `echo $$ > "${marker}"`];
    // Recorded first: while beforeStart runs the program has not started, and it leads its group.
    let seen: { pid: number; group: boolean; ranYet: boolean; pgrp?: number } | null = null;
    const ok = await runProgram(argv, {
      cwd: state,
      env: {},
      timeoutMs: 10_000,
      beforeStart: async (pid, group) => {
        // setsid(1) makes it a group leader once it runs, which on a busy machine may be just
        // after the spawn returned: read until it has (the gate holds the program meanwhile).
        let stat = (await procStats(pid))[0];
        for (let i = 0; i < 200 && stat?.pgrp !== pid; i++) {
          await new Promise((r) => setTimeout(r, 5));
          stat = (await procStats(pid))[0];
        }
        seen = { pid, group, ranYet: await Deno.stat(marker).then(() => true, () => false) };
        if (stat) seen.pgrp = stat.pgrp;
      },
    });
    assert.equal(ok.code, 0, ok.stderr);
    const s = seen as unknown as { pid: number; group: boolean; ranYet: boolean; pgrp?: number };
    assert.equal(s.ranYet, false, "the program waits for the record");
    assert.equal(s.group, true);
    assert.equal(s.pgrp, s.pid, "the program leads a process group of its own");
    assert.equal((await Deno.readTextFile(marker)).trim(), String(s.pid), "same process");
    await Deno.remove(marker);
    // A record that cannot be written: the program never runs.
    const refused = await runProgram(argv, {
      cwd: state,
      env: {},
      timeoutMs: 10_000,
      beforeStart: () => Promise.reject(new Error("disk full")),
    });
    assert.equal(refused.spawnError, "disk full");
    assert.equal(await Deno.stat(marker).then(() => true, () => false), false);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("a leftover install's process group is stopped at the next cycle's start; a reused pid is left alone", async () => {
  const state = await Deno.makeTempDir();
  const log = silentLog;
  try {
    const what = { kind: "package", app: "demo", name: "demo", version: "2" } as const;
    // A program recorded as an earlier run's install, still running (it and a child it started).
    const guard = programGuard(state, { ...what, action: "install" }, () => new Date());
    const started = Promise.withResolvers<number>();
    const running = runProgram(["/bin/sh", "-c", "sleep 600 & wait"], {
      cwd: state,
      env: {},
      timeoutMs: 600_000,
      beforeStart: async (pid, group) => {
        await guard.beforeStart(pid, group);
        started.resolve(pid);
      },
    });
    const pid = await started.promise;
    const recorded = JSON.parse(await Deno.readTextFile(`${state}/running.json`));
    assert.equal(recorded.programs[0].pid, pid);
    // A second record whose pid is alive but started at another time (pid reuse): this process.
    recorded.programs.push({
      ...recorded.programs[0],
      pid: Deno.pid,
      name: "other",
      startTicks: "1",
    });
    await Deno.writeTextFile(`${state}/running.json`, JSON.stringify(recorded));
    const left = await settleLeftovers({ config: { state }, log }, 2_000);
    assert.deepEqual(left.dropped, ["package/demo/demo", "package/demo/other"]);
    assert.equal(left.blocked, false);
    const r = await running;
    assert.equal(r.code, 143, "killed by SIGTERM");
    const alive = (await procStats()).filter((p) => p.pgrp === pid && p.state !== "Z");
    assert.deepEqual(alive, [], "nothing of its group lives");
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${state}/running.json`)).programs, []);
    // Nothing recorded: nothing to do.
    assert.deepEqual(await settleLeftovers({ config: { state }, log }), {
      dropped: [],
      problems: [],
      blocked: false,
    });
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("the outcome journal keeps outcomes in order across restarts, bounded, and drops damaged files", async () => {
  const state = await Deno.makeTempDir();
  try {
    const report = (version: string) => ({
      kind: "package" as const,
      app: "demo",
      name: "demo",
      version,
      outcome: "installed" as const,
    });
    for (const v of ["1", "2", "3"]) await journalOutcome(state, report(v), new Date());
    await Deno.writeTextFile(`${state}/outcomes/000000000004.json`, "{ not json");
    const { outcomes, damaged } = await journalled(state);
    assert.deepEqual(outcomes.map((o) => o.report.version), ["1", "2", "3"]);
    assert.equal(damaged.length, 1);
    for (let i = 0; i < MAX_JOURNALLED; i++) {
      await journalOutcome(state, report(`n${i}`), new Date());
    }
    const after = (await journalled(state)).outcomes;
    assert.equal(after.length, MAX_JOURNALLED);
    assert.equal(after.at(-1)!.report.version, `n${MAX_JOURNALLED - 1}`);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("each journalled outcome keeps one reportId across reads; an older agent's file is given one for good", async () => {
  const state = await Deno.makeTempDir();
  try {
    const report = {
      kind: "package" as const,
      app: "demo",
      name: "demo",
      version: "1",
      outcome: "failed" as const,
      message: "install_failed: exited with 1",
    };
    // The same failure twice: two outcomes, two keys.
    const a = await journalOutcome(state, report, new Date());
    const b = await journalOutcome(state, report, new Date());
    const given = await journalOutcome(state, { ...report, reportId: a.reportId! }, new Date());
    assert.equal(given.reportId, a.reportId, "a key it was given is kept");
    assert.match(
      a.reportId!,
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    assert.notEqual(a.reportId, b.reportId);
    const read = (await journalled(state)).outcomes.map((o) => o.report.reportId);
    assert.deepEqual(read, [a.reportId, b.reportId, a.reportId]);
    assert.deepEqual((await journalled(state)).outcomes.map((o) => o.report.reportId), read);
    // A file journalled before outcomes had keys.
    const old = `${state}/outcomes/000000000009.json`;
    await Deno.writeTextFile(
      old,
      JSON.stringify({
        format: "noc-agent-outcome/1",
        journalledAt: "2026-01-01T00:00:00Z",
        report,
      }),
    );
    const first = (await journalled(state)).outcomes.at(-1)!;
    assert.equal(first.path, old);
    assert.ok(first.report.reportId, "given a key");
    assert.equal(JSON.parse(await Deno.readTextFile(old)).report.reportId, first.report.reportId);
    assert.equal((await journalled(state)).outcomes.at(-1)!.report.reportId, first.report.reportId);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("an outcome kept in state.json keeps its reportId across a save and a load", async () => {
  const state = await Deno.makeTempDir();
  try {
    const s = await loadState(state);
    const reportId = crypto.randomUUID();
    s.pendingReports.push({
      kind: "package",
      app: "demo",
      name: "demo",
      version: "2",
      outcome: "installed",
      reportId,
    });
    await saveState(state, s);
    assert.equal((await loadState(state)).pendingReports[0]?.reportId, reportId);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});
