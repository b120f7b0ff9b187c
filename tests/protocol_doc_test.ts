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
import { fromBase64, fromBase64Url, toBase64, toHex } from "../protocol/util/encoding.ts";
import { collectBytes } from "../protocol/util/bytes.ts";
import { catalogBindingBytes, signCatalogBinding } from "../protocol/catalog.ts";
import {
  ed25519PublicOf,
  ed25519Verify,
  exportRawPublic,
  importEd25519Public,
  importEd25519Seed,
} from "../protocol/crypto/ed25519.ts";
import { keyId, newSeed, verifyKeyStatement, walkKeyChain } from "../protocol/keys.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { rotationStatement } from "../cli/keygen.ts";
import { GrantError, issueGrant, verifyGrant } from "../protocol/grants.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { hpkeSealBase } from "../protocol/crypto/hpke_seal.ts";
import { PackageError } from "../protocol/package/format.ts";
import { concatBytes } from "../protocol/util/bytes.ts";
import { fromHex, sha256, utf8 } from "../protocol/util/encoding.ts";
import {
  adoptablePackageKeys,
  canonicalNotAfter,
  endorseKey,
  endorsementBytes,
  endorsementProblem,
} from "../protocol/release_keys.ts";
import { fileinfoSigningBytes, signFileinfo, verifyFileinfo } from "../protocol/fileinfo.ts";
import { ciphertextSizeFor, encryptChunks } from "../protocol/package/format.ts";
import type { PublishedKey } from "../protocol/keys.ts";
import { ed25519Sign } from "../protocol/crypto/ed25519.ts";
import { applianceComponents, signatureBase } from "../protocol/http/signature.ts";
import {
  type InnerList,
  type Params,
  serializeInnerList,
} from "../protocol/http/structured_fields.ts";
import { createHmac, createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";
import { runCli } from "./_process.ts";
import { Buffer } from "node:buffer";
import { z } from "zod";
import { beatSchema, hostnameSchema } from "../protocol/schemas.ts";
import { defaultSettings } from "../noc/config.ts";
import { sampleBeat } from "./_harness.ts";

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

/** The text of the section that starts with heading `title` (any level), up to the next heading. */
function section(title: string): string {
  const at = doc.indexOf(`\n${title}\n`) + 1;
  assert.ok(at > 0 && title.startsWith("#"), `docs/protocol.md has no heading ${title}`);
  const rest = doc.slice(at + title.length + 1);
  const next = /\n#{1,6} /.exec(rest);
  return next ? rest.slice(0, next.index) : rest;
}

/** `text` with every run of white space (a line break of the wrapped prose included) as one space. */
function flat(text: string): string {
  return text.replace(/\s+/g, " ");
}

/** The fenced code blocks of `text` in language `lang` ("" for none), in order. */
function blocks(text: string, lang: string): string[] {
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)\n```$/gm)].filter((m) => m[1] === lang)
    .map((m) => m[2]!);
}

/** Runs `sh -c script` in `cwd`; returns stdout, failing the test on a non-zero exit. */
async function sh(script: string, cwd?: string): Promise<string> {
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    ...(cwd ? { cwd } : {}),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  assert.equal(out.code, 0, d.decode(out.stderr));
  return d.decode(out.stdout);
}

Deno.test("docs/protocol.md's key id example is keyId() of its key, and its shell lines agree", async () => {
  const text = section("### Key ids");
  const ex = await buildPackageExample();
  const raw = fromBase64Url(ex.nocPublicKey);
  const digest = toHex(await sha256(raw));
  const kid = await keyId(raw);
  for (const v of [ex.nocPublicKey, digest, kid]) assert.ok(text.includes(v), `shows ${v}`);
  assert.equal(kid, digest.slice(0, 16));
  const [fromText, fromPem] = blocks(text, "sh");
  assert.ok(fromText && fromPem, "two shell lines");
  assert.equal((await sh(fromText)).trim(), kid);
  // The PEM line, on a key openssl makes, against the public key Web Crypto derives from it.
  const dir = await Deno.makeTempDir();
  try {
    await sh("openssl genpkey -algorithm ed25519 -out release.pem", dir);
    const pem = await Deno.readTextFile(`${dir}/release.pem`);
    const der = fromBase64(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""));
    const priv = await crypto.subtle.importKey("pkcs8", der, "Ed25519", true, ["sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", priv);
    assert.equal((await sh(fromPem, dir)).trim(), await keyId(fromBase64Url(jwk.x!)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** HPKE base mode's values for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM (RFC 9180), done here from the RFC. */
function hpkeSchedule(ephemeral: Uint8Array, recipient: Uint8Array, info: Uint8Array) {
  const te = new TextEncoder();
  const cat = (...p: Uint8Array[]) => concatBytes(p);
  const u16 = (n: number) => new Uint8Array([n >> 8, n & 0xff]);
  const hmac = (k: Uint8Array, d: Uint8Array) =>
    new Uint8Array(createHmac("sha256", k).update(d).digest());
  const expand = (prk: Uint8Array, inf: Uint8Array, n: number) => {
    let t = new Uint8Array(0), out = new Uint8Array(0);
    for (let i = 1; out.length < n; i++) {
      t = hmac(prk, cat(t, inf, new Uint8Array([i])));
      out = cat(out, t);
    }
    return out.slice(0, n);
  };
  const v1 = te.encode("HPKE-v1");
  const kem = cat(te.encode("KEM"), u16(0x20));
  const suite = cat(te.encode("HPKE"), u16(0x20), u16(1), u16(2));
  const none = new Uint8Array(0);
  const ext = (s: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array) =>
    hmac(salt.length ? salt : new Uint8Array(32), cat(v1, s, te.encode(label), ikm));
  const exp = (s: Uint8Array, prk: Uint8Array, label: string, inf: Uint8Array, n: number) =>
    expand(prk, cat(u16(n), v1, s, te.encode(label), inf), n);
  const sk = createPrivateKey({
    key: Buffer.from(cat(Uint8Array.fromHex("302e020100300506032b656e04220420"), ephemeral)),
    format: "der",
    type: "pkcs8",
  });
  const enc = new Uint8Array(createPublicKey(sk).export({ format: "der", type: "spki" })).slice(
    -32,
  );
  const pk = createPublicKey({
    key: Buffer.from(cat(Uint8Array.fromHex("302a300506032b656e032100"), recipient)),
    format: "der",
    type: "spki",
  });
  const dh = new Uint8Array(diffieHellman({ privateKey: sk, publicKey: pk }));
  const shared = exp(kem, ext(kem, none, "eae_prk", dh), "shared_secret", cat(enc, recipient), 32);
  const context = cat(
    new Uint8Array([0]),
    ext(suite, none, "psk_id_hash", none),
    ext(suite, none, "info_hash", info),
  );
  const secret = ext(suite, shared, "secret", none);
  return {
    enc,
    dh,
    shared_secret: shared,
    key: exp(suite, secret, "key", context, 32),
    base_nonce: exp(suite, secret, "base_nonce", context, 12),
  };
}

Deno.test("docs/protocol.md's X-NOC-Wrapped-Key example: info, HPKE values and header recompute and open", async () => {
  const text = section("## Publishing packages: `POST /v1/admin/packages`");
  const ex = await buildPackageExample();
  const header = JSON.parse(ex.header);
  const master = /master key \(`NOC_MASTER_KEY`[^)]*\) is\s+`([A-Za-z0-9_-]{43})`/.exec(text)?.[1];
  const encryptionKey = /its `encryptionKey` is\s+`([A-Za-z0-9_-]{43})`/.exec(text)?.[1];
  const ephemeral = /ephemeral X25519 private key `([A-Za-z0-9_-]{43})`/.exec(text)?.[1];
  assert.ok(master && encryptionKey && ephemeral, "the example's keys");
  // The NOC's X25519 key is the one its master key gives.
  const noc = await nocKeysFromSeed(ex.nocSeed, { master });
  assert.equal(noc.hpke.publicKey, encryptionKey);
  // info: the documented text, built from the package example's header by hand.
  const info = `noc-package/1 content key\n${header.app}\n${header.name}\n${header.version}\n` +
    header.ciphertextSha256;
  const [infoBlock, values] = blocks(text, "text");
  assert.equal(infoBlock, info);
  assert.ok(flat(text).includes(`The \`info\`, ${utf8(info).length} bytes`), "the info's length");
  // HPKE's values, from the RFC, then the AES-256-GCM seal of the content key.
  const s = hpkeSchedule(fromBase64Url(ephemeral), fromBase64Url(encryptionKey), utf8(info));
  const aes = await crypto.subtle.importKey("raw", s.key, "AES-GCM", false, ["encrypt"]);
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: s.base_nonce }, aes, fromHex(ex.contentKey)),
  );
  const expected = Object.entries({ ...s, ciphertext: sealed })
    .map(([k, v]) => `${k.padEnd(13)} ${toHex(v)}`).join("\n");
  assert.equal(values, expected);
  // The header: enc || ciphertext, what the NOC's own seal makes with that ephemeral key.
  const wrapped = toBase64Url(concatBytes([s.enc, sealed]));
  assert.equal(wrapped.length, 107);
  const made = hpkeSealBase(fromBase64Url(encryptionKey), utf8(info), fromHex(ex.contentKey), {
    privateRaw: fromBase64Url(ephemeral),
    publicRaw: s.enc,
  });
  assert.equal(toBase64Url(made), wrapped);
  assert.ok(text.includes(`X-NOC-Wrapped-Key: ${wrapped}\n`), "the header line");
  // It opens, with @hpke/core and the NOC's private key, to the content key; and for no other package.
  assert.equal(toHex(await unwrapContentKey(wrapped, noc.hpke.privateKey, header)), ex.contentKey);
  await assert.rejects(
    unwrapContentKey(wrapped, noc.hpke.privateKey, { ...header, version: "1.0.1" }),
    PackageError,
  );
  // The .wrapped-key file of the section after shows the same value, one line.
  const file = blocks(section("### The `.wrapped-key` file"), "text");
  assert.deepEqual(file, [wrapped]);
});

