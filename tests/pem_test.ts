/**
 * protocol/crypto/pem.ts against keys made by real `openssl`: the bytes it reads are the bytes
 * `openssl pkey -text -noout` prints, and every other kind of key or file is refused by name.
 */
import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import {
  KeyFormatError,
  MAX_KEY_TEXT,
  readEd25519PublicKey,
  readEd25519Seed,
} from "../protocol/crypto/pem.ts";
import { ed25519PublicOf, exportRawPublic, importEd25519Seed } from "../protocol/crypto/ed25519.ts";
import { fromBase64Url, toBase64Url, toHex } from "../protocol/util/encoding.ts";

async function openssl(cwd: string, ...args: string[]): Promise<string> {
  const o = await new Deno.Command("openssl", {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const d = new TextDecoder();
  assert.equal(o.code, 0, `openssl ${args.join(" ")}: ${d.decode(o.stderr)}`);
  return d.decode(o.stdout);
}

/** The hex bytes under `field:` in `openssl pkey -text -noout` output (`aa:bb:…` lines). */
function printedHex(text: string, field: "priv" | "pub"): string {
  const m = new RegExp(`^${field}:\\n((?:\\s+[0-9a-f:]+\\n)+)`, "m").exec(text);
  assert.ok(m, `no ${field}: in ${text}`);
  return m[1]!.replace(/[\s:]/g, "");
}

/** Runs `fn` with a fresh folder, removed afterwards. */
async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pem-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `openssl <args…> -out <name>` in `dir`; the file's text. */
async function made(dir: string, name: string, ...args: string[]): Promise<string> {
  await openssl(dir, ...args, "-out", name);
  return await Deno.readTextFile(`${dir}/${name}`);
}

/** Asserts `fn` throws a KeyFormatError matching `message` that quotes no line of `secret`. */
function refuses(fn: () => unknown, message: RegExp, secret = ""): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KeyFormatError, `a KeyFormatError, not ${e}`);
    assert.match(e.message, message);
    for (const line of secret.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"))) {
      assert.ok(!e.message.includes(line), `the message quotes the key: ${e.message}`);
    }
    return true;
  });
}

Deno.test("readEd25519Seed() and readEd25519PublicKey() read openssl's Ed25519 PEM as the bytes openssl prints", async () => {
  await inTemp(async (dir) => {
    const pem = await made(dir, "k.pem", "genpkey", "-algorithm", "ed25519");
    const pub = await made(dir, "k.pub.pem", "pkey", "-in", "k.pem", "-pubout");
    const printed = await openssl(dir, "pkey", "-in", "k.pem", "-text", "-noout");
    const printedPub = await openssl(dir, "pkey", "-pubin", "-in", "k.pub.pem", "-text", "-noout");

    const seed = readEd25519Seed(pem, "k.pem");
    assert.equal(seed.length, 32);
    assert.equal(toHex(seed), printedHex(printed, "priv"));
    const raw = readEd25519PublicKey(pub, "k.pub.pem");
    assert.equal(toHex(fromBase64Url(raw)), printedHex(printedPub, "pub"));
    assert.equal(toHex(fromBase64Url(raw)), printedHex(printed, "pub"));

    // The seed is the key: Web Crypto derives the same public half from it.
    const derived = await exportRawPublic(await ed25519PublicOf(await importEd25519Seed(seed)));
    assert.equal(toBase64Url(derived), raw);

    // The project's own forms of the same key read as the same bytes.
    assert.deepEqual(readEd25519Seed(`${toBase64Url(seed)}\n`, "k.key"), seed);
    assert.equal(readEd25519PublicKey(` ${raw}\n`, "k.pub"), raw);

    // Explanatory text around the block (RFC 7468 §2) and CRLF line ends are no obstacle.
    assert.deepEqual(readEd25519Seed(`release key, 2026\n${pem}trailing\n`, "k.pem"), seed);
    assert.deepEqual(readEd25519Seed(pem.replaceAll("\n", "\r\n"), "k.pem"), seed);
    assert.equal(readEd25519PublicKey(`my key:\n${pub}`, "k.pub.pem"), raw);
  });
});

Deno.test("readEd25519Seed() reads a PKCS#8 v2 key carrying its public key (RFC 8410 §10.3)", () => {
  const rfc8410 = [
    "-----BEGIN PRIVATE KEY-----",
    "MHICAQEwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC",
    "oB8wHQYKKoZIhvcNAQkJFDEPDA1DdXJkbGUgQ2hhaXJzgSEAGb9ECWmEzf6FQbrB",
    "Z9w7lshQhqowtrbLDFw4rXAxZuE=",
    "-----END PRIVATE KEY-----",
  ].join("\n");
  assert.equal(
    toHex(readEd25519Seed(rfc8410, "rfc")),
    "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842",
  );
});

