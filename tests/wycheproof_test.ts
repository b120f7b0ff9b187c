// deno-lint-ignore-file no-explicit-any
/**
 * Every case of the three Wycheproof files (C2SP/wycheproof, copied into
 * tests/vectors/wycheproof/) run through the project's own crypto functions,
 * valid and invalid alike; each result must match the vector's verdict.
 * "acceptable" cases (X25519 low-order and twist inputs) may go either way,
 * and the project's stricter choice is checked where it has one.
 */
import assert from "node:assert/strict";
import { ed25519Verify, importEd25519Public, parsePublicKey } from "../protocol/crypto/ed25519.ts";
import { aesGcmOpen, aesGcmSeal } from "../protocol/crypto/aead.ts";
import { x25519 } from "../protocol/crypto/x25519.ts";
import { fromHex, toBase64Url, toHex } from "../protocol/util/encoding.ts";

const dir = new URL("./vectors/wycheproof/", import.meta.url);
const load = async (name: string) =>
  JSON.parse(await Deno.readTextFile(new URL(name, dir))) as {
    numberOfTests: number;
    testGroups: Array<any>;
  };
const hex = (s: string) => fromHex(s) as Uint8Array<ArrayBuffer>;

Deno.test("ed25519Verify() agrees with every Wycheproof Ed25519 vector", async () => {
  const file = await load("ed25519_test.json");
  let run = 0;
  const wrong: string[] = [];
  for (const group of file.testGroups) {
    const key = await importEd25519Public(hex(group.publicKey.pk));
    for (const t of group.tests) {
      run++;
      const ok = await ed25519Verify(key, hex(t.sig), hex(t.msg));
      if (ok !== (t.result === "valid")) wrong.push(`tcId ${t.tcId} (${t.comment}): got ${ok}`);
    }
  }
  assert.equal(run, file.numberOfTests, "every case ran");
  assert.deepEqual(wrong, []);
});

Deno.test("aesGcmOpen() and aesGcmSeal() agree with every Wycheproof AES-GCM vector with a 96-bit IV, and refuse every other", async () => {
  const file = await load("aes_gcm_test.json");
  let run = 0, outOfDomain = 0;
  const wrong: string[] = [];
  for (const group of file.testGroups) {
    for (const t of group.tests) {
      run++;
      const key = await crypto.subtle.importKey("raw", hex(t.key), "AES-GCM", false, [
        "encrypt",
        "decrypt",
      ]);
      const iv = hex(t.iv), aad = hex(t.aad), msg = hex(t.msg);
      const sealed = new Uint8Array([...hex(t.ct), ...hex(t.tag)]);
      const opened = await aesGcmOpen(key, iv, aad, sealed);
      if (group.ivSize !== 96) {
        // Outside the project's domain (it only ever uses 96-bit IVs): refused, valid or not.
        outOfDomain++;
        if (opened !== null) wrong.push(`tcId ${t.tcId}: a ${group.ivSize}-bit IV was accepted`);
        await assert.rejects(aesGcmSeal(key, iv, aad, msg), RangeError);
        continue;
      }
      if (t.result === "valid") {
        if (opened === null || toHex(opened) !== t.msg) {
          wrong.push(`tcId ${t.tcId} (${t.comment}): valid case did not open`);
        }
        const again = await aesGcmSeal(key, iv, aad, msg);
        if (toHex(again) !== t.ct + t.tag) wrong.push(`tcId ${t.tcId}: seal differs`);
      } else if (opened !== null) {
        wrong.push(`tcId ${t.tcId} (${t.comment}): invalid case opened`);
      }
    }
  }
  assert.equal(run, file.numberOfTests, "every case ran");
  assert.ok(
    outOfDomain > 0 && outOfDomain < run / 2,
    `${outOfDomain} of ${run} outside the domain`,
  );
  assert.deepEqual(wrong, []);
});

Deno.test("x25519() agrees with every Wycheproof X25519 vector, refusing low-order results", async () => {
  const file = await load("x25519_test.json");
  let run = 0, refusedAcceptable = 0;
  const wrong: string[] = [];
  for (const group of file.testGroups) {
    for (const t of group.tests) {
      run++;
      const shared = await x25519(hex(t.private), hex(t.public));
      const zero = /^0+$/.test(t.shared);
      if (t.result === "valid") {
        if (shared === null || toHex(shared) !== t.shared) {
          wrong.push(`tcId ${t.tcId} (${t.comment}): got ${shared && toHex(shared)}`);
        }
      } else if (zero) {
        // The project's choice for an all-zero secret: refuse it.
        if (shared !== null) wrong.push(`tcId ${t.tcId}: an all-zero secret was accepted`);
        refusedAcceptable++;
      } else if (shared !== null && toHex(shared) !== t.shared) {
        wrong.push(`tcId ${t.tcId} (${t.comment}): computed a different secret`);
      }
      // An appliance's enrolment refuses every public key Wycheproof marks low order.
      if (t.flags.includes("LowOrderPublic")) {
        const encoded = toBase64Url(hex(t.public));
        await assert.rejects(parsePublicKey(encoded, "X25519"), /small order|not canonically/);
      }
    }
  }
  assert.equal(run, file.numberOfTests, "every case ran");
  assert.ok(refusedAcceptable > 0);
  assert.deepEqual(wrong, []);
});
