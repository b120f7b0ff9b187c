import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { collectBytes as collect } from "../protocol/util/bytes.ts";
import {
  createTar,
  extractTar,
  gunzip,
  gzip,
  safeRelativePath,
  TarError,
} from "../protocol/package/tar.ts";
import {
  checkInstallProgram,
  inspectPayload,
  PayloadError,
  PayloadInspector,
} from "../protocol/package/payload.ts";

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** A hand-made ustar entry (for archives our writer would never produce). */
function entry(name: string, type: string, body = new Uint8Array(0), linkname = ""): Uint8Array {
  const h = new Uint8Array(512);
  const e = new TextEncoder();
  h.set(e.encode(name), 0);
  h.set(e.encode("0000644\0"), 100);
  h.set(e.encode("0000000\0"), 108);
  h.set(e.encode("0000000\0"), 116);
  h.set(e.encode(body.length.toString(8).padStart(11, "0") + "\0"), 124);
  h.set(e.encode("00000000000\0"), 136);
  h.set(e.encode("        "), 148);
  h.set(e.encode(type), 156);
  h.set(e.encode(linkname), 157);
  h.set(e.encode("ustar\0"), 257);
  h.set(e.encode("00"), 263);
  const sum = h.reduce((a, b) => a + b, 0);
  h.set(e.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  const padded = new Uint8Array(512 + Math.ceil(body.length / 512) * 512);
  padded.set(h);
  padded.set(body, 512);
  return padded;
}

function archive(...entries: Uint8Array[]): Uint8Array {
  const total = entries.reduce((n, x) => n + x.length, 0) + 1024;
  const out = new Uint8Array(total);
  let at = 0;
  for (const x of entries) {
    out.set(x, at);
    at += x.length;
  }
  return out;
}

async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createTar() and extractTar() round-trip a tree with modes, through gzip, deterministically", async () => {
  await inTemp(async (dir) => {
    await Deno.mkdir(`${dir}/src/bin`, { recursive: true });
    await Deno.writeTextFile(`${dir}/src/install`, "#!/bin/sh\necho installed\n", { mode: 0o755 });
    await Deno.chmod(`${dir}/src/install`, 0o755);
    await Deno.writeFile(
      `${dir}/src/bin/data.bin`,
      new Uint8Array(70_000).map((_, i) => (i * 7919) % 251),
    );
    const long = "d".repeat(90) + "/" + "f".repeat(90);
    await Deno.mkdir(`${dir}/src/${long.split("/")[0]}`);
    await Deno.writeTextFile(`${dir}/src/${long}`, "deep");
    const a = await collect(createTar(`${dir}/src`));
    const b = await collect(createTar(`${dir}/src`));
    assert.deepEqual(a, b, "same tree, same bytes");
    await Deno.mkdir(`${dir}/out`);
    const written = await extractTar(gunzip(gzip(once(a))), `${dir}/out`);
    assert.ok(
      written.includes("install") && written.includes("bin/data.bin") && written.includes(long),
    );
    assert.deepEqual(
      await Deno.readFile(`${dir}/out/bin/data.bin`),
      await Deno.readFile(`${dir}/src/bin/data.bin`),
    );
    assert.equal((await Deno.stat(`${dir}/out/install`)).mode! & 0o777, 0o755);
    assert.equal(await Deno.readTextFile(`${dir}/out/${long}`), "deep");
  });
});

Deno.test("createTar() refuses a tree holding a symbolic link", async () => {
  await inTemp(async (dir) => {
    await Deno.mkdir(`${dir}/src`);
    await Deno.symlink("/etc/passwd", `${dir}/src/passwd`);
    await assert.rejects(collect(createTar(`${dir}/src`)), TarError);
  });
});

