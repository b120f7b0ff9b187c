// deno-lint-ignore-file no-explicit-any
/**
 * The NOC checks every package it publishes: a payload no agent could
 * install (not gzip, not a tar the agent's own rules accept, no executable
 * `install` at its top, over the limits) is refused with `400 bad_payload`
 * naming the problem — through the NOC-signed upload, the offline-signed
 * upload and the console's publish form — and nothing is stored: no
 * component, no blob, no "published" log line. Files are not packages: they
 * are not checked.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc, testNoc } from "./_harness.ts";
import { payload, signedPackage } from "./_components.ts";
import { signIn } from "./_console.ts";
import type { Db } from "../noc/db/db.ts";
import { parsePackagePrefix } from "../protocol/package/format.ts";
import { payloadLimits } from "../protocol/package/payload.ts";
import { createTar, gzip } from "../protocol/package/tar.ts";
import { collectBytes, concatBytes } from "../protocol/util/bytes.ts";

const base = "https://noc.test";
const okInstall = "#!/bin/sh\nexit 0\n";
/** The package every test here publishes, at `version`. */
const chk = (version: string) => ({ app: "chk", name: "pkg", version });

/** Runs `python3 -c code args…`; returns what it wrote to stdout. */
async function python(code: string, ...args: string[]): Promise<Uint8Array<ArrayBuffer>> {
  const out = await new Deno.Command("python3", {
    args: ["-c", code, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`python3 failed: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout as Uint8Array<ArrayBuffer>;
}

/** An entry of an archive written by Python's tarfile. */
interface Entry {
  name: string;
  type?: "file" | "dir" | "symlink";
  data?: string;
  mode?: number;
  link?: string;
}

/** A gzip-compressed ustar archive of exactly `entries`, written by Python's `tarfile`. */
function pythonTarGz(entries: Entry[]): Promise<Uint8Array<ArrayBuffer>> {
  return python(
    `
import io, json, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.USTAR_FORMAT) as t:
    for e in json.loads(sys.argv[1]):
        i = tarfile.TarInfo(e["name"])
        i.mode = e.get("mode", 0o755)
        kind = e.get("type", "file")
        data = e.get("data", "").encode()
        if kind == "dir":
            i.type = tarfile.DIRTYPE
            t.addfile(i)
        elif kind == "symlink":
            i.type = tarfile.SYMTYPE
            i.linkname = e["link"]
            t.addfile(i)
        else:
            i.size = len(data)
            t.addfile(i, io.BytesIO(data))
sys.stdout.buffer.write(buf.getvalue())
`,
    JSON.stringify(entries),
  );
}

/** A gzip payload whose only file header claims `size` bytes of content (which never follow). */
function claimsGzip(size: number): Promise<Uint8Array<ArrayBuffer>> {
  return python(
    `
import gzip, sys, tarfile
i = tarfile.TarInfo("install")
i.mode = 0o755
i.size = int(sys.argv[1])
sys.stdout.buffer.write(gzip.compress(i.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict") + bytes(1024)))
`,
    String(size),
  );
}

/** A gzip payload of `count` empty files plus an install program. */
function manyFilesGzip(count: number): Promise<Uint8Array<ArrayBuffer>> {
  return python(
    `
import io, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.USTAR_FORMAT) as t:
    i = tarfile.TarInfo("install"); i.mode = 0o755; data = b"#!/bin/sh\\n"; i.size = len(data)
    t.addfile(i, io.BytesIO(data))
    for n in range(int(sys.argv[1])):
        t.addfile(tarfile.TarInfo("f/%d" % n), io.BytesIO(b""))
sys.stdout.buffer.write(buf.getvalue())
`,
    String(count),
  );
}

/** Random bytes (the Web Crypto source fills at most 64 KiB a call). */
function random(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(i + 65536, n)));
  }
  return out;
}

/** A malformed payload, and what the refusal's message must say. */
interface Malformed {
  what: string;
  bytes: Uint8Array<ArrayBuffer>;
  says: RegExp;
}

/** Every kind of payload no agent could install. */
async function malformedPayloads(): Promise<Malformed[]> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/install`, okInstall, { mode: 0o755 });
    await Deno.chmod(`${dir}/install`, 0o755);
    const plainTar = await collectBytes(createTar(dir));
    const good = await payload({ install: okInstall, "data.bin": random(100_000) });
    const zip = await python(`
import io, sys, zipfile
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr(zipfile.ZipInfo("install"), "#!/bin/sh\\nexit 0\\n")
sys.stdout.buffer.write(buf.getvalue())
`);
    const text = new TextEncoder().encode("just some text, not an archive\n".repeat(100));
    const install = { name: "install", data: okInstall, mode: 0o755 };
    return [
      { what: "a plain tar, not gzip", bytes: plainTar, says: /gzip/i },
      { what: "zip bytes", bytes: zip, says: /gzip/i },
      { what: "random bytes", bytes: random(5_000), says: /gzip/i },
      { what: "empty", bytes: new Uint8Array(0), says: /gzip|empty/i },
      {
        what: "gzip of something that is not a tar",
        bytes: await collectBytes(gzip(ReadableStream.from([text]))),
        says: /archive|tar/i,
      },
      {
        what: "gzip cut in the middle",
        bytes: good.slice(0, Math.floor(good.length * 0.6)),
        says: /truncated|ends|end of|gzip/i,
      },
      {
        what: "a tar holding a symbolic link",
        bytes: await pythonTarGz([install, { name: "etc", type: "symlink", link: "/etc" }]),
        says: /link/i,
      },
      {
        what: "no install program",
        bytes: await pythonTarGz([{ name: "run.sh", data: okInstall }]),
        says: /install/,
      },
      {
        what: "an install that is not executable",
        bytes: await pythonTarGz([{ ...install, mode: 0o644 }]),
        says: /install.*executable|executable.*install/i,
      },
      {
        what: "an install that is a folder",
        bytes: await pythonTarGz([
          { name: "install", type: "dir", mode: 0o755 },
          { name: "install/run", data: okInstall },
        ]),
        says: /install/,
      },
      {
        what: "an install only in a subfolder",
        bytes: await pythonTarGz([
          { name: "app", type: "dir" },
          { name: "app/install", data: okInstall },
        ]),
        says: /install/,
      },
      {
        what: "a path that climbs out with ..",
        bytes: await pythonTarGz([install, { name: "../escape", data: "x" }]),
        says: /\.\./,
      },
      {
        what: "an absolute path",
        bytes: await pythonTarGz([install, { name: "/etc/cron.d/x", data: "x" }]),
        says: /absolute/i,
      },
      {
        what: "more entries than the limit",
        bytes: await manyFilesGzip(payloadLimits.maxEntries),
        says: /entries/,
      },
      {
        what: "more bytes than the limit",
        bytes: await claimsGzip(payloadLimits.maxBytes + 1),
        says: /bytes/,
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Gzip streams whose tar is whole but whose gzip is not: cut before the trailer, or with a CRC
 * that does not match. A reader that stops at the tar's end marker would miss both.
 */
async function brokenGzipPayloads(): Promise<Malformed[]> {
  const good = await payload({ install: okInstall, "data.bin": random(100_000) });
  const badCrc = good.slice();
  badCrc[badCrc.length - 6]! ^= 0xff;
  return [
    { what: "gzip without its trailer", bytes: good.slice(0, -8), says: /gzip|truncated|end/i },
    { what: "gzip whose CRC does not match", bytes: badCrc, says: /gzip|crc|checksum/i },
    {
      what: "gzip followed by other bytes",
      bytes: concatBytes([good, random(100)]),
      says: /gzip|trailing|after/i,
    },
  ];
}

/** What publishing left: components, blobs and blob chunks. */
async function stored(db: Db): Promise<{ components: number; blobs: number; chunks: number }> {
  const [row] = await db.sql<{ components: number; blobs: number; chunks: number }>`
    select (select count(*)::int from components) as components,
      (select count(*)::int from blobs) as blobs,
      (select count(*)::int from blob_chunks) as chunks`;
  return row!;
}

/** How many "component_published" lines the NOC logged. */
function publishedLogged(noc: TestNoc): number {
  return (noc.deps.log as any).lines.filter((l: any) => l.event === "component_published")
    .length;
}

/** Asserts a `400 bad_payload` JSON refusal whose message matches `says`, and nothing stored. */
async function assertRefused(
  noc: TestNoc,
  db: Db,
  what: string,
  res: Response,
  says: RegExp,
): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 400, `${what}: ${text}`);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/, what);
  const body = JSON.parse(text);
  assert.equal(body.error, "bad_payload", `${what}: ${text}`);
  assert.match(body.message, says, `${what}: ${text}`);
  assert.deepEqual(await stored(db), { components: 0, blobs: 0, chunks: 0 }, what);
  assert.equal(publishedLogged(noc), 0, `${what}: nothing is logged as published`);
}

/** Posts a payload for the NOC to sign. */
async function postPayload(
  noc: TestNoc,
  ref: { app: string; name: string; version: string },
  body: BodyInit,
): Promise<Response> {
  return await noc.app.request(`${base}/v1/admin/packages?${new URLSearchParams(ref)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${noc.adminToken}`, "content-type": "application/gzip" },
    body,
  });
}

