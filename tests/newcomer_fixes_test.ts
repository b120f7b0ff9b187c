/**
 * Faults a newcomer integrator met (issue 17), each through the surface they met it on: the admin
 * upload API (a signed package whose key is wrapped to the wrong party, gzip's other name, a chunk
 * layout that leaves out the empty final chunk, GNU tar's links), the agent's downloads against a
 * real HTTP server (what it logs when it resumes or gives bytes up), and a real NOC process
 * (every name its banner lists answers).
 */
// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dbTest, testNoc } from "./_harness.ts";
import { payload, signedPackage, upload, uploadSigned } from "./_components.ts";
import { startNoc } from "./_process.ts";
import { listenAddresses, loadConfig, wildcardNames } from "../noc/config.ts";
import {
  importContentKey,
  newContentKey,
  packageFormat,
  type PackageHeader,
  packagePrefix,
  wrapContentKey,
} from "../protocol/package/format.ts";
import { aesGcmSeal } from "../protocol/crypto/aead.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { newSeed } from "../protocol/keys.ts";
import { fromBase64Url, utf8 } from "../protocol/util/encoding.ts";
import { concatBytes } from "../protocol/util/bytes.ts";
import { download } from "../agent/download.ts";
import type { AgentLog } from "../agent/log.ts";
import { AgentError } from "../agent/errors.ts";

const okInstall = "#!/bin/sh\nexit 0\n";

// ---- 1. X-NOC-Wrapped-Key that does not unwrap ------------------------------------------------

dbTest(
  "a signed upload whose X-NOC-Wrapped-Key is not wrapped to the NOC names the NOC's encryptionKey and the HPKE info",
  async ({ db }) => {
    const noc = await testNoc(db);
    const ref = { app: "demo", name: "hello", version: "1.0.0" };
    const pkg = await signedPackage(noc, ref, await payload({ install: okInstall }));
    const keys = await noc.send(new Request("https://noc.test/v1/keys"));
    const encryptionKey = (await keys.json()).encryptionKey;
    assert.equal(encryptionKey, noc.deps.keys.hpke.publicKey);
    const info = [
      `${packageFormat} content key`,
      ref.app,
      ref.name,
      ref.version,
      pkg.header.ciphertextSha256,
    ].join("\\n");
    // Wrapped to an appliance's key (the catalog's party), and to the NOC for another version.
    const other = await nocKeysFromSeed(newSeed());
    const wrongParty = await wrapContentKey(
      pkg.contentKey,
      fromBase64Url(other.hpke.publicKey),
      pkg.header,
    );
    const wrongInfo = await wrapContentKey(
      pkg.contentKey,
      fromBase64Url(encryptionKey),
      { ...pkg.header, version: "1.0.1" },
    );
    for (const wrapped of [wrongParty, wrongInfo]) {
      const r = await uploadSigned(noc, { bytes: pkg.bytes, wrapped });
      assert.equal(r.status, 400);
      assert.equal(r.body.error, "bad_package");
      assert.equal(r.body.reason, "decrypt_failed", "the documented code is kept");
      assert.doesNotMatch(r.body.message, /appliance and package/);
      assert.ok(r.body.message.startsWith("X-NOC-Wrapped-Key does not unwrap"), r.body.message);
      assert.ok(r.body.message.includes(`encryptionKey ${encryptionKey} (GET /v1/keys)`));
      assert.ok(r.body.message.includes(`info "${info}"`), r.body.message);
    }
    const stored = await db.sql<{ n: number }>`
      select (select count(*) from components)::int + (select count(*) from blobs)::int as n`;
    assert.equal(stored[0]!.n, 0, "a refused upload leaves nothing");
    // The same package with its key wrapped right is published.
    assert.equal((await uploadSigned(noc, pkg)).status, 201);
  },
);

// ---- 2. Content types -------------------------------------------------------------------------

