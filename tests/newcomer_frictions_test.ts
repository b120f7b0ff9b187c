/**
 * Frictions a newcomer met (issue 19, "Newcomer frictions"), each through the command they met it
 * on: `deno task dev` on a port already taken, an agent's first `once` on a root that does not
 * exist yet, and `--help` / `-h` on every command line program.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { enrolledAgent, serveNoc } from "./_agent.ts";

const repo = new URL("..", import.meta.url);

/** Runs `deno <args>` in the repository; killed after `timeoutMs` (a help that starts a server). */
async function deno(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<{ code: number; out: string; err: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: repo,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const o = await child.output();
    const d = new TextDecoder();
    return { code: o.code, out: d.decode(o.stdout), err: d.decode(o.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("deno task dev on a port in use names the port and how to choose another, exits 1 without a stack trace, and leaves the data folder alone", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const work = await Deno.makeTempDir({ prefix: "noc-busy-" });
  try {
    const r = await deno(["task", "dev"], {
      PORT: String(port),
      NOC_HOST: "127.0.0.1",
      NOC_DATA_DIR: `${work}/data`,
    });
    assert.equal(r.code, 1, r.out + r.err);
    assert.ok(r.err.includes(`port ${port} on 127.0.0.1 is already in use`), r.err);
    assert.ok(r.err.includes(`PORT=${port + 1} deno task dev`), r.err);
    assert.ok(r.err.includes(`deno task dev -- --port ${port + 1}`), r.err);
    assert.doesNotMatch(r.err, /^\s+at /m, "no stack trace");
    assert.doesNotMatch(r.out, /listening on/);
    // Refused before the database was opened: a second dev NOC never touches the first's data.
    await assert.rejects(Deno.stat(`${work}/data`), Deno.errors.NotFound);
    // `--port` names the port in the same way.
    const f = await deno(["task", "dev", "--port", String(port)], {
      NOC_HOST: "127.0.0.1",
      NOC_DATA_DIR: `${work}/data`,
    });
    assert.equal(f.code, 1, f.out + f.err);
    assert.ok(f.err.includes(`port ${port} on 127.0.0.1 is already in use`), f.err);
  } finally {
    taken.close();
    await Deno.remove(work, { recursive: true });
  }
});

dbTest(
  "an agent's first once on a root that does not exist yet makes it and reports no problem",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const box = await enrolledAgent(noc);
      await Deno.remove(box.root, { recursive: true });
      const r = await box.run(["once", "--allow-http-files"]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const finished = r.events.find((e) => e.event === "cycle_finished");
      assert.equal(finished?.outcome, "ok", JSON.stringify(r.events));
      assert.equal(finished.problems, 0, JSON.stringify(r.events));
      assert.ok((await Deno.stat(box.root)).isDirectory, "the root was made");
      // The next beat tells the NOC its last cycle had no problem, and reports the root's disk.
      assert.equal((await box.run(["once", "--allow-http-files"])).code, 0);
      const [row] = await db.sql<{
        last_report: {
          lastCycle: { outcome: string; problems?: unknown[] };
          health: { disks: Array<{ mount: string }> };
        };
      }>`
        select last_report from appliances`;
      const report = row!.last_report;
      assert.equal(report.lastCycle.outcome, "ok");
      assert.equal(report.lastCycle.problems, undefined, JSON.stringify(report.lastCycle));
      assert.ok(
        report.health.disks.some((d) => d.mount === box.root),
        JSON.stringify(report.health.disks),
      );
    } finally {
      await noc.close();
    }
  },
);

/** Every command line program, as its task runs it, with what its help must mention. */
const programs: Array<{ task: string[]; says: RegExp }> = [
  { task: ["dev"], says: /--role <role>[\s\S]*--port <n>/ },
  { task: ["start"], says: /--dev[\s\S]*-h, --help/ },
  { task: ["local"], says: /Usage: deno task local/ },
  { task: ["agent"], says: /Commands:[\s\S]*enroll[\s\S]*once[\s\S]*status/ },
  { task: ["agent", "enroll"], says: /--token <token>[\s\S]*--hostname <name>/ },
  { task: ["agent", "run"], says: /--wake-wait <s>[\s\S]*--allow-http-files/ },
  { task: ["agent", "once"], says: /Runs one cycle and exits/ },
  { task: ["agent", "status"], says: /--json/ },
  { task: ["keygen"], says: /statement[\s\S]*--from <file>[\s\S]*--until <time>/ },
  { task: ["keygen", "statement"], says: /--to <file>/ },
  { task: ["noc"], says: /Usage: noc <command>/ },
  { task: ["noc", "tokens"], says: /Usage: noc tokens/ },
  { task: ["seed"], says: /--appliances <n>[\s\S]*--admin-token[\s\S]*--seed <n>/ },
  { task: ["demo"], says: /--quick/ },
];

for (const { task, says } of programs) {
  Deno.test(`deno task ${task.join(" ")} --help and -h print the whole help and exit 0`, async () => {
    const [name, ...rest] = task;
    for (const flag of ["--help", "-h"]) {
      const r = await deno(["task", name!, "--", ...rest, flag]);
      assert.equal(r.code, 0, `${flag}: ${r.out}${r.err}`);
      assert.match(r.out, /Usage/, `${flag}: ${r.out}`);
      assert.match(r.out, says, `${flag}: ${r.out}`);
      assert.doesNotMatch(r.err, /error|Error/, `${flag}: ${r.err}`);
    }
  });
}
