/**
 * Issue 20 in the console (`/ui/rollouts`), through `app.request()`: the list (state filter,
 * pages by cursor), the create form (its defaults; a started rollout shown with its first phase; a
 * refusal shown as the form's error with every value kept), a rollout's page (phases, the gate
 * figures of a real daemon pass against control with "not judged yet", each phase's appliances
 * linked to their pages, the timeline with notes), each action Post/Redirect/Get with advance and
 * cancel asked first, and a viewer who sees it all without the controls and whose posts are
 * refused for their role. PGlite, and PostgreSQL with TEST_DATABASE_URL.
 */
import assert from "node:assert/strict";
import { dbTest, sampleBeat, type TestNoc } from "./_harness.ts";
import { type ConsoleSession, signIn } from "./_console.ts";
import { fleet as seeded, ref } from "./_rollouts.ts";
import { rolloutPass } from "../noc/jobs/rollout_daemon.ts";
import type { Db } from "../noc/db/db.ts";

const base = "http://noc.test";

/** 40 appliances (sites s0 and s1), app/pkg 1 and 2 published, 1 assigned to all. */
const fleet = async (db: Db): Promise<TestNoc> =>
  (await seeded(db, 40, [], { components: [ref("1"), ref("2")] })).noc;

/** A form post's answer: status, where it redirects, and the message it carries. */
async function send(
  noc: TestNoc,
  s: ConsoleSession,
  path: string,
  fields: Record<string, string>,
): Promise<{ status: number; location: string; flash: string; error: string; text: string }> {
  const res = await noc.app.request(`${base}${path}`, {
    method: "POST",
    headers: { cookie: s.session, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ ...fields, _csrf: s.csrf }),
  });
  const text = await res.text();
  const location = res.headers.get("location") ?? "";
  const q = new URL(location || "/", base).searchParams;
  return {
    status: res.status,
    location,
    flash: q.get("flash") ?? "",
    error: q.get("error") ?? "",
    text,
  };
}

