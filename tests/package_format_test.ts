import assert from "node:assert/strict";
import { collectBytes as collect, concatBytes as concat } from "../protocol/util/bytes.ts";
import { buildPackage, openPackageFile, readPackagePrefix } from "../protocol/package/file.ts";
import {
  decryptChunks,
  encryptChunks,
  importContentKey,
  newContentKey,
  PackageError,
  unwrapContentKey,
  wrapContentKey,
} from "../protocol/package/format.ts";
import { newSeed } from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { generateApplianceKeys } from "../protocol/client.ts";
import { fromBase64Url } from "../protocol/util/encoding.ts";

const noc = await nocKeysFromSeed(newSeed());
const signer = { kid: noc.kid, privateKey: noc.privateKey };
const now = new Date("2026-11-24T12:00:00Z");
const chunkSize = 64 * 1024;

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

async function* pieces(bytes: Uint8Array, size = 10_000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function refused(p: Promise<unknown>, reason: PackageError["reason"]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof PackageError, String(e));
    assert.equal(e.reason, reason, e.message);
    return true;
  });
}

async function withPackage(
  payload: Uint8Array,
  fn: (path: string, key: Uint8Array<ArrayBuffer>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/pkg.noc`;
    const built = await buildPackage({
      plaintext: pieces(payload),
      app: "vscreen",
      name: "vscreen",
      version: "4.2.1",
      signer,
      out,
      now,
      chunkSize,
    });
    assert.equal((await Deno.stat(out)).size, built.fileSize);
    await fn(out, built.contentKey);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a package round-trips exactly for empty, partial-chunk and chunk-multiple payloads", async () => {
  for (const n of [0, 1, chunkSize - 1, chunkSize, 3 * chunkSize, 3 * chunkSize + 12345]) {
    const payload = randomBytes(n);
    await withPackage(payload, async (path, contentKey) => {
      const got = await collect(openPackageFile(path, { trusted: noc.published, contentKey, now }));
      assert.deepEqual(got, payload, `size ${n}`);
      const prefix = await readPackagePrefix(path);
      assert.equal(prefix.header.size, n);
      assert.equal(prefix.header.version, "4.2.1");
    });
  }
});

Deno.test("one flipped byte in the header, the signature or the ciphertext is refused before decryption", async () => {
  const payload = randomBytes(200_000);
  await withPackage(payload, async (path, contentKey) => {
    const original = await Deno.readFile(path);
    const prefix = await readPackagePrefix(path);
    const spots: Array<[string, number, PackageError["reason"][]]> = [
      ["header", 8 + 4 + 20, ["bad_signature", "malformed"]],
      ["signature", prefix.ciphertextOffset - 10, ["bad_signature"]],
      ["ciphertext", prefix.ciphertextOffset + 1000, ["digest_mismatch"]],
      ["last byte", original.length - 1, ["digest_mismatch"]],
    ];
    for (const [what, at, reasons] of spots) {
      const bad = original.slice();
      bad[at] = bad[at]! ^ 0x01;
      await Deno.writeFile(path, bad);
      await assert.rejects(
        collect(openPackageFile(path, { trusted: noc.published, contentKey, now })),
        (e: unknown) => e instanceof PackageError && reasons.includes(e.reason),
        what,
      );
    }
    await Deno.writeFile(path, original.slice(0, original.length - 1));
    await refused(
      collect(openPackageFile(path, { trusted: noc.published, contentKey, now })),
      "size_mismatch",
    );
  });
});

Deno.test("a package is refused under another name or version, or signed by an unpinned key", async () => {
  await withPackage(randomBytes(1000), async (path, contentKey) => {
    await refused(
      collect(openPackageFile(path, {
        trusted: noc.published,
        contentKey,
        now,
        expect: { app: "vscreen", name: "vscreen", version: "4.2.2" },
      })),
      "wrong_component",
    );
    const other = await nocKeysFromSeed(newSeed());
    await refused(
      collect(openPackageFile(path, { trusted: other.published, contentKey, now })),
      "unknown_key",
    );
    const retired = [{ ...noc.published[0]!, notAfter: "2026-01-01T00:00:00Z" }];
    await refused(
      collect(openPackageFile(path, { trusted: retired, contentKey, now })),
      "expired_key",
    );
  });
  // An attacker who re-signs a renamed header with their own key is refused for the key.
  const attacker = await nocKeysFromSeed(newSeed());
  const dir = await Deno.makeTempDir();
  try {
    await buildPackage({
      plaintext: pieces(randomBytes(10)),
      app: "vscreen",
      name: "vscreen",
      version: "9.9.9",
      signer: { kid: attacker.kid, privateKey: attacker.privateKey },
      out: `${dir}/p`,
      now,
    });
    await refused(
      collect(
        openPackageFile(`${dir}/p`, { trusted: noc.published, contentKey: newContentKey(), now }),
      ),
      "unknown_key",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("decryptChunks() refuses reordered, dropped or truncated chunks even with a matching digest", async () => {
  const key = await importContentKey(newContentKey());
  const chunks = await (async () => {
    const out: Uint8Array[] = [];
    for await (const c of encryptChunks(pieces(randomBytes(3 * 1024 + 10)), key, 1024)) out.push(c);
    return out;
  })();
  assert.equal(chunks.length, 4);
  const run = (list: Uint8Array[]) => collect(decryptChunks(pieces(concat(list), 777), key, 1024));
  await run(chunks);
  await refused(run([chunks[1]!, chunks[0]!, chunks[2]!, chunks[3]!]), "decrypt_failed");
  await refused(run([chunks[0]!, chunks[1]!, chunks[3]!]), "decrypt_failed");
  await refused(run(chunks.slice(0, 3)), "decrypt_failed");
  await refused(run([]), "decrypt_failed");
});

Deno.test("a content key wrapped with HPKE opens only for its appliance and its package", async () => {
  const appliance = await generateApplianceKeys();
  const stranger = await generateApplianceKeys();
  const key = newContentKey();
  const pkg = {
    app: "vscreen",
    name: "vscreen",
    version: "4.2.1",
    ciphertextSha256: "ab".repeat(32),
  };
  const wrapped = await wrapContentKey(key, fromBase64Url(appliance.encryptionPublic), pkg);
  const mine = fromBase64Url(appliance.encryptionPrivate);
  assert.deepEqual(await unwrapContentKey(wrapped, mine, pkg), key);
  await refused(
    unwrapContentKey(wrapped, fromBase64Url(stranger.encryptionPrivate), pkg),
    "decrypt_failed",
  );
  await refused(unwrapContentKey(wrapped, mine, { ...pkg, version: "4.2.2" }), "decrypt_failed");
  await refused(unwrapContentKey(wrapped.slice(0, -2), mine, pkg), "decrypt_failed");
  assert.notEqual(
    await wrapContentKey(key, fromBase64Url(appliance.encryptionPublic), pkg),
    wrapped,
    "fresh per wrap",
  );
});
