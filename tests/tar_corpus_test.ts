/**
 * The differential tar test (issue 17): a corpus of archives made here by the
 * real tools — GNU tar in each format, Python's `tarfile` in each format,
 * bsdtar when installed — and of hostile archives crafted with Python.
 * Every benign archive must extract to the same tree as GNU tar makes of it
 * (paths, kinds, bytes, mode & 0o777), and pass inspectPayload() when it has
 * an `install`; every hostile one must be refused by both extractTar()
 * (writing nothing outside its folder) and inspectPayload().
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { extractTar, gunzip, TarError } from "../protocol/package/tar.ts";
import { inspectPayload, PayloadError } from "../protocol/package/payload.ts";

const text = new TextDecoder();

/** Runs a program; throws with its stderr when it fails. */
async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${text.decode(out.stderr)}`);
  }
}

async function has(cmd: string): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tar-corpus-" });
  try {
    await fn(dir);
  } finally {
    // Read-only folders from the corpus: make them removable by a non-root user too.
    await run("chmod", ["-R", "u+rwx", dir]).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

const longA = "p".repeat(80) + "/" + "q".repeat(90) + ".txt"; // 175 bytes: ustar's prefix field
const longB = "L".repeat(200) + "/" + "M".repeat(200) + ".txt"; // 405 bytes: pax or GNU only
const deep = Array.from({ length: 14 }, (_, i) => `d${i}`).join("/") + "/leaf.txt";

/** A package source tree with every kind of thing a package holds; `long` adds a path over 255 bytes. */
async function makeTree(dir: string, long: boolean): Promise<void> {
  const file = async (path: string, body: string | Uint8Array, mode = 0o644) => {
    await Deno.mkdir(`${dir}/${path}`.slice(0, `${dir}/${path}`.lastIndexOf("/")), {
      recursive: true,
    });
    if (typeof body === "string") await Deno.writeTextFile(`${dir}/${path}`, body);
    else await Deno.writeFile(`${dir}/${path}`, body);
    await Deno.chmod(`${dir}/${path}`, mode);
  };
  await Deno.mkdir(dir, { recursive: true });
  await file("install", "#!/bin/sh\necho installed\n", 0o755);
  await file("bin/run", "#!/bin/sh\n", 0o700);
  await file("bin/setuid", "#!/bin/sh\n", 0o4755);
  await file("etc/conf", "key=value\n", 0o600);
  await file("etc/empty", "");
  const blob = new Uint8Array(100_000);
  crypto.getRandomValues(blob.subarray(0, 65536));
  crypto.getRandomValues(blob.subarray(65536));
  await file("data/blob.bin", blob);
  await Deno.mkdir(`${dir}/empty-dir`);
  await file("private/key", "secret\n", 0o640);
  await Deno.chmod(`${dir}/private`, 0o750);
  await file("données/été ☃.txt", "unicode\n");
  await file(deep, "deep\n");
  await file(longA, "long name over 100 bytes\n");
  if (long) await file(longB, "long name over 255 bytes\n");
  // Last: a read-only folder (modes are applied after contents, as GNU tar does).
  await file("readonly/file", "read only\n", 0o444);
  await Deno.chmod(`${dir}/readonly`, 0o555);
}

interface Node {
  kind: "file" | "dir" | "other";
  mode: number;
  sha256?: string;
}

/** Every path under `root` (not root itself) with its kind, mode & 0o777 and content digest. */
async function tree(root: string): Promise<Map<string, Node>> {
  const out = new Map<string, Node>();
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      const info = await Deno.lstat(`${root}/${path}`);
      const mode = info.mode! & 0o777;
      if (info.isFile) {
        const sha256 = createHash("sha256").update(await Deno.readFile(`${root}/${path}`))
          .digest("hex");
        out.set(path, { kind: "file", mode, sha256 });
      } else if (info.isDirectory) {
        out.set(path, { kind: "dir", mode });
        await walk(path);
      } else {
        out.set(path, { kind: "other", mode });
      }
    }
  };
  await walk("");
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Python that writes a tar archive of `src` in `fmt` to `out` (gzip'd), each top-level item added. */
const pyTar = `
import sys, os, tarfile
out, src, fmt, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
kw = {}
if fmt != "default":
    kw["format"] = getattr(tarfile, fmt)
