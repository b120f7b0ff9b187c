/**
 * The incident pages over real HTTP with a viewer's session: the fleet's site panel and the
 * alerts and maintenance pages are readable, without the controls a viewer cannot use, and a
 * viewer's acknowledgement or maintenance window posted anyway is refused for their role before
 * its form is read (nothing written).
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { serveNoc } from "./_agent.ts";
import { signIn } from "./_console.ts";
import { enrolSites, outage } from "./_incident_fleet.ts";

dbTest(
  "a viewer reads the incident pages without their controls and cannot act",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const fleet = await enrolSites(noc, ["sin-pop", "lab"], 3);
      await outage(noc, fleet, fleet["sin-pop"]!);
      const admin = await signIn(noc);
      await admin.post("/ui/operators", {
        name: "vic",
        role: "viewer",
        password: "viewer password",
      });
      const login = await fetch(`${noc.url}/ui/login`);
      const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
      const loginCsrf = (await login.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
      const signed = await fetch(`${noc.url}/ui/login`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: loginCsrf, name: "vic", password: "viewer password" }),
      });
      await signed.body?.cancel();
      const session = signed.headers.getSetCookie().find((h) => h.startsWith("noc_session="))!
        .split(";")[0]!;
      const get = async (path: string) => {
        const res = await fetch(`${noc.url}${path}`, { headers: { cookie: session } });
        assert.equal(res.status, 200, path);
        return await res.text();
      };
      const fleetPage = await get("/ui");
      assert.match(fleetPage, /sin-pop<\/b>: 3 of 3 missing since/);
      assert.doesNotMatch(fleetPage, /maintenance…/, "no maintenance link for a viewer");
      const alerts = await get("/ui/alerts?site=sin-pop");
      assert.equal((alerts.match(/data-alert="/g) ?? []).length, 3);
      assert.doesNotMatch(alerts, /name="one"|name="id"|Run the status daemon now/);
      const maintenance = await get("/ui/maintenance");
      assert.match(maintenance, /<form[^>]*id="new-window"[^>]*hidden/);
      const csrf = fleetPage.match(/name="_csrf" value="([^"]+)"/)![1]!;
      const post = async (path: string, fields: Record<string, string>) => {
        const res = await fetch(`${noc.url}${path}`, {
          method: "POST",
          redirect: "manual",
          headers: { cookie: session, "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ ...fields, _csrf: csrf }),
        });
        assert.equal(res.status, 403, path);
        return await res.text();
      };
      const ack = await post("/ui/alerts/ack", {
        back: "/ui/alerts?site=sin-pop",
        scope: "filter",
        note: "viewer",
      });
      assert.match(ack, /needs the operator role; vic has the viewer role/);
      const win = await post("/ui/maintenance", { site: "sin-pop", duration: "60", reason: "x" });
      assert.match(win, /needs the operator role/);
      const [n] = await db.sql<{ acked: number; windows: number }>`
      select (select count(*) from alerts where acknowledged_at is not null)::int as acked,
        (select count(*) from maintenance_windows)::int as windows`;
      assert.deepEqual({ ...n }, { acked: 0, windows: 0 });
    } finally {
      await noc.close();
    }
  },
);
