/**
 * Offline signing with ordinary keys and ordinary archives (issue 17 item 3): Ed25519 keys made by
 * real `openssl`, payloads made by real `tar`, the real CLI run as a process against a NOC served
 * over real HTTP, and a real agent installing what was published.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { agentBox, serveNoc } from "./_agent.ts";
import { assignToAll } from "./_components.ts";
import { newSeed } from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { contentKeyCache } from "../noc/services/publishing.ts";
import type { Db } from "../noc/db/db.ts";
import { run, runCli } from "./_process.ts";

/** Runs a shell pipeline; its standard output, trimmed. */
async function sh(script: string): Promise<string> {
  const r = await run("/bin/sh", ["-c", script]);
  assert.equal(r.code, 0, `${script}: ${r.err}`);
  return r.out.trim();
}

async function openssl(...args: string[]): Promise<void> {
  const r = await run("openssl", args);
  assert.equal(r.code, 0, `openssl ${args.join(" ")}: ${r.err}`);
}

/** An Ed25519 key pair made by `openssl genpkey`: `<name>.pem` and its `<name>.pub.pem`. */
async function opensslKey(work: string, name: string): Promise<{ pem: string; pub: string }> {
  const pem = `${work}/${name}.pem`, pub = `${work}/${name}.pub.pem`;
  await openssl("genpkey", "-algorithm", "ed25519", "-out", pem);
  await openssl("pkey", "-in", pem, "-pubout", "-out", pub);
  return { pem, pub };
}

/** The raw public key of a PEM key in base64url, as docs/operations.md shows for the roots. */
function rawPublicKey(pem: string): Promise<string> {
  return sh(
    `openssl pkey -in '${pem}' -pubout -outform DER | tail -c 32 | basenc --base64url | tr -d =`,
  );
}

/** The same private key in today's form (the 32-byte seed in base64url, as `noc keygen` writes). */
async function todaysForm(pem: string, out: string): Promise<string> {
  await Deno.writeTextFile(
    out,
    await sh(`openssl pkey -in '${pem}' -outform DER | tail -c 32 | basenc --base64url | tr -d =`) +
      "\n",
    { mode: 0o600 },
  );
  return out;
}

/** A payload folder: an executable install program that records the version it installs. */
async function payloadDir(dir: string): Promise<string> {
  await Deno.mkdir(`${dir}/lib`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/install`,
    '#!/bin/sh\nset -e\necho "$NOC_VERSION $(cat lib/motd.txt)" >> "$NOC_ROOT/ran"\n',
    { mode: 0o755 },
  );
  await Deno.writeTextFile(`${dir}/lib/motd.txt`, "hello");
  return dir;
}

/** A NOC in release-keys-only mode (its key signs catalogs only), `roots` vouched for in config. */
async function releaseKeysOnlyNoc(db: Db, roots: string[]) {
  const noc = await serveNoc(db, { releaseKeyRoots: roots });
  noc.deps.keys = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
  noc.deps.contentKeys = contentKeyCache(noc.deps.keys);
  return noc;
}

async function rows(db: Db, table: "components" | "blobs" | "release_keys"): Promise<number> {
  const q = {
    components: () => db.sql<{ n: number }>`select count(*)::int as n from components`,
    blobs: () => db.sql<{ n: number }>`select count(*)::int as n from blobs`,
    release_keys: () => db.sql<{ n: number }>`select count(*)::int as n from release_keys`,
  };
  return (await q[table]())[0]!.n;
}

/** A server that records every request and accepts none. */
interface WatchedNoc {
  /** NOC_URL (the server) and NOC_TOKEN (unused) for the CLI. */
  env: Record<string, string>;
  /** Every request it got, as `METHOD /path`. */
  seen: string[];
  close(): Promise<void>;
}

/** A server that records every request and accepts none: the CLI must not reach it. */
function watchedNoc(): WatchedNoc {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    seen.push(`${req.method} ${new URL(req.url).pathname}`);
    return Response.json({ error: "unexpected", message: "no request expected" }, { status: 500 });
  });
  return {
    env: { NOC_URL: `http://127.0.0.1:${server.addr.port}`, NOC_TOKEN: "noc_adm_unused" },
    seen,
    close: () => server.shutdown(),
  };
}

/**
 * A test of the CLI alone: `fn` gets a scratch folder and a watched NOC, and must not reach it.
 * Both are gone afterwards.
 */
