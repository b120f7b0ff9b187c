/**
 * Publishes and downloads a large package through a real NOC process and
 * samples the process's resident memory, to show both directions stream
 * (memory grows by far less than the package size). The payload is a real
 * one the NOC's publish check accepts: the gzip'd tar of an executable
 * `install` and N MiB of random bytes, rates counted in its own bytes.
 *
 *   deno task bench            (all benchmarks)
 *   deno run -A bench/package_streaming.ts [MiB]
 *
 * Uses PostgreSQL when TEST_DATABASE_URL is set (the NOC's memory is then its
 * own), and PGlite otherwise (the database then lives inside the NOC process,
 * and its page cache counts too).
 *
 * Also times publishing in process ({@link publishFigures}): a package signed
 * offline and one the NOC encrypts, counting the blob reads each makes.
 *
 *   deno run -A bench/package_streaming.ts publish [MiB]
 *
 * @module
 */
import { startNoc } from "../tests/_process.ts";
import { countingDb, testNoc } from "../tests/_harness.ts";
import { enroll, generateApplianceKeys, signedCall } from "../protocol/client.ts";
import { newSeed } from "../protocol/keys.ts";
import { buildPackage } from "../protocol/package/file.ts";
import { wrapContentKey } from "../protocol/package/format.ts";
import { fromBase64Url } from "../protocol/util/encoding.ts";
import { createTar, gzip } from "../protocol/package/tar.ts";
import { openPglite } from "../noc/db/db.ts";
import { migrate } from "../noc/db/migrate.ts";
import { createApp } from "../noc/app.ts";
import { blobChunkSize } from "../noc/services/blobs.ts";
import { type Figure, rssMiB, rssSampler as sampler } from "./figure.ts";

/**
 * Writes `input` to a new file at `path`, every byte written before it returns. (A
 * `pipeTo(file.writable, { preventClose: true })` then closing the file lost a gzip stream's last
 * chunk under Deno 2.9.6.)
 */
async function writeStream(path: string, input: AsyncIterable<Uint8Array>): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for await (const chunk of input) {
    for (let off = 0; off < chunk.length;) off += await f.write(chunk.subarray(off));
  }
}

/**
 * Writes a valid package payload to `${work}/payload.tgz`, never whole in memory: the gzip'd tar
 * (createTar + gzip, as `noc publish <folder>` makes it) of a folder holding an executable
 * `install` and `mib` MiB of random, so incompressible, bytes. Returns its path and size in bytes.
 */
async function writePayload(work: string, mib: number): Promise<{ path: string; bytes: number }> {
  const dir = `${work}/payload`;
  await Deno.mkdir(dir);
  await Deno.writeTextFile(`${dir}/install`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  await writeStream(
    `${dir}/payload.bin`,
    (async function* () {
      for (let i = 0; i < mib; i++) {
        const chunk = new Uint8Array(1024 * 1024);
        for (let j = 0; j < chunk.length; j += 65536) {
          crypto.getRandomValues(chunk.subarray(j, j + 65536));
        }
        yield chunk;
      }
    })(),
  );
  const path = `${work}/payload.tgz`;
  await writeStream(path, gzip(createTar(dir)));
  await Deno.remove(dir, { recursive: true });
  return { path, bytes: (await Deno.stat(path)).size };
}

/**
 * Downloads `url` with `n` concurrent clients (curl when installed), three times; returns the
 * median seconds taken.
 */
async function downloadAll(url: string, n: number, expect: number): Promise<number> {
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await downloadOnce(url, n, expect));
  return runs.sort((a, b) => a - b)[1]!;
}

async function downloadOnce(url: string, n: number, expect: number): Promise<number> {
  const curl = await Deno.stat("/usr/bin/curl").then(() => true, () => false);
  const t = performance.now();
  await Promise.all(Array.from({ length: n }, async () => {
    if (curl) {
      const out = await new Deno.Command("/usr/bin/curl", {
        args: ["-sS", "-o", "/dev/null", "-w", "%{size_download}", url],
        stdout: "piped",
      }).output();
      const got = Number(new TextDecoder().decode(out.stdout));
      if (!out.success || got !== expect) throw new Error(`download got ${got} of ${expect} bytes`);
      return;
    }
    const res = await fetch(url);
    let bytes = 0;
    for await (const c of res.body!) bytes += c.length;
    if (bytes !== expect) throw new Error(`download got ${bytes} of ${expect} bytes`);
  }));
  return (performance.now() - t) / 1000;
}

