/**
 * Publishes and downloads a large package through a real NOC process and
 * samples the process's resident memory, to show both directions stream
 * (memory grows by far less than the package size).
 *
 *   deno task bench            (all benchmarks)
 *   deno run -A bench/package_streaming.ts [MiB]
 *
 * Uses PostgreSQL when TEST_DATABASE_URL is set (the NOC's memory is then its
 * own), and PGlite otherwise (the database then lives inside the NOC process,
 * and its page cache counts too).
 *
 * @module
 */
import { startNoc } from "../tests/_process.ts";
import { enroll, generateApplianceKeys, signedCall } from "../lib/appliance_client.ts";
import { newSeed } from "../lib/noc_keys.ts";

/** One measured figure. */
export interface Figure {
  /** What was measured. */
  name: string;
  /** The value. */
  value: number;
  /** Its unit. */
  unit: string;
  /** A note (target, ratio). */
  note: string;
}

async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

function sampler(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssMiB(pid).catch(() => 0));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

/** Runs the benchmark for a package of `mib` MiB; returns its figures. */
export async function packageStreaming(mib = 64, denoFlags: string[] = []): Promise<Figure[]> {
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
  const noc = await startNoc({
    NOC_DATA_DIR: `${work}/data`,
    ...(dbUrl
      ? { DATABASE_URL: dbUrl, NOC_SIGNING_KEY: newSeed(), NOC_MASTER_KEY: newSeed() }
      : {}),
    NOC_ADMIN_TOKEN: "noc_adm_bench-token-0123456789abcdef",
  }, denoFlags);
  const admin = { authorization: "Bearer noc_adm_bench-token-0123456789abcdef" };
  try {
    // A payload on disk, never in memory whole.
    const payloadPath = `${work}/payload.bin`;
    {
      using f = await Deno.open(payloadPath, { write: true, create: true });
      const chunk = new Uint8Array(1024 * 1024);
      for (let i = 0; i < mib; i++) {
        for (let j = 0; j < chunk.length; j += 65536) {
          crypto.getRandomValues(chunk.subarray(j, j + 65536));
        }
        await f.write(chunk);
      }
    }
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
    const url = JSON.parse(envelope.catalog).components[0].urls[0];
    const down = sampler(noc.pid);
    t = performance.now();
    const res = await fetch(url);
    let bytes = 0;
    for await (const c of res.body!) bytes += c.length;
    const downSeconds = (performance.now() - t) / 1000;
    const downPeak = await down.stop();
    const size = mib;
    return [
      {
        name: `publish ${size} MiB package (NOC encrypts and signs)`,
        value: size / upSeconds,
        unit: "MiB/s",
        note: "",
      },
      {
        name: "server memory growth while publishing",
        value: upPeak - base,
        unit: "MiB",
        note: `${((upPeak - base) / size * 100).toFixed(0)}% of the package size`,
      },
      {
        name: `download ${(bytes / 2 ** 20).toFixed(0)} MiB package`,
        value: size / downSeconds,
        unit: "MiB/s",
        note: "",
      },
      {
        name: "server memory growth while downloading",
        value: downPeak - base,
        unit: "MiB",
        note: `${((downPeak - base) / size * 100).toFixed(0)}% of the package size`,
      },
      {
        name: "database",
        value: 0,
        unit: pg ? "PostgreSQL" : "PGlite",
        note: pg ? "" : "database in the NOC process",
      },
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

if (import.meta.main) {
  const figures = await packageStreaming(Number(Deno.args[0] ?? 64), Deno.args.slice(1));
  for (const f of figures) console.log(`${f.name}: ${f.value.toFixed(1)} ${f.unit} ${f.note}`);
}