function offlineTest(name: string, fn: (work: string, noc: WatchedNoc) => Promise<void>): void {
  Deno.test(name, async () => {
    const work = await Deno.makeTempDir({ prefix: "cli-pem-" });
    const noc = watchedNoc();
    try {
      await fn(work, noc);
      assert.deepEqual(noc.seen, [], "nothing reached the NOC");
    } finally {
      await noc.close();
      await Deno.remove(work, { recursive: true });
    }
  });
}

dbTest(
  "an openssl Ed25519 key registered from PEM signs a tar czf payload and a real agent installs it",
  async ({ db }) => {
    const work = await Deno.makeTempDir({ prefix: "cli-pem-" });
    const rootKey = await opensslKey(work, "root");
    const nextKey = await opensslKey(work, "next");
    const noc = await releaseKeysOnlyNoc(db, [await rawPublicKey(rootKey.pem)]);
    const env = { NOC_URL: noc.url, NOC_TOKEN: noc.adminToken };
    const box = await agentBox();
    try {
      // The root, given as a PEM file; the next key, as PEM on the line, endorsed by the root's PEM.
      const root = await runCli(["release-key", "add", rootKey.pub, "--label", "root"], env);
      assert.equal(root.code, 0, root.err);
      const rootKid = JSON.parse(root.out).kid;
      assert.equal(JSON.parse(root.out).publicKey, await rawPublicKey(rootKey.pem));
      const next = await runCli([
        "release-key",
        "add",
        await Deno.readTextFile(nextKey.pub),
        "--label",
        "next",
        "--endorse-with",
        rootKey.pem,
      ], env);
      assert.equal(next.code, 0, next.err);
      const nextKid = JSON.parse(next.out).kid;
      assert.equal(JSON.parse(next.out).endorsement.signer, rootKid);

      // A payload as people make it: GNU tar, the folder's contents with their "./" entries.
      const dir = await payloadDir(`${work}/app`);
      await sh(`tar czf '${work}/p.tgz' -C '${dir}' .`);
      const ref = ["--app", "demo", "--name", "demo"];
      const sent = await runCli(
        ["package", `${work}/p.tgz`, ...ref, "--version", "1.0.0", "--key", nextKey.pem],
        env,
      );
      assert.equal(sent.code, 0, sent.err);
      assert.equal(JSON.parse(sent.out).signerKid, nextKid);

      // Built here, uploaded later; the same key in today's form signs with the same key id.
      const seedFile = await todaysForm(nextKey.pem, `${work}/next.key`);
      for (const [version, key] of [["1.0.1", nextKey.pem], ["1.0.2", seedFile]] as const) {
        const out = `${work}/demo-${version}.nocpkg`;
        const built = await runCli(
          ["package", `${work}/p.tgz`, ...ref, "--version", version, "--key", key, "--out", out],
          env,
        );
        assert.equal(built.code, 0, built.err);
        assert.match(built.out, new RegExp(`signed by ${nextKid}\\)`));
        const up = await runCli(["upload", out], env);
        assert.equal(up.code, 0, up.err);
        assert.equal(JSON.parse(up.out).signerKid, nextKid);
      }

      const token = await noc.enrollmentToken();
      const enrolled = await box.run(["enroll", "--noc", noc.url, "--token", token]);
      assert.equal(enrolled.code, 0, enrolled.stderr + enrolled.stdout);
      await assignToAll(noc, "package", { app: "demo", name: "demo", version: "1.0.0" });
      const cycle = await box.run(["once", "--allow-http-files"]);
      assert.equal(cycle.code, 0, cycle.stdout + cycle.stderr);
      assert.equal(await box.readRoot("ran"), "1.0.0 hello\n");
    } finally {
      await box.remove();
      await noc.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);

offlineTest(
  "noc refuses encrypted, RSA, EC and non-key files as release keys, naming the problem",
  async (work, noc) => {
    const good = await opensslKey(work, "good");
    const dir = await payloadDir(`${work}/app`);
    await openssl(
      "genpkey",
      "-algorithm",
      "ed25519",
      "-aes256",
      "-pass",
      "pass:secret",
      "-out",
      `${work}/encrypted.pem`,
    );
    await openssl(
      "genpkey",
      "-algorithm",
      "RSA",
      "-pkeyopt",
      "rsa_keygen_bits:2048",
      "-out",
      `${work}/rsa.pem`,
    );
    await openssl("pkey", "-in", `${work}/rsa.pem`, "-pubout", "-out", `${work}/rsa.pub.pem`);
    await openssl(
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-out",
      `${work}/ec.pem`,
    );
    await openssl("genpkey", "-algorithm", "x25519", "-out", `${work}/x25519.pem`);
    await Deno.writeTextFile(`${work}/garbage.key`, "not a key at all\n");
    const badKeys: Array<[string, RegExp]> = [
      [`${work}/encrypted.pem`, /is encrypted: .*openssl pkey -in <encrypted\.pem> -out/],
      [`${work}/rsa.pem`, /is an RSA private key, not Ed25519/],
      [`${work}/ec.pem`, /is an EC private key, not Ed25519/],
      [`${work}/x25519.pem`, /is an X25519 private key, not Ed25519/],
      [good.pub, /is a public key: signing needs the private key/],
      [`${work}/garbage.key`, /is not an Ed25519 private key: .*openssl genpkey/],
      [`${work}/missing.pem`, /cannot be read/],
    ];
    const ref = ["--app", "demo", "--name", "demo", "--version", "1"];
    const out = `${work}/out.nocpkg`;
    const everyPlace = (key: string) => [
      ["package", dir, ...ref, "--key", key, "--out", out, "--noc-key", "x"],
      ["package", dir, ...ref, "--key", key],
      ["release-key", "add", good.pub, "--label", "l", "--endorse-with", key],
      ["fileinfo", "put", "demo", "motd", "--destination", "etc/motd", "--mode", "0644"]
        .concat(["--key", key]),
    ];
    for (const [key, message] of badKeys) {
      // Every place that takes a key reads it the same way: all of them for the first bad key.
      for (const args of key === badKeys[0]![0] ? everyPlace(key) : everyPlace(key).slice(0, 1)) {
        const r = await runCli(args, noc.env);
        assert.equal(r.code, 64, `${args.join(" ")}: ${r.out}${r.err}`);
        assert.match(r.err, message, args.join(" "));
        assert.ok(r.err.includes(key), `the message names the file: ${r.err}`);
      }
      assert.equal(await Deno.stat(out).catch(() => null), null, "nothing written");
    }

    // Public keys: a private key, another algorithm, a weak key, a word that is neither.
    const privateText = await Deno.readTextFile(good.pem);
    const zeroSpki = new Uint8Array(44);
    zeroSpki.set([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
    const zeroKey =
      `-----BEGIN PUBLIC KEY-----\n${zeroSpki.toBase64()}\n-----END PUBLIC KEY-----\n`;
    const badPublic: Array<[string, RegExp]> = [
      [good.pem, /is a private key; keep it offline .*openssl pkey -in <key\.pem> -pubout/],
      [privateText, /is a private key; keep it offline/],
      [`${work}/rsa.pub.pem`, /is an RSA public key, not Ed25519/],
      [zeroKey, /point of small order/],
      [`${work}/nowhere.pub`, /is neither a public key .* nor a file holding one/],
      [`${work}/garbage.key`, /is not an Ed25519 public key/],
    ];
    for (const [arg, message] of badPublic) {
      const r = await runCli(["release-key", "add", arg, "--label", "l"], noc.env);
      assert.equal(r.code, 64, `${arg}: ${r.out}${r.err}`);
      assert.match(r.err, message);
      const secret = privateText.split("\n")[1]!;
      assert.ok(!r.err.includes(secret), "a private key is never printed");
    }
  },
);

offlineTest(
  "noc package refuses a payload no appliance could install, and sends and writes nothing",
  async (work, noc) => {
    const key = await opensslKey(work, "release");
    const make = async (name: string, files: Record<string, [string, number]>) => {
      const dir = `${work}/${name}`;
      await Deno.mkdir(dir);
      for (const [path, [text, mode]] of Object.entries(files)) {
        await Deno.writeTextFile(`${dir}/${path}`, text, { mode });
      }
      return dir;
    };
    const noInstall = await make("no-install", { "data.txt": ["x", 0o644] });
    const notExecutable = await make("not-executable", { install: ["#!/bin/sh\n", 0o644] });
    const linked = await make("linked", { install: ["#!/bin/sh\n", 0o755] });
    await Deno.symlink("/etc/passwd", `${linked}/passwd`);
    for (const d of [noInstall, notExecutable, linked]) await sh(`tar czf '${d}.tgz' -C '${d}' .`);
    await Deno.writeTextFile(`${work}/plain.tgz`, "#!/bin/sh\n");
    await sh(`echo hello | gzip > '${work}/not-tar.tgz'`);
    await sh(
      `python3 -c "import tarfile, io
t = tarfile.open('${work}/escape.tgz', 'w:gz')
for n in ('install', '../evil'):
    i = tarfile.TarInfo(n); i.size = 10; i.mode = 0o755; t.addfile(i, io.BytesIO(b'#!/bin/sh\\n'))
t.close()"`,
    );
    const cases: Array<[string, RegExp]> = [
      [`${noInstall}.tgz`, /has no "install" program/],
      [`${notExecutable}.tgz`, /"install" is not executable/],
      [`${linked}.tgz`, /symbolic link/],
      [`${work}/plain.tgz`, /not gzip/],
      [`${work}/not-tar.tgz`, /not a payload an appliance can install: \S/],
      [`${work}/escape.tgz`, /"\.\.\/evil"/],
      [noInstall, /no install program/],
      [notExecutable, /is not executable \(chmod \+x it\)/],
      [linked, /is a symbolic link/],
      [`${work}/nothing-here.tgz`, /is neither a folder nor a payload file/],
    ];
    const ref = ["--app", "demo", "--name", "demo", "--version", "1"];
    const out = `${work}/out.nocpkg`;
    for (const [i, [payload, message]] of cases.entries()) {
      // Sent as it is (the NOC would sign) or signed here: the same check comes first. Both ways
      // for the first cases, one of them for the rest.
      const ways = [
        ["package", payload, ...ref],
        ["package", payload, ...ref, "--key", key.pem, "--out", out, "--noc-key", "x"],
      ];
      for (const args of i < 3 ? ways : [ways[i % 2]!]) {
        const r = await runCli(args, noc.env);
        assert.equal(r.code, 64, `${args.join(" ")}: ${r.out}${r.err}`);
        assert.match(r.err, message, args.join(" "));
      }
      assert.equal(await Deno.stat(out).catch(() => null), null, `${payload}: nothing written`);
    }
  },
);

dbTest(
  "POST /v1/admin/release-keys takes a PEM public key as its base64url form, and names a bad one",
  async ({ db }) => {
    const work = await Deno.makeTempDir({ prefix: "cli-pem-" });
    const noc = await serveNoc(db);
    try {
      const key = await opensslKey(work, "release");
      const raw = await rawPublicKey(key.pem);
      const pem = await Deno.readTextFile(key.pub);
      const added = await noc.admin("POST", "/v1/admin/release-keys", {
        publicKey: pem,
        label: "from openssl",
      });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      assert.equal(added.body.publicKey, raw);
      const again = await noc.admin("POST", "/v1/admin/release-keys", {
        publicKey: raw,
        label: "same key, other form",
      });
      assert.equal(again.status, 409, "the same key in either form is one key");
      assert.equal(again.body.error, "key_in_use");
      assert.ok(again.body.message.includes(added.body.kid));

      await openssl("genpkey", "-algorithm", "RSA", "-out", `${work}/rsa.pem`);
      await openssl("pkey", "-in", `${work}/rsa.pem`, "-pubout", "-out", `${work}/rsa.pub.pem`);
      const privateText = await Deno.readTextFile(key.pem);
      const refusals: Array<[string, string, RegExp]> = [
        ["an RSA key", await Deno.readTextFile(`${work}/rsa.pub.pem`), /RSA public key/],
        ["a private key", privateText, /is a private key/],
        ["bad base64", "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----", /not base64/],
        ["no END line", "-----BEGIN PUBLIC KEY-----\nMCow", /no END line/],
        ["neither form", "hello", /base64url, or a PEM public key/],
        ["too long", `-----BEGIN PUBLIC KEY-----${"A".repeat(5000)}`, /4096/],
      ];
      for (const [what, publicKey, message] of refusals) {
        const r = await noc.admin("POST", "/v1/admin/release-keys", { publicKey, label: what });
        assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error, "invalid_body", what);
        assert.equal(r.body.issues[0].path, "publicKey", what);
        assert.match(r.body.message, message, what);
        assert.ok(!r.body.message.includes(privateText.split("\n")[1]!), "never echoed");
      }
      assert.equal(await rows(db, "release_keys"), 1, "nothing refused was stored");
      assert.equal(await rows(db, "components"), 0);
    } finally {
      await noc.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);
