/**
 * Review 21, fault injector's brief: `noc-agent once` beside the running service.
 *
 * docs/agent.md tells the operator to run `noc-agent once` rather than wait for the next cycle,
 * and `cycle.lock` exists "so `once` and `run` never overlap": both are meant to share one state
 * folder on one device. Each agent process draws its own `instanceId` (agent/beat.ts), and the
 * state folder's `seq` goes on rising across them. The service's next scheduled beat is then "the
 * instance before the current one coming back within two intervals" — the `alternating` rule — and
 * one healthy appliance is reported as two devices sharing an identity.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";

// Found by review 21, now fixed.
dbTest(
  "one cycle run by hand beside the service raises no cloned_identity notice",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance({ hostname: "mx-ops-01" });
    const service = crypto.randomUUID(); // `noc-agent run`, started at boot
    const byHand = crypto.randomUUID(); // `noc-agent once`, run by an operator
    await a.beat({ seq: 10, instanceId: service });
    noc.clock.advance(909);
    await a.beat({ seq: 11, instanceId: service });
    noc.clock.advance(120);
    // The operator forces a cycle (docs/agent.md: "noc-agent once  # or wait for the next cycle").
    await a.beat({ seq: 12, instanceId: byHand });
    noc.clock.advance(789);
    // The service's next scheduled cycle: same device, same state folder, seq still rising.
    await a.beat({ seq: 13, instanceId: service });
    noc.clock.advance(909);
    await a.beat({ seq: 14, instanceId: service });

    const sent = await noc.deps.db.sql<{ text: string }>`
      select text from notices where kind = 'cloned_identity'`;
    const got = await noc.admin("GET", `/v1/admin/appliances/${a.uid}`);
    assert.equal(
      sent.length,
      0,
      `a single device paged as two: ${sent[0]?.text ?? ""} (identityConflict: ${
        JSON.stringify(got.body.identityConflict)
      })`,
    );
  },
);
