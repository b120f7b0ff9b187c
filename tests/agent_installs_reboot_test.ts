// deno-lint-ignore-file no-explicit-any
/**
 * Issue 21, item 3: an install program that reboots. Real agent processes and a real NOC:
 *
 * - an install that SIGKILLs its agent (as a reboot would) every time it runs is run at most 3
 *   times for one version; the next run reports it `failed` (`interrupted`) to the NOC, and no run
 *   after that starts it again;
 * - an install that follows the reboot convention (exit 194, or the `$NOC_REBOOT_MARKER` file made
 *   before it reboots) is not run again while the boot lasts; after a simulated boot (a new boot
 *   id, `NOC_AGENT_BOOT_ID_FILE`) the package's health check decides, and the outcome reaches the
 *   NOC.
 *
 * Nothing here sleeps: the "reboots" are SIGKILLs and boot-id files.
 */
import assert from "node:assert/strict";
import { publishAndAssign } from "./_components.ts";
import { installBox, shown, withNoc } from "./_agent_installs.ts";

const once = ["once", "--allow-http-files"];

/** Shell lines that SIGKILL the agent that started this install (its parent), as a reboot would. */
const killAgent =
  `if grep -q 'agent/main.ts' "/proc/$PPID/cmdline" 2>/dev/null; then kill -9 "$PPID"; fi\n`;

/** How many lines of `event` a run logged. */
function logged(r: { events: any[] }, event: string): number {
  return r.events.filter((e) => e.event === event).length;
}

/** The `awaiting_reboot` problems of the last cycle, as state.json keeps them (the next beat's). */
async function awaitingProblems(state: string): Promise<any[]> {
  const st = JSON.parse(await Deno.readTextFile(`${state}/state.json`));
  return (st.lastCycle?.problems ?? []).filter((p: any) => p.code === "awaiting_reboot");
}

async function lines(path: string): Promise<number> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter((l) => l !== "").length;
}

Deno.test({
  name:
    "an install that kills its agent every time runs at most 3 times, then `interrupted` reaches the NOC",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withNoc(async (noc) => {
      const box = await installBox(noc);
      const dir = await Deno.makeTempDir({ prefix: "noc-reboot-" });
      try {
        await publishAndAssign(noc, { app: "demo", name: "loop", version: "1.0.0" }, {
          install: `#!/bin/sh\necho run >> "${dir}/runs"\n${killAgent}exit 0\n`,
        });
        const runs: Array<{ code: number; events: any[] }> = [];
        for (let i = 0; i < 5; i++) {
          const r = await box.agent(once);
          runs.push(r);
          if (i < 3) assert.notEqual(r.code, 0, `run ${i + 1} was killed by its install`);
          // install_started only when the install program runs: not once its runs are spent.
          assert.equal(logged(r, "install_started"), i < 3 ? 1 : 0, `run ${i + 1}`);
        }
        assert.equal(await lines(`${dir}/runs`), 3, "the install program ran 3 times, no more");
        const fourth = runs[3]!;
        assert.equal(fourth.code, 2, JSON.stringify(fourth.events)); // a partial cycle
        const failed = fourth.events.find((e) => e.event === "install_failed");
        assert.equal(failed?.reason, "interrupted", JSON.stringify(fourth.events));
        assert.ok(fourth.events.some((e) => e.event === "install_interrupted"));
        // The NOC has the outcome, with its code; the attempts stay counted for this version.
        const a = await shown(noc, box);
        const outcomes = a.installOutcomes.filter((o: any) => o.name === "loop");
        assert.equal(outcomes.length, 1, JSON.stringify(a.installOutcomes));
        assert.equal(outcomes[0].outcome, "failed");
        assert.equal(outcomes[0].version, "1.0.0");
        assert.match(outcomes[0].message, /^interrupted: /);
        const attempts = JSON.parse(await Deno.readTextFile(`${box.state}/attempts.json`));
        assert.deepEqual(
          attempts.installs.map((x: any) => `${x.name}@${x.version}:${x.runs}:${x.phase}`),
          ["loop@1.0.0:3:running"],
        );
        // A later try (its backoff cleared) refuses again without running it.
        const st = JSON.parse(await Deno.readTextFile(`${box.state}/state.json`));
        st.failures = {};
        await Deno.writeTextFile(`${box.state}/state.json`, JSON.stringify(st));
        const later = await box.agent(once);
        assert.equal(later.code, 2);
        assert.equal(logged(later, "install_started"), 0, "refused without running: not started");
        assert.equal(
          later.events.find((e) => e.event === "install_failed")?.reason,
          "interrupted",
        );
        assert.equal(await lines(`${dir}/runs`), 3, "never a 4th run of the same version");
        // The last beat carries the reason too (the fifth run backed off from it).
        const problems = (await shown(noc, box)).lastReport.lastCycle.problems ?? [];
        assert.ok(
          problems.some((p: any) => p.name === "loop" && /cut short 3 times/.test(p.message)),
          JSON.stringify(problems),
        );
      } finally {
        await box.remove();
        await Deno.remove(dir, { recursive: true });
      }
    }),
});

