/**
 * Builds the worked example of docs/protocol.md from fixed inputs, so that
 * the document can be checked (tests/protocol_doc_test.ts) and regenerated:
 *
 *   deno run examples/protocol_example.ts
 *
 * @module
 */
import { ed25519PublicOf, exportRawPublic, importEd25519Seed } from "../protocol/crypto/ed25519.ts";
import { sha256, toBase64Url, utf8 } from "../protocol/util/encoding.ts";
import { signatureBase, signRequest } from "../protocol/http/signature.ts";
import { parseDictionary } from "../protocol/http/structured_fields.ts";

/** The example's fixed inputs and every derived value the document shows. */
export interface ProtocolExample {
  /** Ed25519 seed (secret; an example only). */
  seed: string;
  /** Raw Ed25519 public key, base64url. */
  signingKey: string;
  /** The UID the NOC assigned. */
  uid: string;
  /** Signing time, Unix seconds. */
  created: number;
  /** Nonce. */
  nonce: string;
  /** Request URL. */
  url: string;
  /** Request body, exactly as sent. */
  body: string;
  /** Content-Digest header. */
  contentDigest: string;
  /** Signature-Input header. */
  signatureInput: string;
  /** Signature header. */
  signature: string;
  /** The signature base that was signed. */
  base: string;
}

/** Builds the example. */
export async function buildExample(): Promise<ProtocolExample> {
  const seedBytes = await sha256("appliance-noc protocol example key");
  const seed = toBase64Url(seedBytes);
  const key = await importEd25519Seed(seedBytes);
  const pub = await ed25519PublicOf(key);
  const uid = "3f2b8c1e-7d4a-4e9b-9a61-2c5d8e0f1a7b";
  const created = 1795521600; // 2026-11-24T12:00:00Z
  const nonce = "b5dfa0c1f7e24e1c9a3d6b8e";
  const url = "https://noc.example.net/v1/beats";
  const body = JSON.stringify({
    seq: 42,
    sentAt: "2026-11-24T12:00:00Z",
    health: {
      load: [0.12, 0.2, 0.18],
      memory: { totalBytes: 4294967296, availableBytes: 2147483648 },
      disks: [{ mount: "/", totalBytes: 64000000000, freeBytes: 32000000000 }],
      uptimeS: 86400,
    },
    components: [{ kind: "package", app: "vscreen", name: "vscreen", version: "4.2.1" }],
    lastCycle: { outcome: "ok" },
    apps: { vscreen: { mailsScanned: 18234 } },
  });
  const headers = new Headers({ "content-type": "application/json" });
  const req = { method: "POST", url, headers, body: utf8(body) };
  await signRequest(req, { privateKey: key, keyid: uid, created, nonce });
  const [, list] = parseDictionary(headers.get("signature-input")!)[0]!;
  return {
    seed,
    signingKey: toBase64Url(await exportRawPublic(pub)),
    uid,
    created,
    nonce,
    url,
    body,
    contentDigest: headers.get("content-digest")!,
    signatureInput: headers.get("signature-input")!,
    signature: headers.get("signature")!,
    base: signatureBase(req, list as never),
  };
}

if (import.meta.main) {
  console.log(JSON.stringify(await buildExample(), null, 2));
}
