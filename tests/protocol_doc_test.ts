import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { buildExample } from "../examples/protocol_example.ts";

const doc = await Deno.readTextFile(new URL("../docs/protocol.md", import.meta.url));

Deno.test("docs/protocol.md shows the worked example's values exactly", async () => {
  const ex = await buildExample();
  for (
    const [what, value] of <Array<[string, string]>> [
      ["seed", ex.seed],
      ["public key", ex.signingKey],
      ["body", "```text\n" + ex.body + "\n```"],
      ["digest", `Content-Digest: ${ex.contentDigest}`],
      ["signature base", "```\n" + ex.base + "\n```"],
      ["signature input", `Signature-Input: ${ex.signatureInput}`],
      ["signature", `Signature: ${ex.signature}`],
    ]
  ) {
    assert.ok(
      doc.includes(value),
      `docs/protocol.md does not show the example's ${what}: ${value}`,
    );
  }
});

dbTest(
  "the NOC accepts the documented signed beat and answers the documented reply",
  async ({ db }) => {
    const ex = await buildExample();
    const noc = await testNoc(db);
    noc.clock.set(new Date(ex.created * 1000));
    const now = noc.clock.now();
    await db.sql`
    insert into appliances (uid, model, hostname, sign_key, enc_key, interval_s, enrolled_at, next_due_at)
    values (${ex.uid}, 'vs-2000', 'mail-gw-1', ${ex.signingKey}, ${ex.signingKey}, 909, ${now}, ${now})`;
    const res = await noc.app.request(ex.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "content-digest": ex.contentDigest,
        "signature-input": ex.signatureInput,
        "signature": ex.signature,
      },
      body: ex.body,
    });
    const reply = await res.text();
    assert.equal(res.status, 200, reply);
    assert.ok(
      doc.includes("```text\n" + reply + "\n```"),
      `docs/protocol.md does not show the reply ${reply}`,
    );
  },
);