Deno.test("docs/protocol.md's download grant is what issueGrant() makes from the seed, and checks as documented", async () => {
  const text = section("### Download grants");
  const key = await exampleKey(exampleNocSeed);
  const uid = "5f0c2a64-9a3e-4c1b-8d27-0b6f3e1d9a42";
  const exp = new Date("2026-11-25T12:00:00Z");
  const grant = await issueGrant(key, uid, 17, exp);
  const [payload, shown] = blocks(text, "text");
  assert.equal(shown, grant);
  assert.equal(new TextDecoder().decode(fromBase64Url(grant.split(".")[0]!)), payload);
  assert.ok(text.includes(exampleNocSeed) && text.includes(key.kid));
  const keys = [{
    kid: key.kid,
    alg: "ed25519" as const,
    use: ["catalog" as const, "package" as const],
    publicKey: key.publicKey,
    notAfter: null,
  }];
  const before = new Date(exp.getTime() - 1000);
  assert.equal((await verifyGrant(grant, 17, keys, before)).u, uid);
  await verifyGrant(grant, 18, keys, before).then(() => assert.fail(), (e) => {
    assert.equal(reason(e), "wrong_component");
  });
  await verifyGrant(grant, 17, keys, exp).then(() => assert.fail(), (e) => {
    assert.equal(reason(e), "expired_grant");
  });
  assert.ok(flat(text).includes(`from ${exp.getTime() / 1000} on \`expired_grant\``));
});

