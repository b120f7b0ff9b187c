/**
 * The agent (root) installs a file only through folders nobody but root can change (like sshd's
 * StrictModes): every folder from `/` down to the destination's is root's and writable by root
 * alone — above the appliance root a root-owned sticky folder such as `/tmp` is accepted — checked
 * before anything is fetched and again before the move. Attacker review 17's two races (F1: the
 * EXDEV copy's temporary file swapped for a link; F2: a folder on the way flipped with
 * `renameat2(RENAME_EXCHANGE)`) run here with a real unprivileged process (python3 as `nobody`)
 * against the real `installFile()`.
 *
 * The tests need root (to own folders as another user and to mount a tmpfs); otherwise they are
 * ignored, and say so.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { installFile, moveIntoPlace } from "../agent/install_file.ts";
import { AgentError } from "../agent/errors.ts";
import type { InstallContext } from "../agent/install_package.ts";
import type { CatalogEntry } from "../protocol/catalog.ts";
import { exportRawPublic, generateEd25519 } from "../protocol/crypto/ed25519.ts";
import { keyId } from "../protocol/keys.ts";
import { signFileinfo } from "../protocol/fileinfo.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { mountTmpfs } from "./_agent.ts";

const asRoot = Deno.uid() === 0;
if (!asRoot) {
  console.log(
    "file_destination_safety_test: skipped — it needs root (folders owned by nobody, a tmpfs)",
  );
}
const nobody = 65534;
const python = "/usr/bin/python3";

/** A place to install into: a root-owned 0755 folder under /tmp with `root` and `state` in it. */
interface Rig {
  base: string;
  root: string;
  state: string;
  /** How many requests the file server answered. */
  requests(): number;
  /** Installs `body` as app `a`, file `name`, to `destination` with `mode`; the signed entry. */
  install(
    name: string,
    destination: string,
    mode: string,
    body: Uint8Array<ArrayBuffer>,
  ): Promise<void>;
}

async function withRig(fn: (rig: Rig) => Promise<void>): Promise<void> {
  const base = await Deno.makeTempDir({ prefix: "noc-dest-" });
  await Deno.chmod(base, 0o755);
  const root = `${base}/root`;
  const state = `${base}/state`;
  await Deno.mkdir(root, { mode: 0o755 });
  await Deno.mkdir(state, { mode: 0o700 });
  const kp = await generateEd25519();
  const raw = await exportRawPublic(kp.publicKey) as Uint8Array<ArrayBuffer>;
  const kid = await keyId(raw);
  const pinnedKeys = [
    { kid, alg: "ed25519", use: ["package"], publicKey: toBase64Url(raw), notAfter: null },
  ];
  let served = 0;
  let current: Uint8Array<ArrayBuffer> = new Uint8Array();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    served++;
    return new Response(current);
  });
  const url = `http://127.0.0.1:${server.addr.port}/f`;
  const ctx = {
    config: {
      state,
      root,
      downloadIdleS: 30,
      installTimeoutS: 30,
      allowHttpFiles: true,
    } as InstallContext["config"],
    identity: { pinnedKeys } as unknown as InstallContext["identity"],
    now: () => new Date(),
    log: { debug() {}, info() {}, warn() {}, error() {}, progress() {} },
    fetch,
  } as InstallContext;
  let version = 0;
  try {
    await fn({
      base,
      root,
      state,
      requests: () => served,
      async install(name, destination, mode, body) {
        current = body;
        const fi = { destination, mode, action: null, uploadDir: null, uploadServer: null };
        const sig = await signFileinfo({ app: "a", name, ...fi }, {
          kid,
          privateKey: kp.privateKey,
        });
        const entry = {
          kind: "file",
          app: "a",
          name,
          version: String(++version),
          urls: [url],
          size: body.length,
          sha256: createHash("sha256").update(body).digest("hex"),
          fileinfo: { ...fi, ...sig },
        } as unknown as CatalogEntry;
        await installFile(ctx, entry);
      },
    });
  } finally {
    await server.shutdown();
    await Deno.remove(base, { recursive: true });
  }
}