if fmt == "PAX_FORMAT":
    kw["pax_headers"] = {"comment": "a global header, ignored"}
with tarfile.open(out, "w:gz", **kw) as t:
    if mode == "dot":
        t.add(src, arcname=".")
    else:
        for name in sorted(os.listdir(src)):
            t.add(os.path.join(src, name), arcname=name)
`;

interface Benign {
  name: string;
  long: boolean;
  needs?: string;
  make(out: string, src: string): Promise<void>;
  /** Whether `install` is at the archive's top (inspectPayload accepts). */
  package?: false;
}

const top = (src: string) => [...Deno.readDirSync(src)].map((e) => e.name).sort();

const benign: Benign[] = [
  {
    name: "GNU tar default (gnu) format of `.`",
    long: true,
    make: (out, src) => run("tar", ["czf", out, "-C", src, "."]),
  },
  {
    name: "GNU tar default format of listed items",
    long: true,
    make: (out, src) => run("tar", ["czf", out, "-C", src, ...top(src)]),
  },
  {
    name: "GNU tar --format=gnu of listed files (folders implied)",
    long: true,
    make: (out, src) =>
      run("tar", [
        "--format=gnu",
        "-czf",
        out,
        "-C",
        src,
        "install",
        "bin/run",
        "données/été ☃.txt",
        deep,
        longB,
      ]),
  },
  {
    name: "GNU tar --format=ustar of `.`",
    long: false,
    make: (out, src) => run("tar", ["--format=ustar", "-czf", out, "-C", src, "."]),
  },
  {
    name: "GNU tar --format=posix of `.`",
    long: true,
    make: (out, src) => run("tar", ["--format=posix", "-czf", out, "-C", src, "."]),
  },
  {
    name: "GNU tar --format=posix of listed items in a UTF-8 locale",
    long: true,
    make: (out, src) =>
      run("tar", ["--format=posix", "-czf", out, "-C", src, ...top(src)], {
        LC_ALL: "C.UTF-8",
      }),
  },
  {
    name: "GNU tar reproducible (sorted, owner 0, mtime 0) with 32 KiB records",
    long: true,
    make: (out, src) =>
      run("tar", [
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--mtime=@0",
        "-b",
        "64",
        "-czf",
        out,
        "-C",
        src,
        ".",
      ]),
  },
  {
    name: "GNU tar of the install program alone",
    long: false,
    make: (out, src) => run("tar", ["czf", out, "-C", src, "install"]),
  },
  {
    name: "GNU tar of the folder itself (install one level down: not a package)",
    long: false,
    package: false,
    make: (out, src) => run("tar", ["czf", out, "-C", src.slice(0, src.lastIndexOf("/")), "src"]),
  },
  {
    name: "Python tarfile default (pax) of `.`",
    long: true,
    make: (out, src) => run("python3", ["-c", pyTar, out, src, "default", "dot"]),
  },
  {
    name: "Python tarfile PAX_FORMAT with a global header",
    long: true,
    make: (out, src) => run("python3", ["-c", pyTar, out, src, "PAX_FORMAT", "items"]),
  },
  {
    name: "Python tarfile GNU_FORMAT",
    long: true,
    make: (out, src) => run("python3", ["-c", pyTar, out, src, "GNU_FORMAT", "items"]),
  },
  {
    name: "Python tarfile USTAR_FORMAT",
    long: false,
    make: (out, src) => run("python3", ["-c", pyTar, out, src, "USTAR_FORMAT", "dot"]),
  },
  {
    name: "bsdtar default (restricted pax) of `.`",
    long: true,
    needs: "bsdtar",
    make: (out, src) => run("bsdtar", ["-czf", out, "-C", src, "."]),
  },
  {
    name: "bsdtar --format=pax",
    long: true,
    needs: "bsdtar",
    make: (out, src) => run("bsdtar", ["--format=pax", "-czf", out, "-C", src, ...top(src)]),
  },
  {
    name: "bsdtar --format=ustar",
    long: false,
    needs: "bsdtar",
    make: (out, src) => run("bsdtar", ["--format=ustar", "-czf", out, "-C", src, "."]),
  },
  {
    name: "bsdtar --format=gnutar",
    long: true,
    needs: "bsdtar",
    make: (out, src) => run("bsdtar", ["--format=gnutar", "-czf", out, "-C", src, "."]),
  },
];

function readable(path: string): AsyncIterable<Uint8Array> {
  return (async function* () {
    using f = await Deno.open(path);
    yield* f.readable;
  })();
}

Deno.test("extractTar() makes the same tree as GNU tar of every archive GNU tar, Python and bsdtar make, and inspectPayload() accepts each package", async () => {
  const bsdtar = await has("bsdtar");
  if (!bsdtar) console.log("note: bsdtar is not installed; its archives are skipped");
  await inTemp(async (dir) => {
    await makeTree(`${dir}/long/src`, true);
    await makeTree(`${dir}/short/src`, false);
    let n = 0;
    let compared = 0;
    for (const c of benign) {
      if (c.needs === "bsdtar" && !bsdtar) continue;
      const work = `${dir}/case${n++}`;
      await Deno.mkdir(`${work}/ref`, { recursive: true });
      await Deno.mkdir(`${work}/ours`);
      const src = `${dir}/${c.long ? "long" : "short"}/src`;
      const archive = `${work}/p.tgz`;
      await c.make(archive, src);
      await run("tar", ["xzf", archive, "-C", `${work}/ref`, "--no-same-owner", "-p"]);
      const written = await extractTar(gunzip(readable(archive)), `${work}/ours`);
      const ref = await tree(`${work}/ref`);
      const ours = await tree(`${work}/ours`);
      assert.ok(ref.size >= 1, `${c.name}: GNU tar extracted ${ref.size} paths`);
      assert.deepEqual([...ours.keys()], [...ref.keys()], `${c.name}: same paths`);
      for (const [path, node] of ref) {
        assert.deepEqual(ours.get(path), node, `${c.name}: "${path}" kind, mode and bytes`);
      }
      // setuid and setgid are dropped (GNU tar keeps them when run as root).
      for (const path of ours.keys()) {
        const mode = (await Deno.lstat(`${work}/ours/${path}`)).mode!;
        assert.equal(mode & 0o7000, 0, `${c.name}: "${path}" has no setuid, setgid or sticky bit`);
      }
      const summary = inspectPayload(readable(archive));
      if (c.package === false) {
        await assert.rejects(summary, /no "install" program at its top/, c.name);
      } else {
        const files = [...ours.values()].filter((x) => x.kind === "file");
        let bytes = 0;
        for (const p of written) {
          const info = await Deno.lstat(`${work}/ours/${p}`);
          if (info.isFile) bytes += info.size;
        }
        assert.deepEqual(await summary, { entries: written.length, bytes }, c.name);
        assert.ok(files.length >= 1);
      }
      compared++;
    }
    assert.ok(compared >= 12, `${compared} archives compared`);
  });
});

/**
 * Python that writes the hostile corpus into argv[1], one gzip'd archive per
 * case (`<case>.tgz`), each starting with a good executable `install` so
 * that only the hostile part can be the reason for a refusal. Raw headers are
 * crafted where tarfile would not write the trick.
 */
const pyHostile = `
import sys, os, io, gzip, tarfile
out = sys.argv[1]
escape = sys.argv[2]

