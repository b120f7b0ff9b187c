/**
 * Files resume like packages, end to end: a real NOC on a test database, a
 * real agent process, and a proxy of the test's own in front of the NOC's
 * component downloads (the NOC's `componentUrl`) that cuts or stalls a
 * download after 200 KiB. The next attempt — the next cycle, or the agent
 * started again after it was killed — asks for the rest with `Range`; a part
 * corrupted on disk is never installed.
 *
 * The agent's retry backoff runs on the wall clock and the agent takes no
 * clock: where a failed attempt is followed by the next one, the test clears
 * the backoff from `state.json` (as tests/fault_test.ts does) rather than wait.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import {
  type AgentBox,
  agentBox,
  type AgentRun,
  mountTmpfs,
  type ServedNoc,
  serveNoc,
} from "./_agent.ts";
import { assignToAll, upload } from "./_components.ts";
import { sha256, toHex } from "../protocol/util/encoding.ts";

const KiB = 1024;
const cutAt = 200 * KiB;
const once = ["once", "--allow-http-files"];

/** One download the proxy passed on: what was asked for and how many body bytes went out. */
interface Served {
  /** The request's `Range` header, or null. */
  range: string | null;
  /** The NOC's status. */
  status: number;
  /** Body bytes written to the agent. */
  bytes: number;
}

/** What the proxy does with the next download. */
type Plan =
  | { kind: "pass" }
  | { kind: "cut"; after: number }
  | { kind: "stall"; after: number; until: Promise<void> };

/** A raw HTTP/1.1 proxy in front of the NOC's component downloads. */
interface CuttingProxy {
  /** Its base URL (the NOC's `componentUrl`). */
  url: string;
  /** Downloads passed on so far, in order. */
  served: Served[];
  /** Queues what to do with the next download (otherwise it passes whole). */
  next(plan: Plan): void;
  /** Stops listening, ends every stall and waits for open connections. */
  close(): Promise<void>;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** Reads a request head (at most 16 KiB): its path and lower-cased headers. */
async function readHead(conn: Deno.Conn): Promise<{ path: string; headers: Headers }> {
  const buf = new Uint8Array(16 * KiB);
  let len = 0;
  for (;;) {
    const n = await conn.read(buf.subarray(len));
    if (n === null) throw new Error("request head cut short");
    len += n;
    const text = new TextDecoder().decode(buf.subarray(0, len));
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const [line, ...rest] = text.slice(0, end).split("\r\n");
      const headers = new Headers();
      for (const h of rest) {
        const c = h.indexOf(":");
        if (c > 0) headers.append(h.slice(0, c).trim(), h.slice(c + 1).trim());
      }
      return { path: line!.split(" ")[1]!, headers };
    }
    if (len === buf.length) throw new Error("request head too long");
  }
}

/**
 * Serves on a free loopback port: each request is passed to `target()` with its `Range` header,
 * and the answer goes back with its length headers, over a connection closed after it. A planned
 * cut writes exactly `after` body bytes and closes the connection; a stall writes them, then waits.
 */
function cuttingProxy(target: () => string): CuttingProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served: Served[] = [];
  const plans: Plan[] = [];
  const open: Promise<void>[] = [];
  let closing = () => {};
  const closed = new Promise<void>((r) => closing = r);
  const handle = async (conn: Deno.Conn) => {
    try {
      const { path, headers } = await readHead(conn);
      const range = headers.get("range");
      const res = await fetch(`${target()}${path}`, { headers: range ? { range } : {} });
      const length = res.headers.get("content-length");
      assert.ok(length !== null, "the NOC sends a download with its length");
      const lines = [`HTTP/1.1 ${res.status} ${res.statusText || "-"}`];
      for (const h of ["content-type", "content-length", "content-range", "accept-ranges"]) {
        const v = res.headers.get(h);
        if (v !== null) lines.push(`${h}: ${v}`);
      }
      lines.push("connection: close", "", "");
      await writeAll(conn, new TextEncoder().encode(lines.join("\r\n")));
      const plan = plans.shift() ?? { kind: "pass" };
      const record: Served = { range, status: res.status, bytes: 0 };
      served.push(record);
      for await (const chunk of res.body!) {
        const room = plan.kind === "pass" ? chunk.length : plan.after - record.bytes;
        const part = chunk.subarray(0, Math.min(room, chunk.length));
        await writeAll(conn, part);
        record.bytes += part.length;
        if (plan.kind !== "pass" && record.bytes >= plan.after) {
          if (plan.kind === "stall") await Promise.race([plan.until, closed]);
          break;
        }
      }
      await res.body?.cancel().catch(() => {});
    } catch {
      // The agent went away (killed) or hung up: nothing more to serve.
    } finally {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) open.push(handle(conn));
  })();
  return {
    url: `http://127.0.0.1:${listener.addr.port}`,
    served,
    next(plan) {
      plans.push(plan);
    },
    async close() {
      closing();
      listener.close();
      await accepting.catch(() => {});
      await Promise.all(open);
    },
  };
}

