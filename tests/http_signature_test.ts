import assert from "node:assert/strict";
import {
  signatureBase,
  SignatureError,
  signRequest,
  verifyRequestSignature,
} from "../protocol/http/signature.ts";
import { parseDictionary } from "../protocol/http/structured_fields.ts";
import { contentDigest, verifyContentDigest } from "../protocol/http/content_digest.ts";
import { fromBase64, toBase64 } from "../protocol/util/encoding.ts";
import { generateEd25519 } from "../protocol/crypto/ed25519.ts";

const vector = JSON.parse(
  await Deno.readTextFile(new URL("./vectors/rfc9421-ed25519-b26.json", import.meta.url)),
);

function pemBody(pem: string): Uint8Array<ArrayBuffer> {
  return fromBase64(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""));
}

function vectorRequest(): { method: string; url: string; headers: Headers } {
  return {
    method: vector.request.method,
    url: vector.request.url,
    headers: new Headers(vector.request.headers),
  };
}

const body = new TextEncoder().encode(vector.request.body);
const publicKey = await crypto.subtle.importKey(
  "spki",
  pemBody(vector.key.publicKeyPem),
  { name: "Ed25519" },
  false,
  ["verify"],
);
const privateKey = await crypto.subtle.importKey(
  "pkcs8",
  pemBody(vector.key.privateKeyPem),
  { name: "Ed25519" },
  false,
  ["sign"],
);

Deno.test("signatureBase() reproduces RFC 9421 B.2.6 byte for byte", () => {
  const req = vectorRequest();
  const [, list] = parseDictionary(req.headers.get("signature-input")!)[0]!;
  assert.equal(signatureBase(req, list as never), vector.signatureBase);
});

Deno.test("verifyRequestSignature() accepts the RFC 9421 B.2.6 request", async () => {
  const verified = await verifyRequestSignature(vectorRequest(), body, {
    now: 1618884473,
    maxSkewS: 300,
    requiredComponents: ["@method", "@path", "@authority"],
    requireNonce: false,
    resolveKey: (keyid) => {
      assert.equal(keyid, "test-key-ed25519");
      return Promise.resolve(publicKey);
    },
  });
  assert.equal(verified.label, "sig-b26");
  assert.equal(toBase64(verified.signature), vector.expected.signatureBase64);
});

Deno.test("signRequest() reproduces the RFC 9421 B.2.6 signature (Ed25519 is deterministic)", async () => {
  const req = vectorRequest();
  await signRequest(req, {
    privateKey,
    keyid: "test-key-ed25519",
    created: 1618884473,
    components: ["date", "@method", "@path", "@authority", "content-type", "content-length"],
    label: "sig-b26",
    withAlg: false,
  });
  assert.equal(req.headers.get("signature-input"), vector.request.headers["Signature-Input"]);
  assert.equal(req.headers.get("signature"), vector.request.headers["Signature"]);
});

Deno.test("contentDigest() matches RFC 9530 values for the vector body", async () => {
  assert.equal(await contentDigest(body), vector.expected.contentDigestSha256);
  await verifyContentDigest(vector.request.headers["Content-Digest"], body);
  await assert.rejects(
    verifyContentDigest(vector.request.headers["Content-Digest"], new TextEncoder().encode("{}")),
    /does not match/,
  );
  await assert.rejects(verifyContentDigest("md5=:AAAA:", body), /no sha-256 or sha-512/);
  await assert.rejects(verifyContentDigest("sha-256=nope", body), /not a byte sequence/);
});

async function signedFixture() {
  const { privateKey, publicKey } = await generateEd25519();
  const bodyBytes = new TextEncoder().encode('{"a":1}');
  const req = {
    method: "POST",
    url: "https://noc.example/v1/beats?x=1",
    headers: new Headers({ "content-type": "application/json" }),
    body: bodyBytes,
  };
  await signRequest(req, {
    privateKey,
    keyid: "k1",
    created: 1000,
    nonce: "abcdefghijklmnopqrstuv",
  });
  const policy = {
    now: 1000,
    maxSkewS: 300,
    requiredComponents: ["@method", "@authority", "@path", "@query", "content-digest"],
    requireNonce: true,
    resolveKey: () => Promise.resolve(publicKey),
  };
  return { req, bodyBytes, policy };
}