dbTest(
  "POST /v1/admin/packages takes application/x-gzip like application/gzip, and a 415 lists the accepted types",
  async ({ db }) => {
    const noc = await testNoc(db);
    const body = await payload({ install: okInstall });
    const r = await upload(
      noc,
      "/v1/admin/packages?app=demo&name=hello&version=1",
      body,
      "application/x-gzip",
    );
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.contentSha256, createHash("sha256").update(body).digest("hex"));
    assert.equal(r.body.signerKid, noc.deps.keys.kid);
    for (const [type, shown] of [["application/zip", '"application/zip"'], ["", "none"]]) {
      const res = await noc.app.request(
        "https://noc.test/v1/admin/packages?app=d&name=n&version=2",
        {
          method: "POST",
          headers: {
            authorization: `Bearer ${noc.adminToken}`,
            ...(type ? { "content-type": type } : {}),
          },
          body,
        },
      );
      assert.equal(res.status, 415);
      const answer = await res.json();
      assert.equal(answer.error, "unsupported_media_type");
      for (
        const t of [
          "application/gzip",
          "application/x-gzip",
          "application/octet-stream",
          "application/vnd.noc-package",
        ]
      ) assert.ok(answer.message.includes(t), `${answer.message} names ${t}`);
      assert.ok(answer.message.endsWith(`not ${shown}`), answer.message);
    }
  },
);

// ---- 3. A chunk layout without the empty final chunk ------------------------------------------

/** Seals `plain` in `chunkSize` chunks the wrong way: the last full chunk is marked final. */
async function lastFullChunkFinal(
  plain: Uint8Array<ArrayBuffer>,
  key: CryptoKey,
  chunkSize: number,
): Promise<Uint8Array> {
  const count = plain.length / chunkSize;
  const sealed: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setBigUint64(4, BigInt(i));
    const aad = new Uint8Array(packageFormat.length + 9);
    aad.set(utf8(packageFormat));
    new DataView(aad.buffer).setBigUint64(packageFormat.length, BigInt(i));
    aad[packageFormat.length + 8] = i === count - 1 ? 1 : 0;
    sealed.push(await aesGcmSeal(key, nonce, aad, plain.slice(i * chunkSize, (i + 1) * chunkSize)));
  }
  return concatBytes(sealed);
}