def hdr(name, type=b"0", size=0, mode=0o644, magic=b"ustar\\x0000", sizefield=None):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"%07o\\0" % mode
    h[108:116] = b"%07o\\0" % 0
    h[116:124] = b"%07o\\0" % 0
    h[124:136] = sizefield if sizefield is not None else b"%011o\\0" % size
    h[136:148] = b"%011o\\0" % 0
    h[148:156] = b" " * 8
    h[156:157] = type
    h[257:265] = magic
    h[148:156] = b"%06o\\0 " % sum(h)
    return bytes(h)

def pad(b):
    return b + b"\\0" * ((512 - len(b) % 512) % 512)

def member(name, body=b"", type=b"0", mode=0o644, **kw):
    return hdr(name, type, len(body), mode, **kw) + pad(body)

def pax(records, type=b"x"):
    body = b""
    for k, v in records:
        rec = b" " + k + b"=" + v + b"\\n"
        n = len(rec)
        while len(str(n).encode()) + len(rec) != n:
            n = len(str(n).encode()) + len(rec)
        body += str(n).encode() + rec
    return member(b"./PaxHeaders/x", body, type)

def longname(name, type=b"L"):
    return member(b"././@LongLink", name + b"\\0", type, magic=b"ustar  \\0")

INSTALL = member(b"install", b"#!/bin/sh\\n", mode=0o755)
END = b"\\0" * 1024

