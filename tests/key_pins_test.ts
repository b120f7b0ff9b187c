/**
 * What an appliance pins can only shrink, but for what its pins already authorise: a catalog's key
 * list or a key-chain statement adds no use to a key, moves no end date later, changes no NOC key
 * (catalog lists) and takes no appliance out of release-keys-only mode. Unit-level reproductions
 * of the attacks on protocol/release_keys.ts and protocol/keys.ts (issue 16, key review F1–F3).
 */
import assert from "node:assert/strict";
import {
  type KeyStatement,
  type KeyStatementEnvelope,
  newSeed,
  type PublishedKey,
  signKeyStatement,
  walkKeyChain,
} from "../protocol/keys.ts";
import { type NocKeys, nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import {
  adoptablePackageKeys,
  endorseKey,
  type Endorsement,
  MAX_PINNED_KEYS,
  rotatedPackageKeys,
} from "../protocol/release_keys.ts";
import {
  CatalogError,
  signCatalog,
  signCatalogBinding,
  verifyCatalog,
  verifyCatalogBinding,
} from "../protocol/catalog.ts";
import { sha256, toHex } from "../protocol/util/encoding.ts";
import { loadIdentity } from "../agent/state.ts";

const now = new Date();
const iso = (ms: number) => new Date(now.getTime() + ms).toISOString();
const day = 86400_000;

const show = (keys: readonly PublishedKey[], names: Record<string, string>) =>
  keys.map((k) => `${names[k.kid] ?? k.kid}:${k.use.join("+")}:${k.notAfter ?? "none"}`);

async function world() {
  const A = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true }); // the NOC key
  const X = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true }); // a thief's key
  const root = await nocKeysFromSeed(newSeed()); // an offline release key
  const R2 = await nocKeysFromSeed(newSeed()); // a release key root endorsed, since retired
  const rootRec: PublishedKey = { ...root.published[0]!, use: ["package"] };
  const endR2 = await endorseKey(R2.published[0]!.publicKey, null, root);
  const r2Retired: PublishedKey = { ...R2.published[0]!, use: ["package"], notAfter: iso(-day) };
  const names = { [A.kid]: "A", [X.kid]: "X", [root.kid]: "root", [R2.kid]: "R2" };
  return { A, X, root, R2, rootRec, endR2, r2Retired, names };
}

Deno.test("adoptablePackageKeys() adds no catalog use: a release key re-listed as a NOC key stays a release key, and the NOC key gets no package use after", async () => {
  const { A, root, rootRec, names } = await world();
  const pinned = [A.published[0]!, rootRec];
  // Step 1: the NOC key's list re-lists the release key with "catalog" use added.
  const one = await adoptablePackageKeys(
    pinned,
    [
      A.published[0]!,
      { ...rootRec, use: ["catalog", "package"] },
    ],
    now,
    true,
  );
  assert.deepEqual(one.refused, [root.kid]);
  assert.deepEqual(show(one.keys, names), ["A:catalog:none", "root:package:none"]);
  // Step 2, as if step 1 had got through: the mode is pinned, so the NOC key listing itself with
  // package use, or a key of its own, gets none.
  const forged = [A.published[0]!, { ...rootRec, use: ["catalog", "package"] }] as PublishedKey[];
  const two = await adoptablePackageKeys(
    forged,
    [
      { ...A.published[0]!, use: ["catalog", "package"] },
      { ...rootRec, use: ["catalog", "package"] },
    ],
    now,
    true,
  );
  assert.ok(two.refused.includes(A.kid));
  assert.deepEqual(show(two.keys, names).slice(0, 1), ["A:catalog:none"]);
  // Leaving the mode needs a release key's endorsement of the NOC key itself.
  const endorsed = await adoptablePackageKeys(
    pinned,
    [
      {
        ...A.published[0]!,
        use: ["catalog", "package"],
        endorsement: await endorseKey(A.published[0]!.publicKey, null, root),
      },
      rootRec,
    ],
    now,
    true,
  );
  assert.deepEqual(show(endorsed.keys, names), ["A:catalog+package:none", "root:package:none"]);
});