Deno.test("node:crypto refuses an encrypted PEM without a passphrase at once, without prompting", async () => {
  await inTemp(async (dir) => {
    const enc = await made(
      dir,
      "enc.pem",
      ...["genpkey", "-algorithm", "ed25519", "-aes256", "-pass", "pass:x"],
    );
    assert.match(enc, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    // What pem.ts relies on not happening: a prompt on the terminal. Deno's node:crypto throws.
    assert.throws(() => createPrivateKey(enc), {
      code: "ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED",
    });
    assert.throws(() => createPrivateKey({ key: enc, passphrase: "" }), /bad decrypt/);
    assert.equal(
      (createPrivateKey({ key: enc, passphrase: "x" }).export({ format: "jwk" }) as { d: string })
        .d,
      toBase64Url(
        readEd25519Seed(
          await made(dir, "plain.pem", "pkey", "-in", "enc.pem", "-passin", "pass:x"),
          "plain",
        ),
      ),
    );

    refuses(
      () => readEd25519Seed(enc, "Key file enc.pem"),
      /^Key file enc\.pem is encrypted: .*`openssl pkey -in <encrypted\.pem> -out <plain\.pem>`/,
      enc,
    );
    refuses(() => readEd25519PublicKey(enc, "enc.pem"), /is a private key; keep it offline/, enc);
    // The legacy form (RFC 1421 headers), as `openssl rsa -aes256 -traditional` writes for RSA.
    const legacy = enc.replace(
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
      "-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\n",
    ).replace("ENCRYPTED PRIVATE KEY-----\n", "PRIVATE KEY-----\n");
    refuses(() => readEd25519Seed(legacy, "old.pem"), /^old\.pem is encrypted: /, legacy);
  });
});

Deno.test("readEd25519Seed() and readEd25519PublicKey() name the algorithm of an RSA, EC, X25519, X448 or Ed448 key", async () => {
  await inTemp(async (dir) => {
    const keys: Array<[string, string[], RegExp]> = [
      ["rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"], /an RSA private key/],
      ["pss", ["-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:1024"], /an RSA-PSS private/],
      ["ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], /an EC private key/],
      ["x25519", ["-algorithm", "x25519"], /an X25519 private key/],
      ["x448", ["-algorithm", "x448"], /an X448 private key/],
      ["ed448", ["-algorithm", "ed448"], /an Ed448 private key/],
    ];
    for (const [name, args, message] of keys) {
      const pem = await made(dir, `${name}.pem`, "genpkey", ...args);
      const pub = await made(dir, `${name}.pub.pem`, "pkey", "-in", `${name}.pem`, "-pubout");
      const notEd = /, not Ed25519: release keys are Ed25519 \(make one with `openssl genpkey/;
      refuses(() => readEd25519Seed(pem, name), message, pem);
      refuses(() => readEd25519Seed(pem, name), notEd, pem);
      const publicMessage = new RegExp(message.source.replace("private", "public"));
      refuses(() => readEd25519PublicKey(pub, name), publicMessage);
      refuses(() => readEd25519PublicKey(pub, name), notEd);
      refuses(() => readEd25519PublicKey(pem, name), /is a private key; keep it offline/, pem);
    }
    // The traditional (PKCS#1, SEC 1) forms name their algorithm in the label.
    const rsa = await made(dir, "rsa.trad.pem", "rsa", "-in", "rsa.pem", "-traditional");
    assert.match(rsa, /^-----BEGIN RSA PRIVATE KEY-----/);
    refuses(() => readEd25519Seed(rsa, "rsa"), /^rsa is an RSA private key, not Ed25519/, rsa);
    const ec = await made(dir, "ec.trad.pem", "ec", "-in", "ec.pem");
    assert.match(ec, /^-----BEGIN EC PRIVATE KEY-----/);
    refuses(() => readEd25519Seed(ec, "ec"), /^ec is an EC private key, not Ed25519/, ec);
    const rsaPub = await made(dir, "rsa.p1.pem", "rsa", "-in", "rsa.pem", "-RSAPublicKey_out");
    refuses(() => readEd25519PublicKey(rsaPub, "p1"), /^p1 is an RSA public key, not Ed25519/);
  });
});

Deno.test("a certificate, an OpenSSH key and a key of the wrong half are refused, saying what they are", async () => {
  await inTemp(async (dir) => {
    await openssl(
      dir,
      ...["req", "-x509", "-newkey", "ed25519", "-nodes", "-subj", "/CN=x", "-keyout", "k"],
      ...["-out", "c.pem"],
    );
    const cert = await Deno.readTextFile(`${dir}/c.pem`);
    // node:crypto's createPublicKey would answer the certificate's key: refused by its label.
    refuses(() => readEd25519PublicKey(cert, "c.pem"), /^c\.pem is a certificate, not a key$/);
    refuses(() => readEd25519Seed(cert, "c.pem"), /^c\.pem is a certificate, not a key$/);

    const pem = await Deno.readTextFile(`${dir}/k`);
    const pub = await made(dir, "k.pub", "pkey", "-in", "k", "-pubout");
    refuses(
      () => readEd25519Seed(pub, "k.pub"),
      /^k\.pub is a public key: signing needs the private key$/,
    );
    refuses(
      () => readEd25519PublicKey(pem, "k"),
      /^k is a private key; keep it offline and give its public half \(`openssl pkey -in <key\.pem> -pubout`\)$/,
      pem,
    );

    const ssh = await new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/id`],
      stdin: "null",
    }).output().catch(() => null);
    if (ssh?.success) {
      const id = await Deno.readTextFile(`${dir}/id`);
      refuses(
        () => readEd25519Seed(id, "id"),
        /^id is an OpenSSH private key; give an Ed25519 key in PEM/,
        id,
      );
      refuses(() => readEd25519PublicKey(id, "id"), /^id is a private key; keep it offline/, id);
      const idPub = await Deno.readTextFile(`${dir}/id.pub`);
      refuses(
        () => readEd25519PublicKey(idPub, "id.pub"),
        /^id\.pub is not an Ed25519 public key: give it in PEM/,
      );
    } else {
      // Without ssh-keygen, the label alone: the body is not what is judged.
      const id =
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n";
      refuses(
        () => readEd25519Seed(id, "id"),
        /^id is an OpenSSH private key; give an Ed25519 key in PEM/,
      );
    }
  });
});

