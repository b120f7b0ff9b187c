/**
 * Key-list statements and the NOC's key chain (issue 16, item 6), the catalog
 * binding's checks (item 7) and timers that cannot overflow (item 8).
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import {
  keyId,
  KeyStatementError,
  newSeed,
  type PublishedKey,
  signKeyStatement,
  verifyKeyStatement,
  walkKeyChain,
} from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { KeyChainError, recordKeyChain } from "../noc/services/key_chain.ts";
import { rotationStatement } from "../cli/keygen.ts";
import { CatalogError, signCatalogBinding, verifyCatalogBinding } from "../protocol/catalog.ts";
import { sha256, toHex } from "../protocol/util/encoding.ts";
import { MAX_TIMER_MS, sleep, timerMs } from "../protocol/util/timer.ts";
import { packageKeys } from "../agent/install_package.ts";
import { ed25519KeyObject, importEd25519Seed } from "../protocol/crypto/ed25519.ts";
import { fromBase64Url } from "../protocol/util/encoding.ts";

const later = new Date(Date.now() + 86400_000);

async function pinnedOf(seed: string): Promise<PublishedKey[]> {
  return (await nocKeysFromSeed(seed)).published;
}

Deno.test("walkKeyChain() walks two rotations in one go from the key pinned before both", async () => {
  const [s0, s1, s2] = [newSeed(), newSeed(), newSeed()];
  const chain = [
    await rotationStatement(s1, s2, later),
    await rotationStatement(s0, s1, later),
  ];
  const pinned = await pinnedOf(s0);
  const { keys, walked } = await walkKeyChain(pinned, chain);
  const [k1, k2] = [(await pinnedOf(s1))[0]!.kid, (await pinnedOf(s2))[0]!.kid];
  assert.deepEqual(walked, [k1, k2]);
  assert.equal(keys[0]!.kid, k2);
  assert.equal(keys[0]!.notAfter, null);
});

Deno.test("walkKeyChain() ignores a statement signed by a retired key, by a stranger, or by one key only", async () => {
  const [s0, s1, evil] = [newSeed(), newSeed(), newSeed()];
  // The agent already moved to key 1; a stolen key 0 signs a rotation to the attacker's key.
  const pinned = (await walkKeyChain(await pinnedOf(s0), [await rotationStatement(s0, s1, later)]))
    .keys;
  const fromRetired = await rotationStatement(s0, evil, later);
  assert.deepEqual((await walkKeyChain(pinned, [fromRetired])).walked, []);
  // Signed by the attacker's key alone, naming key 1 as the one it replaces.
  const forged = await rotationStatement(s1, evil, later);
  forged.signatures = forged.signatures.filter((s) => s.kid !== pinned[0]!.kid);
  assert.deepEqual((await walkKeyChain(pinned, [forged])).walked, []);
  await assert.rejects(
    verifyKeyStatement(forged, pinned[0]!),
    (e) => e instanceof KeyStatementError && e.reason === "malformed_statement",
  );
  // Signed by key 1 but not by the new key (no proof anyone holds it).
  const unproven = await rotationStatement(s1, evil, later);
  unproven.signatures = [unproven.signatures[0]!, unproven.signatures[0]!];
  await assert.rejects(
    verifyKeyStatement(unproven, pinned[0]!),
    (e) => e instanceof KeyStatementError && e.reason === "bad_statement_signature",
  );
});

Deno.test("verifyKeyStatement() refuses a key id that is not its public key's", async () => {
  const [s0, s1] = [newSeed(), newSeed()];
  const prev = (await pinnedOf(s0))[0]!;
  const next = (await pinnedOf(s1))[0]!;
  const signer = async (seed: string) => ({
    kid: await keyId(fromBase64Url((await pinnedOf(seed))[0]!.publicKey)),
    privateKey: ed25519KeyObject(await importEd25519Seed(fromBase64Url(seed))),
  });
  const env = await signKeyStatement({
    format: "noc-keys/1",
    previous: prev.kid,
    issuedAt: new Date().toISOString(),
    keys: [
      { ...next, kid: "0123456789abcdef" },
      { ...prev, notAfter: later.toISOString() },
    ],
  }, [await signer(s0), await signer(s1)]);
  await assert.rejects(verifyKeyStatement(env, prev), /another key's public half/);
});

dbTest(
  "the NOC refuses to start with a new signing key and no statement, with a wrong statement, or with a replaced key",
  async ({ db }) => {
    const [s0, s1, s2] = [newSeed(), newSeed(), newSeed()];
    const k0 = await recordKeyChain(db, await nocKeysFromSeed(s0), null);
    assert.deepEqual(k0.chain, []);
    await assert.rejects(
      recordKeyChain(db, await nocKeysFromSeed(s1), null),
      (e) => e instanceof KeyChainError && /NOC_KEY_STATEMENT_FILE/.test(e.message),
    );
    // A statement from another key (s2 → s1) does not continue the chain.
    await assert.rejects(
      recordKeyChain(db, await nocKeysFromSeed(s1), await rotationStatement(s2, s1, later)),
      (e) => e instanceof KeyChainError && /refused/.test(e.message),
    );
    // A statement for another new key.
    await assert.rejects(
      recordKeyChain(db, await nocKeysFromSeed(s1), await rotationStatement(s0, s2, later)),
      (e) => e instanceof KeyChainError && /makes key/.test(e.message),
    );
    const k1 = await recordKeyChain(
      db,
      await nocKeysFromSeed(s1),
      JSON.parse(JSON.stringify(await rotationStatement(s0, s1, later))),
    );
    assert.equal(k1.chain.length, 1);
    assert.deepEqual(k1.published.map((k) => [k.kid, k.notAfter]), [
      [k1.kid, null],
      [k0.kid, later.toISOString()],
    ]);
    // Later starts need no statement; going back is refused.
    assert.equal((await recordKeyChain(db, await nocKeysFromSeed(s1), null)).chain.length, 1);
    await assert.rejects(
      recordKeyChain(db, await nocKeysFromSeed(s0), null),
      (e) => e instanceof KeyChainError && /already replaced/.test(e.message),
    );
  },
);

dbTest(
  "every catalog answer, 200 and 304, carries a binding over the request's nonce and the body's digest",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const pinned = a.enrollment.nocKeys;
    const ask = async (etag?: string) => {
      const nonce = crypto.randomUUID();
      const req = await a.request("GET", "/v1/catalog", undefined, { nonce });
      const h = new Headers(req.headers);
      if (etag) h.set("if-none-match", etag);
      const res = await noc.app.request(
        new Request(req.url.replace("http://", "https://"), { headers: h }),
      );
      return { res, nonce, body: await res.text() };
    };
    const first = await ask();
    assert.equal(first.res.status, 200);
    const etag = first.res.headers.get("etag")!;
    assert.equal(etag, `"${toHex(await sha256(first.body))}"`, "the ETag is the body's SHA-256");
    const opts = { pinned, uid: a.uid, now: noc.clock.now() };
    await verifyCatalogBinding(first.res.headers.get("catalog-binding"), {
      ...opts,
      nonce: first.nonce,
      body: first.body,
    });
    const second = await ask(etag);
    assert.equal(second.res.status, 304);
    const binding = second.res.headers.get("catalog-binding");
    await verifyCatalogBinding(binding, { ...opts, nonce: second.nonce, body: first.body });
    // The 304's binding is for its own nonce and that body only.
    for (
      const [nonce, body, reason] of [
        [first.nonce, first.body, "bad_binding"],
        [second.nonce, first.body + " ", "bad_binding"],
      ] as const
    ) {
      await assert.rejects(
        verifyCatalogBinding(binding, { ...opts, nonce, body }),
        (e) => e instanceof CatalogError && e.reason === reason,
      );
    }
    await assert.rejects(
      verifyCatalogBinding(binding, {
        ...opts,
        uid: crypto.randomUUID(),
        nonce: second.nonce,
        body: first.body,
      }),
      (e) => e instanceof CatalogError && e.reason === "bad_binding",
    );
    // Signed by a key the appliance does not pin.
    const other = await nocKeysFromSeed(newSeed());
    const foreign = await signCatalogBinding(
      { kid: other.kid, privateKey: other.privateKey },
      a.uid,
      second.nonce,
      toHex(await sha256(first.body)),
    );
    await assert.rejects(
      verifyCatalogBinding(foreign, { ...opts, nonce: second.nonce, body: first.body }),
      (e) => e instanceof CatalogError && e.reason === "unknown_key",
    );
    for (const bad of [null, "kid=1", 'kid="x", sig=:AAAA:']) {
      await assert.rejects(
        verifyCatalogBinding(bad, { ...opts, nonce: second.nonce, body: first.body }),
        (e) => e instanceof CatalogError && e.reason === "unbound",
      );
    }
  },
);

Deno.test("packageKeys() lifts a retired NOC key's end date only for the signer the catalog names; release keys keep theirs", () => {
  const past = "2020-01-01T00:00:00.000Z";
  const noc: PublishedKey = {
    kid: "aaaaaaaaaaaaaaaa",
    alg: "ed25519",
    use: ["catalog", "package"],
    publicKey: "A".repeat(43),
    notAfter: past,
  };
  const release: PublishedKey = { ...noc, kid: "bbbbbbbbbbbbbbbb", use: ["package"] };
  const keys = packageKeys([noc, release], { signer: noc.kid });
  assert.equal(keys.find((k) => k.kid === noc.kid)!.notAfter, null);
  assert.equal(keys.find((k) => k.kid === release.kid)!.notAfter, past);
  assert.equal(packageKeys([noc], { signer: release.kid })[0]!.notAfter, past);
  assert.equal(packageKeys([release], { signer: release.kid })[0]!.notAfter, past);
});

Deno.test("timerMs() keeps every delay within what setTimeout honours; sleep() over 2^31 ms does not fire at once", async () => {
  assert.equal(timerMs(2 ** 31), MAX_TIMER_MS);
  assert.equal(timerMs(30 * 86400_000), MAX_TIMER_MS, "30 days is past 2^31 ms");
  assert.equal(timerMs(Number.NaN), MAX_TIMER_MS);
  assert.equal(timerMs(Infinity), MAX_TIMER_MS);
  assert.equal(timerMs(-5), 0);
  // A plain setTimeout of this length would fire on the next turn; sleep() must still be waiting
  // after several turns, and end when aborted.
  const stop = new AbortController();
  let ended = false;
  const slept = sleep(30 * 86400_000, stop.signal).then(() => ended = true);
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  assert.equal(ended, false);
  stop.abort();
  await slept;
  assert.equal(ended, true);
});