Deno.test("extractTar() refuses every entry that could escape, before writing it", async () => {
  const body = new TextEncoder().encode("pwned");
  const evil: Array<[string, Uint8Array, RegExp]> = [
    ["dot-dot", archive(entry("../escape", "0", body)), /escapes/],
    ["nested dot-dot", archive(entry("a/../../escape", "0", body)), /escapes/],
    ["absolute", archive(entry("/tmp/escape", "0", body)), /absolute/],
    ["symlink", archive(entry("link", "2", new Uint8Array(), "/etc")), /symbolic link/],
    [
      "symlink then write through it",
      archive(entry("l", "2", new Uint8Array(), ".."), entry("l/escape", "0", body)),
      /symbolic link/,
    ],
    ["hard link", archive(entry("h", "1", new Uint8Array(), "/etc/passwd")), /hard link/],
    ["device", archive(entry("dev", "3")), /device/],
    ["malformed pax header", archive(entry("pax", "x", body), entry("f", "0")), /malformed pax/],
    ["backslash", archive(entry("a\\..\\..\\x", "0", body)), /forbidden/],
  ];
  for (const [what, bytes, message] of evil) {
    await inTemp(async (dir) => {
      await Deno.mkdir(`${dir}/stage`);
      await assert.rejects(extractTar(once(bytes), `${dir}/stage`), (e: unknown) => {
        assert.ok(e instanceof TarError, `${what}: ${e}`);
        assert.match(e.message, message, what);
        return true;
      });
      const left = [];
      for await (const x of Deno.readDir(dir)) left.push(x.name);
      assert.deepEqual(left, ["stage"], `${what}: nothing written outside the staging folder`);
    });
  }
});

Deno.test("extractTar() refuses corrupt, truncated and oversized archives", async () => {
  const good = archive(entry("f", "0", new Uint8Array(1000)));
  const badSum = good.slice();
  badSum[0] = 0x67;
  const cases: Array<[string, Uint8Array, RegExp, object?]> = [
    ["checksum", badSum, /checksum/],
    ["truncated", good.slice(0, 700), /truncated/],
    ["no end marker", good.slice(0, 1536), /end marker/],
    ["too big", good, /more than 100 bytes/, { maxBytes: 100 }],
    ["too many", archive(entry("a", "0"), entry("b", "0")), /more than 1 entries/, {
      maxEntries: 1,
    }],
  ];
  for (const [what, bytes, message, limits] of cases) {
    await inTemp(async (dir) => {
      await assert.rejects(extractTar(once(bytes), dir, limits), (e: unknown) => {
        assert.ok(e instanceof TarError, `${what}: ${e}`);
        assert.match(e.message, message, what);
        return true;
      });
    });
  }
});

Deno.test("safeRelativePath() normalises harmless paths and refuses escapes", () => {
  assert.equal(safeRelativePath("./a//b/./c"), "a/b/c");
  for (const p of ["..", "a/..", "/a", "", ".", "a\0b"]) {
    assert.throws(() => safeRelativePath(p), TarError, p);
  }
});

/** Splits `bytes` into pieces of the given sizes, in turn. */
async function* cut(bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield bytes.slice(at, at + n);
    at += n;
  }
}

Deno.test("extractTar() reads an archive however its pieces are cut, and still refuses one cut short", async () => {
  await inTemp(async (dir) => {
    const big = new Uint8Array(70_000).map((_, i) => (i * 13) % 256);
    const bytes = archive(
      entry("a.txt", "0", new TextEncoder().encode("hello\n")),
      entry("sub/", "5"),
      entry("sub/big.bin", "0", big),
      entry("sub/empty", "0"),
    );
    let n = 0;
    for (const sizes of [[1, 2, 509], [7, 3, 1000], [511], [513], [4099], [100_000]]) {
      const out = `${dir}/out${n++}`;
      await Deno.mkdir(out);
      const stats = { bytesCopied: 0 };
      const written = await extractTar(cut(bytes, sizes), out, { stats });
      assert.deepEqual(written, ["a.txt", "sub", "sub/big.bin", "sub/empty"]);
      assert.deepEqual(await Deno.readFile(`${out}/sub/big.bin`), big);
      assert.equal(await Deno.readTextFile(`${out}/a.txt`), "hello\n");
      // Only headers split across pieces are joined (copied); content never is.
      assert.ok(stats.bytesCopied <= 5 * 512, `${sizes}: copied ${stats.bytesCopied} bytes`);
    }
    for (const end of [100, 512, 512 + 600, 512 + 1024 + 512 + 69_999, bytes.length - 1024]) {
      const out = `${dir}/short${end}`;
      await Deno.mkdir(out);
      await assert.rejects(extractTar(cut(bytes.slice(0, end), [333]), out), TarError);
    }
  });
});