Deno.test("readEd25519Seed() and readEd25519PublicKey() refuse text that is no key, naming what is wrong", async () => {
  await inTemp(async (dir) => {
    const pem = await made(dir, "k.pem", "genpkey", "-algorithm", "ed25519");
    const pub = await made(dir, "k.pub.pem", "pkey", "-in", "k.pem", "-pubout");
    const [pemHead, pemBody] = pem.split("\n") as [string, string];
    refuses(
      () => readEd25519Seed("not a key at all\n", "g"),
      /^g is not an Ed25519 private key: give one in PEM \(`openssl genpkey/,
    );
    refuses(
      () => readEd25519PublicKey("hello", "g"),
      /^g is not an Ed25519 public key: give it in PEM/,
    );
    refuses(
      () => readEd25519Seed(pem + pem, "two"),
      /^two holds 2 PEM blocks \(PRIVATE KEY, PRIVATE KEY\); give one key$/,
      pem,
    );
    refuses(
      () => readEd25519PublicKey(pub + pem, "two"),
      /^two holds 2 PEM blocks \(PUBLIC KEY, PRIVATE KEY\)/,
      pem,
    );
    refuses(
      () => readEd25519Seed(`${pemHead}\n${pemBody}\n`, "cut"),
      /^cut: its PEM "PRIVATE KEY" block has no END line$/,
      pem,
    );
    refuses(
      () => readEd25519PublicKey("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----", "b"),
      /^b: its PEM "PUBLIC KEY" block is not base64$/,
    );
    // Base64 of bytes that are no PKCS#8 / SPKI, or an Ed25519 key of the wrong length.
    const wrap = (label: string, hex: string) =>
      `-----BEGIN ${label}-----\n${
        btoa(String.fromCharCode(...hex.match(/../g)!.map((h) => parseInt(h, 16))))
      }\n-----END ${label}-----\n`;
    refuses(
      () => readEd25519Seed(wrap("PRIVATE KEY", "3000"), "e"),
      /^e: its PEM "PRIVATE KEY" is not a PKCS#8 Ed25519 key \(.+\)$/,
    );
    refuses(
      () =>
        readEd25519Seed(
          wrap("PRIVATE KEY", "302d020100300506032b657004210420" + "07".repeat(31)),
          "s",
        ),
      /^s: its PEM "PRIVATE KEY" is not a PKCS#8 Ed25519 key/,
    );
    refuses(
      () =>
        readEd25519PublicKey(wrap("PUBLIC KEY", "3029300506032b6570032000" + "11".repeat(31)), "p"),
      /^p: its PEM "PUBLIC KEY" is not an Ed25519 public key/,
    );
    refuses(
      () => readEd25519Seed(pem.replace(/PRIVATE KEY/g, "X509 CRL"), "crl"),
      /^crl holds a PEM "X509 CRL", not an Ed25519 key$/,
      pem,
    );
    // Bounded before anything is parsed.
    const long = `-----BEGIN PRIVATE KEY-----\n${
      "A".repeat(MAX_KEY_TEXT)
    }\n-----END PRIVATE KEY-----\n`;
    refuses(() => readEd25519Seed(long, "big"), /^big is longer than 16384 characters: not a key$/);
    refuses(() => readEd25519PublicKey(long, "big"), /^big is longer than 16384 characters/);
    // Only the form is judged here: the all-zero key (small order) is parsePublicKey's to refuse.
    const zero = wrap("PUBLIC KEY", "302a300506032b6570032100" + "00".repeat(32));
    assert.equal(readEd25519PublicKey(zero, "zero"), "A".repeat(43));
  });
});
