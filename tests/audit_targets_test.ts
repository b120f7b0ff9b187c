// deno-lint-ignore-file no-explicit-any
/**
 * Issue 19's attacker review, F3, over real HTTP against a real NOC: the audit log shows every
 * appliance a bulk action touched — the whole set a filter resolved to, not 20 of them — and
 * every alert (and its appliance) an acknowledgement by filter touched, in canonical form
 * (lower-case UUIDs); `GET /v1/admin/audit?target=`, the console's audit filter and
 * `noc audit --target` find a change by any of them, in any case; long values (a fileinfo
 * action) are kept whole.
 */
import assert from "node:assert/strict";
import { dbTest, type TestAppliance } from "./_harness.ts";
import { type ServedNoc, serveNoc } from "./_agent.ts";
import { signIn } from "./_console.ts";
import { runCli } from "./_process.ts";

async function api(noc: ServedNoc, method: string, path: string, body?: unknown) {
  const res = await fetch(`${noc.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${noc.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null as any };
}

async function site(noc: ServedNoc, name: string, n: number): Promise<TestAppliance[]> {
  const out: TestAppliance[] = [];
  for (let i = 0; i < n; i++) {
    const token = await noc.enrollmentToken({ site: name });
    const a = await noc.enrollAppliance({ hostname: `${name}-${i}`, token });
    await a.beat();
    out.push(a);
  }
  return out;
}

dbTest(
  "a bulk action and an acknowledgement by filter record every appliance and alert they touched, found by target",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const sin = await site(noc, "sin-pop", 25);
      const fra = await site(noc, "fra-pop", 2);
      const sinUids = sin.map((a) => a.uid.toLowerCase()).sort();

      const bulk = await api(noc, "POST", "/v1/admin/appliances/bulk", {
        filter: { site: "sin-pop" },
        action: { type: "hold", reason: "freeze for the outage" },
      });
      assert.equal(bulk.status, 200, JSON.stringify(bulk.body));
      assert.equal(bulk.body.done, 25);
      const [rec] = (await api(noc, "GET", "/v1/admin/audit?path=/v1/admin/appliances/bulk"))
        .body.items;
      assert.deepEqual([...rec.affected].sort(), sinUids, "all 25, not 20; none of fra-pop");
      for (const a of [sin[0]!, sin[24]!]) {
        for (const asked of [a.uid, a.uid.toUpperCase()]) {
          const found = await api(noc, "GET", `/v1/admin/audit?target=${asked}`);
          assert.deepEqual(found.body.items.map((i: any) => i.id), [rec.id], asked);
        }
      }
      const none = await api(noc, "GET", `/v1/admin/audit?target=${fra[0]!.uid}`);
      assert.deepEqual(none.body.items, []);

      // A route parameter given in upper case is recorded, and found, in lower case.
      const patched = await api(noc, "PATCH", `/v1/admin/appliances/${fra[0]!.uid.toUpperCase()}`, {
        channel: "beta",
      });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      const [p] = (await api(noc, "GET", `/v1/admin/audit?target=${fra[0]!.uid}`)).body.items;
      assert.equal(p.method, "PATCH");
      assert.deepEqual(p.targets, { uid: fra[0]!.uid.toLowerCase() });

      // sin-pop goes silent: 25 alerts; acknowledged by filter with one note.
      for (let step = 0; step < 4; step++) {
        noc.clock.advance(600);
        for (const a of fra) await a.beat();
      }
      assert.equal((await api(noc, "POST", "/v1/admin/sweep")).status, 200);
      const alerts = await api(noc, "GET", "/v1/admin/alerts?site=sin-pop&limit=100");
      assert.equal(alerts.body.items.length, 25);
      const ack = await api(noc, "POST", "/v1/admin/alerts/ack", {
        filter: { site: "sin-pop" },
        note: "fibre cut",
      });
      assert.equal(ack.body.acknowledged, 25);
      const [acked] = (await api(noc, "GET", "/v1/admin/audit?path=/v1/admin/alerts/ack")).body
        .items;
      assert.deepEqual(
        [...acked.affected].sort(),
        [...alerts.body.items.map((a: any) => String(a.id)), ...sinUids].sort(),
      );
      const byAlert = await api(
        noc,
        "GET",
        `/v1/admin/audit?target=${alerts.body.items[7].id}&path=/v1/admin/alerts`,
      );
      assert.deepEqual(byAlert.body.items.map((i: any) => i.id), [acked.id]);

      // A long value at its input's own bound is kept whole.
      const action = Array.from({ length: 64 }, (_, i) => `/usr/bin/step-${i}-`.padEnd(1024, "x"));
      await api(noc, "PUT", "/v1/admin/apps/vscreen/fileinfo/rules.conf", {
        destination: "etc/vscreen/rules.conf",
        mode: "0640",
        action,
      });
      const [fi] = (await api(noc, "GET", "/v1/admin/audit?path=/v1/admin/apps")).body.items;
      assert.deepEqual(fi.summary.body.action, action);

      // The console's audit page filters by target and lists the whole set.
      const ui = await signIn(noc);
      const page = await (await ui.get(`/ui/audit?target=${sin[3]!.uid.toUpperCase()}`)).text();
      assert.match(page, /\/v1\/admin\/appliances\/bulk/);
      assert.match(page, /\/v1\/admin\/alerts\/ack/);
      assert.doesNotMatch(page, /PATCH/);
      assert.match(page, /25 targets/);
      for (const u of sinUids) assert.ok(page.includes(u), u);
      assert.match(page, new RegExp(`name="target"[^>]*value="${sin[3]!.uid.toUpperCase()}"`));

      // And the CLI.
      const env = { NOC_URL: noc.url, NOC_TOKEN: noc.adminToken };
      const cli = await runCli(["audit", "--target", sin[3]!.uid, "--json"], env);
      assert.equal(cli.code, 0, cli.err);
      assert.deepEqual(
        JSON.parse(cli.out).items.map((i: any) => i.route),
        ["/v1/admin/alerts/ack", "/v1/admin/appliances/bulk"],
      );
      const csv = await runCli(["audit", "--target", sin[3]!.uid, "--csv"], env);
      assert.equal(csv.code, 0, csv.err);
      assert.equal(csv.out.trim().split("\r\n").length, 3, "a header and two records");
      const people = await runCli(["audit", "--target", sin[3]!.uid], env);
      assert.match(
        people.out,
        /POST \/v1\/admin\/appliances\/bulk\t200\tfrom 127\.0\.0\.1\t25 targets/,
      );
    } finally {
      await noc.close();
    }
  },
);