Deno.test("a real `tar czf` archive of 72 MiB extracts in linear time: content is never copied, at most a header per entry", async () => {
  await inTemp(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(`${src}/small`, { recursive: true });
    await Deno.writeTextFile(`${src}/install`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const hash = createHash("sha256");
    {
      // 72 MiB, mostly zeros (quick to compress), with random bytes in each MiB to check.
      using f = await Deno.open(`${src}/big.bin`, { write: true, create: true });
      for (let i = 0; i < 72; i++) {
        const mib = new Uint8Array(1024 * 1024);
        crypto.getRandomValues(mib.subarray(i * 1000, i * 1000 + 4096));
        hash.update(mib);
        let at = 0;
        while (at < mib.length) at += await f.write(mib.subarray(at));
      }
    }
    for (let i = 0; i < 300; i++) {
      await Deno.writeTextFile(`${src}/small/f${i}.txt`, `file ${i}\n`.repeat(i));
    }
    const tar = await new Deno.Command("tar", {
      args: ["--format=ustar", "-czf", `${dir}/p.tgz`, "-C", src, "install", "big.bin", "small"],
      stderr: "piped",
    }).output();
    assert.ok(tar.success, new TextDecoder().decode(tar.stderr));

    const out = `${dir}/out`;
    await Deno.mkdir(out);
    const stats = { bytesCopied: 0 };
    using f = await Deno.open(`${dir}/p.tgz`);
    const written = await extractTar(gunzip(f.readable), out, { stats });
    assert.equal(written.length, 1 + 1 + 1 + 300);
    const got = createHash("sha256");
    for await (const piece of (await Deno.open(`${out}/big.bin`)).readable) got.update(piece);
    assert.equal(got.digest("hex"), hash.digest("hex"));
    assert.equal(await Deno.readTextFile(`${out}/small/f7.txt`), "file 7\n".repeat(7));
    assert.equal((await Deno.stat(`${out}/install`)).mode! & 0o777, 0o755);
    // Linear: at most one header's worth copied per entry (joining a header split across two
    // gunzip pieces), whatever the size of the content; the old reader copied the whole rest of
    // its buffer on every read.
    assert.ok(
      stats.bytesCopied <= 512 * (written.length + 1),
      `copied ${stats.bytesCopied} bytes for ${written.length} entries`,
    );
  });
});

/** A pax extended header (`x`, or `g` for a global one) holding `records`. */
function paxHeader(records: Array<[string, string]>, type = "x"): Uint8Array {
  const e = new TextEncoder();
  let body = "";
  for (const [k, v] of records) {
    const rec = ` ${k}=${v}\n`;
    let n = e.encode(rec).length;
    while (String(n).length + e.encode(rec).length !== n) {
      n = String(n).length + e.encode(rec).length;
    }
    body += `${n}${rec}`;
  }
  return entry("./PaxHeaders/x", type, e.encode(body));
}