def raw(case, data):
    with open(os.path.join(out, case + ".tgz"), "wb") as f:
        f.write(gzip.compress(data))

def made(case, members, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        i = tarfile.TarInfo("install")
        i.mode = 0o755
        i.size = 10
        t.addfile(i, io.BytesIO(b"#!/bin/sh\\n"))
        for info, body in members:
            t.addfile(info, io.BytesIO(body) if body is not None else None)
    raw(case, buf.getvalue())

def info(name, type=tarfile.REGTYPE, size=0, **kw):
    i = tarfile.TarInfo(name)
    i.type = type
    i.size = size
    for k, v in kw.items():
        setattr(i, k, v)
    return i

made("dotdot", [(info("../escape", size=5), b"pwned")], tarfile.USTAR_FORMAT)
made("nested-dotdot", [(info("a/../../escape", size=5), b"pwned")], tarfile.USTAR_FORMAT)
made("absolute", [(info(escape, size=5), b"pwned")], tarfile.PAX_FORMAT)
made("pax-path-dotdot", [(info("ok", size=5, pax_headers={"path": "../escape"}), b"pwned")])
made("pax-path-absolute", [(info("ok", size=5, pax_headers={"path": escape}), b"pwned")])
made("gnu-longname-dotdot", [(info("../" + "x" * 120, size=5), b"pwned")], tarfile.GNU_FORMAT)
made("symlink", [(info("link", tarfile.SYMTYPE, linkname="/etc"), None)])
made("hardlink", [(info("hard", tarfile.LNKTYPE, linkname="install"), None)])
made("gnu-longlink", [(info("link", tarfile.SYMTYPE, linkname="/" + "e" * 150), None)], tarfile.GNU_FORMAT)
made("char-device", [(info("tty", tarfile.CHRTYPE, devmajor=5, devminor=0), None)])
made("block-device", [(info("sda", tarfile.BLKTYPE, devmajor=8, devminor=0), None)])
made("fifo", [(info("pipe", tarfile.FIFOTYPE), None)])
made("duplicate-file", [(info("f", size=1), b"a"), (info("f", size=1), b"b")])
made("duplicate-install", [(info("install", size=1, mode=0o644), b"b")])
made("file-then-dir", [(info("p", size=1), b"a"), (info("p", tarfile.DIRTYPE), None)])
made("dir-then-file", [(info("p", tarfile.DIRTYPE), None), (info("p", size=1), b"a")])
made("dir-twice", [(info("p", tarfile.DIRTYPE), None), (info("p/", tarfile.DIRTYPE), None)])
made("under-a-file", [(info("f", size=1), b"a"), (info("f/g", size=1), b"b")])
made("too-many-entries", [(info("f%05d" % i), None) for i in range(10_000)], tarfile.USTAR_FORMAT)

body = b"pwned-pwned"
raw("pax-size-mismatch", INSTALL + pax([(b"size", b"5")]) + member(b"f", body) + END)
raw("pax-size-on-longname", INSTALL + pax([(b"size", b"5")]) + longname(b"f" * 120) + member(b"f", body, magic=b"ustar  \\0") + END)
raw("pax-header-on-longname", INSTALL + pax([(b"mtime", b"1")]) + longname(b"f" * 120) + member(b"f", body, magic=b"ustar  \\0") + END)
raw("pax-nul-in-path", INSTALL + pax([(b"path", b"ok\\0/../../escape")]) + member(b"ok", body) + END)
raw("pax-huge-header", INSTALL + pax([(b"comment", b"c" * 70_000)]) + member(b"f", body) + END)
raw("pax-two-headers", INSTALL + pax([(b"path", b"a")]) + pax([(b"path", b"b")]) + member(b"f", body) + END)
raw("pax-sparse-records", INSTALL + pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.name", b"s")]) + member(b"f", body) + END)
raw("pax-malformed-record", INSTALL + member(b"./PaxHeaders/x", b"99 path=a\\n", b"x") + member(b"f", body) + END)
raw("pax-header-then-end", INSTALL + pax([(b"path", b"a")]) + END)
raw("longname-with-trailing-bytes", INSTALL + member(b"././@LongLink", b"ok\\0/../escape", b"L", magic=b"ustar  \\0") + member(b"f", body) + END)
raw("negative-base256-size", INSTALL + hdr(b"f", sizefield=b"\\xff" * 12) + END)
raw("bad-checksum", INSTALL + member(b"f", body)[:148] + b"0000000\\0" + member(b"f", body)[156:] + END)
raw("not-ustar", INSTALL + member(b"f", body, magic=b"\\0" * 8) + END)
raw("unknown-type", INSTALL + member(b"f", body, type=b"Z") + END)
raw("truncated", INSTALL + member(b"f", b"x" * 5000)[:3000])
raw("missing-end-marker", INSTALL + member(b"f", body))
raw("lone-zero-block", INSTALL + member(b"f", body) + b"\\0" * 512)
raw("data-after-end", INSTALL + END + member(b"f", body))
raw("name-not-utf8", INSTALL + member(b"f\\xff", body) + END)
raw("component-over-255", INSTALL + pax([(b"path", b"n" * 256)]) + member(b"f", body) + END)
raw("path-over-3072", INSTALL + pax([(b"path", b"/".join([b"n" * 200] * 16))]) + member(b"f", body) + END)
raw("backslash", INSTALL + member(b"a\\\\..\\\\..\\\\escape", body) + END)
# Headers that hand out no entry still count: 4 x 10,000 + 16 headers at most, install included.
ROOT = member(b"./", type=b"5")
raw("root-flood", INSTALL + ROOT * 40_016 + END)
raw("pax-root-flood", INSTALL + (pax([(b"comment", b"c")]) + ROOT) * 20_008 + END)
raw("longname-root-flood", INSTALL + (longname(b"./") + member(b"./", type=b"5", magic=b"ustar  \\0")) * 20_008 + END)
raw("too-deep", INSTALL + pax([(b"path", b"/".join([b"d"] * 129))]) + member(b"f", body) + END)
`;

/** What each hostile case must be refused with (both by extractTar() and inspectPayload()). */
const hostile: Record<string, RegExp> = {
  "dotdot": /escapes with "\.\."/,
  "nested-dotdot": /escapes with "\.\."/,
  "absolute": /is absolute/,
  "pax-path-dotdot": /escapes with "\.\."/,
  "pax-path-absolute": /is absolute/,
  "gnu-longname-dotdot": /escapes with "\.\."/,
  "symlink": /is a symbolic link/,
  "hardlink": /is a hard link/,
  "gnu-longlink": /is a link \(GNU long link name\)/,
  "char-device": /is a character device/,
  "block-device": /is a block device/,
  "fifo": /is a fifo/,
  "gnu-sparse": /is a sparse file/,
  "pax-sparse": /sparse file/,
  "duplicate-file": /has "f" twice/,
  "duplicate-install": /has "install" twice/,
  "file-then-dir": /has "p" twice/,
  "dir-then-file": /has "p" twice/,
  "dir-twice": /has "p" twice/,
  "under-a-file": /"f\/g" under the file "f"/,
  "too-many-entries": /more than 10000 entries/,
  "pax-size-mismatch": /pax size \(5\) that disagrees with its header \(11\)/,
  "pax-size-on-longname": /applies a pax header to a long-name header/,
  "pax-header-on-longname": /applies a pax header to a long-name header/,
  "pax-nul-in-path": /pax path with a NUL/,
  "pax-huge-header": /header over 64 KiB/,
  "pax-two-headers": /two pax or long-name headers for one entry/,
  "pax-sparse-records": /sparse file/,
  "pax-malformed-record": /malformed pax header/,
  "pax-header-then-end": /ends with a pax or long-name header and no entry/,
  "longname-with-trailing-bytes": /long name with bytes after its NUL/,
  "negative-base256-size": /negative or malformed size/,
  "bad-checksum": /checksum does not match/,
  "not-ustar": /not ustar, pax or GNU tar/,
  "unknown-type": /type "Z" entry/,
  "truncated": /truncated/,
  "missing-end-marker": /without its end marker/,
  "lone-zero-block": /without its end marker/,
  "data-after-end": /data after its end marker/,
  "name-not-utf8": /not UTF-8/,
  "component-over-255": /name longer than 255 bytes/,
  "path-over-3072": /path longer than 3072 bytes/,
  "backslash": /forbidden character/,
  "root-flood": /more than 40016 headers \(root "\.\/" entries, pax and long-name/,
  "pax-root-flood": /more than 40016 headers/,
  "longname-root-flood": /more than 40016 headers/,
  "too-deep": /is 129 levels deep; at most 128 levels are allowed/,
};

Deno.test("extractTar() and inspectPayload() refuse every hostile archive, and extractTar() writes nothing outside its folder", async () => {
  await inTemp(async (dir) => {
    const corpus = `${dir}/corpus`;
    await Deno.mkdir(corpus);
    const escape = `${dir}/escaped-absolute`;
    await run("python3", ["-c", pyHostile, corpus, escape]);
    // Sparse files as GNU tar writes them (type S; pax GNU.sparse.* records).
    await Deno.mkdir(`${dir}/sparse`);
    await Deno.writeTextFile(`${dir}/sparse/install`, "#!/bin/sh\n", { mode: 0o755 });
    await run("truncate", ["-s", "4M", `${dir}/sparse/holes`]);
    await run("sh", [
      "-c",
      `printf data | dd of=${dir}/sparse/holes bs=1 seek=3000000 conv=notrunc`,
    ]);
    for (const [c, fmt] of [["gnu-sparse", "gnu"], ["pax-sparse", "posix"]]) {
      await run("tar", [
        "--sparse",
        `--format=${fmt}`,
        "-czf",
        `${corpus}/${c}.tgz`,
        "-C",
        `${dir}/sparse`,
        "install",
        "holes",
      ]);
    }
    const made = [...Deno.readDirSync(corpus)].map((e) => e.name.replace(/\.tgz$/, "")).sort();
    assert.deepEqual(made, Object.keys(hostile).sort(), "every hostile case was made");

    for (const [c, message] of Object.entries(hostile)) {
      const box = `${dir}/box-${c}`;
      await Deno.mkdir(`${box}/stage`, { recursive: true });
      await assert.rejects(
        extractTar(gunzip(readable(`${corpus}/${c}.tgz`)), `${box}/stage`),
        (e: unknown) => {
          assert.ok(e instanceof TarError, `${c}: ${e}`);
          assert.match(e.message, message, c);
          return true;
        },
      );
      assert.deepEqual(
        [...Deno.readDirSync(box)].map((e) => e.name),
        ["stage"],
        `${c}: nothing written beside the staging folder`,
      );
      for (const e of Deno.readDirSync(`${box}/stage`)) {
        const info = Deno.lstatSync(`${box}/stage/${e.name}`);
        assert.ok(info.isFile || info.isDirectory, `${c}: "${e.name}" is a file or folder`);
      }
      await assert.rejects(inspectPayload(readable(`${corpus}/${c}.tgz`)), (e: unknown) => {
        assert.ok(e instanceof PayloadError, `${c}: ${e}`);
        assert.match(e.message, message, `${c} (inspectPayload)`);
        return true;
      });
    }
    assert.equal(await Deno.lstat(escape).catch(() => null), null, "no absolute path written");
  });
});

Deno.test("extractTar() refuses more entries than its limit, counting the folders they imply", async () => {
  await inTemp(async (dir) => {
    await Deno.mkdir(`${dir}/src/a/b`, { recursive: true });
    for (const f of ["x", "y", "z"]) await Deno.writeTextFile(`${dir}/src/a/b/${f}`, f);
    await run("tar", ["czf", `${dir}/p.tgz`, "-C", `${dir}/src`, "a/b/x", "a/b/y", "a/b/z"]);
    // Three files and the two folders they imply: five.
    await Deno.mkdir(`${dir}/ok`);
    await extractTar(gunzip(readable(`${dir}/p.tgz`)), `${dir}/ok`, { maxEntries: 5 });
    await Deno.mkdir(`${dir}/out`);
    await assert.rejects(
      extractTar(gunzip(readable(`${dir}/p.tgz`)), `${dir}/out`, { maxEntries: 4 }),
      /more than 4 entries/,
    );
  });
});
