import {
  deepStrictEqual as assertEquals,
  strictEqual,
  throws as assertThrows,
} from "node:assert/strict";
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { hpkeSealBase } from "../protocol/crypto/hpke_seal.ts";
import { newContentKey, unwrapContentKey, wrapContentKey } from "../protocol/package/format.ts";

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

const raw = async (k: CryptoKey, priv: boolean) =>
  new Uint8Array(
    await (priv ? suite.kem.serializePrivateKey(k) : suite.kem.serializePublicKey(k)),
  );

Deno.test("hpkeSealBase() gives @hpke/core's bytes for the same ephemeral key", async () => {
  for (let i = 0; i < 25; i++) {
    const recipient = await suite.kem.generateKeyPair();
    const ephemeral = await suite.kem.generateKeyPair();
    const info = crypto.getRandomValues(new Uint8Array(i * 7));
    const plaintext = crypto.getRandomValues(new Uint8Array(i === 0 ? 0 : 32 + i));
    const theirs = await suite.seal(
      { recipientPublicKey: recipient.publicKey, info, ekm: ephemeral },
      plaintext,
    );
    const ours = hpkeSealBase(await raw(recipient.publicKey, false), info, plaintext, {
      privateRaw: await raw(ephemeral.privateKey, true),
      publicRaw: await raw(ephemeral.publicKey, false),
    });
    assertEquals(
      ours,
      new Uint8Array([...new Uint8Array(theirs.enc), ...new Uint8Array(theirs.ct)]),
      `case ${i}`,
    );
    // And the library opens what we seal with a fresh ephemeral key.
    const fresh = hpkeSealBase(await raw(recipient.publicKey, false), info, plaintext);
    const opened = await suite.open(
      { recipientKey: recipient.privateKey, enc: fresh.slice(0, 32).buffer, info },
      fresh.slice(32).buffer,
    );
    assertEquals(new Uint8Array(opened), plaintext);
  }
});

Deno.test("hpkeSealBase() refuses a low-order or wrong-sized X25519 public key", () => {
  assertThrows(
    () => hpkeSealBase(new Uint8Array(32), new Uint8Array(), new Uint8Array(32)),
    /low order|derivation/,
  );
  assertThrows(
    () => hpkeSealBase(new Uint8Array(31), new Uint8Array(), new Uint8Array(32)),
    /31 bytes/,
  );
});

Deno.test("wrapContentKey() output unwraps for its appliance and package only", async () => {
  const appliance = await suite.kem.generateKeyPair();
  const other = await suite.kem.generateKeyPair();
  const h = { app: "a", name: "n", version: "1", ciphertextSha256: "0".repeat(64) };
  const key = newContentKey();
  const w = await wrapContentKey(key, await raw(appliance.publicKey, false), h);
  assertEquals(await unwrapContentKey(w, appliance.privateKey, h), key);
  for (
    const [sk, hh] of [[other.privateKey, h], [appliance.privateKey, {
      ...h,
      version: "2",
    }]] as const
  ) {
    let failed = false;
    await unwrapContentKey(w, sk, hh).catch(() => failed = true);
    strictEqual(failed, true);
  }
});