/** Serves `file` with nginx on loopback (when installed) and measures `n` concurrent downloads. */
async function nginxSeconds(
  file: string,
  size: number,
  n: number,
  workers: number | "auto",
): Promise<number | null> {
  const bin = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (!bin) return null;
  const dir = await Deno.makeTempDir({ prefix: "noc-bench-nginx-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await Deno.copyFile(file, `${dir}/package.bin`);
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `worker_processes ${workers}; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 256; }
http { access_log off; sendfile on; tcp_nopush on; client_body_temp_path ${dir};
  proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server { listen 127.0.0.1:${port}; root ${dir}; } }
`,
  );
  const proc = new Deno.Command(bin, {
    args: ["-p", dir, "-c", `${dir}/nginx.conf`, "-g", "daemon off;"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/package.bin`, { method: "HEAD" })
        .then((r) => r.ok, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await downloadAll(`http://127.0.0.1:${port}/package.bin`, 1, size); // page cache warm
    return await downloadAll(`http://127.0.0.1:${port}/package.bin`, n, size);
  } finally {
    proc.kill("SIGTERM");
    await proc.status;
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs the benchmark for a package of `mib` MiB; returns its figures. */
export async function packageStreaming(
  mib = 256,
  denoFlags: string[] = [],
  concurrent = 8,
): Promise<Figure[]> {
  const work = await Deno.makeTempDir({ prefix: "noc-bench-" });
  const pg = Deno.env.get("TEST_DATABASE_URL");
  const schema = `bench_${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;
  let dbUrl: string | undefined;
  if (pg) {
    const { default: postgres } = await import("postgres");
    const admin = postgres(pg, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create schema ${schema}`);
    await admin.end();
    const u = new URL(pg);
    u.searchParams.set("options", `-c search_path=${schema}`);
    dbUrl = u.href;
  }
  const cacheOn = Deno.env.get("BENCH_BLOB_CACHE") !== "off";
  const noc = await startNoc({
    NOC_DATA_DIR: `${work}/data`,
    ...(cacheOn ? { NOC_BLOB_CACHE_DIR: `${work}/blob-cache` } : { NOC_BLOB_CACHE_MIB: "0" }),
    ...(dbUrl
      ? { DATABASE_URL: dbUrl, NOC_SIGNING_KEY: newSeed(), NOC_MASTER_KEY: newSeed() }
      : {}),
    NOC_ADMIN_TOKEN: "noc_adm_bench-token-0123456789abcdef",
  }, denoFlags);
  const admin = { authorization: "Bearer noc_adm_bench-token-0123456789abcdef" };
  try {
    // A valid gzip'd tar payload on disk, never in memory whole.
    const { path: payloadPath, bytes: payloadBytes } = await writePayload(work, mib);
    const upMiB = payloadBytes / 2 ** 20;
    await new Promise((r) => setTimeout(r, 500));
    const base = await rssMiB(noc.pid);
    const up = sampler(noc.pid);
    let t = performance.now();
    {
      using f = await Deno.open(payloadPath, { read: true });
      const res = await fetch(`${noc.url}/v1/admin/packages?app=bench&name=big&version=1`, {
        method: "POST",
        headers: { ...admin, "content-type": "application/gzip" },
        body: f.readable,
      });
      if (!res.ok) throw new Error(`upload failed: ${await res.text()}`);
      await res.body?.cancel();
    }
    const upSeconds = (performance.now() - t) / 1000;
    const upPeak = await up.stop();

    const keys = await generateApplianceKeys();
    const tok = await (await fetch(`${noc.url}/v1/admin/enrollment-tokens`, {
      method: "POST",
      headers: { ...admin, "content-type": "application/json" },
      body: "{}",
    })).json();
    const e = await enroll(fetch, noc.url, {
      token: tok.token,
      model: "bench",
      hostname: "bench",
      keys,
    });
    await (await fetch(`${noc.url}/v1/admin/assignments`, {
      method: "POST",
      headers: { ...admin, "content-type": "application/json" },
      body: JSON.stringify({
        kind: "package",
        app: "bench",
        name: "big",
        version: "1",
        target: { type: "all" },
      }),
    })).body?.cancel();
    const envelope = await signedCall<{ catalog: string }>(fetch, {
      baseUrl: noc.url,
      uid: e.uid,
      key: keys.signing,
      method: "GET",
      path: "/v1/catalog",
    });
    const entry = JSON.parse(envelope.catalog).components[0];
    const url: string = entry.urls[0];
    const served: number = entry.size;
    // First download: from the database (the disk cache fills meanwhile, when there is one).
    const down = sampler(noc.pid);
    const coldBase = await rssMiB(noc.pid);
    t = performance.now();
    const fileCopy = `${work}/served.bin`;
    await writeStream(fileCopy, (await fetch(url)).body!);
    const downSeconds = (performance.now() - t) / 1000;
    const downPeak = await down.stop();
    // Let the disk cache fill finish (it runs beside the first download).
    for (let i = 0; cacheOn && i < 600; i++) {
      const there = await Deno.stat(`${work}/blob-cache/${entry.sha256}`).then(
        () => true,
        () => false,
      );
      if (there) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 500));
    const warmBase = await rssMiB(noc.pid);
    const many = sampler(noc.pid);
    const manySeconds = await downloadAll(url, concurrent, served);
    const manyPeak = await many.stop();
    const aggregate = (concurrent * served) / 2 ** 20 / manySeconds;
    // One worker: the NOC serves from one process with one JavaScript thread.
    const nginx = await nginxSeconds(fileCopy, served, concurrent, 1);
    const nginxRate = nginx === null ? NaN : (concurrent * served) / 2 ** 20 / nginx;
    const nginxAuto = await nginxSeconds(fileCopy, served, concurrent, "auto");
    const nginxAutoRate = nginxAuto === null ? NaN : (concurrent * served) / 2 ** 20 / nginxAuto;
    const size = mib;
    const servedMiB = served / 2 ** 20;
    const db = pg ? "PostgreSQL" : "PGlite";
    const publishing = await publishFigures(Math.min(mib, 64)).catch((e): Figure[] => [{
      name: "publish in process",
      value: NaN,
      unit: "MiB/s",
      note: `not measured: ${e instanceof Error ? e.message : String(e)}`.slice(0, 400),
    }]);
    return [
      {
        name: `publish ${size} MiB package (NOC encrypts and signs)`,
        value: upMiB / upSeconds,
        unit: "MiB/s",
        note: `a ${
          upMiB.toFixed(1)
        } MiB gzip'd tar (install + ${size} MiB of random bytes): checked, encrypted and signed as it streams in`,
      },
      {
        name: "server memory growth while publishing",
        value: upPeak - base,
        unit: "MiB",
        note: `${((upPeak - base) / upMiB * 100).toFixed(0)}% of the payload size`,
      },
      {
        name: `first download of the ${size} MiB package, from the database (${db})`,
        value: servedMiB / downSeconds,
        unit: "MiB/s",
        note: `memory growth ${(downPeak - coldBase).toFixed(0)} MiB${
          cacheOn ? "; fills the NOC's disk cache" : ""
        }`,
      },
      {
        name: `${concurrent} concurrent downloads of the ${size} MiB package (${
          cacheOn ? "disk cache" : db
        }), total`,
        value: aggregate,
        unit: "MiB/s",
        note: nginx === null
          ? "nginx is not installed: no comparison (apt-get install nginx-light to get one)"
          : `${(aggregate / nginxRate * 100).toFixed(0)}% of nginx with one worker process (${
            nginxRate.toFixed(0)
          } MiB/s, sendfile, same bytes, same ${concurrent} curl clients); ${
            (aggregate / nginxAutoRate * 100).toFixed(0)
          }% of nginx with a worker per core (${nginxAutoRate.toFixed(0)} MiB/s)`,
        target: "≥ 70% of nginx",
        ...(nginx === null ? {} : { met: aggregate >= 0.7 * nginxRate }),
      },
      {
        name: `server memory growth serving ${concurrent} downloads of ${size} MiB at once`,
        value: manyPeak - warmBase,
        unit: "MiB",
        note: `peak resident memory ${manyPeak.toFixed(0)} MiB against ${
          warmBase.toFixed(0)
        } MiB before`,
        target: "< 64",
        met: manyPeak - warmBase < 64,
      },
      ...publishing,
    ];
  } finally {
    await noc.stop();
    await Deno.remove(work, { recursive: true });
    if (pg) {
      const { default: postgres } = await import("postgres");
      const adminDb = postgres(pg, { max: 1, onnotice: () => {} });
      await adminDb.unsafe(`drop schema ${schema} cascade`);
      await adminDb.end();
    }
  }
}

/**
 * Publishing a `mib` MiB package through the admin API in process, on an
 * in-memory PGlite: one signed offline (`application/vnd.noc-package`:
 * verified, stored, checked against its signed digest and test-decrypted) and
 * one the NOC encrypts and signs (`application/gzip`). Counts the statements
 * that read stored blob chunks while each publishes.
 */
export async function publishFigures(mib = 64, passes = 3): Promise<Figure[]> {
  const work = await Deno.makeTempDir({ prefix: "noc-bench-publish-" });
  const db = await openPglite();
  try {
    await migrate(db);
    const noc = await testNoc(db, { settings: { maxUploadBytes: (mib + 1) * 2 ** 20 * 2 } });
    const counting = countingDb(db, (text) => text.includes("from blob_chunks"));
    const counted = counting.db;
    const app = createApp({ ...noc.deps, db: counted });
    const { path: payloadPath, bytes: payloadBytes } = await writePayload(work, mib);
    const payloadMiB = payloadBytes / 2 ** 20;
    const post = async (path: string, file: string, headers: Record<string, string>) => {
      using f = await Deno.open(file, { read: true });
      const before = counting.count();
      const t = performance.now();
      const res = await app.request(`https://noc.test${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${noc.adminToken}`, ...headers },
        body: f.readable,
      });
      const s = (performance.now() - t) / 1000;
      if (res.status !== 201) throw new Error(`publish ${path}: ${await res.text()}`);
      await res.body?.cancel();
      return { s, reads: counting.count() - before };
    };
    const signed: Array<{ s: number; reads: number }> = [];
    const encrypted: Array<{ s: number; reads: number }> = [];
    for (let i = 0; i < passes; i++) {
      const built = await buildPackage({
        plaintext: (await Deno.open(payloadPath)).readable,
        app: "bench",
        name: "signed",
        version: `${i}`,
        signer: { kid: noc.deps.keys.kid, privateKey: noc.deps.keys.privateKey },
        out: `${work}/signed.pkg`,
        now: noc.clock.now(),
      });
      const wrapped = await wrapContentKey(
        built.contentKey,
        fromBase64Url(noc.deps.keys.hpke.publicKey),
        built.header,
      );
      signed.push(
        await post("/v1/admin/packages", `${work}/signed.pkg`, {
          "content-type": "application/vnd.noc-package",
          "x-noc-wrapped-key": wrapped,
        }),
      );
      encrypted.push(
        await post(`/v1/admin/packages?app=bench&name=plain&version=${i}`, payloadPath, {
          "content-type": "application/gzip",
        }),
      );
    }
    const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const list = (xs: Array<{ s: number }>) => xs.map((x) => (x.s * 1000).toFixed(0)).join(", ");
    const chunks = Math.ceil((await Deno.stat(`${work}/signed.pkg`)).size / blobChunkSize);
    return [
      {
        name: `publish a ${mib} MiB package signed offline (verify, store, digest, test-decrypt)`,
        value: payloadMiB / med(signed.map((x) => x.s)),
        unit: "MiB/s",
        note: `payload a ${
          payloadMiB.toFixed(1)
        } MiB gzip'd tar (install + ${mib} MiB of random bytes); in process (app.request, in-memory PGlite), median of ${passes} (${
          list(signed)
        } ms); statements reading blob chunks while publishing: ${
          signed.map((x) => x.reads).join(", ")
        } (the blob has ${chunks} chunks, read 8 per statement)`,
      },
      {
        name: `publish a ${mib} MiB payload the NOC encrypts and signs, in process`,
        value: payloadMiB / med(encrypted.map((x) => x.s)),
        unit: "MiB/s",
        note: `same conditions, median of ${passes} (${
          list(encrypted)
        } ms); statements reading blob chunks: ${
          encrypted.map((x) => x.reads).join(", ")
        } (the served digest covers the prefix, which signs the ciphertext's digest: read back once)`,
      },
    ];
  } finally {
    await db.close();
    await Deno.remove(work, { recursive: true });
  }
}

if (import.meta.main && Deno.args[0] === "publish") {
  const figures = await publishFigures(Number(Deno.args[1] ?? 64));
  for (const f of figures) console.log(`${f.name}: ${f.value.toFixed(1)} ${f.unit} ${f.note}`);
  Deno.exit(0);
}

if (import.meta.main) {
  const figures = await packageStreaming(Number(Deno.args[0] ?? 256), Deno.args.slice(1));
  for (const f of figures) console.log(`${f.name}: ${f.value.toFixed(1)} ${f.unit} ${f.note}`);
}
