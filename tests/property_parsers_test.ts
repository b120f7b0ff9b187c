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
import { extractTar, gunzip, safeRelativePath, TarError } from "../protocol/package/tar.ts";
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

Deno.test("extractTar() refuses any malformed archive with TarError and writes nothing outside its folder", async () => {
  const root = await Deno.makeTempDir();
  try {
    const outside = `${root}/outside`;
    await Deno.mkdir(outside);
    let n = 0;
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
    );
    await fc.assert(
      fc.asyncProperty(archive, fc.boolean(), async (bytes, zipped) => {
        const dest = `${root}/x${n++}`;
        await Deno.mkdir(dest);
        const input = (async function* () {
          yield bytes;
        })();
        try {
          await extractTar(zipped ? gunzip(input) : input, dest, { maxEntries: 20 });
        } catch (e) {
          if (
            !(e instanceof TarError) &&
            !(e instanceof TypeError && /gzip|deflate|compress/i.test(String(e)))
          ) {
            throw e;
          }
        }
        for await (const _ of Deno.readDir(outside)) throw new Error("wrote outside its folder");
        for await (const e of Deno.readDir(root)) {
          if (!e.isDirectory) throw new Error(`wrote "${e.name}" beside its folder`);
        }
      }),
      { numRuns: 200, seed: 20261124 },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