/** The page at `path` (a redirect's location included), asserting 200. */
async function page(s: ConsoleSession, path: string): Promise<string> {
  const res = await s.get(path);
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${res.status} ${text.slice(0, 300)}`);
  return text;
}

/** The create form's fields: app/pkg 2 to all in three phases (4 appliances, 50 %, 100 %). */
const createFields: Record<string, string> = {
  _form: "rollout",
  component: "package/app/pkg/2",
  target: "all",
  "p0.size": "4",
  "p0.unit": "count",
  "p0.soakH": "1",
  "p0.soakM": "30",
  "p0.healthy": "90",
  "p0.failed": "25",
  "p0.sample": "3",
  "p0.auto": "yes",
  "p0.metric": "app.mailsScanned",
  "p0.drop": "30",
  "p0.minApp": "3",
  "p0.minBeats": "2",
  "p0.unhealthy": "10",
  "p1.size": "50",
  "p1.unit": "percent",
  "p1.soakH": "4",
  "p1.soakM": "0",
  "p2.size": "100",
  "p2.unit": "percent",
  "p2.auto": "no",
  rollback: "yes",
  note: "canary first",
};

dbTest(
  "rollouts in the console: list, create with defaults, refusal keeps the form, the page, every action PRG",
  async ({ db }) => {
    const noc = await fleet(db);
    const s = await signIn(noc);

    // The navigation leads to the list; nothing yet; a link to start one.
    const empty = await page(s, "/ui/rollouts");
    assert.match(empty, /<a href="\/ui\/rollouts" aria-current="page">Rollouts<\/a>/);
    assert.match(empty, /No phased rollout yet/);
    assert.match(empty, /href="\/ui\/rollouts\/new"/);

    // The form: published versions, known targets with counts, 1/10/50/100 % pre-filled.
    const form = await page(s, "/ui/rollouts/new?component=package/app/pkg/2");
    assert.match(form, /<option value="package\/app\/pkg\/2" selected="">app\/pkg@2 \(package\)/);
    assert.match(form, /All appliances \(40 appliances\)/);
    assert.match(form, /site s0 \(20 appliances\)/);
    for (const [i, size] of ["1", "10", "50", "100"].entries()) {
      assert.match(form, new RegExp(`name="p${i}\\.size" type="number"[^>]* value="${size}"`));
    }
    assert.match(form, /name="p4\.size" type="number"[^>]* value=""/);
    assert.match(form, /name="rollback" value="yes" checked=""/);

    // A refusal (phases that shrink) comes back as the form's error with every value kept.
    const shrinking = await send(noc, s, "/ui/rollouts", {
      ...createFields,
      "p1.size": "100",
      "p2.size": "50",
      note: "kept note",
    });
    assert.equal(shrinking.status, 303);
    assert.match(shrinking.location, /^\/ui\/rollouts\/new\?/);
    assert.match(shrinking.error, /phase 3 is smaller than phase 2/);
    const refilled = await page(s, shrinking.location);
    assert.match(refilled, /<p class="flash error" role="alert">[^<]*phase 3 is smaller/);
    assert.match(refilled, /name="p0\.size" type="number"[^>]* value="4"/);
    assert.match(refilled, /<option value="count" selected="">appliances<\/option>/);
    assert.match(refilled, /name="p0\.soakM" type="number"[^>]* value="30"/);
    assert.match(refilled, /name="p0\.metric"[^>]* value="app\.mailsScanned"/);
    assert.match(refilled, /<details class="gates" open="">/);
    assert.match(refilled, /name="p2\.size" type="number"[^>]* value="50"/);
    // A row left empty stays empty (no default comes back in its place).
    assert.match(refilled, /name="p3\.size" type="number"[^>]* value=""/);
    assert.match(refilled, /name="note"[^>]* value="kept note"/);
    assert.equal((await noc.admin("GET", "/v1/admin/rollouts")).body.items.length, 0);

    // Started: redirected to its page, which says what phase 1 took.
    const created = await send(noc, s, "/ui/rollouts", createFields);
    assert.equal(created.status, 303, created.text);
    assert.match(created.location, /^\/ui\/rollouts\/1\?/);
    assert.equal(
      created.flash,
      "Rollout 1 of package app/pkg@2 to all appliances started: phase 1 of 3 (4 appliances) " +
        "has 4 of 40 appliances",
    );
    const api = (await noc.admin("GET", "/v1/admin/rollouts/1")).body;
    assert.equal(api.phases[0].plan.soakS, 5400);
    assert.deepEqual(api.phases[0].plan.gates, {
      pluginHealth: { maxUnhealthyPercent: 10 },
      metric: { path: "app.mailsScanned", maxDropPercent: 30, minAppliances: 3, minBeats: 2 },
    });
    assert.equal(api.phases[2].plan.auto, false);
    assert.equal(api.rollback, true);

    // A second one of the same component is refused by the API: the form keeps its values.
    const twice = await send(noc, s, "/ui/rollouts", createFields);
    assert.match(twice.error, /Rollout 1 of package app\/pkg is running: cancel it/);
    assert.match(await page(s, twice.location), /name="p0\.size" type="number"[^>]* value="4"/);

    // Its page: phases, no evaluation yet, phase 1's appliances linked, the timeline.
    let detail = await page(s, created.location);
    assert.match(detail, /role="status">Rollout 1 of package app\/pkg@2/);
    assert.match(detail, /<table id="phases">/);
    assert.match(detail, /Not evaluated yet in this phase/);
    const members = [...detail.matchAll(/<a href="\/ui\/appliances\/([0-9a-f-]{36})">/g)];
    assert.equal(members.length, 4);
    assert.match(detail, /<tr data-event="created">[\s\S]*?canary first/);
    assert.match(detail, /Pause<\/button>/);

    // A real daemon pass: the gate figures against control, the metric not judged yet.
    await rolloutPass(noc.deps);
    detail = await page(s, "/ui/rollouts/1");
    assert.match(detail, /<table id="gate-figures">/);
    assert.match(detail, /<tr data-gate="metric">/);
    assert.match(
      detail,
      /not judged yet: 0 of 4 appliances have enough beats \(2 each; 3 needed\), control 0 of/,
    );
    assert.match(detail, /<tr data-gate="pluginHealth">/);

    // Pause with a note: PRG back to the page, the note in the timeline.
    const paused = await send(noc, s, "/ui/rollouts/1/pause", { note: "looks odd" });
    assert.equal(paused.status, 303);
    assert.match(paused.location, /^\/ui\/rollouts\/1\?/);
    assert.match(paused.flash, /Rollout 1 paused/);
    detail = await page(s, paused.location);
    assert.match(detail, /<tr data-event="paused">[\s\S]*?looks odd/);
    assert.match(detail, /Resume<\/button>/);
    assert.doesNotMatch(detail, /Advance now…<\/button>/);
    // Pausing again is refused by the API: the error, the note kept.
    const again = await send(noc, s, "/ui/rollouts/1/pause", { note: "again" });
    assert.match(again.error, /is paused: only a running rollout can be paused/);
    assert.match(await page(s, again.location), /name="note"[^>]* value="again"/);

    const resumed = await send(noc, s, "/ui/rollouts/1/resume", {});
    assert.match(resumed.flash, /Rollout 1 resumed at phase 1 of 3/);

    // Advance now asks first, then does it.
    const ask = await send(noc, s, "/ui/rollouts/1/advance", { note: "by hand" });
    assert.equal(ask.status, 200);
    assert.match(ask.text, /Advance rollout 1 \(package app\/pkg@2\) to phase 2 of 3 \(50 %/);
    assert.match(ask.text, /name="confirmed" value="yes"/);
    assert.match(ask.text, /name="note" value="by hand"/);
    assert.equal((await noc.admin("GET", "/v1/admin/rollouts/1")).body.phase, 0);
    const advanced = await send(noc, s, "/ui/rollouts/1/advance", {
      note: "by hand",
      confirmed: "yes",
    });
    assert.match(
      advanced.flash,
      /advanced to phase 2 of 3 \(50 %\): 16 more appliances, 20 in all/,
    );
    detail = await page(s, "/ui/rollouts/1?phase=1&state=not_sent");
    assert.match(detail, /<h2 id="appliances">Appliances of phase 2<\/h2>/);
    assert.equal([...detail.matchAll(/<a href="\/ui\/appliances\//g)].length, 16);
    const advancedRow = /<tr data-event="advanced">[\s\S]*?<\/tr>/.exec(detail)?.[0] ?? "";
    assert.match(advancedRow, /by hand/);
    assert.match(advancedRow, /from: phase 1\b/);
    assert.match(advancedRow, /to: phase 2\b/);
    // Appliances page by page (100 a page): a page after the last UID.
    const last = [...detail.matchAll(/data-uid="([0-9a-f-]{36})"/g)].map((m) => m[1]!).sort()[7]!;
    const after = await page(s, `/ui/rollouts/1?phase=1&state=not_sent&after=${last}`);
    assert.equal([...after.matchAll(/<a href="\/ui\/appliances\//g)].length, 8);
    assert.match(after, />First page of appliances</);
    // A link asking for an unknown state is refused, not passed on.
    const bad = await s.get("/ui/rollouts/1?state=bogus");
    assert.equal(bad.status, 303);
    await bad.body?.cancel();

    // Cancel asks first, then does it; an ended rollout offers no action.
    const askCancel = await send(noc, s, "/ui/rollouts/1/cancel", {});
    assert.equal(askCancel.status, 200);
    assert.match(askCancel.text, /Cancel rollout 1 .*It cannot be resumed/);
    const cancelled = await send(noc, s, "/ui/rollouts/1/cancel", { confirmed: "yes" });
    assert.match(cancelled.flash, /Rollout 1 cancelled/);
    detail = await page(s, "/ui/rollouts/1");
    assert.match(detail, /It has ended: nothing more can be done/);
    assert.doesNotMatch(detail, /id="actions"/);

    // The list: state filter, newest first, pages by cursor.
    await send(noc, s, "/ui/rollouts", { ...createFields, target: "site:s0" });
    const all = await page(s, "/ui/rollouts");
    assert.deepEqual([...all.matchAll(/<tr data-rollout="(\d+)">/g)].map((m) => m[1]), ["2", "1"]);
    assert.match(all, /site s0/);
    assert.match(all, /phase 2 of 3/);
    const cancelledOnly = await page(s, "/ui/rollouts?state=cancelled");
    assert.deepEqual(
      [...cancelledOnly.matchAll(/<tr data-rollout="(\d+)">/g)].map((m) => m[1]),
      ["1"],
    );
    const older = await page(s, "/ui/rollouts?cursor=2");
    assert.deepEqual([...older.matchAll(/<tr data-rollout="(\d+)">/g)].map((m) => m[1]), ["1"]);
    assert.match(older, /href="\/ui\/rollouts">First page/);
    const unknown = await s.get("/ui/rollouts?state=bogus");
    assert.equal(unknown.status, 303);
    await unknown.body?.cancel();

    // The Releases page lists the active rollout and offers "Roll out in phases…".
    const releases = await page(s, "/ui/releases");
    assert.match(releases, /<table id="active-rollouts">[\s\S]*?Rollout 2/);
    assert.match(releases, /Roll out in phases…/);
  },
);

dbTest(
  "a viewer sees rollouts without their controls, and the console refuses a viewer's rollout forms",
  async ({ db }) => {
    const noc = await fleet(db);
    const made = await noc.admin("POST", "/v1/admin/operators", { name: "vera", role: "viewer" });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const issued = await noc.admin("POST", "/v1/admin/operators/vera/tokens", { label: "t" });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const created = await noc.admin("POST", "/v1/admin/rollouts", {
      component: ref("2"),
      target: { type: "all" },
      phases: [{ count: 4, soakS: 3600 }, { percent: 100, soakS: 0 }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const viewer = await signIn({ ...noc, adminToken: issued.body.token });

    const list = await page(viewer, "/ui/rollouts");
    assert.match(list, /<tr data-rollout="1">/);
    assert.doesNotMatch(list, /href="\/ui\/rollouts\/new"/);
    const detail = await page(viewer, "/ui/rollouts/1");
    assert.match(detail, /<table id="phases">/);
    assert.equal([...detail.matchAll(/<a href="\/ui\/appliances\//g)].length, 4);
    for (const control of ["Pause</button>", "Advance now", "Cancel rollout", 'id="actions"']) {
      assert.ok(!detail.includes(control), `a viewer is not offered ${control}`);
    }
    assert.match(await page(viewer, "/ui/rollouts/new"), /needs the operator role/);
    assert.doesNotMatch(await page(viewer, "/ui/releases"), /Roll out in phases…/);

    for (const action of ["pause", "resume", "advance", "cancel"]) {
      const r = await send(noc, viewer, `/ui/rollouts/1/${action}`, { confirmed: "yes" });
      assert.equal(r.status, 403, action);
      assert.match(r.text, /needs the operator role; vera has the viewer role/);
    }
    const post = await send(noc, viewer, "/ui/rollouts", createFields);
    assert.equal(post.status, 403);
    const after = (await noc.admin("GET", "/v1/admin/rollouts/1")).body;
    assert.equal(after.state, "running");
    assert.equal(after.events.length, 2);
    assert.equal((await noc.admin("GET", "/v1/admin/rollouts")).body.items.length, 1);
  },
);

/** `uids` beat now, running app/pkg `version`, healthy, having scanned `mails`. */
async function beat(noc: TestNoc, uids: readonly string[], version: string, mails: number) {
  const now = noc.clock.now();
  const report = sampleBeat(1, now, {
    components: [ref(version)],
    apps: { app: { mails, healthy: true } },
  });
  await noc.deps.db.sql`
    update appliances set last_report = ${report}, last_beat_at = ${now}
    where uid = any(${[...uids]}::uuid[])`;
}

dbTest(
  "a canary failing its metric gate: the figures against control and the timeline link to its appliances",
  async ({ db }) => {
    const noc = await fleet(db);
    const created = await noc.admin("POST", "/v1/admin/rollouts", {
      component: ref("2"),
      target: { type: "all" },
      phases: [
        {
          count: 5,
          soakS: 3600,
          gates: {
            metric: { path: "app.mails", maxDropPercent: 30, minAppliances: 3, minBeats: 2 },
          },
        },
        { percent: 100, soakS: 0 },
      ],
      rollback: true,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const canaries = (await noc.admin("GET", "/v1/admin/rollouts/1/appliances?phase=0")).body
      .items.map((m: { uid: string }) => m.uid) as string[];
    const others = (await db.sql<{ uid: string }>`select uid from appliances`).map((r) => r.uid)
      .filter((u) => !canaries.includes(u));
    const s = await signIn(noc);

    // One beat each: judged from 2, so not judged yet, and the page says how far it is.
    noc.clock.advance(900);
    await beat(noc, canaries, "2", 40);
    await beat(noc, others, "1", 100);
    assert.deepEqual((await rolloutPass(noc.deps)).failed, []);
    let detail = await page(s, "/ui/rollouts/1");
    assert.match(
      detail,
      /not judged yet: 0 of 5 appliances have enough beats \(2 each; 3 needed\)/,
    );

    // The second beat: 60 % below control, the canary fails and rolls back.
    noc.clock.advance(900);
    await beat(noc, canaries, "2", 40);
    await beat(noc, others, "1", 100);
    assert.deepEqual((await rolloutPass(noc.deps)).failed, [1]);
    detail = await page(s, "/ui/rollouts/1");
    assert.match(detail, /<span class="state failed">failed<\/span>/);
    assert.match(detail, /<td data-phase-value="true">40<\/td>/);
    assert.match(detail, /<td data-control-value="true">100<\/td>/);
    assert.match(detail, /<td data-ratio="true">0\.4 \(-60 %\)<\/td>/);
    assert.match(
      detail,
      /<tr data-gate="metric">[\s\S]*?<span class="state missing">fails<\/span>/,
    );
    assert.match(detail, /5 appliances vs control \d+ \(≥ 2 beats each\)/);
    assert.match(detail, /phase 1 of 2 failed on metric/);
    assert.match(detail, /It failed on metric\./);
    // The failure and the rollback link to the phase's appliances; an ended rollout has no action.
    assert.match(
      detail,
      /<tr data-event="failed">[\s\S]*?href="\/ui\/rollouts\/1\?phase=0&amp;state=failed,reverted,other,missing#appliances">failed appliances of phase 1/,
    );
    assert.match(
      detail,
      /<tr data-event="rolled_back">[\s\S]*?href="\/ui\/rollouts\/1\?phase=0#appliances">appliances of phase 1/,
    );
    assert.doesNotMatch(detail, /id="actions"/);
    const members = await page(s, "/ui/rollouts/1?phase=0");
    for (const uid of canaries) assert.ok(members.includes(`href="/ui/appliances/${uid}"`), uid);
  },
);

/** `uids` beat now, running app/pkg `version`, their plug-in `healthy` or not. */
async function beatHealth(
  noc: TestNoc,
  uids: readonly string[],
  version: string,
  healthy: boolean,
) {
  const now = noc.clock.now();
  const report = sampleBeat(1, now, {
    components: [ref(version)],
    apps: { app: { mails: 10, healthy } },
  });
  await noc.deps.db.sql`
    update appliances set last_report = ${report}, last_beat_at = ${now}
    where uid = any(${[...uids]}::uuid[])`;
}

dbTest(
  "a rollout's assignment on the Releases page is the rollout's, in any state; soak and advance times exact; refusals said once",
  async ({ db }) => {
    const noc = await fleet(db);
    const s = await signIn(noc);

    // "Roll out in phases…" beside an assignment pre-fills its release and its target.
    let releases = await page(s, "/ui/releases");
    const link = /href="(\/ui\/rollouts\/new\?component=[^"]*)"[^>]*>Roll out in phases…/
      .exec(releases)?.[1]?.replaceAll("&amp;", "&");
    assert.equal(link, "/ui/rollouts/new?component=package%2Fapp%2Fpkg%2F1&target=all");
    const prefilled = await page(s, link!);
    assert.match(prefilled, /<option value="package\/app\/pkg\/1" selected="">/);
    assert.match(prefilled, /<option value="all" selected="">/);

    // A refusal naming a field is said once, not again as its issue.
    const shrinking = await send(noc, s, "/ui/rollouts", {
      ...createFields,
      "p0.size": "50",
      "p0.unit": "percent",
      "p1.size": "10",
    });
    assert.equal(
      shrinking.error,
      'Field "phase 2 percent": phase 2 is smaller than phase 1 (10 % < 50 %)',
    );

    // A canary of 1 appliance soaking 90 s, gated on plug-in health.
    const created = await noc.admin("POST", "/v1/admin/rollouts", {
      component: ref("2"),
      target: { type: "all" },
      phases: [
        {
          count: 1,
          soakS: 90,
          stop: { maxFailedPercent: 20, minSample: 1 },
          gates: { pluginHealth: { maxUnhealthyPercent: 10 } },
        },
        { percent: 100, soakS: 0 },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const canary = (await noc.admin("GET", "/v1/admin/rollouts/1/appliances?phase=0")).body
      .items.map((m: { uid: string }) => m.uid) as string[];
    let detail = await page(s, "/ui/rollouts/1");
    assert.match(detail, /<td>1 min 30 s<\/td>/);

    // Its assignment on the Releases page: the rollout's state and phase, no control of its own.
    releases = await page(s, "/ui/releases");
    const row = (html: string, id: number) =>
      new RegExp(`<tr data-assignment="${id}"[\\s\\S]*?</tr>`).exec(html)?.[0] ?? "";
    const assignmentId = created.body.assignmentId as number;
    let managed = row(releases, assignmentId);
    assert.match(managed, /data-managed-by="1"/);
    assert.match(
      managed,
      /<td data-rollout="true"><a href="\/ui\/rollouts\/1">phased rollout 1<\/a> \(running\) · phase 1 of 2/,
    );
    assert.match(managed, /<td data-target-size="40">40 appliances: phase 1 of 2<\/td>/);
    assert.doesNotMatch(managed, / % of /);
    for (const control of ["Delete", "Resume rollout", "Pause rollout", 'name="rolloutPercent"']) {
      assert.ok(!managed.includes(control), `no ${control} for a rollout's assignment`);
    }
    // The other assignment keeps its controls.
    assert.match(row(releases, 1), /Delete<\/button>/);
    // Its Delete confirmation (a stale page's post) names the rollout, not the phase's percentage,
    // and says the deletion is refused while the rollout runs: no Confirm to press.
    const asked = await send(noc, s, `/ui/releases/assignments/${assignmentId}/delete`, {});
    assert.equal(asked.status, 200, asked.text.slice(0, 300));
    assert.match(
      asked.text,
      /managed by\s*<a href="\/ui\/rollouts\/1">phased rollout 1<\/a> \(running\)/,
    );
    assert.match(asked.text, /Deleting it is refused while the rollout runs/);
    assert.doesNotMatch(asked.text, / % of |Delete assignment<\/button>|name="confirmed"/);
    assert.equal((await noc.admin("GET", `/v1/admin/assignments/${assignmentId}`)).status, 200);

    // Healthy through the soak: it advances by itself at a time shown to the second.
    noc.clock.advance(37);
    await beatHealth(noc, canary, "2", true);
    await rolloutPass(noc.deps);
    const held = (await noc.admin("GET", "/v1/admin/rollouts/1")).body;
    assert.ok(held.evaluation?.advanceAt, JSON.stringify(held.evaluation));
    detail = await page(s, "/ui/rollouts/1");
    assert.match(
      detail,
      new RegExp(
        `advances by itself at <time datetime="${held.evaluation.advanceAt}"[^>]*>${
          held.evaluation.advanceAt.slice(0, 19).replace("T", " ")
        }</time>`,
      ),
    );
    assert.doesNotMatch(detail, /advances only by hand/);

    // Unhealthy: the gate fails it. An ended rollout waits for nothing; "1 appliance".
    noc.clock.advance(30);
    await beatHealth(noc, canary, "2", false);
    assert.deepEqual((await rolloutPass(noc.deps)).failed, [1]);
    detail = await page(s, "/ui/rollouts/1");
    assert.match(detail, /It failed on pluginHealth\./);
    assert.doesNotMatch(detail, /<ul class="waiting">/);
    assert.doesNotMatch(detail, /pluginHealth fails/);
    assert.match(detail, /1 of 1 reporting appliance unhealthy/);
    assert.doesNotMatch(detail, /\b1 (reporting )?appliances\b/);
    assert.match(detail, /control sample \d+ appliances\./);

    // Ended: its assignment is folded away, named with the rollout's state, no gate's words.
    releases = await page(s, "/ui/releases");
    const folded = /<details class="ended-rollouts">[\s\S]*?<\/details>/.exec(releases)?.[0] ?? "";
    assert.match(folded, /show ended rollouts&#39; assignments \(1\)/);
    managed = row(folded, assignmentId);
    assert.match(managed, /phased rollout 1<\/a> \(failed\) · phase 1 of 2/);
    assert.doesNotMatch(managed, /paused by the gate/);
    assert.doesNotMatch(managed, /Delete|Resume rollout|name="rolloutPercent"/);
    assert.equal(
      row(/<table id="assignments">[\s\S]*?<\/table>/.exec(releases)![0], assignmentId),
      "",
    );
  },
);

dbTest("a held phase that advances only by hand says so on its rollout page", async ({ db }) => {
  const noc = await fleet(db);
  const s = await signIn(noc);
  const created = await noc.admin("POST", "/v1/admin/rollouts", {
    component: ref("2"),
    target: { type: "all" },
    phases: [
      { count: 1, soakS: 0, auto: false, stop: { maxFailedPercent: 20, minSample: 1 } },
      { percent: 100, soakS: 0 },
    ],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const canary = (await noc.admin("GET", "/v1/admin/rollouts/1/appliances?phase=0")).body
    .items.map((m: { uid: string }) => m.uid) as string[];
  noc.clock.advance(60);
  await beatHealth(noc, canary, "2", true);
  await rolloutPass(noc.deps);
  const held = (await noc.admin("GET", "/v1/admin/rollouts/1")).body;
  assert.equal(held.evaluation?.judgement?.holds, true, JSON.stringify(held.evaluation));
  assert.equal(held.evaluation.advanceAt, null);
  const detail = await page(s, "/ui/rollouts/1");
  assert.match(detail, /The advance condition holds since[\s\S]*?this phase advances only by hand/);
  assert.doesNotMatch(detail, /advances by itself/);
});