/** Posts a package signed offline. */
async function postSigned(noc: TestNoc, bytes: BodyInit, wrapped: string): Promise<Response> {
  return await noc.app.request(`${base}/v1/admin/packages`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${noc.adminToken}`,
      "content-type": "application/vnd.noc-package",
      "x-noc-wrapped-key": wrapped,
    },
    body: bytes,
  });
}

/** Builds chk/pkg@`version` of `plain`, signed offline, and posts it. */
async function postSignedOffline(
  noc: TestNoc,
  version: string,
  plain: Uint8Array<ArrayBuffer>,
): Promise<Response> {
  const pkg = await signedPackage(noc, chk(version), plain);
  return await postSigned(noc, pkg.bytes, pkg.wrapped);
}

dbTest(
  "a payload for the NOC to sign that no agent could install is refused 400 bad_payload, naming the problem, and nothing is stored",
  async ({ db }) => {
    const noc = await testNoc(db);
    const cases = await malformedPayloads();
    for (const [i, c] of cases.entries()) {
      const res = await postPayload(noc, chk(`${i}`), c.bytes);
      await assertRefused(noc, db, c.what, res, c.says);
    }
    // A good payload is published (the check refuses what is wrong, not everything).
    const ok = await postPayload(
      noc,
      chk("ok"),
      await payload({ install: okInstall, "share/readme": "hello\n" }),
    );
    assert.equal(ok.status, 201, await ok.clone().text());
    assert.equal(publishedLogged(noc), 1);
    // Files are not packages: any bytes publish as a file.
    const file = await noc.app.request(`${base}/v1/admin/files?app=chk&name=blob&version=1`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${noc.adminToken}`,
        "content-type": "application/octet-stream",
      },
      body: cases[0]!.bytes,
    });
    assert.equal(file.status, 201, await file.clone().text());
  },
);