Deno.test({
  name: "exit 194 waits for a reboot; after the boot id changes the health check decides",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withNoc(async (noc) => {
      const box = await installBox(noc);
      const dir = await Deno.makeTempDir({ prefix: "noc-reboot-" });
      try {
        await publishAndAssign(noc, { app: "demo", name: "kernel", version: "2.0.0" }, {
          install: `#!/bin/sh\necho run >> "${dir}/runs"\nmkdir -p "$NOC_ROOT/k"\n` +
            `echo pending > "$NOC_ROOT/k/state"\nexit 194\n`,
          // What the reboot would do: the health check passes once the new boot is up.
          health: `#!/bin/sh\necho check >> "${dir}/checks"\n` +
            `test "$(cat "$NOC_STATE/test-boot-id")" != "$(cat "${dir}/first-boot")"\n`,
        });
        await Deno.copyFile(box.bootIdFile, `${dir}/first-boot`);
        const first = await box.agent(once);
        // Waiting for a reboot is no failure: exit 0 (newcomer review 21c: it was 2).
        assert.equal(first.code, 0, first.stdout + first.stderr);
        assert.equal(logged(first, "install_awaiting_reboot"), 1, first.stdout);
        assert.equal(logged(first, "install_started"), 1);
        assert.equal((await awaitingProblems(box.state)).length, 1);
        assert.equal(await lines(`${dir}/runs`), 1);
        assert.equal(await lines(`${dir}/checks`), 0, "no health check before the reboot");
        // Same boot: nothing runs again, no outcome, and the beat says why.
        const second = await box.agent(once);
        assert.equal(second.code, 0);
        assert.equal(await lines(`${dir}/runs`), 1, "not installed again while the boot lasts");
        assert.equal(logged(second, "install_started"), 0, "deferred: not started");
        assert.equal(logged(second, "install_awaiting_reboot"), 0, "said once, when it asked");
        assert.equal((await awaitingProblems(box.state)).length, 1, "one problem a cycle");
        let a = await shown(noc, box);
        assert.deepEqual(a.installOutcomes, []);
        const waiting = a.lastReport.lastCycle.problems.find((p: any) =>
          p.code === "awaiting_reboot"
        );
        assert.equal(waiting?.name, "kernel", JSON.stringify(a.lastReport.lastCycle));
        const cur = await Deno.readTextFile(`${box.state}/catalog.cur`).catch(() => null);
        assert.equal(cur === null ? 0 : JSON.parse(cur).components.length, 0, "not installed yet");

        await box.reboot();
        const third = await box.agent(once);
        assert.equal(third.code, 0, third.stdout);
        assert.equal(logged(third, "install_rebooted"), 1, third.stdout);
        assert.equal(logged(third, "install_started"), 0, "judged, not run: not started");
        assert.equal((await awaitingProblems(box.state)).length, 0);
        assert.equal(await lines(`${dir}/runs`), 1, "the install is not run after the reboot");
        assert.equal(await lines(`${dir}/checks`), 1, "the health check decided");
        assert.deepEqual(
          (await box.catalogCur()).components.map((c: any) => `${c.name}@${c.version}`),
          ["kernel@2.0.0"],
        );
        a = await shown(noc, box);
        assert.deepEqual(
          a.installOutcomes.map((o: any) => `${o.name}@${o.version}:${o.outcome}`),
          ["kernel@2.0.0:installed"],
        );
        assert.deepEqual(
          JSON.parse(await Deno.readTextFile(`${box.state}/attempts.json`)).installs,
          [],
        );
      } finally {
        await box.remove();
        await Deno.remove(dir, { recursive: true });
      }
    }),
});

