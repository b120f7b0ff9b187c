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
import { catalogBindingBytes, signCatalogBinding } from "../protocol/catalog.ts";
import {
  ed25519PublicOf,
  ed25519Verify,
  exportRawPublic,
  importEd25519Public,
  importEd25519Seed,
} from "../protocol/crypto/ed25519.ts";
import { keyId, verifyKeyStatement, walkKeyChain } from "../protocol/keys.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { rotationStatement } from "../cli/keygen.ts";

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
    // The example is signed for @authority noc.example.net: this NOC's public host.
    const noc = await testNoc(db, { settings: { publicHosts: ["noc.example.net"] } });
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

/** The documented example NOC key (public: never use it): its seed, key id and public key. */
const exampleNocSeed = "n0c-example-signing-seed-000000000000000000";

async function exampleKey(seed: string) {
  const privateKey = await importEd25519Seed(fromBase64Url(seed));
  const raw = new Uint8Array(await exportRawPublic(await ed25519PublicOf(privateKey)));
  return { kid: await keyId(raw), publicKey: toBase64Url(raw), privateKey };
}

Deno.test("docs/protocol.md's Catalog-Binding example is what signCatalogBinding() makes from its seed", async () => {
  const key = await exampleKey(exampleNocSeed);
  const uid = "5f0c2a64-9a3e-4c1b-8d27-0b6f3e1d9a42";
  const nonce = "bN3l1oQzq2dG7sYxWc0vJA";
  const digest = "5f9d9d963b5990a07808a2aecaff4e290764d9ce1dfd2a7f7d5164ec51fdfc30";
  const section = doc.slice(doc.indexOf("### Bound to the request"));
  for (const value of [exampleNocSeed, key.kid, key.publicKey, uid, nonce, digest]) {
    assert.ok(section.includes(value), `the binding example does not show ${value}`);
  }
  const bytes = catalogBindingBytes(uid, nonce, digest);
  assert.ok(
    section.includes("```text\n" + new TextDecoder().decode(bytes) + "\n```"),
    "the binding example's signed bytes",
  );
  const header = await signCatalogBinding(key, uid, nonce, digest);
  assert.ok(section.includes("Catalog-Binding: " + header + "\n"), `the header ${header}`);
  // And the documented header verifies under the documented public key, for those bytes only.
  const documented = /Catalog-Binding: kid="([0-9a-f]{16})", sig=:([A-Za-z0-9+/=]+):/.exec(section);
  assert.ok(documented, "the documented header");
  assert.equal(documented[1], key.kid);
  const pub = await importEd25519Public(fromBase64Url(key.publicKey));
  assert.ok(await ed25519Verify(pub, fromBase64(documented[2]!), bytes));
  assert.ok(
    !await ed25519Verify(
      pub,
      fromBase64(documented[2]!),
      catalogBindingBytes(uid, "other-nonce-0000", digest),
    ),
    "a binding made for one nonce does not verify for another",
  );
});

Deno.test("docs/protocol.md's key-list statement example is what keygen statement makes, and it walks", async () => {
  const from = await exampleKey(exampleNocSeed);
  const toSeed = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";
  const to = await exampleKey(toSeed);
  const envelope = await rotationStatement(
    exampleNocSeed,
    toSeed,
    new Date("2027-01-08T00:00:00.000Z"),
    new Date("2027-01-01T00:00:00.000Z"),
  );
  const section = doc.slice(doc.indexOf("## Keys: `GET /v1/keys`"));
  assert.ok(section.includes(toSeed), "the example names the new seed");
  assert.ok(
    section.includes("```json\n" + JSON.stringify(envelope, null, 2) + "\n```"),
    "docs/protocol.md shows the statement keygen makes",
  );
  const statement = await verifyKeyStatement(envelope, from);
  assert.equal(statement.keys[0]!.kid, to.kid);
  const pinned = [{
    ...from,
    alg: "ed25519" as const,
    use: ["catalog" as const, "package" as const],
    notAfter: null,
  }]
    .map(({ privateKey: _, ...k }) => k);
  const walked = await walkKeyChain(pinned, [envelope]);
  assert.deepEqual(walked.walked, [to.kid]);
});