Deno.test("adoptablePackageKeys() changes no NOC key: a catalog list cannot drop the current key, add a catalog key, or move a retired key's end date", async () => {
  const { A, X, names } = await world();
  const B = await nocKeysFromSeed(newSeed());
  names[B.kid] = "B";
  const aRetired: PublishedKey = {
    ...A.published[0]!,
    use: ["catalog", "package"],
    notAfter: iso(7 * day),
  };
  const pinned = [B.published[0]!, aRetired];
  // The retired key's list: only the thief's key, current.
  const hijack = await adoptablePackageKeys(pinned, [{
    ...X.published[0]!,
    use: ["catalog", "package"],
  }], now);
  assert.ok(hijack.refused.includes(X.kid));
  assert.deepEqual(show(hijack.keys, names), [
    "B:catalog+package:none",
    `A:catalog+package:${now.toISOString()}`, // left out: retired now, not forgotten
    "X:package:none", // normal mode: a package key, never a NOC key
  ]);
  // The retired key extends its own end date; the current key is given one.
  const extend = await adoptablePackageKeys(pinned, [
    { ...B.published[0]!, notAfter: iso(day) },
    { ...aRetired, notAfter: null },
  ], now);
  assert.deepEqual(extend.refused.toSorted(), [A.kid, B.kid].toSorted());
  assert.deepEqual(show(extend.keys, names), [
    "B:catalog+package:none",
    `A:catalog+package:${aRetired.notAfter}`,
  ]);
});

Deno.test("adoptablePackageKeys() keeps the earliest end date it has seen: a retired release key does not come back, with its old endorsement or after being left out", async () => {
  const { A, rootRec, R2, endR2, r2Retired, names } = await world();
  const pinned = [A.published[0]!, rootRec, r2Retired];
  const back = await adoptablePackageKeys(
    pinned,
    [
      A.published[0]!,
      rootRec,
      { ...R2.published[0]!, use: ["package"], notAfter: null, endorsement: endR2 },
    ],
    now,
    true,
  );
  assert.deepEqual(back.refused, [R2.kid]);
  assert.equal(back.keys.find((k) => k.kid === R2.kid)!.notAfter, r2Retired.notAfter);
  // Left out of one list (retired now, kept), then listed again with its endorsement.
  const live: PublishedKey = { ...R2.published[0]!, use: ["package"], notAfter: null };
  const dropped = await adoptablePackageKeys(
    [A.published[0]!, rootRec, live],
    [
      A.published[0]!,
      rootRec,
    ],
    now,
    true,
  );
  assert.deepEqual(show(dropped.keys, names)[2], `R2:package:${now.toISOString()}`);
  const again = await adoptablePackageKeys(
    dropped.keys,
    [
      A.published[0]!,
      rootRec,
      { ...live, endorsement: endR2 },
    ],
    new Date(now.getTime() + 1000),
    true,
  );
  assert.equal(again.keys.find((k) => k.kid === R2.kid)!.notAfter, now.toISOString());
});

Deno.test("adoptablePackageKeys() at its bound refuses a new key and forgets none, not even the longest-expired", async () => {
  const { A, root } = await world();
  const pinned: PublishedKey[] = [A.published[0]!, { ...root.published[0]!, use: ["package"] }];
  while (pinned.length < MAX_PINNED_KEYS) {
    const k = await nocKeysFromSeed(newSeed());
    pinned.push({ ...k.published[0]!, use: ["package"], notAfter: iso(-pinned.length * day) });
  }
  const fresh = await nocKeysFromSeed(newSeed());
  const rec: PublishedKey = { ...fresh.published[0]!, use: ["package"] };
  const { keys, refused, full } = await adoptablePackageKeys(
    pinned,
    [...pinned, { ...rec, endorsement: await endorseKey(rec.publicKey, null, root) }],
    now,
    true,
  );
  assert.equal(full, true);
  assert.deepEqual(refused, [fresh.kid]);
  assert.deepEqual(keys, pinned, "every pinned key kept as it was, the new one refused");
  // Below the bound the same endorsed key is taken.
  const room = await adoptablePackageKeys(
    pinned.slice(0, -1),
    [...pinned.slice(0, -1), { ...rec, endorsement: await endorseKey(rec.publicKey, null, root) }],
    now,
    true,
  );
  assert.equal(room.full, false);
  assert.equal(room.keys.at(-1)!.kid, fresh.kid);
});