/** Every name under `dir` with its kind, owner and mode: what a refused install must not change. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      const st = await Deno.lstat(p);
      out.push(`${p} ${e.isDirectory ? "d" : e.isSymlink ? "l" : "f"} ${st.uid} ${st.mode}`);
      if (e.isDirectory) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

async function chown(path: string, uid: number): Promise<void> {
  await Deno.chown(path, uid, uid);
}

/** Asserts `p` refuses with `code`; returns the message. */
async function refusal(p: Promise<unknown>, code: string): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AgentError, String(e));
    assert.equal(e.code, code, e.message);
    return e.message;
  }
  assert.fail(`not refused; expected ${code}`);
}

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test({
  name: "installFile() refuses a destination folder owned by another user before fetching anything",
  ignore: !asRoot,
  fn: () =>
    withRig(async (t) => {
      await Deno.mkdir(`${t.root}/app/conf.d`, { recursive: true, mode: 0o755 });
      await chown(`${t.root}/app/conf.d`, nobody);
      const before = await tree(t.base);
      const message = await refusal(
        t.install("job", "app/conf.d/sub/job", "0644", bytes("* * * * * root true\n")),
        "unsafe_destination",
      );
      assert.match(
        message,
        new RegExp(`"${t.root}/app/conf.d" \\(owner uid ${nobody}, mode 0755\\)`),
      );
      assert.match(message, /chown root/);
      assert.match(message, /Nothing was fetched or written/);
      assert.equal(t.requests(), 0, "nothing was downloaded");
      assert.deepEqual(await tree(t.base), before, "nothing was made or written anywhere");
    }),
});

Deno.test({
  name: "installFile() refuses a group- or world-writable folder on the way, sticky or not",
  ignore: !asRoot,
  fn: () =>
    withRig(async (t) => {
      await Deno.mkdir(`${t.root}/app`, { mode: 0o755 });
      for (const [mode, fix] of [[0o775, "its group"], [0o777, "others"], [0o1777, "others"]]) {
        await Deno.chmod(`${t.root}/app`, mode as number);
        const before = await tree(t.base);
        const message = await refusal(
          t.install("cfg", "app/cfg", "0644", bytes("x\n")),
          "unsafe_destination",
        );
        assert.match(message, new RegExp(`${fix} can write to it`), message);
        assert.match(message, new RegExp(`mode ${(mode as number).toString(8).padStart(4, "0")}`));
        assert.match(message, /chmod go-w/);
        assert.deepEqual(await tree(t.base), before);
      }
      assert.equal(t.requests(), 0);
      // The appliance root itself is held to the same rule.
      await Deno.chmod(`${t.root}/app`, 0o755);
      await Deno.chmod(t.root, 0o1777);
      const message = await refusal(
        t.install("cfg", "app/cfg", "0644", bytes("x\n")),
        "unsafe_destination",
      );
      assert.match(message, new RegExp(`"${t.root}" \\(owner uid 0, mode 1777\\)`));
      assert.equal(t.requests(), 0);
      // Made right, it installs.
      await Deno.chmod(t.root, 0o755);
      await t.install("cfg", "app/cfg", "0640", bytes("x\n"));
      assert.equal(await Deno.readTextFile(`${t.root}/app/cfg`), "x\n");
      assert.equal((await Deno.stat(`${t.root}/app/cfg`)).mode! & 0o7777, 0o640);
    }),
});

