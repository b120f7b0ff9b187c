// deno-lint-ignore-file no-explicit-any
/**
 * Issue 22 item 5 through the real surface: install windows set through the admin API reach a
 * real agent in its signed catalog; outside the window the agent downloads ahead but does not
 * install, and its beat says why; inside, it installs. The window that applies is the
 * appliance's, else its site's, else its model's.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { type AgentBox, enrolledAgent, serveNoc } from "./_agent.ts";
import { fetchCatalog, publishAndAssign } from "./_components.ts";
import { detail, uidOf, withServedNoc } from "./_degrades.ts";
import { signIn } from "./_console.ts";

const once = ["once", "--allow-http-files"];
const install = `#!/bin/sh\nset -e\nmkdir -p "$NOC_ROOT/demo"\n` +
  `printf '%s' "$NOC_VERSION" > "$NOC_ROOT/demo/version"\n`;

/** `HH:MM` UTC, `h` hours from now (wrapping the day). */
const hm = (h: number) => {
  const d = new Date(Date.now() + h * 3600_000);
  return `${String(d.getUTCHours()).padStart(2, "0")}:${
    String(d.getUTCMinutes()).padStart(2, "0")
  }`;
};

async function downloads(box: AgentBox): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${box.state}/downloads`)) out.push(e.name);
  } catch { /* none */ }
  return out;
}

// Real agent processes on PGlite only (not a dbTest: on PostgreSQL it would pass doing nothing).
Deno.test({
  name: "a real agent outside its install window downloads ahead, installs nothing, and says why",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withServedNoc({}, async (noc) => {
      const box = await enrolledAgent(noc);
      try {
        const uid = await uidOf(box);
        // A window that is closed now: it opens in two hours, for an hour.
        const closed = { start: hm(2), end: hm(3), timeZone: "UTC", reason: "mail peak" };
        const put = await noc.admin("PUT", `/v1/admin/install-windows/appliance/${uid}`, closed);
        assert.equal(put.status, 201, JSON.stringify(put.body));
        assert.equal(put.body.start, closed.start);
        const { assignmentId } = await publishAndAssign(
          noc,
          { app: "demo", name: "demo", version: "1.0.0" },
          { install },
        );

        const first = await box.run(once);
        assert.equal(first.code, 0, first.stderr + first.stdout);
        assert.equal(await box.readRoot("demo/version"), null, "not installed outside the window");
        assert.equal((await downloads(box)).length, 1, "but downloaded ahead");
        const deferred = first.events.find((e) =>
          e.msg === "install_deferred" || e.event === "install_deferred"
        );
        assert.ok(deferred, first.stdout);
        // The next beat reports the cycle before it (its deferral).
        const again = await box.run(once);
        assert.equal(again.code, 0, again.stderr + again.stdout);
        assert.equal(await box.readRoot("demo/version"), null);
        const shown = await detail(noc, box);
        const problem = shown.problems.find((p: any) => p.code === "install_deferred");
        assert.ok(problem, JSON.stringify(shown).slice(0, 2000));
        assert.match(
          problem.message,
          new RegExp(
            `outside its install window ${closed.start}–${closed.end} UTC \\(appliance\\)`,
          ),
        );
        assert.equal(shown.lastReport.lastCycle.outcome, "ok", "a deferred install is no failure");
        // The console says it waits, not that something went wrong.
        const ui = await signIn(noc);
        const page = await (await ui.get(`/ui/appliances/${uid}`)).text();
        assert.match(page, /data-install-state="pending"/);
        assert.match(page, /waiting for its install window/);
        assert.doesNotMatch(page, /data-install-state="inconsistent"|>interrupted</);

        // An urgent release is installed outside the window; who made it urgent is recorded.
        const urgent = await noc.admin("PATCH", `/v1/admin/assignments/${assignmentId}`, {
          urgent: true,
        });
        assert.equal(urgent.status, 200, JSON.stringify(urgent.body));
        assert.equal(urgent.body.urgent, true);
        assert.equal(urgent.body.urgentBy, "test");
        assert.ok(urgent.body.urgentAt);
        const now = await box.run(once);
        assert.equal(now.code, 0, now.stderr + now.stdout);
        assert.equal(await box.readRoot("demo/version"), "1.0.0", "urgent: installed at once");

        // The next release, not urgent, waits again; the window opens (moved to now): the next
        // cycle installs it from the bytes it holds.
        await publishAndAssign(noc, { app: "demo", name: "demo", version: "1.1.0" }, { install });
        const waits = await box.run(once);
        assert.equal(waits.code, 0, waits.stderr + waits.stdout);
        assert.equal(await box.readRoot("demo/version"), "1.0.0", "1.1.0 waits for its window");
        const open = { start: hm(-1), end: hm(1), timeZone: "UTC" };
        const moved = await noc.admin("PUT", `/v1/admin/install-windows/appliance/${uid}`, open);
        assert.equal(moved.status, 200, JSON.stringify(moved.body));
        assert.ok(moved.body.revision > put.body.revision, "replaced: a new revision");
        const second = await box.run(once);
        assert.equal(second.code, 0, second.stderr + second.stdout);
        assert.equal(await box.readRoot("demo/version"), "1.1.0");
      } finally {
        await box.remove();
      }
    }),
});

dbTest(
  "the window that applies is the appliance's, else its site's, else its model's",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const a = await noc.enrollAppliance({
        model: "vs-9",
        token: await noc.enrollmentToken({ site: "lab" }),
      });
      const window = async () => (await fetchCatalog(noc, a)).doc?.installWindow ?? null;
      assert.equal(await window(), null, "no window: installs at any time");
      const set = (scope: string, value: string, start: string) =>
        noc.admin("PUT", `/v1/admin/install-windows/${scope}/${value}`, {
          start,
          end: "05:00",
          timeZone: "Europe/Berlin",
        });
      assert.equal((await set("model", "vs-9", "01:00")).status, 201);
      assert.deepEqual(await window(), {
        start: "01:00",
        end: "05:00",
        timeZone: "Europe/Berlin",
        source: "model:vs-9",
      });
      assert.equal((await set("site", "lab", "02:00")).status, 201);
      assert.equal((await window())?.source, "site:lab");
      assert.equal((await set("appliance", a.uid, "03:00")).status, 201);
      assert.equal((await window())?.source, "appliance");
      assert.equal(
        (await noc.admin("DELETE", `/v1/admin/install-windows/appliance/${a.uid}`)).status,
        204,
      );
      assert.equal((await window())?.source, "site:lab");
      const shown = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
      assert.deepEqual(shown.body.installWindow, {
        start: "02:00",
        end: "05:00",
        timeZone: "Europe/Berlin",
        source: "site:lab",
      });
      const list = await noc.admin("GET", "/v1/admin/install-windows?limit=2");
      assert.equal(list.status, 200);
      assert.equal(list.body.items.length, 2);
      assert.equal(list.body.nextCursor, null);

      // Refusals: each a 4xx naming the problem, nothing written.
      const bad: Array<[string, unknown, number, string]> = [
        ["site/lab", { start: "25:00", end: "05:00", timeZone: "UTC" }, 400, "start"],
        ["site/lab", { start: "02:00", end: "02:00", timeZone: "UTC" }, 400, "end"],
        ["site/lab", { start: "02:00", end: "03:00", timeZone: "Mars/Olympus" }, 400, "timeZone"],
        ["site/nowhere", { start: "02:00", end: "03:00", timeZone: "UTC" }, 400, "value"],
        ["planet/earth", { start: "02:00", end: "03:00", timeZone: "UTC" }, 400, "scope"],
        [
          `appliance/${crypto.randomUUID()}`,
          { start: "02:00", end: "03:00", timeZone: "UTC" },
          404,
          "",
        ],
      ];
      for (const [path, body, status, field] of bad) {
        const r = await noc.admin("PUT", `/v1/admin/install-windows/${path}`, body);
        assert.equal(
          r.status,
          status,
          `${path} ${JSON.stringify(body)}: ${JSON.stringify(r.body)}`,
        );
        if (field) assert.ok(JSON.stringify(r.body).includes(field), JSON.stringify(r.body));
      }
      const later = await noc.admin("PUT", "/v1/admin/install-windows/site/nowhere", {
        start: "02:00",
        end: "03:00",
        timeZone: "UTC",
        allowUnknown: true,
      });
      assert.equal(later.status, 201, JSON.stringify(later.body));
    } finally {
      await noc.close();
    }
  },
);