async function refusedWith(p: Promise<unknown>, reason: SignatureError["reason"]): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof SignatureError && e.reason === reason);
}

Deno.test("verifyRequestSignature() refuses each kind of tampering", async () => {
  const f = await signedFixture();
  await verifyRequestSignature(f.req, f.bodyBytes, f.policy);
  await refusedWith(
    verifyRequestSignature(f.req, new TextEncoder().encode('{"a":2}'), f.policy),
    "bad_digest",
  );
  for (
    const url of [
      "https://noc.example/v1/other?x=1",
      "https://noc.example/v1/beats?x=2",
      "https://evil.example/v1/beats?x=1",
    ]
  ) {
    await refusedWith(
      verifyRequestSignature({ ...f.req, url }, f.bodyBytes, f.policy),
      "bad_signature",
    );
  }
  await refusedWith(
    verifyRequestSignature({ ...f.req, method: "PUT" }, f.bodyBytes, f.policy),
    "bad_signature",
  );
  const h = new Headers(f.req.headers);
  h.set("signature-input", h.get("signature-input")!.replace("created=1000", "created=1001"));
  await refusedWith(
    verifyRequestSignature({ ...f.req, headers: h }, f.bodyBytes, f.policy),
    "bad_signature",
  );
  const s = new Headers(f.req.headers);
  const sig = fromBase64(s.get("signature")!.slice(6, -1));
  sig[5] = sig[5]! ^ 1;
  s.set("signature", `sig1=:${toBase64(sig)}:`);
  await refusedWith(
    verifyRequestSignature({ ...f.req, headers: s }, f.bodyBytes, f.policy),
    "bad_signature",
  );
});

Deno.test("verifyRequestSignature() enforces the time window, nonce and covered components", async () => {
  const f = await signedFixture();
  await refusedWith(
    verifyRequestSignature(f.req, f.bodyBytes, { ...f.policy, now: 1301 }),
    "clock_skew",
  );
  await refusedWith(
    verifyRequestSignature(f.req, f.bodyBytes, { ...f.policy, now: 699 }),
    "clock_skew",
  );
  await verifyRequestSignature(f.req, f.bodyBytes, { ...f.policy, now: 1300 });
  await refusedWith(
    verifyRequestSignature(f.req, f.bodyBytes, {
      ...f.policy,
      requiredComponents: ["content-type"],
    }),
    "missing_components",
  );
  const { privateKey } = await generateEd25519();
  const bare = { method: "GET", url: "https://noc.example/v1/catalog", headers: new Headers() };
  await signRequest(bare, { privateKey, keyid: "k1", created: 1000 });
  await refusedWith(verifyRequestSignature(bare, new Uint8Array(), f.policy), "missing_nonce");
  await refusedWith(
    verifyRequestSignature({ ...bare, headers: new Headers() }, new Uint8Array(), f.policy),
    "missing_signature",
  );
  const garbled = new Headers({ "signature-input": 'sig1=("@method"', signature: "sig1=:AA==:" });
  await refusedWith(
    verifyRequestSignature({ ...bare, headers: garbled }, new Uint8Array(), f.policy),
    "malformed_signature",
  );
});

Deno.test("fromBase64Url() refuses non-canonical text whose spare bits are set", async () => {
  const { fromBase64Url, toBase64Url } = await import("../protocol/util/encoding.ts");
  const sig = toBase64Url(new Uint8Array(64).fill(7));
  assert.deepEqual(fromBase64Url(sig), new Uint8Array(64).fill(7));
  const last = sig[sig.length - 1]!;
  const twin = sig.slice(0, -1) + String.fromCharCode(last.charCodeAt(0) + 1);
  assert.throws(() => fromBase64Url(twin), /not canonical/);
});