/** Keys a thief holding `from` chains to, each statement giving the key it replaces a far end date. */
async function fillerChain(from: NocKeys, n: number) {
  const chain: KeyStatementEnvelope[] = [];
  let prev = from;
  for (let i = 0; i < n; i++) {
    const next = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
    chain.push(
      await signKeyStatement({
        format: "noc-keys/1",
        previous: prev.kid,
        issuedAt: now.toISOString(),
        keys: [next.published[0]!, { ...prev.published[0]!, notAfter: "2099-01-01T00:00:00.000Z" }],
      }, [prev, next]),
    );
    prev = next;
  }
  return { chain, last: prev };
}

/** One agent cycle's key handling, as agent/cycle.ts does it: the chain, then the catalog's list. */
async function cycle(
  pinned: PublishedKey[],
  chain: readonly KeyStatementEnvelope[],
  list: (pins: PublishedKey[]) => Array<PublishedKey & { endorsement?: Endorsement }>,
): Promise<PublishedKey[]> {
  const walked = await walkKeyChain(pinned, chain, { releaseKeysOnly: true });
  const rotated = rotatedPackageKeys(pinned, walked.keys, true);
  const adopted = await adoptablePackageKeys(rotated.keys, list(rotated.keys), now, true);
  assert.ok(adopted.keys.length <= Math.max(pinned.length, MAX_PINNED_KEYS));
  return adopted.keys;
}

Deno.test("release-keys-only: a stolen NOC key cannot bring a retired release key back by filling the pins past their bound", async () => {
  const { A, root, rootRec, R2, endR2, r2Retired } = await world();
  let pinned: PublishedKey[] = [A.published[0]!, rootRec, r2Retired];
  // Cycle 1: 64 links; cycle 2: 62 more (129 keys with the three pinned), its catalog listing
  // every pin as it is — the old bound then forgot R2, the longest-expired, and its retirement.
  const one = await fillerChain(A, 64);
  pinned = await cycle(pinned, one.chain, (p) => p.map((k) => ({ ...k })));
  const two = await fillerChain(one.last, 62);
  pinned = await cycle(pinned, two.chain, (p) => p.map((k) => ({ ...k })));
  assert.equal(pinned.length, MAX_PINNED_KEYS);
  assert.equal(pinned.find((k) => k.kid === R2.kid)?.notAfter, r2Retired.notAfter);
  // Cycle 3: the thief's catalog re-lists R2 with no end date and its original endorsement.
  const current = pinned.find((k) => k.use.includes("catalog") && k.notAfter === null)!;
  const back = await adoptablePackageKeys(
    pinned,
    [
      current,
      rootRec,
      { ...R2.published[0]!, use: ["package"], notAfter: null, endorsement: endR2 },
    ],
    now,
    true,
  );
  assert.ok(back.refused.includes(R2.kid));
  const r2 = back.keys.find((k) => k.kid === R2.kid)!;
  assert.equal(r2.notAfter, r2Retired.notAfter, "R2 stays retired");
  assert.ok(
    !back.keys.some((k) => k.use.includes("package") && k.notAfter === null && k.kid !== root.kid),
  );
});

