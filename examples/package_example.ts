/**
 * Builds the package worked example of docs/protocol.md from fixed keys, so
 * the document can be checked (tests/protocol_doc_test.ts):
 *
 *   deno run examples/package_example.ts
 *
 * Everything is deterministic except the HPKE wrap (fresh ephemeral key each
 * time): the document shows one wrap, which the test opens.
 *
 * @module
 */
import { DhkemX25519HkdfSha256 } from "@hpke/core";
import { concatBytes } from "../protocol/util/bytes.ts";
import {
  fromBase64Url,
  sha256,
  toBase64,
  toBase64Url,
  toHex,
  utf8,
} from "../protocol/util/encoding.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import {
  ciphertextSizeFor,
  encryptChunks,
  importContentKey,
  packageFormat,
  type PackageHeader,
  packagePrefix,
  wrapContentKey,
} from "../protocol/package/format.ts";

/** The example's values. */
export interface PackageExample {
  /** NOC signing key seed (base64url; public, never use it). */
  nocSeed: string;
  /** The NOC public key. */
  nocPublicKey: string;
  /** The content key (hex). */
  contentKey: string;
  /** The appliance's X25519 private key (raw, base64url). */
  appliancePrivate: string;
  /** The appliance's X25519 public key (raw, base64url). */
  appliancePublic: string;
  /** The payload (text). */
  payload: string;
  /** The header JSON exactly as signed. */
  header: string;
  /** The header signature (base64). */
  signature: string;
  /** The ciphertext (hex). */
  ciphertext: string;
  /** The whole package (base64). */
  packageBase64: string;
  /** SHA-256 of the whole package (hex), as the catalog lists it. */
  packageSha256: string;
  /** One fresh wrap of the content key to the appliance (base64url). */
  freshWrap: string;
}

const kem = new DhkemX25519HkdfSha256();

/** Builds the example. */
export async function buildPackageExample(): Promise<PackageExample> {
  const nocSeed = toBase64Url(await sha256("appliance-noc package example NOC key"));
  const noc = await nocKeysFromSeed(nocSeed);
  const contentKey = await sha256("appliance-noc package example content key");
  const pair = await kem.deriveKeyPair(
    (await sha256("appliance-noc package example appliance key")).buffer,
  );
  const appliancePrivate = toBase64Url(
    new Uint8Array(await kem.serializePrivateKey(pair.privateKey)),
  );
  const appliancePublic = toBase64Url(new Uint8Array(await kem.serializePublicKey(pair.publicKey)));
  const payload = "#!/bin/sh\necho hello\n";
  const chunkSize = 1024;
  const ciphertext = concatBytes(
    await Array.fromAsync(
      encryptChunks(
        ReadableStream.from([utf8(payload)]),
        await importContentKey(contentKey),
        chunkSize,
      ),
    ),
  );
  const header: PackageHeader = {
    format: packageFormat,
    app: "demo",
    name: "hello",
    version: "1.0.0",
    size: utf8(payload).length,
    chunkSize,
    ciphertextSize: ciphertextSizeFor(utf8(payload).length, chunkSize),
    ciphertextSha256: toHex(await sha256(ciphertext)),
    kid: noc.kid,
    createdAt: "2026-11-24T11:00:00.000Z",
  };
  const prefix = await packagePrefix(header, { kid: noc.kid, privateKey: noc.privateKey });
  const whole = concatBytes([prefix, ciphertext]);
  const headerText = JSON.stringify(header);
  const sigStart = 8 + 4 + utf8(headerText).length + 2;
  return {
    nocSeed,
    nocPublicKey: noc.published[0]!.publicKey,
    contentKey: toHex(contentKey),
    appliancePrivate,
    appliancePublic,
    payload,
    header: headerText,
    signature: toBase64(prefix.slice(sigStart, sigStart + 64)),
    ciphertext: toHex(ciphertext),
    packageBase64: toBase64(whole),
    packageSha256: toHex(await sha256(whole)),
    freshWrap: await wrapContentKey(
      contentKey,
      fromBase64Url(appliancePublic),
      header,
    ),
  };
}

if (import.meta.main) {
  console.log(JSON.stringify(await buildPackageExample(), null, 2));
}
