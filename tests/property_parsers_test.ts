/**
 * Property tests (fast-check) on the parsers that read what arrives from
 * elsewhere: the package prefix, the signed catalog, tar archives (raw and
 * gzipped) and archive paths. Whatever the bytes, each either accepts or
 * refuses with its own error type — never another exception, never a write
 * outside the folder it was given.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { PackageError, parsePackagePrefix } from "../protocol/package/format.ts";
import { CatalogError, verifyCatalog } from "../protocol/catalog.ts";
import { extractTar, gunzip, gzip, safeRelativePath, TarError } from "../protocol/package/tar.ts";
import { inspectPayload, PayloadError } from "../protocol/package/payload.ts";
import { collectBytes, concatBytes } from "../protocol/util/bytes.ts";
import { newSeed } from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { signCatalog } from "../protocol/catalog.ts";
import { utf8 } from "../protocol/util/encoding.ts";

const runs = { numRuns: 300, seed: 20261124 };

Deno.test("parsePackagePrefix() accepts or throws PackageError for any bytes", () => {
  const magic = utf8("NOCPKG1");
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 400 }),
    // Past the magic, so the header length, JSON and signature parts are exercised too.
    fc.uint8Array({ maxLength: 400 }).map((b) => new Uint8Array([...magic, ...b])),
    fc.tuple(fc.nat({ max: 300 }), fc.json(), fc.uint8Array({ maxLength: 80 })).map(
      ([n, j, sig]) => {
        const header = utf8(j);
        const out = new Uint8Array(magic.length + 4 + header.length + 2 + sig.length);
        out.set(magic);
        new DataView(out.buffer).setUint32(magic.length, n % 2 ? header.length : n);
        out.set(header, magic.length + 4);
        new DataView(out.buffer).setUint16(magic.length + 4 + header.length, sig.length);
        out.set(sig, magic.length + 6 + header.length);
        return out;
      },
    ),
  );
  fc.assert(
    fc.property(bytes, (b) => {
      try {
        parsePackagePrefix(b);
      } catch (e) {
        if (!(e instanceof PackageError)) throw e;
      }
    }),
    runs,
  );
});

Deno.test("verifyCatalog() accepts only what the pinned key signed for this UID, and throws CatalogError otherwise", async () => {
  const keys = await nocKeysFromSeed(newSeed());
  const uid = crypto.randomUUID();
  const now = new Date();
  const good = JSON.stringify(
    await signCatalog({
      format: "noc-catalog/1",
      uid,
      serial: 5,
      issuedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + 3600_000).toISOString(),
      intervalS: 909,
      keys: keys.published,
      components: [],
    }, { kid: keys.kid, privateKey: keys.privateKey }),
  );
  const body = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.json(),
    // The good envelope with one character changed.
    fc.tuple(fc.nat({ max: good.length - 1 }), fc.string({ minLength: 1, maxLength: 1 })).map((
      [i, ch],
    ) => good.slice(0, i) + ch + good.slice(i + 1)),
  );
  let accepted = 0;
  await fc.assert(
    fc.asyncProperty(body, async (b) => {
      try {
        const doc = await verifyCatalog(b, { pinned: keys.published, uid, lastSerial: 0, now });
        // Only the untouched catalog (or a change the signature does not cover) can pass.
        assert.equal(doc.uid, uid);
        assert.equal(doc.serial, 5);
        accepted++;
      } catch (e) {
        if (!(e instanceof CatalogError)) throw e;
      }
    }),
    runs,
  );
  // The untouched one verifies.
  assert.equal(
    (await verifyCatalog(good, { pinned: keys.published, uid, lastSerial: 0, now })).serial,
    5,
  );
  assert.ok(accepted < runs.numRuns / 2, `${accepted} altered catalogs accepted`);
});

Deno.test("safeRelativePath() never returns a path that leaves its folder", () => {
  const piece = fc.oneof(
    fc.constantFrom("..", ".", "", "a", "b c", "\\", "\0", "/", "%2e%2e"),
    fc.string({ maxLength: 8 }),
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 6 }).map((p) => p.join("/")), (path) => {
      try {
        const safe = safeRelativePath(path);
        assert.ok(!safe.startsWith("/"));
        assert.ok(!safe.split("/").includes(".."));
        assert.ok(!safe.includes("\0"));
      } catch (e) {
        if (!(e instanceof TarError)) throw e;
      }
    }),
    runs,
  );
});

/** A tar header (ustar or GNU magic) with `name`, `type` and `body`, padded; checksum right. */
function tarMember(
  name: string,
  type: string,
  body: Uint8Array,
  gnu: boolean,
  mode = 0o755,
): Uint8Array {
  const h = new Uint8Array(512);
  h.set(utf8(name).subarray(0, 100));
  h.set(utf8(mode.toString(8).padStart(7, "0")), 100);
  h.set(utf8(body.length.toString(8).padStart(11, "0")), 124);
  h.set(utf8(gnu ? "ustar  \0" : "ustar\u000000"), 257);
  h[156] = type.charCodeAt(0);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  h.set(utf8(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  const out = new Uint8Array(512 + Math.ceil(body.length / 512) * 512);
  out.set(h);
  out.set(body, 512);
  return out;
}

/** Pax records `len key=value\n` (lengths right, unless `skew` is given). */
function paxBody(records: Array<[string, string]>, skew = 0): Uint8Array {
  let out = "";
  for (const [k, v] of records) {
    const rec = ` ${k}=${v}\n`;
    let n = utf8(rec).length;
    while (String(n).length + utf8(rec).length !== n) n = String(n).length + utf8(rec).length;
    out += `${n + skew}${rec}`;
  }
  return utf8(out);
}

const tarName = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("a", "ok/file", "install", "b/c", "./d", "e/") },
  {
    weight: 1,
    arbitrary: fc.constantFrom("./", ".", "../x", "/etc/x", "d/../../y", "..", "a/b", "a\\b"),
  },
);