dbTest(
  "a package signed offline whose payload no agent could install is refused 400 bad_payload, and nothing is stored",
  async ({ db }) => {
    const noc = await testNoc(db);
    const cases = await malformedPayloads();
    for (const [i, c] of cases.entries()) {
      await assertRefused(noc, db, c.what, await postSignedOffline(noc, `${i}`, c.bytes), c.says);
    }
    const res = await postSignedOffline(noc, "ok", await payload({ install: okInstall }));
    assert.equal(res.status, 201, await res.clone().text());
  },
);

dbTest(
  "a payload whose tar is whole but whose gzip is cut, corrupt or followed by other bytes is refused on both upload paths",
  async ({ db }) => {
    const noc = await testNoc(db);
    for (const [i, c] of (await brokenGzipPayloads()).entries()) {
      const res = await postPayload(noc, chk(`${i}`), c.bytes);
      await assertRefused(noc, db, `NOC-signed: ${c.what}`, res, c.says);
      const signed = await postSignedOffline(noc, `${i}`, c.bytes);
      await assertRefused(noc, db, `signed offline: ${c.what}`, signed, c.says);
    }
  },
);

dbTest(
  "a signed package that is itself broken keeps its own refusal even when its payload is bad too",
  async ({ db }) => {
    const noc = await testNoc(db);
    const bad = await signedPackage(
      noc,
      chk("1"),
      await pythonTarGz([{ name: "run.sh", data: okInstall }]),
    );
    const offset = parsePackagePrefix(bad.bytes).ciphertextOffset;
    const flip = (at: number) => {
      const b = bad.bytes.slice();
      b[at]! ^= 0x01;
      return b;
    };
    const cases: Array<[string, Uint8Array<ArrayBuffer>, string]> = [
      ["signature", flip(offset - 5), "bad_signature"],
      ["ciphertext byte", flip(offset + 10), "digest_mismatch"],
      ["last byte", flip(bad.bytes.length - 1), "digest_mismatch"],
      ["truncated", bad.bytes.slice(0, -10), "size_mismatch"],
      ["too long", concatBytes([bad.bytes, new Uint8Array(3)]), "size_mismatch"],
      ["as sent", bad.bytes, "bad_payload"],
    ];
    for (const [what, bytes, code] of cases) {
      const res = await postSigned(noc, bytes, bad.wrapped);
      const body = await res.json();
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(body)}`);
      assert.equal(body.reason ?? body.error, code, `${what}: ${JSON.stringify(body)}`);
      assert.deepEqual(await stored(db), { components: 0, blobs: 0, chunks: 0 }, what);
    }
  },
);

dbTest(
  "a payload that is not gzip is refused at its first bytes: the rest of a large upload is never read",
  async ({ db }) => {
    const noc = await testNoc(db);
    const mib = 64;
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= mib * 1024 * 1024) return controller.close();
        controller.enqueue(new Uint8Array(64 * 1024).fill(0x41));
        pulled += 64 * 1024;
      },
    }, { highWaterMark: 0 });
    const res = await postPayload(noc, { app: "chk", name: "big", version: "1" }, body);
    await assertRefused(noc, db, "64 MiB of 'A'", res, /gzip/i);
    assert.ok(
      pulled <= 4 * 1024 * 1024,
      `${pulled} bytes of a ${mib} MiB upload were read before the refusal`,
    );
  },
);

dbTest(
  "the console's publish form shows why a payload was refused and stores nothing",
  async ({ db }) => {
    const noc = await testNoc(db);
    const ui = await signIn(noc);
    const publish = (kind: string, version: string, bytes: Uint8Array<ArrayBuffer>) =>
      ui.post("/ui/releases/publish", {
        kind,
        app: "chk",
        name: "pkg",
        version,
        file: new File([bytes], "p.tgz"),
      });
    const cases = await malformedPayloads();
    for (const c of cases) {
      const flash = await publish("package", "1", c.bytes);
      assert.match(flash, c.says, `${c.what}: ${flash}`);
      assert.doesNotMatch(flash, /^Published/, c.what);
      assert.deepEqual(await stored(db), { components: 0, blobs: 0, chunks: 0 }, c.what);
    }
    const page = await (await ui.get("/ui/releases")).text();
    assert.doesNotMatch(page, /chk\/pkg/, "nothing refused is listed as published");
    assert.equal(
      await publish("package", "2", await payload({ install: okInstall })),
      "Published package chk/pkg@2",
    );
  },
);
