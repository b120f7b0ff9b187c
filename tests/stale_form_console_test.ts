/**
 * Issue 22 item 2, the console's forms without a browser (`app.request()`, PGlite and
 * PostgreSQL): the Releases page renders each change form with the assignment's revision and the
 * originals of its fields; a Save that changes only the percentage sends only `rolloutPercent` to
 * the admin API (never `paused`, nor the gate it left alone), so a gate another operator set
 * meanwhile stays; the same Save sent with the revision it was loaded at is refused when the
 * assignment changed since (the page says so and shows the current state), and nothing changes.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { fleet, ref } from "./_rollouts.ts";
import { signIn } from "./_console.ts";

dbTest(
  "console: a Save sends only what the operator changed, against its revision",
  async ({ db }) => {
    const { noc } = await fleet(db, 4);
    const made = await noc.admin("POST", "/v1/admin/assignments", {
      ...ref("2"),
      target: { type: "site", value: "s0" },
      rolloutPercent: 10,
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = made.body.id;
    const ui = await signIn(noc);

    // The page's forms carry the revision and the originals.
    const page = await (await ui.get("/ui/releases")).text();
    const form = page.slice(page.indexOf(`action="/ui/releases/assignments/${id}"`));
    const hidden = (name: string) =>
      form.match(new RegExp(`name="${name.replace(".", "\\.")}" value="([^"]*)"`))?.[1];
    assert.equal(hidden("revision"), String(made.body.revision));
    assert.equal(hidden("was.rolloutPercent"), "10");
    assert.equal(hidden("was.failureThresholdPercent"), "");
    assert.equal(hidden("was.minSample"), "5");

    // Another operator sets a gate through the API; a form loaded before it (no revision, as a
    // page of the previous release) changes only the percentage: the gate stays.
    await noc.admin("PATCH", `/v1/admin/assignments/${id}`, { failureThresholdPercent: 30 });
    const fields = {
      rolloutPercent: "50",
      "was.rolloutPercent": "10",
      failureThresholdPercent: "",
      "was.failureThresholdPercent": "",
      minSample: "5",
      "was.minSample": "5",
    };
    const saved = await ui.post(`/ui/releases/assignments/${id}`, fields);
    assert.match(saved, /widened: 10 % → 50 %/);
    const log = (noc.deps.log as unknown as { lines: Array<Record<string, unknown>> }).lines;
    const sent = log.filter((l) => l["event"] === "assignment_updated").map((l) => l["changes"]);
    assert.deepEqual(sent.at(-1), { rolloutPercent: 50 }, "only the percentage was sent");
    let now = (await noc.admin("GET", `/v1/admin/assignments/${id}`)).body;
    assert.deepEqual([now.rolloutPercent, now.failureThresholdPercent, now.paused], [
      50,
      30,
      false,
    ]);

    // Loaded at this revision; then paused through the API; then saved: refused, nothing written.
    const loaded = now.revision;
    await noc.admin("PATCH", `/v1/admin/assignments/${id}`, { paused: true });
    const stale = await ui.post(`/ui/releases/assignments/${id}`, {
      ...fields,
      rolloutPercent: "80",
      "was.rolloutPercent": "50",
      revision: String(loaded),
    });
    assert.match(
      stale,
      /^Changed by someone else since you loaded this page \(now: paused at 50 % \(paused by test\); gate: pause at > 30 % failed of ≥ 5 counted\)\. Nothing was saved: here is the current state\.$/,
    );
    now = (await noc.admin("GET", `/v1/admin/assignments/${id}`)).body;
    assert.deepEqual([now.rolloutPercent, now.paused], [50, true]);
    // The pause/resume button posts the revision too: a stale Resume is refused as well.
    const resume = await ui.post(`/ui/releases/assignments/${id}/resume`, {
      revision: String(loaded),
    });
    assert.match(resume, /^Changed by someone else/);
    assert.equal((await noc.admin("GET", `/v1/admin/assignments/${id}`)).body.paused, true);
    // Untouched fields and nothing changed: nothing is sent.
    const none = await ui.post(`/ui/releases/assignments/${id}`, {
      ...fields,
      rolloutPercent: "50",
      "was.rolloutPercent": "50",
      revision: String(now.revision),
    });
    assert.match(none, /nothing changed/);
  },
);

const stale =
  /^Changed by someone else since you loaded this page \(now: .+\)\. Nothing was saved: here is the current state\.$/;

dbTest(
  "console: every versioned form refuses a change made against an old revision",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 4);
    const ui = await signIn(noc);
    const uid = uids[0]!;
    const api = async (method: string, path: string, body?: unknown) => {
      const r = await noc.admin(method, `/v1/admin${path}`, body);
      assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };

    // Appliance placement: stale refused; then, current, only the site changed is sent.
    const a0 = await api("GET", `/appliances/${uid}`);
    await api("PATCH", `/appliances/${uid}`, { channel: "beta" });
    const placement = (revision: number, site: string) => ({
      site,
      "was.site": a0.site ?? "",
      channel: a0.channel,
      "was.channel": a0.channel,
      tags: "",
      "was.tags": "",
      intervalS: String(a0.intervalS),
      "was.intervalS": String(a0.intervalS),
      revision: String(revision),
    });
    const refused = await ui.post(`/ui/appliances/${uid}/edit`, placement(a0.revision, "s9"));
    assert.match(refused, stale);
    assert.match(refused, /channel beta/);
    assert.equal((await api("GET", `/appliances/${uid}`)).site, a0.site);
    const a1 = await api("GET", `/appliances/${uid}`);
    assert.equal(
      await ui.post(`/ui/appliances/${uid}/edit`, placement(a1.revision, "s9")),
      "Saved",
    );
    const a2 = await api("GET", `/appliances/${uid}`);
    assert.deepEqual([a2.site, a2.channel], ["s9", "beta"], "the channel it did not touch stays");

    // A hold's release.
    const hold = await api("POST", "/holds", { uid, reason: "incident" });
    assert.match(
      await ui.post(`/ui/appliances/${uid}/holds/${hold.id}/delete`, { revision: "1" }),
      stale,
    );
    assert.equal((await api("GET", `/holds?uid=${uid}`)).items.length, 1);

    // An operator's role.
    await api("POST", "/operators", { name: "ann", role: "operator" });
    const o0 = await api("GET", "/operators/ann");
    await api("PATCH", "/operators/ann", { role: "viewer" });
    assert.match(
      await ui.post("/ui/operators/ann/role", {
        role: "admin",
        "was.role": "operator",
        revision: String(o0.revision),
      }),
      /now: viewer/,
    );
    assert.equal((await api("GET", "/operators/ann")).role, "viewer");

    // A maintenance window's end.
    const w = await api("POST", "/maintenance", {
      site: "s1",
      endsAt: new Date(noc.clock.now().getTime() + 3600_000).toISOString(),
      reason: "swap",
    });
    await noc.deps.db.sql`update maintenance_windows set reason = 'swap disks' where id = ${w.id}`;
    assert.match(
      await ui.post(`/ui/maintenance/${w.id}/end`, { confirmed: "yes", revision: "1" }),
      stale,
    );
    assert.equal(
      (await api("GET", "/maintenance")).items.find((x: { id: number }) => x.id === w.id).state,
      "active",
    );

    // An enrolment token's revocation.
    const t = await api("POST", "/enrollment-tokens", { label: "x" });
    await noc.deps.db.sql`update enrollment_tokens set label = 'y' where id = ${t.id}`;
    assert.match(
      await ui.post(`/ui/tokens/${t.id}/revoke`, { confirmed: "yes", revision: "1" }),
      stale,
    );
    assert.equal(
      (await api("GET", "/enrollment-tokens")).items.find((x: { id: number }) => x.id === t.id)
        .status,
      "unused",
    );

    // A local server's revocation.
    const ls = crypto.randomUUID();
    await db.sql`
    insert into local_servers (id, site, name, url, sign_key, enrolled_at)
    values (${ls}, 's0', 'ls0', 'https://ls0.test', 'k-ls0', ${noc.clock.now()})`;
    await db.sql`update local_servers set name = 'ls0b' where id = ${ls}`;
    assert.match(
      await ui.post(`/ui/local-servers/${ls}/revoke`, {
        confirmed: "yes",
        reason: "stolen",
        revision: "1",
      }),
      stale,
    );
    assert.equal((await api("GET", `/local-servers/${ls}`)).state !== "revoked", true);

    // A phased rollout's action.
    const r = await api("POST", "/rollouts", {
      component: ref("2"),
      target: { type: "all" },
      phases: [{ count: 2, soakS: 3600 }, { percent: 100, soakS: 0 }],
    });
    await api("POST", `/rollouts/${r.id}/pause`, {});
    assert.match(
      await ui.post(`/ui/rollouts/${r.id}/resume`, { revision: String(r.revision) }),
      /now: paused/,
    );
    assert.equal((await api("GET", `/rollouts/${r.id}`)).state, "paused");

    // A fileinfo's deletion.
    await api("PUT", "/apps/app/fileinfo/rules", { destination: "etc/r", mode: "0644" });
    await api("PUT", "/apps/app/fileinfo/rules", { destination: "etc/r2", mode: "0644" });
    assert.match(
      await ui.post("/ui/apps/app/fileinfo/rules/delete", { confirmed: "yes", revision: "1" }),
      /now: destination etc\/r2/,
    );
    assert.equal((await api("GET", "/apps/app/fileinfo")).items.length, 1);
  },
);