/** A NOC listing its downloads at the proxy, an enrolled agent, and the proxy itself. */
interface Rig {
  noc: ServedNoc;
  box: AgentBox;
  proxy: CuttingProxy;
}

/** A test given a fresh rig, which is torn down after it (agent box, proxy, then NOC). */
function resumeTest(name: string, fn: (t: Rig) => Promise<void>): void {
  dbTest(name, async ({ db }) => {
    let nocUrl = "";
    const proxy = cuttingProxy(() => nocUrl);
    const noc = await serveNoc(db, { componentUrl: proxy.url });
    nocUrl = noc.url;
    const box = await agentBox();
    try {
      const token = await noc.enrollmentToken();
      const r = await box.run(["enroll", "--noc", noc.url, "--token", token]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      await fn({ noc, box, proxy });
    } finally {
      await box.remove();
      await proxy.close();
      await noc.close();
    }
  });
}

/** Runs one agent cycle whose download the proxy cuts at 200 KiB; asserts it failed (exit 2). */
async function cutCycle({ box, proxy }: Rig): Promise<AgentRun> {
  proxy.next({ kind: "cut", after: cutAt });
  const r = await box.run(once);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  return r;
}

/** Runs one agent cycle; asserts it succeeded (exit 0). */
async function cleanCycle(box: AgentBox): Promise<void> {
  const r = await box.run(once);
  assert.equal(r.code, 0, r.stdout + r.stderr);
}

/** Random bytes that do not compress, `size` long. */
function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

/** Publishes `bytes` as file demo/blob@`version` bound for `opt/blob.bin` (mode 0640); assigns it. */
async function publishBlob(noc: ServedNoc, version: string, bytes: Uint8Array<ArrayBuffer>) {
  const up = await upload(
    noc,
    `/v1/admin/files?app=demo&name=blob&version=${version}`,
    bytes,
    "application/octet-stream",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const fi = await noc.admin("PUT", "/v1/admin/apps/demo/fileinfo/blob", {
    destination: "opt/blob.bin",
    mode: "0640",
    action: null,
  });
  assert.equal(fi.status, 200, JSON.stringify(fi.body));
  await assignToAll(noc, "file", { app: "demo", name: "blob", version });
  return toHex(await sha256(bytes));
}

/** The next attempt may start now: the failed attempt's backoff (wall clock) is cleared. */
async function clearBackoff(box: AgentBox): Promise<void> {
  const path = `${box.state}/state.json`;
  const st = JSON.parse(await Deno.readTextFile(path));
  assert.ok(Object.keys(st.failures).length > 0, "the cut attempt was recorded as failed");
  st.failures = {};
  await Deno.writeTextFile(path, JSON.stringify(st));
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** Asserts the installed file has exactly `bytes`, mode 0640, and nothing else in its folder. */
async function assertInstalled(box: AgentBox, bytes: Uint8Array): Promise<void> {
  const got = await Deno.readFile(`${box.root}/opt/blob.bin`);
  assert.equal(got.length, bytes.length);
  assert.ok(got.every((b, i) => b === bytes[i]), "the installed file has the published bytes");
  assert.equal((await Deno.stat(`${box.root}/opt/blob.bin`)).mode! & 0o777, 0o640);
  assert.deepEqual(await names(`${box.root}/opt`), ["blob.bin"], "no temporary file is left");
  assert.deepEqual(
    await names(`${box.state}/downloads`),
    [],
    "the download is gone once installed",
  );
}

/** Waits (on file-system events, not a timer) until `path` holds `size` bytes. */
async function untilSize(dir: string, path: string, size: number): Promise<void> {
  const have = async () => ((await Deno.stat(path).catch(() => null))?.size ?? 0) >= size;
  const watcher = Deno.watchFs(dir);
  const guard = setTimeout(() => watcher.close(), 60_000);
  try {
    if (await have()) return;
    for await (const _ of watcher) if (await have()) return;
    throw new Error(`${path} never reached ${size} bytes`);
  } finally {
    clearTimeout(guard);
    try {
      watcher.close();
    } catch {
      // already closed
    }
  }
}

resumeTest(
  "a file download cut at 200 KiB resumes with Range in the next cycle and installs the published bytes",
  async (t) => {
    const { box, proxy } = t;
    const bytes = randomBytes(1536 * KiB + 123);
    const sha = await publishBlob(t.noc, "1", bytes);

    const cut = await cutCycle(t);
    const failed = cut.events.find((e) => e.event === "install_failed");
    assert.equal(failed?.component, "demo/blob@1", cut.stdout);
    assert.equal(failed.reason, "download_failed", cut.stdout);
    assert.deepEqual(await names(`${box.state}/downloads`), [`${sha}.pkg`]);
    assert.equal((await Deno.stat(`${box.state}/downloads/${sha}.pkg`)).size, cutAt);
    assert.deepEqual(await names(`${box.root}/opt`), [], "nothing is written in place");

    await clearBackoff(box);
    await cleanCycle(box);
    assert.deepEqual(proxy.served, [
      { range: null, status: 200, bytes: cutAt },
      { range: `bytes=${cutAt}-`, status: 206, bytes: bytes.length - cutAt },
    ]);
    const total = proxy.served.reduce((s, x) => s + x.bytes, 0);
    assert.ok(total <= bytes.length + 64 * KiB, `${total} bytes served for ${bytes.length}`);
    await assertInstalled(box, bytes);
  },
);

resumeTest(
  "an agent killed part-way through a file download resumes from what it wrote when started again",
  async ({ noc, box, proxy }) => {
    const bytes = randomBytes(1024 * KiB);
    const sha = await publishBlob(noc, "1", bytes);
    const downloads = `${box.state}/downloads`;
    await Deno.mkdir(downloads, { mode: 0o700 });

    let release = () => {};
    proxy.next({ kind: "stall", after: cutAt, until: new Promise((r) => release = r) });
    const agent = box.spawn(once);
    try {
      await untilSize(downloads, `${downloads}/${sha}.pkg`, cutAt);
    } finally {
      await agent.stop("SIGKILL");
      release();
    }

    await cleanCycle(box);
    assert.deepEqual(proxy.served.map((s) => [s.range, s.status]), [
      [null, 200],
      [`bytes=${cutAt}-`, 206],
    ]);
    assert.equal(proxy.served[1]!.bytes, bytes.length - cutAt);
    await assertInstalled(box, bytes);
  },
);

resumeTest(
  "a partial file download corrupted on disk is fetched again from byte 0, never installed",
  async (t) => {
    const { box, proxy } = t;
    const bytes = randomBytes(1024 * KiB);
    const sha = await publishBlob(t.noc, "1", bytes);
    await cutCycle(t);

    // One byte of the part on disk changes between attempts.
    const partial = `${box.state}/downloads/${sha}.pkg`;
    const part = await Deno.readFile(partial);
    part[1000] = part[1000]! ^ 0xff;
    await Deno.writeFile(partial, part);

    await clearBackoff(box);
    await cleanCycle(box);
    assert.deepEqual(proxy.served, [
      { range: null, status: 200, bytes: cutAt },
      { range: `bytes=${cutAt}-`, status: 206, bytes: bytes.length - cutAt },
      { range: null, status: 200, bytes: bytes.length },
    ], "the resumed download fails its digest and is fetched whole");
    await assertInstalled(box, bytes);
  },
);

resumeTest(
  "a cut file download is dropped once the catalog lists another version",
  async (t) => {
    const { box, proxy } = t;
    const v1 = await publishBlob(t.noc, "1", randomBytes(1024 * KiB));
    await cutCycle(t);
    assert.deepEqual(await names(`${box.state}/downloads`), [`${v1}.pkg`]);

    const bytes = randomBytes(300 * KiB);
    await publishBlob(t.noc, "2", bytes);
    await cleanCycle(box);
    assert.deepEqual(proxy.served.map((s) => [s.range, s.bytes]), [
      [null, cutAt],
      [null, bytes.length],
    ]);
    await assertInstalled(box, bytes);
  },
);

resumeTest(
  "a resumed file bound for another filesystem is copied, flushed and renamed into place",
  async (t) => {
    const { box, proxy } = t;
    const mounted = await mountTmpfs(box.root, 16);
    try {
      if (!mounted) {
        console.log("cross-filesystem test skipped: it needs root to mount a tmpfs");
        return;
      }
      assert.notEqual(
        (await Deno.stat(box.root)).dev,
        (await Deno.stat(box.state)).dev,
        "the root and the state folder are on different filesystems",
      );
      const bytes = randomBytes(1024 * KiB);
      await publishBlob(t.noc, "1", bytes);
      await cutCycle(t);
      await clearBackoff(box);
      await cleanCycle(box);
      assert.equal(proxy.served[1]?.range, `bytes=${cutAt}-`);
      await assertInstalled(box, bytes);
    } finally {
      if (mounted) {
        await new Deno.Command("umount", { args: [box.root], stdout: "null", stderr: "null" })
          .output();
      }
    }
  },
);