Deno.test({
  name:
    "a reboot marker made before the install kills its agent: after the reboot the health check decides (a rollback when it fails)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withNoc(async (noc) => {
      const box = await installBox(noc);
      const dir = await Deno.makeTempDir({ prefix: "noc-reboot-" });
      try {
        const install = (v: string) =>
          `#!/bin/sh\necho "$NOC_ACTION $NOC_VERSION" >> "${dir}/runs"\n` +
          `mkdir -p "$NOC_ROOT/fw"\necho ${v} > "$NOC_ROOT/fw/version"\n`;
        await publishAndAssign(noc, { app: "demo", name: "fw", version: "1.0.0" }, {
          install: install("1.0.0"),
        });
        assert.equal((await box.agent(once)).code, 0);
        assert.equal(await box.readRoot("fw/version"), "1.0.0\n");
        // Version 2 marks the reboot, then "reboots" (kills its agent); its health check fails.
        await publishAndAssign(noc, { app: "demo", name: "fw", version: "2.0.0" }, {
          install: install("2.0.0") + `touch "$NOC_REBOOT_MARKER"\n${killAgent}exit 0\n`,
          health: `#!/bin/sh\necho check >> "${dir}/checks"\nexit 3\n`,
        });
        const cut = await box.agent(once);
        assert.notEqual(cut.code, 0, "killed by its install");
        // Started again in the same boot (the agent, not the machine, restarted): it waits.
        const same = await box.agent(once);
        assert.equal(same.code, 0, same.stdout); // waiting is no failure
        assert.equal(logged(same, "install_rebooting"), 1, same.stdout);
        assert.equal(logged(same, "install_interrupted"), 0);
        assert.equal(logged(same, "install_started"), 0, "deferred: not started");
        assert.equal(
          (await awaitingProblems(box.state)).length,
          1,
          "one awaiting_reboot problem for one reboot",
        );
        // The agent restarted again, same boot: it still waits, said once, and not "rebooting".
        const again = await box.agent(once);
        assert.equal(again.code, 0, again.stdout);
        assert.equal(logged(again, "install_rebooting"), 0);
        assert.equal(logged(again, "install_started"), 0);
        assert.equal((await awaitingProblems(box.state)).length, 1);
        await box.reboot();
        const after = await box.agent(once);
        assert.equal(after.code, 2, after.stdout); // rolled back: partial
        assert.equal(logged(after, "install_rebooted"), 1, after.stdout);
        assert.equal(logged(after, "install_rebooting"), 0, "rebooted: it waits no more");
        assert.equal(logged(after, "install_started"), 0, "judged, not run");
        assert.equal((await awaitingProblems(box.state)).length, 0);
        assert.deepEqual(
          (await Deno.readTextFile(`${dir}/runs`)).trim().split("\n"),
          ["install 1.0.0", "install 2.0.0", "rollback 1.0.0"],
          "2.0.0 ran once; its failed health check after the reboot put 1.0.0 back",
        );
        assert.equal(await lines(`${dir}/checks`), 1);
        assert.equal(await box.readRoot("fw/version"), "1.0.0\n");
        assert.deepEqual(
          (await box.catalogCur()).components.map((c: any) => `${c.name}@${c.version}`),
          ["fw@1.0.0"],
        );
        const a = await shown(noc, box);
        assert.deepEqual(
          a.installOutcomes.map((o: any) => `${o.version}:${o.outcome}`).sort(),
          ["1.0.0:installed", "2.0.0:rolled_back"],
        );

        // A marker, then a real reboot (the agent killed, the boot id new before it runs again):
        // the first cycle of the new boot judges it, and says nothing of waiting for a reboot.
        await publishAndAssign(noc, { app: "demo", name: "fw", version: "3.0.0" }, {
          install: install("3.0.0") + `touch "$NOC_REBOOT_MARKER"\n${killAgent}exit 0\n`,
        });
        assert.notEqual((await box.agent(once)).code, 0, "killed by its install");
        await box.reboot();
        const booted = await box.agent(once);
        assert.equal(booted.code, 0, booted.stdout);
        assert.equal(logged(booted, "install_rebooted"), 1, booted.stdout);
        assert.equal(logged(booted, "install_rebooting"), 0, "it waits no more");
        assert.equal(logged(booted, "install_started"), 0);
        assert.equal((await awaitingProblems(box.state)).length, 0);
        assert.equal(await box.readRoot("fw/version"), "3.0.0\n");
      } finally {
        await box.remove();
        await Deno.remove(dir, { recursive: true });
      }
    }),
});
