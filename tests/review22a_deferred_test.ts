/**
 * Review 22a (attacker): an appliance bricked BY the release it just installed counted "pending"
 * for ever. Now a deferral counts only until the window it names opens (`opensAt`); a report
 * without one counts nothing.
 *
 * The agent beats at the start of a cycle with the previous cycle's problems. The cycle that
 * deferred the release (outside the window) is reported by the next beat, and that next cycle —
 * inside the window — installs. If the install kills the box (its install program hangs, breaks
 * the network, reboots into a dead kernel), no outcome and no beat ever reach the NOC: its last
 * report says `install_deferred` for the very version that killed it. deferred_in() trusts that
 * report for ever, without asking whether the window has since opened, so the appliance is
 * `pending`, never `missing`, and the failure threshold never trips. Same for an appliance with no
 * window at all (the NOC never checks a window applies): a lying report dodges the gate.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { deliver, fleet, ref } from "./_rollouts.ts";
import { sampleBeat } from "./_harness.ts";

dbTest(
  "a release that bricks its appliances as their window opens counts them missing",
  async ({ db }) => {
    const { noc, uids } = await fleet(db, 10);
    // The operator puts the site-less fleet's model in a 02:00–04:00 UTC window.
    const w = await noc.admin("PUT", "/v1/admin/install-windows/model/vs-2000", {
      start: "02:00",
      end: "04:00",
      timeZone: "UTC",
      reason: "night",
    });
    assert.ok(w.status < 300, JSON.stringify(w.body));
    // Release 2 with a 20 % failure threshold.
    const a = await noc.admin("POST", "/v1/admin/assignments", {
      kind: "package",
      app: "app",
      name: "pkg",
      version: "2",
      target: { type: "all" },
      failureThresholdPercent: 20,
      minSample: 1,
    });
    assert.ok(a.status < 300, JSON.stringify(a.body));
    const id = a.body.id;
    // Noon: every agent downloads ahead and defers; its next beat (still before the window) says so.
    await deliver(noc, uids, "2");
    const beatAt = noc.clock.now();
    const report = sampleBeat(1, beatAt, {
      components: [ref("1")],
      lastCycle: {
        outcome: "ok",
        problems: [{
          kind: "package",
          app: "app",
          name: "pkg",
          version: "2",
          code: "install_deferred",
          message: "outside its install window 02:00–04:00 UTC (model:vs-2000)",
          opensAt: new Date(Date.UTC(
            beatAt.getUTCFullYear(),
            beatAt.getUTCMonth(),
            beatAt.getUTCDate() + 1,
            2,
          )).toISOString(),
        }],
      },
    });
    await db.sql`update appliances set last_report = ${report}, last_beat_at = ${beatAt},
    next_due_at = ${new Date(beatAt.getTime() + 909_000)} where uid = any(${uids}::uuid[])`;
    // The window opens, every appliance installs 2, and 2 bricks all of them: no beat, no outcome.
    // Three days later they are all missing.
    noc.clock.advance(3 * 86400);
    const s = await noc.admin("POST", "/v1/admin/sweep");
    assert.ok(s.status < 300, JSON.stringify(s.body));
    const [row] = await db.sql<{ n: number }>`
    select count(*)::int as n from appliances where missing_since is not null`;
    assert.equal(row?.n, 10, "all ten are missing");
    const got = await noc.admin("GET", `/v1/admin/assignments/${id}`);
    const p = got.body.progress;
    assert.equal(p.states.missing, 10, `dead appliances counted as: ${JSON.stringify(p.states)}`);
    assert.equal(p.failed, 10);
    assert.equal(got.body.paused, true, "the failure threshold paused the release");
  },
);