/** `entry()` with its mode field set (permission and other bits). */
function withMode(bytes: Uint8Array, mode: number): Uint8Array {
  const h = bytes.slice();
  const e = new TextEncoder();
  h.set(e.encode(mode.toString(8).padStart(7, "0") + "\0"), 100);
  h.fill(0x20, 148, 156);
  const sum = h.subarray(0, 512).reduce((a, b) => a + b, 0);
  h.set(e.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return h;
}

Deno.test("extractTar() skips the archive's root entry ./ and keeps its folder's mode", async () => {
  await inTemp(async (dir) => {
    await Deno.chmod(dir, 0o700);
    const bytes = archive(
      withMode(entry("./", "5"), 0o777),
      entry("./a", "0", new TextEncoder().encode("a")),
    );
    assert.deepEqual(await extractTar(once(bytes), dir), ["a"]);
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    assert.equal(await Deno.readTextFile(`${dir}/a`), "a");
  });
});

Deno.test("extractTar() sets a folder's mode after its contents, as GNU tar does", async () => {
  await inTemp(async (dir) => {
    const bytes = archive(
      withMode(entry("ro/", "5"), 0o555),
      withMode(entry("ro/sub/", "5"), 0o500),
      entry("ro/sub/f", "0", new TextEncoder().encode("x")),
      // A folder entry after a file inside it (the folder was implied): its mode still applies.
      entry("late/f", "0"),
      withMode(entry("late/", "5"), 0o750),
    );
    await extractTar(once(bytes), `${dir}`);
    assert.equal((await Deno.stat(`${dir}/ro`)).mode! & 0o777, 0o555);
    assert.equal((await Deno.stat(`${dir}/ro/sub`)).mode! & 0o777, 0o500);
    assert.equal(await Deno.readTextFile(`${dir}/ro/sub/f`), "x");
    assert.equal((await Deno.stat(`${dir}/late`)).mode! & 0o777, 0o750);
    await Deno.chmod(`${dir}/ro/sub`, 0o700);
    await Deno.chmod(`${dir}/ro`, 0o700);
  });
});

Deno.test("extractTar() drops setuid, setgid and sticky bits", async () => {
  await inTemp(async (dir) => {
    const bytes = archive(
      withMode(entry("suid", "0"), 0o4755),
      withMode(entry("sgid", "0"), 0o2750),
      withMode(entry("sticky/", "5"), 0o1777),
    );
    await extractTar(once(bytes), dir);
    assert.equal((await Deno.stat(`${dir}/suid`)).mode! & 0o7777, 0o755);
    assert.equal((await Deno.stat(`${dir}/sgid`)).mode! & 0o7777, 0o750);
    assert.equal((await Deno.stat(`${dir}/sticky`)).mode! & 0o7777, 0o777);
  });
});

Deno.test("extractTar() reads a GNU base-256 size and refuses a negative one", async () => {
  const base256 = (first: number) => {
    const bytes = entry("f", "0", new TextEncoder().encode("hello"));
    const h = bytes.slice();
    h.fill(0, 124, 136);
    h[124] = first;
    h[135] = 5;
    h.fill(0x20, 148, 156);
    const sum = h.subarray(0, 512).reduce((a, b) => a + b, 0);
    h.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
    return archive(h);
  };
  await inTemp(async (dir) => {
    await extractTar(once(base256(0x80)), dir);
    assert.equal(await Deno.readTextFile(`${dir}/f`), "hello");
  });
  await inTemp(async (dir) => {
    await assert.rejects(extractTar(once(base256(0xff)), dir), /negative or malformed size/);
  });
});

Deno.test("extractTar() obeys a pax path and size, and ignores global headers and other pax records", async () => {
  await inTemp(async (dir) => {
    const body = new TextEncoder().encode("hello");
    const long = "n".repeat(150) + "/" + "é".repeat(60);
    const bytes = archive(
      paxHeader([["path", "../global-escape"], ["comment", "never obeyed"]], "g"),
      paxHeader([
        ["path", long],
        ["size", "5"],
        ["mtime", "1700000000.5"],
        ["uid", "0"],
        ["uname", "root"],
        ["linkpath", "/etc/passwd"],
        ["SCHILY.xattr.security.capability", "x"],
      ]),
      entry("short-name-ignored", "0", body),
      entry("after-global", "0", body),
    );
    const out = `${dir}/out`;
    await Deno.mkdir(out);
    assert.deepEqual(await extractTar(once(bytes), out), [long, "after-global"]);
    assert.equal(await Deno.readTextFile(`${out}/${long}`), "hello");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["out"]);
  });
});

