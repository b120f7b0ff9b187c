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
