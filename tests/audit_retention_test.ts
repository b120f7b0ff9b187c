/** The audit log is bounded: a write deletes records past the retention, in the same statement. */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { auditRetentionDays, listAudit, writeAudit } from "../noc/services/audit.ts";

dbTest(
  "each audit write prunes records older than the retention, 100 at a time",
  async ({ db }) => {
    const now = new Date("2026-11-30T12:00:00Z");
    const entry = (at: Date, actor: string) => ({
      at,
      actor,
      role: "admin" as const,
      via: "api" as const,
      method: "POST",
      route: "/v1/admin/sweep",
      path: "/v1/admin/sweep",
      targets: {},
      status: 200,
      error: null,
      summary: null,
      address: "192.0.2.1",
      userAgent: null,
    });
    const old = new Date(now.getTime() - (auditRetentionDays + 1) * 86_400_000);
    const kept = new Date(now.getTime() - (auditRetentionDays - 1) * 86_400_000);
    for (let i = 0; i < 150; i++) await writeAudit(db, entry(old, "old"));
    await writeAudit(db, entry(kept, "kept"));
    // Each of those writes pruned what was older than its own `at` less the retention: nothing.
    const count = async (actor: string) =>
      (await listAudit(db, { actor, limit: 1000 })).items.length;
    assert.equal(await count("old"), 150);
    await writeAudit(db, entry(now, "new"));
    assert.equal(await count("old"), 50, "100 pruned by one write");
    await writeAudit(db, entry(now, "new"));
    assert.equal(await count("old"), 0);
    assert.equal(await count("kept"), 1, "a record within the retention stays");
    assert.equal(await count("new"), 2);
  },
);