const python = await new Deno.Command("python3", {
  args: ["-c", "import cryptography"],
  stdout: "null",
  stderr: "null",
}).output().then((o) => o.success, () => false);

Deno.test({
  name: "docs/protocol.md's Python grant check agrees with verifyGrant() on good and bad grants" +
    (python ? "" : " [skipped: no python3 with the cryptography package]"),
  ignore: !python,
  fn: async () => {
    const code = blocks(section("### Download grants"), "python")[0];
    assert.ok(code, "the Python block");
    const noc = await exampleKey(exampleNocSeed);
    const other = await exampleKey("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE");
    const exp = new Date("2026-11-25T12:00:00Z");
    const uid = "5f0c2a64-9a3e-4c1b-8d27-0b6f3e1d9a42";
    const published = (k: typeof noc, notAfter: string | null = null) => ({
      kid: k.kid,
      alg: "ed25519" as const,
      use: ["catalog" as const, "package" as const],
      publicKey: k.publicKey,
      notAfter,
    });
    const good = await issueGrant(noc, uid, 17, exp);
    const [part, sig] = good.split(".") as [string, string];
    const flipped = sig.slice(0, 10) + (sig[10] === "A" ? "B" : "A") + sig.slice(11);
    // The same bytes spelled with a spare bit set (lenient decoders ignore those bits).
    const spare = (text: string) => {
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      const last = alphabet.indexOf(text.at(-1)!);
      assert.ok(text.length % 4 !== 0 && last % 2 === 0, `${text} has spare bits`);
      return text.slice(0, -1) + alphabet[last + 1];
    };
    assert.ok("AQgw".includes(sig.at(-1)!), "a signature's last character is A, Q, g or w");
    const seven = await issueGrant(noc, uid, 7, exp);
    const [part7, sig7] = seven.split(".") as [string, string];
    const keys = [published(noc)];
    const now = exp.getTime() / 1000 - 60;
    const cases: Array<[string, number, ReturnType<typeof published>[], number]> = [
      [good, 17, keys, now],
      [good, 18, keys, now],
      [good, 17, keys, exp.getTime() / 1000],
      [`${part}.${flipped}`, 17, keys, now],
      [await issueGrant(other, uid, 17, exp), 17, keys, now],
      [good, 17, [published(noc, "2026-11-25T00:00:00.000Z")], now],
      [`${part}.${sig}.x`, 17, keys, now],
      [`${toBase64Url(utf8('{"u":"x","c":17}'))}.${sig}`, 17, keys, now],
      ["not a grant", 17, keys, now],
      [`${part}.${spare(sig)}`, 17, keys, now],
      [`${spare(part7)}.${sig7}`, 7, keys, now],
      [seven, 7, keys, now],
    ];
    const expected = [];
    for (const [g, c, k, t] of cases) {
      expected.push(
        await verifyGrant(g, c, k, new Date(t * 1000)).then((r) => r.u, (e) => reason(e)),
      );
    }
    assert.deepEqual(expected.slice(0, 6), [
      uid,
      "wrong_component",
      "expired_grant",
      "bad_grant",
      "bad_grant",
      "bad_grant",
    ]);
    assert.deepEqual(expected.slice(-3), ["malformed_grant", "malformed_grant", uid]);
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(
        `${dir}/check.py`,
        code + "\n\nimport sys\nfor grant, component, keys, now in json.load(sys.stdin):\n" +
          "    try:\n        print(check_grant(grant, component, keys, now))\n" +
          "    except ValueError as e:\n        print(e)\n",
      );
      const child = new Deno.Command("python3", {
        args: [`${dir}/check.py`],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(utf8(JSON.stringify(cases)));
      await w.close();
      const out = await child.output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.deepEqual(new TextDecoder().decode(out.stdout).trim().split("\n"), expected);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function reason(e: unknown): string {
  if (e instanceof GrantError) return e.reason;
  throw e;
}

/** The worked beat signed with other times: `created`, `expires` (optional) and `nonce`. */
async function beatSignedAt(created: number, nonce: string, expires?: number): Promise<Request> {
  const ex = await buildExample();
  const headers = new Headers({
    "content-type": "application/json",
    "content-digest": ex.contentDigest,
  });
  const req = { method: "POST", url: ex.url, headers };
  const params: Params = [["created", created]];
  if (expires !== undefined) params.push(["expires", expires]);
  params.push(["keyid", ex.uid], ["nonce", nonce], ["alg", "ed25519"]);
  const list: InnerList = {
    items: applianceComponents.map((c) => ({ value: c, params: [] })),
    params,
  };
  const key = await importEd25519Seed(fromBase64Url(ex.seed));
  const sig = await ed25519Sign(key, utf8(signatureBase(req, list)));
  headers.set("signature-input", `sig1=${serializeInnerList(list)}`);
  headers.set("signature", `sig1=:${toBase64(sig)}:`);
  return new Request(ex.url, { method: "POST", headers, body: ex.body });
}

dbTest(
  "docs/protocol.md's clock_skew and expired_signature examples are what the NOC answers",
  async ({ db }) => {
    const text = section("### `clock_skew` and `expired_signature`");
    const ex = await buildExample();
    const noc = await testNoc(db, { settings: { publicHosts: ["noc.example.net"] } });
    noc.clock.set(new Date(ex.created * 1000));
    assert.equal(noc.deps.settings.maxSkewS, 300);
    const now = noc.clock.now();
    await db.sql`
    insert into appliances (uid, model, hostname, sign_key, enc_key, interval_s, enrolled_at, next_due_at)
    values (${ex.uid}, 'vs-2000', 'mail-gw-1', ${ex.signingKey}, ${ex.signingKey}, 909, ${now}, ${now})`;
    assert.ok(text.includes(`\`${ex.created}\``), "the NOC's clock");
    // The table: created, expires, answer.
    const rows = [
      ...text.matchAll(/^\| `(\d+)`[^|]*\| (?:`(\d+)`|none)\s*\| (\d{3})(?: `(\w+)`)?\s*\|$/gm),
    ];
    assert.equal(rows.length, 5, "five rows");
    let n = 0;
    for (const [, created, expires, status, code] of rows) {
      const nonce = `RG9jVGFibGVSb3cwMDAw${n++}`;
      const res = await noc.app.request(
        await beatSignedAt(Number(created), nonce, expires ? Number(expires) : undefined),
      );
      const body = await res.json();
      assert.equal(res.status, Number(status), JSON.stringify(body));
      assert.equal(body.error, code, `created ${created}, expires ${expires}`);
    }
    // The two shown whole: the Signature-Input the doc shows, and the NOC's answer byte for byte.
    const inputs = blocks(text, "http");
    const answers = blocks(text, "text");
    assert.equal(inputs.length, 2);
    assert.equal(answers.length, 2);
    for (let i = 0; i < 2; i++) {
      const m = /created=(\d+);(?:expires=(\d+);)?keyid="[^"]+";nonce="([^"]+)"/.exec(inputs[i]!);
      assert.ok(m, inputs[i]);
      const req = await beatSignedAt(Number(m[1]), m[3]!, m[2] ? Number(m[2]) : undefined);
      assert.equal(inputs[i], `Signature-Input: ${req.headers.get("signature-input")}`);
      const res = await noc.app.request(req);
      assert.equal(res.status, 401);
      assert.equal(await res.text(), answers[i]);
    }
  },
);

Deno.test("docs/protocol.md's catalog keys example is what adoptablePackageKeys() pins", async () => {
  const text = section("### What a client does with the catalog's `keys`");
  const [pinned, listed, after] = blocks(text, "json").map((b) => JSON.parse(b));
  assert.ok(pinned && listed && after, "three key lists");
  const now = new Date("2026-11-24T12:00:00.000Z");
  assert.ok(text.includes("2026-11-24T12:00:00Z"), "the catalog's time");
  for (const k of [...pinned, ...listed]) {
    assert.equal(k.kid, await keyId(fromBase64Url(k.publicKey)), `kid of ${k.publicKey}`);
  }
  const got = await adoptablePackageKeys(pinned, listed, now);
  assert.deepEqual(got.keys, after);
  const claimsCatalog = listed.find((k: PublishedKey) =>
    k.use.includes("catalog") && !pinned.some((p: PublishedKey) => p.kid === k.kid)
  );
  assert.deepEqual(got.refused, [claimsCatalog.kid]);
  assert.ok(
    flat(text).includes(`\`${claimsCatalog.kid}\` is pinned for \`package\` only`),
  );
  // Release-keys-only: neither new key without an endorsement; one endorsed by the release key is.
  const rko = [{ ...pinned[0], use: ["catalog"] }, pinned[1]];
  const strict = await adoptablePackageKeys(rko, listed, now, true);
  const newKids = listed.filter((k: PublishedKey) =>
    !pinned.some((p: PublishedKey) => p.kid === k.kid)
  )
    .map((k: PublishedKey) => k.kid);
  assert.deepEqual(strict.keys.filter((k) => newKids.includes(k.kid)), []);
  const releaseSeed = toBase64Url(await sha256("appliance-noc example release key 1"));
  const release = await exampleKey(releaseSeed);
  assert.equal(release.kid, pinned[1].kid);
  const r2 = listed.find((k: PublishedKey) => k.kid === newKids[0]);
  const endorsed = { ...r2, endorsement: await endorseKey(r2.publicKey, r2.notAfter, release) };
  const withEndorsement = await adoptablePackageKeys(rko, [listed[0], endorsed], now, true);
  assert.deepEqual(withEndorsement.keys.find((k) => k.kid === r2.kid)?.use, ["package"]);
});

/** The section on the signed JSON text of fileinfo and endorsements, and its parts. */
function signedJsonSection() {
  const text = section("### The signed JSON text of fileinfo and endorsements");
  const [putBody, keyBody] = blocks(text, "json").map((b) => JSON.parse(b));
  const [signedText, hex, defaultForm, endorsementText] = blocks(text, "text");
  const python = blocks(text, "python")[0];
  assert.ok(putBody && keyBody && signedText && hex && defaultForm && endorsementText && python);
  const seed = /seed\s+`([A-Za-z0-9_-]{43})`/.exec(text)?.[1];
  assert.ok(seed, "the release key's seed");
  return { text, putBody, keyBody, signedText, hex, defaultForm, endorsementText, python, seed };
}

/** The fileinfo statement of the example's PUT body, for `vscreen`'s `rules.conf`. */
function exampleStatement(body: Record<string, unknown>) {
  return {
    app: "vscreen",
    name: "rules.conf",
    destination: body.destination as string,
    mode: body.mode as string,
    action: body.action as string[] | null,
    uploadDir: body.uploadDir as string | null,
    uploadServer: body.uploadServer as string | null,
  };
}

Deno.test("docs/protocol.md's fileinfo and endorsement examples are what signFileinfo() and endorseKey() make", async () => {
  const ex = signedJsonSection();
  const key = await exampleKey(ex.seed);
  assert.ok(ex.text.includes(`\`${key.kid}\``) && ex.text.includes(key.publicKey));
  const statement = exampleStatement(ex.putBody);
  assert.deepEqual(statement.action, ["echo", "café ☃ </x>"], "the action holds non-ASCII text");
  const bytes = fileinfoSigningBytes(statement);
  assert.equal(new TextDecoder().decode(bytes), ex.signedText);
  assert.equal(toHex(bytes), ex.hex);
  assert.ok(flat(ex.text).includes(`${bytes.length} bytes of UTF-8`), `${bytes.length} bytes`);
  assert.deepEqual(await signFileinfo(statement, key), {
    signer: ex.putBody.signer,
    signature: ex.putBody.signature,
  });
  const published: PublishedKey = {
    kid: key.kid,
    alg: "ed25519",
    use: ["package"],
    publicKey: key.publicKey,
    notAfter: null,
  };
  const now = new Date("2026-11-24T12:00:00Z");
  await verifyFileinfo({ ...statement, ...ex.putBody }, [published], now);
  // The same signature over json.dumps's default form of the same array does not verify.
  const pub = await importEd25519Public(fromBase64Url(key.publicKey));
  const sig = fromBase64Url(ex.putBody.signature);
  assert.ok(await ed25519Verify(pub, sig, bytes));
  assert.ok(!await ed25519Verify(pub, sig, utf8(ex.defaultForm)));
  // The endorsement: made from the asked end date, which is signed in toISOString's form.
  const e = await endorseKey(ex.keyBody.publicKey, ex.keyBody.notAfter, key);
  assert.deepEqual(e, ex.keyBody.endorsement);
  const signed = endorsementBytes(ex.keyBody.publicKey, ex.keyBody.notAfter);
  assert.equal(new TextDecoder().decode(signed), ex.endorsementText);
  assert.ok(flat(ex.text).includes(`the signed text, ${signed.length} bytes`));
  assert.equal(
    await endorsementProblem(
      { publicKey: ex.keyBody.publicKey, notAfter: canonicalNotAfter(ex.keyBody.notAfter) },
      ex.keyBody.endorsement,
      [published],
      now,
    ),
    null,
  );
});

dbTest(
  "a NOC accepts docs/protocol.md's signed fileinfo and endorsement, and refuses json.dumps's default form",
  async ({ db }) => {
    const ex = signedJsonSection();
    const key = await exampleKey(ex.seed);
    const noc = await testNoc(db);
    // Normal mode: the NOC endorses the example release key itself.
    const reg = await noc.admin("POST", "/v1/admin/release-keys", {
      publicKey: key.publicKey,
      label: "release team",
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const put = await noc.admin("PUT", "/v1/admin/apps/vscreen/fileinfo/rules.conf", ex.putBody);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(
      [put.body.mode, put.body.action, put.body.signer, put.body.signature],
      ["0640", ex.putBody.action, ex.putBody.signer, ex.putBody.signature],
    );
    const endorsed = await noc.admin("POST", "/v1/admin/release-keys", ex.keyBody);
    assert.equal(endorsed.status, 201, JSON.stringify(endorsed.body));
    assert.deepEqual(endorsed.body.endorsement, ex.keyBody.endorsement);
    assert.equal(endorsed.body.notAfter, ex.keyBody.endorsement.notAfter);
    const wrong = {
      ...ex.putBody,
      signature: toBase64Url(await ed25519Sign(key.privateKey, utf8(ex.defaultForm))),
    };
    const refused = await noc.admin("PUT", "/v1/admin/apps/vscreen/fileinfo/other.conf", wrong);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error, "bad_fileinfo_signature");
  },
);

dbTest(
  "docs/protocol.md's release-key add line makes the documented endorsement through the CLI",
  async ({ db }) => {
    const ex = signedJsonSection();
    const key = await exampleKey(ex.seed);
    const line = blocks(ex.text, "sh")[0] ?? "";
    assert.ok(line.startsWith("deno task noc release-key add "), "the CLI line");
    // The line's words, as sh splits them (double quotes only), after `deno task noc`.
    const words = [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!).slice(3);
    const noc = await testNoc(db);
    const reg = await noc.admin("POST", "/v1/admin/release-keys", {
      publicKey: key.publicKey,
      label: "release team",
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      noc.app.fetch,
    );
    const work = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${work}/release.key`, ex.seed + "\n", { mode: 0o600 });
      const r = await runCli(
        words.map((w) => w === "release.key" ? `${work}/release.key` : w),
        { NOC_URL: `http://127.0.0.1:${server.addr.port}`, NOC_TOKEN: noc.adminToken },
        { clearEnv: true },
      );
      assert.equal(r.code, 0, r.err);
      const answer = JSON.parse(r.out);
      assert.equal(answer.publicKey, ex.keyBody.publicKey);
      assert.deepEqual(answer.endorsement, ex.keyBody.endorsement);
      assert.equal(answer.notAfter, ex.keyBody.endorsement.notAfter);
    } finally {
      await server.shutdown();
      await Deno.remove(work, { recursive: true });
    }
  },
);

/** Runs `code` with python3 (stdin `input`); returns stdout, failing the test on an error. */
async function runPython(code: string, input = ""): Promise<string> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/run.py`, code);
    const child = new Deno.Command("python3", {
      args: [`${dir}/run.py`],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(utf8(input));
    await w.close();
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const python3 = await new Deno.Command("python3", { args: ["-c", "pass"], stdout: "null" })
  .output().then((o) => o.success, () => false);

Deno.test({
  name: "docs/protocol.md's Python makes the bytes fileinfo and endorsement signatures cover" +
    (python3 ? "" : " [skipped: no python3]"),
  ignore: !python3,
  fn: async () => {
    const ex = signedJsonSection();
    // Every escape JSON.stringify makes, and the characters it leaves alone.
    const hard = '\b\t\n\f\r\u0001\u001b\u001f"\\/<>&\u007f\u2028\u2029é☃😀 </x>';
    const fileinfos = [
      exampleStatement(ex.putBody),
      {
        ...exampleStatement(ex.putBody),
        mode: "0755",
        action: ["sh", "-c", hard],
        uploadDir: null,
      },
      { ...exampleStatement(ex.putBody), destination: `etc/${hard}`, action: null },
    ];
    const endorsements: Array<[string, string | null]> = [
      [ex.keyBody.publicKey, ex.keyBody.notAfter],
      [ex.keyBody.publicKey, null],
      [ex.keyBody.publicKey, "2027-06-01T00:00:00.1239+01:00"],
      [ex.keyBody.publicKey, "2027-06-01T00:00:00Z"],
    ];
    const script = ex.python + `
import sys
cases = json.load(sys.stdin)
for fi in cases["fileinfos"]:
    print(fileinfo_bytes(fi["app"], fi["name"], fi).hex())
for key, not_after in cases["endorsements"]:
    print(endorsement_bytes(key, not_after).hex())
print(json.dumps(cases["defaultForm"]))
if cases["verify"]:
    from cryptography.exceptions import InvalidSignature
    key, fi, endorsed = cases["verify"]
    verify(key, fi["signature"], fileinfo_bytes("vscreen", "rules.conf", fi))
    e = endorsed["endorsement"]
    verify(key, e["signature"], endorsement_bytes(endorsed["publicKey"], endorsed["notAfter"]))
    try:
        verify(key, fi["signature"], json.dumps(cases["defaultForm"]).encode())
        print("verified the default form")
    except InvalidSignature:
        print("verified both; refused the default form")
`;
    const statement = exampleStatement(ex.putBody);
    const defaultArray = JSON.parse(new TextDecoder().decode(fileinfoSigningBytes(statement)));
    // With the cryptography package, `verify` runs too.
    const verify = python ? [(await exampleKey(ex.seed)).publicKey, ex.putBody, ex.keyBody] : null;
    const out = await runPython(
      script,
      JSON.stringify({ fileinfos, endorsements, defaultForm: defaultArray, verify }),
    );
    const expected = [
      ...fileinfos.map((f) => toHex(fileinfoSigningBytes(f))),
      ...endorsements.map(([k, t]) => toHex(endorsementBytes(k, t))),
      ex.defaultForm,
      ...(verify ? ["verified both; refused the default form"] : []),
    ];
    assert.deepEqual(out.trim().split("\n"), expected);
    assert.ok(
      flat(ex.text).includes(
        '`json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()`',
      ),
      "the one-liner",
    );
  },
});

Deno.test("docs/protocol.md's chunk count is encryptChunks()'s: an exact multiple ends in an empty chunk", async () => {
  const text = section("## Package format");
  const header = JSON.parse(blocks(text, "json")[0]!);
  assert.equal(header.size % header.chunkSize, 0, "the header shows an exact multiple");
  assert.equal(header.ciphertextSize, ciphertextSizeFor(header.size, header.chunkSize));
  const f = flat(text);
  for (
    const v of [
      "`floor(size / chunkSize) + 1` chunks",
      "`ciphertextSize` = `size + 16 × (floor(size / chunkSize) + 1)`",
      "make 2 chunks, 1,048,592 and 16 bytes, 1,048,608 in all",
    ]
  ) assert.ok(f.includes(v), v);
  const key = await importContentKey(new Uint8Array(32));
  const chunkSize = 1024;
  for (const size of [0, 1, 1023, 1024, 2048, 2049]) {
    const chunks = await Array.fromAsync(
      encryptChunks(ReadableStream.from([new Uint8Array(size)]), key, chunkSize),
    );
    assert.equal(chunks.length, Math.floor(size / chunkSize) + 1, `${size} bytes`);
    assert.equal(chunks.at(-1)!.length, (size % chunkSize) + 16, `${size} bytes: final chunk`);
    assert.equal(
      chunks.reduce((n, c) => n + c.length, 0),
      ciphertextSizeFor(size, chunkSize),
    );
  }
  // A header whose last full chunk was taken as the final one is 16 bytes short: refused.
  const short = {
    ...header,
    ciphertextSha256: "0".repeat(64),
    ciphertextSize: header.ciphertextSize - 16,
  };
  const json = utf8(JSON.stringify(short));
  const prefix = concatBytes([
    utf8("NOCPKG1\n"),
    new Uint8Array([0, 0, json.length >> 8, json.length & 0xff]),
    json,
    new Uint8Array([0, 64]),
    new Uint8Array(64),
  ]);
  assert.throws(() => parsePackagePrefix(prefix), /sizes do not agree/);
});

/** RFC 9180 LabeledExtract / LabeledExpand (32 bytes) for DHKEM(X25519, HKDF-SHA256). */
function kemLabeled(prk: Uint8Array | null, label: string, ikm: Uint8Array): Uint8Array {
  const suite = concatBytes([utf8("HPKE-v1KEM"), new Uint8Array([0, 0x20])]);
  if (prk === null) {
    return new Uint8Array(
      createHmac("sha256", new Uint8Array(0)).update(concatBytes([suite, utf8(label), ikm]))
        .digest(),
    );
  }
  return new Uint8Array(
    createHmac("sha256", prk).update(
      concatBytes([new Uint8Array([0, 32]), suite, utf8(label), ikm, new Uint8Array([1])]),
    ).digest(),
  );
}

Deno.test("docs/protocol.md's NOC_MASTER_KEY derivation gives its values and nocKeysFromSeed()'s encryptionKey", async () => {
  const text = section("### The NOC's keys and `NOC_MASTER_KEY`");
  const master = /master key of the \[example above\][^`]*`([A-Za-z0-9_-]{43})`/.exec(flat(text))
    ?.[1];
  const encryptionKey = /the `encryptionKey` `([A-Za-z0-9_-]{43})`/.exec(flat(text))?.[1];
  assert.ok(master && encryptionKey, "the master key and encryptionKey");
  const publishing = section("## Publishing packages: `POST /v1/admin/packages`");
  assert.ok(publishing.includes(master) && publishing.includes(encryptionKey), "the same example");
  // HKDF-SHA256, salt 32 zero bytes, info appliance-noc x25519/1, 32 bytes.
  const base = await crypto.subtle.importKey("raw", fromBase64Url(master), "HKDF", false, [
    "deriveBits",
  ]);
  const ikm = new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: new Uint8Array(32),
        info: utf8("appliance-noc x25519/1"),
      },
      base,
      256,
    ),
  );
  // LabeledExtract with an empty salt, then LabeledExpand to 32 bytes.
  const dkpPrk = kemLabeled(null, "dkp_prk", ikm);
  const sk = kemLabeled(dkpPrk, "sk", new Uint8Array(0));
  const shown = `ikm     ${toHex(ikm)}\ndkp_prk ${toHex(dkpPrk)}\nsk      ${toHex(sk)}`;
  assert.equal(blocks(text, "text")[0], shown);
  const priv = createPrivateKey({
    key: Buffer.from(concatBytes([Uint8Array.fromHex("302e020100300506032b656e04220420"), sk])),
    format: "der",
    type: "pkcs8",
  });
  const pub = new Uint8Array(createPublicKey(priv).export({ format: "der", type: "spki" }))
    .slice(-32);
  assert.equal(toBase64Url(pub), encryptionKey);
  // The NOC's own derivation; the signing key plays no part in it.
  for (const seed of [newSeed(), newSeed()]) {
    assert.equal((await nocKeysFromSeed(seed, { master })).hpke.publicKey, encryptionKey);
  }
});

