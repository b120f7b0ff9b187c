/**
 * Review 21, attacker's brief: the beat's `sentAt` (the appliance's own clock, bound to nothing but
 * the body) decides whether a beat is "the newest report" (noc/services/checkins.ts, `p.newest`),
 * and only the newest one renames the appliance, moves its instance on, replaces its last report
 * (the reasons the NOC shows) and is judged for a copied identity.
 *
 * - One beat dated far in the future (a key holder, or a box whose RTC said 2099 for one beat)
 *   freezes all of that for good: every later, honest beat is "delayed behind a newer one".
 * - A stock clone whose clock is a couple of minutes behind the original's (well inside the
 *   ±300 s signature window) beating shortly after it is never judged: seq 2,2,3,3,4,4 raises no
 *   notice, and its reports are silently dropped from the appliance's page.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";

async function notices(noc: TestNoc, kind: string) {
  return await noc.deps.db.sql<{ uid: string }>`
    select uid from notices where kind = ${kind} order by id`;
}

// Found by review 21, now fixed.
dbTest(
  "a beat dated in 2099 does not freeze the appliance's name, reasons and clone check",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-frozen-01" });
    const one = crypto.randomUUID(), two = crypto.randomUUID();
    await a.beat({ instanceId: one });
    noc.clock.advance(900);
    // One beat whose body says 2099 (its signature is of now, so it is accepted as it stands).
    let refused = false;
    try {
      await a.beat({ instanceId: one, sentAt: "2099-01-01T00:00:00.000Z" });
    } catch {
      refused = true; // A 400 naming sentAt would be a fine answer too.
    }
    noc.clock.advance(900);
    // Honest beats from now on: a rename, and a reason the operator must see.
    await a.beat({
      instanceId: one,
      hostname: "mx-renamed-01",
      lastCycle: {
        outcome: "failed",
        problems: [{ code: "state_unwritable", message: "Cannot write /var/lib/noc-agent" }],
      },
    });
    const got = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(got.status, 200);
    assert.equal(
      got.body.hostname,
      "mx-renamed-01",
      `the name it reports now is shown (future beat refused: ${refused})`,
    );
    assert.equal(
      got.body.lastReport?.lastCycle?.outcome,
      "failed",
      "the last report shown is the latest one, with its reason",
    );
    // And a copy beating with the same seqs is still caught.
    noc.clock.advance(900);
    for (let i = 0; i < 3; i++) {
      const seq = 100 + i;
      await a.beat({ seq, instanceId: one });
      noc.clock.advance(7);
      await a.beat({ seq, instanceId: two });
      noc.clock.advance(900);
    }
    assert.equal((await notices(noc, "cloned_identity")).length, 1, "the clone is noticed");
  },
);

// Found by review 21, now fixed.
dbTest(
  "a copy whose clock is 2 minutes behind, beating a minute after the original, is noticed",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-gold-02" });
    const one = crypto.randomUUID(), two = crypto.randomUUID();
    await a.beat({ seq: 1, instanceId: one });
    noc.clock.advance(30);
    // Both go on from the copied state folder's seq; the copy's clock is 120 s slow, which the
    // ±300 s signature window accepts.
    for (const seq of [2, 3, 4]) {
      await a.beat({ seq, instanceId: one });
      noc.clock.advance(60);
      const slow = new Date(noc.clock.now().getTime() - 120_000).toISOString();
      await a.beat({ seq, instanceId: two, sentAt: slow, hostname: "mx-copy-02" });
      noc.clock.advance(849);
    }
    const got = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(
      (await notices(noc, "cloned_identity")).length,
      1,
      `two devices beating seq 2,2,3,3,4,4 raise one notice (identityConflict: ${
        JSON.stringify(got.body.identityConflict)
      }, hostname shown: ${got.body.hostname})`,
    );
  },
);