Deno.test("extractTar() takes a GNU long name for the next entry only", async () => {
  await inTemp(async (dir) => {
    const long = "d".repeat(120) + "/" + "f".repeat(120);
    const name = new TextEncoder().encode(long + "\0");
    const bytes = archive(
      entry("././@LongLink", "L", name),
      entry("truncated-name", "0", new TextEncoder().encode("long")),
      entry("next", "0", new TextEncoder().encode("next")),
    );
    assert.deepEqual(await extractTar(once(bytes), dir), [long, "next"]);
    assert.equal(await Deno.readTextFile(`${dir}/${long}`), "long");
  });
});

const installBody = new TextEncoder().encode("#!/bin/sh\n");

Deno.test("inspectPayload() sums a good payload's entries and bytes, with no permission to write", async () => {
  await inTemp(async (dir) => {
    const bytes = archive(
      withMode(entry("./", "5"), 0o755),
      withMode(entry("./install", "0", installBody), 0o755),
      entry("./lib/", "5"),
      entry("./lib/data", "0", new Uint8Array(1000)),
    );
    await Deno.writeFile(`${dir}/p.tgz`, await collect(gzip(once(bytes))));
    const payload = new URL("../protocol/package/payload.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/inspect.ts`,
      `import { inspectPayload } from ${JSON.stringify(payload)};
      using f = await Deno.open(Deno.args[0]!);
      console.log(JSON.stringify(await inspectPayload(f.readable)));`,
    );
    // Read permission only: any attempt to write (a temporary folder, say) would fail.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", `${dir}/inspect.ts`, `${dir}/p.tgz`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), { entries: 3, bytes: 1010 });
  });
});

Deno.test("inspectPayload() refuses a payload that is not gzip or has no executable install at its top", async () => {
  const gz = async (bytes: Uint8Array) => await collect(gzip(once(bytes)));
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ["plain tar", archive(withMode(entry("install", "0", installBody), 0o755)), /not gzip/],
    ["empty", new Uint8Array(0), /not gzip/],
    ["one byte", new Uint8Array([0x1f]), /not gzip/],
    ["corrupt gzip", new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7]), /not valid gzip/],
    ["no install", await gz(archive(entry("run", "0", installBody))), /no "install" program/],
    [
      "install one level down",
      await gz(archive(withMode(entry("pkg/install", "0", installBody), 0o755))),
      /no "install" program at its top/,
    ],
    ["install is a folder", await gz(archive(entry("install/", "5"))), /not a regular file/],
    [
      "install not executable",
      await gz(archive(withMode(entry("install", "0", installBody), 0o644))),
      /not executable/,
    ],
    [
      "install executable by others only",
      await gz(archive(withMode(entry("install", "0", installBody), 0o611))),
      /not executable/,
    ],
    [
      "a bad archive",
      await gz(archive(withMode(entry("install", "0", installBody), 0o755), entry("l", "2"))),
      /"l" is a symbolic link/,
    ],
  ];
  for (const [what, bytes, message] of cases) {
    await assert.rejects(inspectPayload(once(bytes)), (e: unknown) => {
      assert.ok(e instanceof PayloadError, `${what}: ${e}`);
      assert.match(e.message, message, what);
      return true;
    });
  }
});

Deno.test("checkInstallProgram() wants a regular file with its owner execute bit", () => {
  checkInstallProgram({ isFile: true, mode: 0o700 });
  checkInstallProgram({ isFile: true, mode: 0o100755 });
  assert.throws(() => checkInstallProgram(null), PayloadError);
  assert.throws(() => checkInstallProgram({ isFile: false, mode: 0o755 }), PayloadError);
  assert.throws(() => checkInstallProgram({ isFile: true, mode: 0o655 }), PayloadError);
  assert.throws(() => checkInstallProgram({ isFile: true, mode: null }), PayloadError);
});