Deno.test({
  name: "docs/protocol.md's Python derives the NOC's encryptionKey from NOC_MASTER_KEY" +
    (python ? "" : " [skipped: no python3 with the cryptography package]"),
  ignore: !python,
  fn: async () => {
    const text = section("### The NOC's keys and `NOC_MASTER_KEY`");
    const code = blocks(text, "python")[0];
    assert.ok(code, "the Python block");
    const master = "iQoFNCyxLIf31foA1LAMLcuRgGzvtt8CO7KGYVvTX0Y";
    const sk = /^sk\s+([0-9a-f]{64})$/m.exec(blocks(text, "text")[0]!)?.[1];
    const out = await runPython(
      code + `\nsk, public = noc_encryption_key("${master}")\nprint(sk.hex())\nprint(public)\n`,
    );
    const other = await runPython(
      code + `\nprint(noc_encryption_key("${newSeed()}")[1])\n`,
    );
    assert.deepEqual(out.trim().split("\n"), [
      sk,
      (await nocKeysFromSeed(newSeed(), { master })).hpke.publicKey,
    ]);
    assert.notEqual(other.trim(), out.trim().split("\n")[1]);
  },
});

/** The rows of docs/protocol.md's SecureBeat field table, by field (`health.disks`, ...). */
function beatFieldRows(): Map<string, string> {
  const at = doc.indexOf("## SecureBeat: `POST /v1/beats`");
  const table = doc.slice(
    doc.indexOf("| Field ", at),
    doc.indexOf("\n\n", doc.indexOf("| Field ", at)),
  );
  const rows = new Map<string, string>();
  for (const line of table.split("\n")) {
    const field = /^\| `([A-Za-z.]+)` /.exec(line)?.[1];
    if (field) rows.set(field, line);
  }
  return rows;
}