Deno.test("walkKeyChain() and adoptablePackageKeys() at the bound forget no valid key: a stolen NOC key's long chain leaves the release key and the first NOC key pinned", async () => {
  const { A, rootRec, r2Retired, root } = await world();
  let pinned: PublishedKey[] = [A.published[0]!, rootRec, r2Retired];
  let from: NocKeys = A;
  let chain: KeyStatementEnvelope[] = [];
  for (let i = 0; i < 2; i++) {
    const c = await fillerChain(from, 64);
    chain = c.chain;
    pinned = await cycle(pinned, chain, (p) => p.map((k) => ({ ...k })));
    from = c.last;
  }
  assert.equal(pinned.length, MAX_PINNED_KEYS);
  assert.equal(pinned.find((k) => k.kid === root.kid)?.notAfter, null, "release key still valid");
  assert.ok(pinned.some((k) => k.kid === A.kid), "the first NOC key kept");
  // The chain stopped at the bound, three links short, and says so: no link beyond it is pinned.
  assert.ok(!pinned.some((k) => k.kid === from.kid));
  const walked = await walkKeyChain(pinned, chain, { releaseKeysOnly: true });
  assert.deepEqual(walked.walked, []);
  assert.equal(walked.full, true);
  assert.deepEqual(walked.keys, pinned);
});

Deno.test("rotatedPackageKeys() refuses a walk that would pin more than the bound whole, keeping the pins as they were", async () => {
  const { A, rootRec } = await world();
  const before: PublishedKey[] = [A.published[0]!, rootRec];
  while (before.length < MAX_PINNED_KEYS) {
    const k = await nocKeysFromSeed(newSeed());
    before.push({ ...k.published[0]!, use: ["catalog"], notAfter: iso(day) });
  }
  const X = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
  const walked = [X.published[0]!, { ...A.published[0]!, notAfter: iso(day) }, ...before.slice(1)];
  const r = rotatedPackageKeys(before, walked, true);
  assert.equal(r.full, true);
  assert.deepEqual(r.refused, [X.kid]);
  assert.deepEqual(r.keys, before, "the current key is not retired for a successor not pinned");
  // One below the bound, the same walk is taken.
  const ok = rotatedPackageKeys(before.slice(0, -1), walked.slice(0, -1), true);
  assert.equal(ok.full, false);
  assert.equal(ok.keys[0]!.kid, X.kid);
});