Deno.test("PayloadInspector checks a payload pushed piece by piece, a push resolving once it is consumed", async () => {
  const bytes = archive(
    withMode(entry("install", "0", installBody), 0o755),
    entry("big", "0", new Uint8Array(300_000).map((_, i) => i % 251)),
  );
  const gz = await collect(gzip(once(bytes)));
  for (const size of [1, 7, 4096, gz.length]) {
    const inspector = new PayloadInspector();
    for (let at = 0; at < gz.length; at += size) await inspector.push(gz.slice(at, at + size));
    assert.deepEqual(await inspector.end(), { entries: 2, bytes: 300_010 }, `pieces of ${size}`);
  }
  // Backpressure: a push is not resolved before the inspector has taken its bytes.
  const inspector = new PayloadInspector();
  let taken = false;
  const first = inspector.push(gz.slice(0, 10)).then(() => (taken = true));
  assert.equal(taken, false);
  await first;
  assert.equal(taken, true);
  await inspector.push(gz.slice(10));
  assert.deepEqual(await inspector.end(), { entries: 2, bytes: 300_010 });
});

Deno.test("PayloadInspector rejects every push after the failure, and end() names it", async () => {
  const inspector = new PayloadInspector();
  await inspector.push(new TextEncoder().encode("not gzip at all"));
  for (let i = 0; i < 5; i++) {
    await assert.rejects(inspector.push(new Uint8Array(100_000)), PayloadError);
  }
  await assert.rejects(inspector.end(), (e: unknown) => {
    assert.ok(e instanceof PayloadError);
    assert.match(e.message, /not gzip/);
    return true;
  });
  // A payload that stops part-way through its archive.
  const gz = await collect(
    gzip(once(archive(withMode(entry("install", "0", installBody), 0o755)).slice(0, 700))),
  );
  const cut = new PayloadInspector();
  await cut.push(gz);
  await assert.rejects(cut.end(), /truncated/);
});

Deno.test("inspectPayload() passes on what its source throws: a failing upload is not a bad payload", async () => {
  class Gone extends Error {}
  const source = async function* () {
    yield new Uint8Array([0x1f, 0x8b, 8, 0]);
    throw new Gone("the client went away");
  };
  await assert.rejects(inspectPayload(source()), (e: unknown) => {
    assert.ok(e instanceof Gone, String(e));
    return true;
  });
});