/** What the limits test reads of a JSON Schema node. */
interface SchemaNode {
  type?: string;
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  prefixItems?: unknown;
  items?: SchemaNode;
  properties?: Record<string, SchemaNode>;
  propertyNames?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
}

/** The largest n in [lo, hi] for which ok(n) holds (ok is true up to some n, false after). */
function largest(lo: number, hi: number, ok: (n: number) => boolean): number {
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (ok(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

Deno.test("docs/protocol.md's SecureBeat table states every limit the beat schema enforces", () => {
  const rows = beatFieldRows();
  const schema = z.toJSONSchema(beatSchema(defaultSettings.maxAppDataBytes), {
    unrepresentable: "any",
    io: "input",
  }) as SchemaNode;
  // Every constrained leaf of the schema (a string's length or pattern, a list's length), with the
  // words the table must show for it in the row of its field (the row of its nearest documented
  // ancestor), and the leaf's own name when it is a part of that field.
  const missing: string[] = [];
  const need = (path: string[], leaf: string | null, words: string) => {
    let row: string | undefined;
    for (let n = path.length; n > 0 && row === undefined; n--) {
      row = rows.get(path.slice(0, n).join("."));
    }
    if (row === undefined) {
      missing.push(`${path.join(".")}: no row in the table`);
      return;
    }
    for (const w of leaf ? [`\`${leaf}\``, words] : [words]) {
      if (!row.includes(w)) missing.push(`${path.join(".")}: ${w}`);
    }
  };
  const walk = (s: SchemaNode, path: string[], leaf: string | null) => {
    if (s.type === "string") {
      if (s.format) return; // UUID, ISO time: documented by name
      if (s.pattern) need(path, leaf, `\`${s.pattern}\``);
      if (s.minLength !== undefined && s.maxLength !== undefined) {
        need(path, leaf, `${s.minLength}–${s.maxLength} characters`);
      } else if (s.maxLength !== undefined) need(path, leaf, `≤ ${s.maxLength}`);
    } else if (s.type === "array") {
      if (s.prefixItems) return; // a fixed tuple (health.load)
      if (s.maxItems !== undefined) need(path, leaf, `≤ ${s.maxItems}`);
      if (s.items) walk(s.items, path, null);
    } else if (s.type === "object") {
      for (const [k, v] of Object.entries(s.properties ?? {})) {
        const p = [...path, k];
        walk(v, p, rows.has(p.join(".")) || path.length === 0 ? null : k);
      }
      if (s.propertyNames) {
        walk(s.propertyNames, path, path.length === 1 ? "<app>" : "<key>");
      }
      if (s.additionalProperties && typeof s.additionalProperties === "object") {
        walk(s.additionalProperties, path, null);
      }
    }
  };
  walk(schema, [], null);

  // What JSON Schema cannot say, found by trying the schema itself.
  const parses = (overrides: Record<string, unknown>) =>
    beatSchema(defaultSettings.maxAppDataBytes).safeParse(
      sampleBeat(1, new Date(), overrides),
    ).success;
  const maxApps = largest(
    1,
    1000,
    (n) =>
      parses({ apps: Object.fromEntries(Array.from({ length: n }, (_, i) => [`app${i}`, {}])) }),
  );
  need(["apps"], null, `≤ ${maxApps} apps`);
  // One application's data: measured on its compact re-encoding (JSON.stringify), in bytes.
  const overhead = JSON.stringify({ k: "" }).length;
  const maxBytes = largest(
    overhead,
    1 << 22,
    (n) => parses({ apps: { a: { k: "x".repeat(n - overhead) } } }),
  );
  assert.equal(maxBytes, defaultSettings.maxAppDataBytes, "measured as JSON.stringify's bytes");
  need(["apps"], null, `≤ ${maxBytes / 1024} KiB (${maxBytes.toLocaleString("en-US")} bytes`);
  need(["apps"], null, "compact re-encoding");
  const maxHost = largest(1, 4096, (n) => hostnameSchema.safeParse("a".repeat(n)).success);
  need(["hostname"], null, `≤ ${maxHost} characters`);
  assert.deepEqual(missing, [], "limits the table does not state");
});