/** 1 to 5 members: plain entries, links, devices, pax (x, g) and GNU long-name (L, K) headers. */
const tarArchive = fc.tuple(
  fc.array(
    fc.tuple(
      tarName,
      fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom("0", "5", "x", "L", "\0") },
        { weight: 1, arbitrary: fc.constantFrom("g", "2", "1", "3", "6", "K", "S", "7") },
      ),
      fc.boolean(),
      fc.oneof(
        fc.uint8Array({ maxLength: 700 }),
        tarName.map((n) => utf8(n + "\0")),
        tarName.map((n) => paxBody([["path", n]])),
        fc.tuple(
          fc.array(
            fc.tuple(
              fc.constantFrom("path", "size", "mtime", "linkpath", "comment", "GNU.sparse.size"),
              fc.oneof(tarName, fc.constantFrom("0", "5", "1.5", "x\0y", "")),
            ),
            { maxLength: 3 },
          ),
          fc.constantFrom(0, 0, 0, 1, -1),
        ).map(([records, skew]) => paxBody(records, skew)),
      ),
      fc.constantFrom(0o755, 0o644, 0o4755, 0o000),
    ),
    { minLength: 1, maxLength: 4 },
  ),
  fc.constantFrom(2, 2, 2, 0, 1, 20),
  fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 600 })),
).map(([members, zeros, rest]) => {
  const parts = members.map(([name, type, gnu, body, mode]) =>
    tarMember(name, type, type === "5" ? new Uint8Array() : body, gnu, mode)
  );
  parts.push(new Uint8Array(512 * zeros));
  if (zeros === 20) parts.push(rest);
  return concatBytes(parts);
});

Deno.test("extractTar() refuses any malformed archive with TarError and writes nothing outside its folder; inspectPayload() agrees", async () => {
  const root = await Deno.makeTempDir();
  try {
    const outside = `${root}/outside`;
    await Deno.mkdir(outside);
    let n = 0;
    let extracted = 0;
    const archive = fc.oneof(
      fc.uint8Array({ maxLength: 2048 }),
      // A 512-byte header with a random name, type and size field, then random content.
      fc.tuple(
        fc.constantFrom("a", "../x", "/etc/x", "d/../../y", "ok/file", "..", "l"),
        fc.constantFrom("0", "5", "2", "1", "3", "x", "\0"),
        fc.nat({ max: 4096 }),
        fc.uint8Array({ maxLength: 1024 }),
      ).map(([name, type, size, rest]) => {
        const h = new Uint8Array(512);
        h.set(utf8(name));
        h.set(utf8(size.toString(8).padStart(11, "0")), 124);
        h.set(utf8("ustar\u000000"), 257);
        h[156] = type.charCodeAt(0);
        let sum = 0;
        for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
        h.set(utf8(sum.toString(8).padStart(6, "0") + "\0 "), 148);
        return new Uint8Array([...h, ...rest]);
      }),
      tarArchive,
      tarArchive,
    );
    await fc.assert(
      fc.asyncProperty(
        archive,
        fc.constantFrom("tar", "gzip", "bytes as gzip"),
        async (bytes, as) => {
          const dest = `${root}/x${n++}`;
          await Deno.mkdir(dest);
          const once = (b: Uint8Array) =>
            (async function* () {
              yield b;
            })();
          const gz = as === "bytes as gzip" ? bytes : await collectBytes(gzip(once(bytes)));
          let refusal: string | null = null;
          try {
            await extractTar(as === "tar" ? once(bytes) : gunzip(once(gz)), dest, {
              maxEntries: 20,
            });
            extracted++;
          } catch (e) {
            if (
              !(e instanceof TarError) &&
              !(e instanceof TypeError && /gzip|deflate|compress|buffer/i.test(String(e)))
            ) {
              throw e;
            }
            refusal = e.message;
          }
          for await (const _ of Deno.readDir(outside)) throw new Error("wrote outside its folder");
          for await (const e of Deno.readDir(root)) {
            if (!e.isDirectory) throw new Error(`wrote "${e.name}" beside its folder`);
          }
          // The NOC's check refuses what the agent refuses, with the same message.
          try {
            await inspectPayload(once(gz));
          } catch (e) {
            if (!(e instanceof PayloadError)) throw e;
            if (refusal !== null && as !== "bytes as gzip") assert.equal(e.message, refusal);
            if (refusal === null) assert.match(e.message, /"install"/);
            return;
          }
          assert.equal(refusal, null, "inspectPayload() accepted what extractTar() refused");
        },
      ),
      { numRuns: 300, seed: 20261124 },
    );
    assert.ok(extracted >= 10, `only ${extracted} archives extracted`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