Deno.test("extractTar() counts every header it reads: a flood of ./ entries, pax or long-name headers is refused", async () => {
  // maxEntries 2 → at most 4 × 2 + 16 = 24 headers of any kind.
  const root = () => entry("./", "5");
  const longName = (name: string) => {
    const h = entry("././@LongLink", "L", new TextEncoder().encode(`${name}\0`));
    return h;
  };
  const cases: Array<[string, Uint8Array, Uint8Array]> = [
    [
      "./ entries",
      archive(entry("f", "0"), ...Array.from({ length: 23 }, root)),
      archive(entry("f", "0"), ...Array.from({ length: 24 }, root)),
    ],
    [
      "pax headers",
      archive(
        entry("f", "0"),
        root(),
        ...Array.from({ length: 11 }, () => [paxHeader([["comment", "c"]]), root()]).flat(),
      ),
      archive(
        entry("f", "0"),
        ...Array.from({ length: 12 }, () => [paxHeader([["comment", "c"]]), root()]).flat(),
      ),
    ],
    [
      "long-name headers",
      archive(
        entry("f", "0"),
        root(),
        ...Array.from({ length: 11 }, () => [longName("./"), root()]).flat(),
      ),
      archive(
        entry("f", "0"),
        ...Array.from({ length: 12 }, () => [longName("./"), root()]).flat(),
      ),
    ],
  ];
  for (const [what, fits, over] of cases) {
    await inTemp(async (dir) => {
      assert.deepEqual(await extractTar(once(fits), dir, { maxEntries: 2 }), ["f"], what);
    });
    await inTemp(async (dir) => {
      await assert.rejects(
        extractTar(once(over), dir, { maxEntries: 2 }),
        (e: unknown) => {
          assert.ok(e instanceof TarError, `${what}: ${e}`);
          assert.match(e.message, /more than 24 headers \(root "\.\/" entries, pax and long-name/);
          return true;
        },
      );
    });
  }
});

Deno.test("inspectPayload() refuses a payload of install and 40,016 ./ entries (4 × 10,000 + 16 headers at most)", async () => {
  const install = withMode(entry("install", "0", new TextEncoder().encode("#!/bin/sh\n")), 0o755);
  const root = entry("./", "5");
  const payload = (roots: number) =>
    gzip(once(archive(install, ...Array.from({ length: roots }, () => root))));
  const summary = await inspectPayload(payload(40_015));
  assert.deepEqual(summary, { entries: 1, bytes: 10 });
  await assert.rejects(inspectPayload(payload(40_016)), (e: unknown) => {
    assert.ok(e instanceof PayloadError, String(e));
    assert.match(e.message, /more than 40016 headers/);
    return true;
  });
});

Deno.test("extractTar() takes a path 128 levels deep and refuses one 129 levels deep", async () => {
  const path = (levels: number) => Array.from({ length: levels }, () => "d").join("/");
  await inTemp(async (dir) => {
    const written = await extractTar(
      once(archive(paxHeader([["path", path(128)]]), entry("f", "0"))),
      dir,
    );
    assert.deepEqual(written, [path(128)]);
    assert.ok((await Deno.lstat(`${dir}/${path(128)}`)).isFile);
  });
  await inTemp(async (dir) => {
    await assert.rejects(
      extractTar(once(archive(paxHeader([["path", path(129)]]), entry("f", "0"))), dir),
      (e: unknown) => {
        assert.ok(e instanceof TarError, String(e));
        assert.match(e.message, /is 129 levels deep; at most 128 levels are allowed/);
        return true;
      },
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written");
  });
});

Deno.test("inspectPayload() lets timers run while it checks a payload that inflates to 64 MiB", async () => {
  const install = withMode(entry("install", "0", new TextEncoder().encode("#!/bin/sh\n")), 0o755);
  const zeros = entry("zeros", "0");
  // The header says 64 MiB of content; the content (zeros) is streamed in 1 MiB pieces.
  const size = 64 * 1024 * 1024;
  const h = zeros.slice(0, 512);
  const e = new TextEncoder();
  h.set(e.encode(size.toString(8).padStart(11, "0") + "\0"), 124);
  h.set(e.encode("        "), 148);
  const sum = h.reduce((a, b) => a + b, 0);
  h.set(e.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  async function* tar(): AsyncGenerator<Uint8Array> {
    yield install;
    yield h;
    const mib = new Uint8Array(1024 * 1024);
    for (let i = 0; i < 64; i++) yield mib;
    yield new Uint8Array(1024);
  }
  const gz = await collect(gzip(tar()));
  let ticks = 0;
  let done = false;
  const ticking = (async () => {
    while (!done) {
      await new Promise((r) => setTimeout(r, 0));
      ticks++;
    }
  })();
  const started = performance.now();
  const summary = await inspectPayload(once(gz)).finally(() => (done = true));
  const tookMs = performance.now() - started;
  await ticking;
  assert.equal(summary.bytes, 10 + size);
  // Pauses throughout (each lets a timer run): without them, none. Counted against wall time,
  // loosely: on a loaded machine (the whole suite in parallel) the process is often descheduled,
  // and a pause every 10 ms of work showed as one per 50 ms of wall time (33 in 1,653 ms).
  assert.ok(ticks >= Math.floor(tookMs / 200), `${ticks} timer turns in ${Math.round(tookMs)} ms`);
  assert.ok(ticks >= 3, `${ticks} timer turns in ${Math.round(tookMs)} ms`);
});