Deno.test({
  name:
    "installFile() refuses a world-writable or foreign parent of the appliance root, and accepts a sticky root-owned one as /tmp",
  ignore: !asRoot,
  fn: () =>
    withRig(async (t) => {
      // The appliance root one level down: <base>/parent/root.
      const parent = `${t.base}/parent`;
      await Deno.mkdir(`${parent}/root`, { recursive: true, mode: 0o755 });
      const ctxRoot = `${parent}/root`;
      await Deno.remove(t.root);
      await Deno.symlink(ctxRoot, t.root); // the rig's configured root leads there
      const install = () => t.install("motd", "etc/motd", "0644", bytes("hello\n"));

      await Deno.chmod(parent, 0o777);
      let message = await refusal(install(), "unsafe_destination");
      assert.match(message, new RegExp(`"${parent}" \\(owner uid 0, mode 0777\\)`), message);
      await Deno.chmod(parent, 0o755);
      await chown(parent, nobody);
      message = await refusal(install(), "unsafe_destination");
      assert.match(message, new RegExp(`"${parent}" \\(owner uid ${nobody}, mode 0755\\)`));
      assert.equal(t.requests(), 0, "refused before the fetch");
      assert.equal(await Deno.lstat(`${ctxRoot}/etc`).catch(() => null), null);

      // Sticky and root's (others may add names, but not move or remove root's): accepted.
      await chown(parent, 0);
      await Deno.chmod(parent, 0o1777);
      await install();
      assert.equal(await Deno.readTextFile(`${ctxRoot}/etc/motd`), "hello\n");
      // Sticky but someone else's: its owner could move the root away.
      await chown(parent, nobody);
      message = await refusal(install(), "unsafe_destination");
      assert.match(message, new RegExp(`"${parent}" \\(owner uid ${nobody}, mode 1777\\)`));
      // A link above the root, in a sticky folder, owned by someone else: its owner could swap it.
      await chown(parent, 0);
      await Deno.remove(t.root);
      await Deno.symlink(ctxRoot, t.root);
      await Deno.chmod(t.base, 0o1777);
      await new Deno.Command("chown", { args: ["-h", String(nobody), t.root] }).output();
      message = await refusal(install(), "unsafe_destination");
      assert.match(message, new RegExp(`the link "${t.root}" \\(owner uid ${nobody}`), message);
      assert.match(message, /chown -h root/);
    }),
});

Deno.test({
  name:
    "installFile() follows a link inside the root through its target's folders, and moves the file through no link",
  ignore: !asRoot,
  fn: () =>
    withRig(async (t) => {
      await Deno.mkdir(`${t.root}/srv/real`, { recursive: true, mode: 0o755 });
      await Deno.symlink("srv/real", `${t.root}/etc`);
      await t.install("motd", "etc/motd", "0644", bytes("one\n"));
      assert.equal(await Deno.readTextFile(`${t.root}/srv/real/motd`), "one\n");
      // The target's folder is checked like any other.
      await chown(`${t.root}/srv`, nobody);
      const message = await refusal(
        t.install("motd", "etc/motd", "0644", bytes("two\n")),
        "unsafe_destination",
      );
      assert.match(message, new RegExp(`"${t.root}/srv" \\(owner uid ${nobody}`));
      // A link out of the root is still refused as before.
      await Deno.symlink(t.state, `${t.root}/out`);
      await refusal(t.install("x", "out/x", "0644", bytes("x")), "path_escapes");
    }),
});

/** What an attacker program counted (each prints some of these). */
type Counts = Record<"tries" | "swapped" | "denied" | "seen" | "gone", number>;