Deno.test("loadIdentity() reads an identity written before the bound held, with more pins than it and no mode, and the agent adds none", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { root } = await world();
    const noc = await nocKeysFromSeed(newSeed()); // normal mode: its key signs packages
    const pins: PublishedKey[] = [noc.published[0]!];
    while (pins.length < MAX_PINNED_KEYS + 3) {
      const k = await nocKeysFromSeed(newSeed());
      pins.push({ ...k.published[0]!, use: ["catalog"], notAfter: iso(day) });
    }
    await Deno.writeTextFile(
      `${dir}/identity.json`,
      JSON.stringify({
        format: "noc-agent-identity/1",
        noc: "https://noc.example",
        uid: crypto.randomUUID(),
        signingSeed: "x",
        signingPublic: "x",
        encryptionPrivate: "x",
        encryptionPublic: "x",
        pinnedKeys: pins,
        enrolledAt: now.toISOString(),
      }),
    );
    const identity = await loadIdentity(dir);
    assert.equal(identity?.pinnedKeys.length, MAX_PINNED_KEYS + 3);
    const rec: PublishedKey = { ...root.published[0]!, use: ["package"] };
    const r = await adoptablePackageKeys(identity!.pinnedKeys, [...pins, rec], now);
    assert.equal(r.full, true);
    assert.deepEqual(r.keys, pins);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("walkKeyChain() and rotatedPackageKeys() add no use and move no end date: a statement by a stolen NOC key cannot make a release key a NOC key or bring a retired one back", async () => {
  const { A, X, rootRec, r2Retired, root, R2, names } = await world();
  const pinned: PublishedKey[] = [A.published[0]!, rootRec, r2Retired];
  const statement: KeyStatement = {
    format: "noc-keys/1",
    previous: A.kid,
    issuedAt: now.toISOString(),
    keys: [
      { ...X.published[0]!, use: ["catalog", "package"] },
      { ...A.published[0]!, notAfter: "2099-01-01T00:00:00.000Z" },
      { ...rootRec, use: ["catalog", "package"], notAfter: "2099-01-01T00:00:00.000Z" },
      { ...r2Retired, notAfter: "2099-01-01T00:00:00.000Z" },
    ],
  };
  const env = await signKeyStatement(statement, [A, X]);
  const walked = await walkKeyChain(pinned, [env], { releaseKeysOnly: true });
  assert.deepEqual(walked.walked, [X.kid]);
  // A stolen current key can still name a successor (documented), but with no package use, and
  // the release keys keep their uses and end dates (the one without an end date takes 2099).
  assert.deepEqual(show(walked.keys, names), [
    "X:catalog:none",
    "A:catalog:2099-01-01T00:00:00.000Z",
    "root:package:2099-01-01T00:00:00.000Z",
    `R2:package:${r2Retired.notAfter}`,
  ]);
  // The same check after the walk, against a walk that took the statement as it is.
  const raw = [
    ...statement.keys,
  ];
  const checked = rotatedPackageKeys(pinned, raw, true);
  assert.deepEqual(checked.refused.toSorted(), [X.kid, root.kid, R2.kid].toSorted());
  assert.deepEqual(show(checked.keys, names), [
    "X:catalog:none",
    "A:catalog:2099-01-01T00:00:00.000Z",
    "root:package:2099-01-01T00:00:00.000Z",
    `R2:package:${r2Retired.notAfter}`,
  ]);
  // A statement whose new key is one already pinned (a retired key brought back) is not applied.
  const back = await signKeyStatement({
    format: "noc-keys/1",
    previous: X.kid,
    issuedAt: now.toISOString(),
    keys: [{ ...r2Retired, use: ["catalog"], notAfter: null }, {
      ...X.published[0]!,
      notAfter: iso(day),
    }],
  }, [X, R2]);
  assert.deepEqual((await walkKeyChain(walked.keys, [back], { releaseKeysOnly: true })).walked, []);
});

Deno.test("verifyCatalog() and verifyCatalogBinding() take only the pinned current NOC key, not a retired one inside its end date", async () => {
  const A = await nocKeysFromSeed(newSeed());
  const B = await nocKeysFromSeed(newSeed());
  const uid = crypto.randomUUID();
  const pinned: PublishedKey[] = [B.published[0]!, { ...A.published[0]!, notAfter: iso(7 * day) }];
  const doc = {
    format: "noc-catalog/1" as const,
    uid,
    serial: 5,
    issuedAt: now.toISOString(),
    expiresAt: iso(day),
    intervalS: 909,
    keys: [],
    components: [],
  };
  const options = { pinned, uid, lastSerial: 0, now };
  const byA = JSON.stringify(await signCatalog(doc, A));
  await assert.rejects(
    () => verifyCatalog(byA, options),
    (e: unknown) =>
      e instanceof CatalogError && e.reason === "unknown_key" && /retired/.test(e.message),
  );
  const digest = toHex(await sha256(byA));
  await assert.rejects(
    async () =>
      verifyCatalogBinding(await signCatalogBinding(A, uid, "n0nce", digest), {
        ...options,
        nonce: "n0nce",
        body: byA,
      }),
    (e: unknown) => e instanceof CatalogError && e.reason === "unknown_key",
  );
  // The current key's are taken.
  const byB = JSON.stringify(await signCatalog(doc, B));
  assert.equal((await verifyCatalog(byB, options)).serial, 5);
  await verifyCatalogBinding(
    await signCatalogBinding(B, uid, "n0nce", toHex(await sha256(byB))),
    { ...options, nonce: "n0nce", body: byB },
  );
});
