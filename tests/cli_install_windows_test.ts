/**
 * Install windows in the admin CLI (issue 22 item 5): `noc install-windows [list] [--scope S]
 * [--limit N] [--cursor C]`, `set <scope> <value> --start --end --tz [--reason] [--allow-unknown]`,
 * `remove <scope> <value>`, and `assign … --urgent`; usage errors (a bad scope, time or zone) exit
 * 64 naming the flag before anything is sent, a refusal of the NOC exits 1 with its message. The
 * CLI runs as a process against a served test NOC, as the other CLI tests do.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { publishAndAssign } from "./_components.ts";
import { runCli } from "./_process.ts";

dbTest(
  "noc install-windows sets, lists a page at a time, removes; assign --urgent",
  async ({ db }) => {
    const noc = await testNoc(db);
    await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      noc.app.fetch,
    );
    const env = { NOC_URL: `http://127.0.0.1:${server.addr.port}`, NOC_TOKEN: noc.adminToken };
    try {
      const window = ["--start", "02:00", "--end", "04:00", "--tz", "Europe/Berlin"];
      const [set, model, badTime, badScope, badZone, unknown] = await Promise.all([
        runCli(["install-windows", "set", "site", "lab", ...window, "--reason", "quiet"], env),
        runCli([
          "install-windows",
          "set",
          "model",
          "vs-2000",
          "--tz=UTC",
          "--start=22:00",
          "--end=01:00",
        ], env),
        runCli(["install-windows", "set", "site", "lab", ...window, "--start", "25:00"], env),
        runCli(["install-windows", "set", "rack", "lab", ...window], env),
        runCli(["install-windows", "set", "site", "lab", ...window, "--tz", "Mars/Olympus"], env),
        runCli(["install-windows", "set", "site", "nowhere", ...window], env),
      ]);
      assert.equal(set.code, 0, set.err);
      assert.equal(set.out.trim(), "Install window of site lab: 02:00-04:00 Europe/Berlin");
      assert.equal(model.code, 0, model.err);
      assert.equal(badTime.code, 64, badTime.err);
      assert.match(badTime.err, /--start must be a time of day, HH:MM/);
      assert.equal(badScope.code, 64, badScope.err);
      assert.match(badScope.err, /<scope> must be appliance, site or model, not "rack"/);
      assert.equal(badZone.code, 64, badZone.err);
      assert.match(badZone.err, /--tz must be an IANA time zone/);
      assert.equal(unknown.code, 1, unknown.err);
      assert.match(
        unknown.err,
        /NOC answered 400: .*no appliance \(not revoked\) has site "nowhere"/,
      );
      const stored = await noc.admin("GET", "/v1/admin/install-windows/site/lab");
      assert.equal(stored.status, 200);
      assert.deepEqual(
        [stored.body.start, stored.body.end, stored.body.timeZone, stored.body.reason],
        ["02:00", "04:00", "Europe/Berlin", "quiet"],
      );

      // A page at a time: the "more" line gives the cursor of the next.
      const [first, sites, bad] = await Promise.all([
        runCli(["install-windows", "--limit", "1"], env),
        runCli(["install-windows", "list", "--scope", "model", "--json"], env),
        runCli(["install-windows", "--scope", "rack"], env),
      ]);
      assert.equal(first.code, 0, first.err);
      assert.match(first.out, /^for\s+window\s+time zone\s+reason\s+set by\s+at\n/);
      const cursor = /\(more: --cursor (\S+)\)/.exec(first.out)?.[1];
      assert.ok(cursor, first.out);
      assert.equal(sites.code, 0, sites.err);
      const listed = JSON.parse(sites.out);
      assert.deepEqual(listed.items.map((w: { value: string }) => w.value), ["vs-2000"]);
      assert.equal(listed.nextCursor, null);
      assert.equal(bad.code, 64);
      assert.match(bad.err, /--scope must be appliance, site or model/);

      const second = await runCli(["install-windows", "--limit", "1", "--cursor", cursor], env);
      assert.equal(second.code, 0, second.err);
      // Both windows (set in parallel, so in either order), each once.
      const both = first.out + second.out;
      assert.equal(both.match(/site lab\s+02:00-04:00\s+Europe\/Berlin\s+quiet/g)?.length, 1);
      assert.equal(both.match(/model vs-2000\s+22:00-01:00\s+UTC/g)?.length, 1);
      assert.doesNotMatch(second.out, /\(more:/);

      const [removed, again] = await Promise.all([
        runCli(["install-windows", "remove", "site", "lab"], env),
        publishAndAssign(noc, { app: "demo", name: "demo", version: "1.0.0" }),
      ]);
      assert.equal(removed.code, 0, removed.err);
      assert.equal(removed.out.trim(), "Removed the install window of site lab");
      assert.equal((await noc.admin("GET", "/v1/admin/install-windows/site/lab")).status, 404);
      void again;

      const [gone, urgent] = await Promise.all([
        runCli(["install-windows", "remove", "site", "lab"], env),
        runCli(
          [
            "assign",
            "--app",
            "demo",
            "--name",
            "demo",
            "--version",
            "1.0.0",
            "--target",
            "site=lab",
            "--urgent",
          ],
          env,
        ),
      ]);
      assert.equal(gone.code, 1);
      assert.match(gone.err, /NOC answered 404: No install window for site "lab"/);
      assert.equal(urgent.code, 0, urgent.err);
      assert.match(
        urgent.out,
        /to site=lab, rollout 100%.*, urgent \(installs outside install windows\)/,
      );
      const id = /^Assignment (\d+)/.exec(urgent.out)![1]!;
      const a = await noc.admin("GET", `/v1/admin/assignments/${id}`);
      assert.equal(a.body.urgent, true);
      assert.ok(a.body.urgentBy, "who made it urgent is recorded");
    } finally {
      await server.shutdown();
    }
  },
);