dbTest(
  "a signed package whose last full chunk is marked final is refused with the chunk count and ciphertext size expected",
  async ({ db }) => {
    const noc = await testNoc(db);
    const chunkSize = 1024;
    // A payload of exactly 3 chunks: the right layout has a 4th, empty, final chunk.
    const plain = new Uint8Array(3 * chunkSize).map((_, i) => i % 251);
    const contentKey = newContentKey();
    const ciphertext = await lastFullChunkFinal(
      plain,
      await importContentKey(contentKey),
      chunkSize,
    );
    assert.equal(ciphertext.length, 3 * chunkSize + 3 * 16);
    const header: PackageHeader = {
      format: packageFormat,
      app: "demo",
      name: "exact",
      version: "1.0.0",
      size: plain.length,
      chunkSize,
      ciphertextSize: ciphertext.length,
      ciphertextSha256: createHash("sha256").update(ciphertext).digest("hex"),
      kid: noc.deps.keys.kid,
      createdAt: noc.clock.now().toISOString(),
    };
    const prefix = await packagePrefix(header, noc.deps.keys);
    const wrapped = await wrapContentKey(
      contentKey,
      fromBase64Url(noc.deps.keys.hpke.publicKey),
      header,
    );
    const r = await uploadSigned(noc, {
      bytes: concatBytes([prefix, ciphertext]),
      wrapped,
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error, "bad_package");
    assert.equal(r.body.reason, "malformed");
    assert.equal(
      r.body.message,
      "Package header's sizes do not agree: a payload of 3072 bytes in chunks of 1024 bytes has 4 chunks (the last one holds the remainder, 0 bytes, and is there even when empty) and a ciphertext of 3136 bytes (each chunk adds a 16-byte tag); the header's ciphertextSize is 3120",
    );
  },
);

// ---- 6. GNU tar's links -----------------------------------------------------------------------

/** Runs GNU tar in `cwd` with `args`; returns the archive it wrote to `p.tgz`. */
async function gnuTar(cwd: string, args: string[]): Promise<Uint8Array<ArrayBuffer>> {
  const out = await new Deno.Command("tar", {
    args: ["czf", "p.tgz", ...args],
    cwd,
    stderr: "piped",
  })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return await Deno.readFile(`${cwd}/p.tgz`);
}

dbTest(
  "GNU tar's hard and symbolic links are refused with the tar flag that archives them as files",
  async ({ db }) => {
    const noc = await testNoc(db);
    const work = await Deno.makeTempDir();
    try {
      const dir = `${work}/app`;
      await Deno.mkdir(dir);
      await Deno.writeTextFile(`${dir}/install`, okInstall, { mode: 0o755 });
      await Deno.writeTextFile(`${dir}/README`, "hello\n");
      const publish = (body: Uint8Array<ArrayBuffer>, version: string) =>
        upload(
          noc,
          `/v1/admin/packages?app=demo&name=links&version=${version}`,
          body,
          "application/gzip",
        );
      const cases: Array<[string, () => Promise<void>, string, string[]]> = [
        [
          "hard link",
          () => Deno.link(`${dir}/README`, `${dir}/README.copy`),
          "(GNU tar: add --hard-dereference)",
          ["--hard-dereference"],
        ],
        [
          "symbolic link",
          () => Deno.symlink("README", `${dir}/README.link`),
          "(GNU tar: add -h --hard-dereference, that is --dereference --hard-dereference)",
          ["-h", "--hard-dereference"],
        ],
      ];
      let v = 0;
      for (const [kind, make, fix, flags] of cases) {
        await make();
        const refused = await publish(await gnuTar(work, ["-C", dir, "."]), String(v++));
        assert.equal(refused.status, 400, kind);
        assert.equal(refused.body.error, "bad_payload");
        assert.match(refused.body.message, new RegExp(`is a ${kind}; only files and folders`));
        assert.ok(refused.body.message.includes(fix), refused.body.message);
        // As the message says: the same folder, archived with the flag, is published.
        const taken = await publish(await gnuTar(work, [...flags, "-C", dir, "."]), String(v++));
        assert.equal(taken.status, 201, `${kind} with ${flags}: ${JSON.stringify(taken.body)}`);
        if (kind === "symbolic link") {
          // Why -h alone is not the fix: README's second name is then stored as a hard link.
          const half = await publish(await gnuTar(work, ["-h", "-C", dir, "."]), String(v++));
          assert.match(half.body.message, /is a hard link.*--hard-dereference/);
        }
        for await (const e of Deno.readDir(dir)) {
          if (e.name !== "install" && e.name !== "README") await Deno.remove(`${dir}/${e.name}`);
        }
      }
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
);

// ---- 4. The agent's downloads: resumed and discarded bytes are logged -------------------------

/** An agent log that keeps its events. */
function keptLog(): AgentLog & { events: Array<Record<string, any>> } {
  const events: Array<Record<string, any>> = [];
  const keep = (level: string) => (event: string, fields: Record<string, unknown> = {}) =>
    events.push({ level, event, ...fields });
  return { events, info: keep("info"), warn: keep("warn"), error: keep("error"), progress() {} };
}

/** A real HTTP server for `bytes`, honouring `Range` unless told otherwise per path. */
function blobServer(bytes: Uint8Array<ArrayBuffer>) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    const m = req.headers.get("range")?.match(/^bytes=(\d+)-$/);
    if (path === "/refuse" && m) return new Response(null, { status: 416 });
    if (path === "/wrong") return new Response(bytes.map((b) => b ^ 1));
    if (m && path !== "/whole") {
      const from = Number(m[1]);
      return new Response(bytes.slice(from), {
        status: 206,
        headers: { "content-range": `bytes ${from}-${bytes.length - 1}/${bytes.length}` },
      });
    }
    return new Response(bytes);
  });
}