/** A python3 program run as `nobody`; it prints "ready", works until `stop` exists, prints JSON. */
function asNobody(code: string): { ready: Promise<void>; result: Promise<Counts> } {
  const child = new Deno.Command("setpriv", {
    args: [`--reuid=${nobody}`, `--regid=${nobody}`, "--clear-groups", python, "-c", code],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const text = child.stdout.pipeThrough(new TextDecoderStream());
  let markReady!: () => void;
  const ready = new Promise<void>((r) => markReady = r);
  const result = (async () => {
    let all = "";
    for await (const chunk of text) {
      all += chunk;
      if (all.includes("ready\n")) markReady();
    }
    const [status, err] = await Promise.all([child.status, new Response(child.stderr).text()]);
    assert.ok(status.success, err);
    markReady();
    return JSON.parse(all.split("\n").filter(Boolean).at(-1)!);
  })();
  return { ready, result };
}

/** F2's toggler: swaps `a` and `b` with renameat2(RENAME_EXCHANGE) until `stop` exists. */
const toggler = (a: string, b: string, stop: string) => `
import ctypes, os, json
libc = ctypes.CDLL(None, use_errno=True)
a = ${JSON.stringify(a)}.encode(); b = ${JSON.stringify(b)}.encode()
n = ok = denied = 0
print("ready", flush=True)
while not os.path.exists(${JSON.stringify(stop)}):
    for _ in range(200):
        n += 1
        if libc.syscall(316, -100, a, -100, b, 2) == 0: ok += 1
        elif ctypes.get_errno() in (1, 13): denied += 1
print(json.dumps({"tries": n, "swapped": ok, "denied": denied}), flush=True)
`;

Deno.test({
  name:
    "F2: a folder on the way flipped with RENAME_EXCHANGE by nobody never carries a file outside the root",
  ignore: !asRoot,
  fn: () =>
    withRig(async (t) => {
      const outside = `${t.base}/outside`;
      await Deno.mkdir(outside, { mode: 0o755 });
      await Deno.mkdir(`${t.root}/app/conf.d`, { recursive: true, mode: 0o755 });
      await Deno.symlink(outside, `${t.root}/app/evil`);
      const installs = 12;
      const run = async (stop: string) => {
        const flip = asNobody(toggler(`${t.root}/app/conf.d`, `${t.root}/app/evil`, stop));
        await flip.ready;
        let ok = 0, refused = 0, escaped = 0;
        for (let i = 0; i < installs; i++) {
          try {
            await t.install("job", "app/conf.d/job", "0644", bytes(`job ${i}\n`));
            ok++;
          } catch (e) {
            assert.ok(e instanceof AgentError, String(e));
            assert.equal(e.code, "unsafe_destination", e.message);
            refused++;
          }
          if (await Deno.lstat(`${outside}/job`).catch(() => null)) {
            escaped++;
            await Deno.remove(`${outside}/job`);
          }
        }
        await Deno.writeTextFile(stop, "");
        return { ok, refused, escaped, ...(await flip.result) };
      };

      // The folders are root's: nobody cannot flip anything, every install lands inside.
      const strict = await run(`${t.base}/stop1`);
      assert.equal(strict.escaped, 0);
      assert.equal(strict.ok, installs, JSON.stringify(strict));
      assert.ok(strict.tries > 0 && strict.denied === strict.tries, JSON.stringify(strict));
      assert.equal(strict.swapped, 0);
      assert.equal(await Deno.readTextFile(`${t.root}/app/conf.d/job`), `job ${installs - 1}\n`);

      // `app` is nobody's (the review's set-up): nobody really flips it, and every install is
      // refused before anything is fetched.
      await Deno.chown(`${t.root}/app`, nobody, nobody);
      await new Deno.Command("chown", {
        args: ["-h", String(nobody), `${t.root}/app/conf.d`, `${t.root}/app/evil`],
      }).output();
      const served = t.requests();
      const owned = await run(`${t.base}/stop2`);
      assert.equal(owned.escaped, 0, JSON.stringify(owned));
      assert.equal(owned.refused, installs, JSON.stringify(owned));
      assert.ok(owned.swapped > 0, `the attacker could flip the folders: ${JSON.stringify(owned)}`);
      assert.equal(t.requests(), served, "nothing was fetched");
      console.log({ strict, owned });
    }),
});

/** F1's attacker: swaps any `.<name>.noc-*` temporary file in `dir` for a link to `victim`. */
const swapper = (dir: string, prefix: string, victim: string, stop: string) => `
import os, json
d = ${JSON.stringify(dir)}
seen = swapped = denied = gone = 0
print("ready", flush=True)
while not os.path.exists(${JSON.stringify(stop)}):
    try: names = os.listdir(d)
    except OSError: names = []
    for n in names:
        if n.startswith(${JSON.stringify(prefix)}):
            seen += 1
            p = os.path.join(d, n)
            try:
                os.unlink(p); os.symlink(${JSON.stringify(victim)}, p); swapped += 1
            except PermissionError: denied += 1
            except FileNotFoundError: gone += 1
print(json.dumps({"seen": seen, "swapped": swapped, "denied": denied, "gone": gone}), flush=True)
`;

Deno.test({
  name:
    "F1: nobody cannot swap the EXDEV copy's temporary file for a link, and a folder nobody owns is refused up front",
  ignore: !asRoot,
  fn: () =>
    withRig(async (t) => {
      // The appliance root on another filesystem than the state folder: the copy path (EXDEV).
      if (!(await mountTmpfs(t.root, 128))) {
        console.log("F1 test: skipped — a tmpfs cannot be mounted here");
        return;
      }
      try {
        await Deno.chmod(t.root, 0o755);
        assert.notEqual((await Deno.stat(t.root)).dev, (await Deno.stat(t.state)).dev);
        const victim = `${t.base}/victim`;
        await Deno.writeTextFile(victim, "root:secret:::\n", { mode: 0o600 });
        await Deno.chmod(victim, 0o600);
        await Deno.mkdir(`${t.root}/app`, { mode: 0o755 });
        const body = new Uint8Array(48 * 1024 * 1024).fill(0x41);
        const run = async (stop: string) => {
          const attacker = asNobody(swapper(`${t.root}/app`, ".tool.noc-", victim, stop));
          await attacker.ready;
          let error: unknown = null;
          await t.install("tool", "app/tool", "4755", body).catch((e) => error = e);
          await Deno.writeTextFile(stop, "");
          return { error, ...(await attacker.result) };
        };

        // Root's folder: the temporary file is seen but cannot be touched; the file is installed
        // setuid as its fileinfo says, and the victim keeps its mode.
        const strict = await run(`${t.base}/stop1`);
        assert.equal(strict.error, null, String(strict.error));
        assert.equal(strict.swapped, 0, JSON.stringify(strict));
        assert.ok(
          strict.denied > 0,
          `the attacker saw the temporary file: ${JSON.stringify(strict)}`,
        );
        assert.equal(strict.denied + strict.gone, strict.seen, JSON.stringify(strict));
        const dest = await Deno.lstat(`${t.root}/app/tool`);
        assert.ok(dest.isFile, "the destination is the file, not a link");
        assert.equal(dest.mode! & 0o7777, 0o4755);
        assert.equal(dest.size, body.length);
        assert.equal((await Deno.stat(victim)).mode! & 0o7777, 0o600, "the victim is untouched");
        assert.deepEqual(
          [...Deno.readDirSync(`${t.root}/app`)].map((e) => e.name),
          ["tool"],
          "no temporary file is left",
        );

        // The review's set-up, the folder nobody's: refused before the fetch, no temporary file.
        await Deno.chown(`${t.root}/app`, nobody, nobody);
        const served = t.requests();
        const owned = await run(`${t.base}/stop2`);
        assert.ok(owned.error instanceof AgentError, String(owned.error));
        assert.equal(owned.error.code, "unsafe_destination");
        assert.equal(owned.seen, 0, JSON.stringify(owned));
        assert.equal(t.requests(), served, "nothing was fetched");
        assert.equal((await Deno.stat(victim)).mode! & 0o7777, 0o600, "the victim is untouched");
        console.log({ strict: { ...strict, error: null }, owned: { ...owned, error: "refused" } });
      } finally {
        await new Deno.Command("umount", { args: [t.root] }).output();
      }
    }),
});

Deno.test({
  name:
    "moveIntoPlace() refuses a temporary file swapped for a link mid-copy, and chmods nothing through it",
  ignore: !asRoot,
  fn: () =>
    withRig(async (t) => {
      // Defence in depth, called directly: the folder is nobody's (installFile() would refuse it).
      if (!(await mountTmpfs(t.root, 128))) {
        console.log("moveIntoPlace test: skipped — a tmpfs cannot be mounted here");
        return;
      }
      try {
        await Deno.chmod(t.root, 0o755);
        const victim = `${t.base}/victim`;
        await Deno.writeTextFile(victim, "root:secret:::\n");
        await Deno.chmod(victim, 0o600);
        await Deno.mkdir(`${t.root}/app`, { mode: 0o755 });
        await Deno.chown(`${t.root}/app`, nobody, nobody);
        const body = new Uint8Array(48 * 1024 * 1024).fill(0x42);
        const from = `${t.state}/blob.pkg`;
        await Deno.writeFile(from, body, { mode: 0o600 });
        const attacker = asNobody(swapper(`${t.root}/app`, ".tool.noc-", victim, `${t.base}/stop`));
        await attacker.ready;
        const message = await refusal(
          moveIntoPlace(from, `${t.root}/app/tool`, 0o4755, {
            sha256: createHash("sha256").update(body).digest("hex"),
            label: "a/tool@1",
          }),
          "unsafe_destination",
        );
        await Deno.writeTextFile(`${t.base}/stop`, "");
        const counts = await attacker.result;
        assert.ok(counts.swapped > 0, JSON.stringify(counts));
        // The check may fall between the attacker's unlink and symlink.
        assert.match(message, /no longer the file the agent wrote \((now a link|gone)\)/);
        assert.equal((await Deno.stat(victim)).mode! & 0o7777, 0o600, "the victim is untouched");
        assert.equal(await Deno.lstat(`${t.root}/app/tool`).catch(() => null), null);
        assert.ok((await Deno.stat(from)).isFile, "the download is kept");
      } finally {
        await new Deno.Command("umount", { args: [t.root] }).output();
      }
    }),
});
