import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { buildExample } from "../examples/protocol_example.ts";
import { buildPackageExample } from "../examples/package_example.ts";
import {
  decryptChunks,
  importContentKey,
  parsePackagePrefix,
  unwrapContentKey,
  verifyPackagePrefix,
} from "../protocol/package/format.ts";
import { fromBase64, fromBase64Url, toHex } from "../protocol/util/encoding.ts";
import { collectBytes } from "../protocol/util/bytes.ts";

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

Deno.test("docs/protocol.md's package example is exact, and its wrapped key opens to a key that decrypts it", async () => {
  const ex = await buildPackageExample();
  for (const [what, value] of Object.entries(ex)) {
    if (what === "freshWrap" || what === "payload") continue;
    assert.ok(
      doc.includes(String(value)),
      `docs/protocol.md does not show the package example's ${what}`,
    );
  }
  const section = doc.slice(doc.indexOf("### Worked example: a package"));
  const wrapped = /the catalog's `wrappedKey`\s+was:\s+```text\n([A-Za-z0-9_-]+)\n```/.exec(section)
    ?.[1];
  assert.ok(wrapped, "the documented wrappedKey");
  const pkg = fromBase64(
    /whole package file[^`]*`[0-9a-f]{64}`:\s+```text\n([A-Za-z0-9+/=]+)\n```/.exec(section)![1]!,
  );
  const prefix = parsePackagePrefix(pkg);
  await verifyPackagePrefix(prefix, [{
    kid: prefix.header.kid,
    alg: "ed25519",
    use: ["package"],
    publicKey: ex.nocPublicKey,
    notAfter: null,
  }], new Date("2026-11-24T12:00:00Z"));
  const key = await unwrapContentKey(wrapped, fromBase64Url(ex.appliancePrivate), prefix.header);
  assert.equal(toHex(key), ex.contentKey);
  const plain = await collectBytes(
    decryptChunks(
      ReadableStream.from([pkg.slice(prefix.ciphertextOffset)]),
      await importContentKey(key),
      1024,
    ),
  );
  assert.equal(new TextDecoder().decode(plain), ex.payload);
});