Deno.test("download() logs download_resumed with the bytes held and the URL, and download_discarded with why", async () => {
  const bytes = new Uint8Array(100_000).map((_, i) => (i * 13) % 251);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const server = blobServer(bytes);
  const dir = await Deno.makeTempDir();
  const base = `http://127.0.0.1:${server.addr.port}`;
  const spec = { urls: [`${base}/blob?grant=secret`], size: bytes.length, sha256, label: "blob" };
  const run = async (
    held: Uint8Array | null,
    urls: string[],
  ): Promise<Array<Record<string, any>>> => {
    const dest = `${dir}/blob.pkg`;
    await Deno.remove(dest).catch(() => {});
    if (held) await Deno.writeFile(dest, held);
    const log = keptLog();
    const got = await download(dest, { ...spec, urls }, { idleMs: 10_000, log });
    assert.equal(got.sha256, sha256);
    assert.deepEqual(await Deno.readFile(dest), bytes);
    return log.events.filter((e) => e.event.startsWith("download_"));
  };
  try {
    // Bytes an earlier run left: carried on, and said so (the grant is not logged).
    assert.deepEqual(await run(bytes.slice(0, 40_000), spec.urls), [
      {
        level: "info",
        event: "download_resumed",
        component: "blob",
        url: `${base}/blob?…`,
        held: 40_000,
        size: bytes.length,
      },
    ]);
    // Nothing held: nothing to say.
    assert.deepEqual(await run(null, spec.urls), []);
    const discarded = (bytesDropped: number, reason: string, url?: string) => ({
      level: "warn",
      event: "download_discarded",
      component: "blob",
      ...(url ? { url } : {}),
      bytes: bytesDropped,
      reason,
    });
    // A whole file from an earlier run with the wrong bytes.
    assert.deepEqual(await run(bytes.map((b) => b ^ 1), spec.urls), [
      discarded(bytes.length, "digest_mismatch"),
    ]);
    // Longer than the catalog says.
    assert.deepEqual(await run(new Uint8Array(bytes.length + 1), spec.urls), [
      discarded(bytes.length + 1, "larger_than_catalog"),
    ]);
    // A server that sends the whole download again instead of the rest.
    assert.deepEqual(await run(bytes.slice(0, 30_000), [`${base}/whole`]), [
      discarded(30_000, "range_ignored", `${base}/whole`),
    ]);
    // A server that refuses to resume (416): held bytes dropped, the next URL starts afresh.
    const refused = await run(bytes.slice(0, 30_000), [`${base}/refuse`, spec.urls[0]!]);
    assert.deepEqual(refused.map((e) => [e.event, e.reason]), [
      ["download_discarded", "range_refused"],
      ["download_failed", "download_failed"],
    ]);
    assert.deepEqual(refused[0], discarded(30_000, "range_refused", `${base}/refuse`));
    // A mirror serving wrong bytes: its download is dropped, then the next URL serves it.
    const wrong = await run(null, [`${base}/wrong`, spec.urls[0]!]);
    assert.deepEqual(wrong.map((e) => [e.event, e.reason]), [
      ["download_discarded", "digest_mismatch"],
      ["download_failed", "digest_mismatch"],
    ]);
    assert.deepEqual(wrong[0], discarded(bytes.length, "digest_mismatch", `${base}/wrong`));
    // Only wrong bytes anywhere: the failure is thrown, and the discard was logged.
    const log = keptLog();
    await assert.rejects(
      download(`${dir}/only-wrong.pkg`, { ...spec, urls: [`${base}/wrong`] }, {
        idleMs: 10_000,
        log,
      }),
      (e) => e instanceof AgentError && e.code === "digest_mismatch",
    );
    assert.ok(log.events.some((e) => e.event === "download_discarded"));
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- 5. The NOC answers at every name its banner lists ----------------------------------------

Deno.test("NOC_HOST unset or empty listens on :: (then 0.0.0.0), and a wildcard lists only its families' names", () => {
  assert.equal(loadConfig({}, []).host, undefined);
  assert.equal(loadConfig({ NOC_HOST: "" }, ["--dev"]).host, undefined);
  assert.equal(loadConfig({ NOC_HOST: "0.0.0.0" }, []).host, "0.0.0.0");
  assert.deepEqual(listenAddresses(undefined), ["::", "0.0.0.0"]);
  assert.deepEqual(listenAddresses("10.0.0.5"), ["10.0.0.5"]);
  const machine = {
    hostname: () => "Box",
    interfaces: () => [
      { family: "IPv4", address: "127.0.0.1" },
      { family: "IPv4", address: "10.0.0.5" },
      { family: "IPv6", address: "::1" },
      { family: "IPv6", address: "FD00::2" },
      { family: "IPv6", address: "fe80::1%eth0" },
    ],
  };
  assert.deepEqual(wildcardNames(new Set(["IPv4", "IPv6"]), machine), [
    "box",
    "127.0.0.1",
    "10.0.0.5",
    "[::1]",
    "[fd00::2]",
  ]);
  assert.deepEqual(wildcardNames(new Set(["IPv4"]), machine), ["box", "127.0.0.1", "10.0.0.5"]);
  const denied = () => {
    throw new Deno.errors.NotCapable("no --allow-sys");
  };
  assert.deepEqual(wildcardNames(new Set(["IPv4"]), { hostname: denied, interfaces: denied }), []);
});

/** The names the banner's `signed for:` line lists (loopback aside), as `host:port`. */
function bannerNames(output: string): string[] {
  const line = /signed for:\s+(.*)/.exec(output)?.[1];
  assert.ok(line, output);
  return line.replace(/\s*\(no NOC_PUBLIC_URL.*$/, "").split(", ").slice(1);
}

/** Fetches `/healthz` at `authority`; the status, or the error's name when nothing answers. */
async function reach(authority: string): Promise<number | string> {
  try {
    const res = await fetch(`http://${authority}/healthz`, { signal: AbortSignal.timeout(10_000) });
    await res.body?.cancel();
    return res.status;
  } catch (e) {
    return e instanceof Error ? e.name : String(e);
  }
}

/** Whether the system resolves `name` (getent reads /etc/hosts as the resolver does). */
async function resolves(name: string): Promise<boolean> {
  const o = await new Deno.Command("getent", { args: ["hosts", name], stdout: "null" }).output()
    .catch(() => null);
  return o?.success ?? false;
}

/** Whether this machine has an IPv6 address other than loopback and link-local. */
function hasIpv6(): boolean {
  return Deno.networkInterfaces().some((i) =>
    i.family === "IPv6" && i.address !== "::1" && !/^fe[89ab]/i.test(i.address)
  );
}

async function checkListed(noc: { output(): string }, port: string): Promise<string[]> {
  const names = bannerNames(noc.output());
  for (const name of names) {
    assert.ok(name.endsWith(`:${port}`), name);
    const host = name.slice(0, name.lastIndexOf(":"));
    if (!/^[\d.]+$|^\[/.test(host) && !(await resolves(host))) continue;
    assert.equal(await reach(name), 200, `${name}, listed in the banner, answers`);
  }
  return names;
}

Deno.test({
  name:
    "a NOC with NOC_HOST unset listens on IPv4 and IPv6 and answers at every name its banner lists",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const data = await Deno.makeTempDir();
    // NOC_HOST empty is NOC_HOST unset (startNoc sets it to 127.0.0.1 otherwise).
    const noc = await startNoc({ NOC_DATA_DIR: data, NOC_HOST: "" });
    try {
      const port = new URL(noc.url).port;
      const v6 = hasIpv6();
      assert.match(
        noc.output(),
        v6 ? /addresses:\s+every IPv4 and IPv6 address\n/ : /addresses:\s+every IPv4 address/,
      );
      const names = await checkListed(noc, port);
      assert.ok(names.length > 0, noc.output());
      assert.ok(!names.some((n) => n.startsWith("[fe80")), "no link-local address is listed");
      if (v6) assert.ok(names.some((n) => n.startsWith("[")), "an IPv6 address is listed");
      for (const loopback of ["localhost", "127.0.0.1", ...(v6 ? ["[::1]"] : [])]) {
        assert.equal(await reach(`${loopback}:${port}`), 200, loopback);
      }
      // A client's address is recorded as it is: IPv4 as IPv4 (not ::ffff:127.0.0.1), IPv6 as IPv6.
      const clients = ["127.0.0.1", ...(v6 ? ["[::1]"] : [])];
      for (const client of clients) {
        const res = await fetch(`http://${client}:${port}/v1/beats`, { method: "POST" });
        assert.equal(res.status, 401, client);
        await res.body?.cancel();
      }
      const failures = await fetch(`${noc.url}/v1/admin/auth-failures`, {
        headers: { authorization: `Bearer ${noc.adminToken}` },
      });
      const recorded = (await failures.json()).items.map((i: any) => i.address).sort();
      assert.deepEqual(recorded, clients.map((c) => c.replace(/[[\]]/g, "")).sort());
    } finally {
      await noc.stop();
      await Deno.remove(data, { recursive: true });
    }
  },
});

Deno.test({
  name: "a NOC with NOC_HOST=0.0.0.0 lists no IPv6 name, and answers at every name it lists",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const data = await Deno.makeTempDir();
    const noc = await startNoc({ NOC_DATA_DIR: data, NOC_HOST: "0.0.0.0" });
    try {
      const port = new URL(noc.url).port;
      assert.match(
        noc.output(),
        /addresses:\s+every IPv4 address, no IPv6 \(NOC_HOST=0\.0\.0\.0\)/,
      );
      const names = await checkListed(noc, port);
      assert.ok(!names.some((n) => n.startsWith("[")), `no IPv6 name: ${names}`);
      assert.equal(await reach(`127.0.0.1:${port}`), 200);
    } finally {
      await noc.stop();
      await Deno.remove(data, { recursive: true });
    }
  },
});
