/**
 * Work done before authentication (issue 16, item 10): ten concurrent
 * unauthenticated 200 MiB posts to each route that takes a large body — the
 * console's publish form, the admin API's package upload, an appliance's
 * beat — against a real NOC process (PGlite), and how much its resident
 * memory grows. Target: less than 16 MiB, the NOC reading none of the bodies.
 *
 *   deno run -A bench/preauth_memory.ts
 *
 * @module
 */
import { startNoc } from "../tests/_process.ts";
import { type Figure, rssMiB, rssSampler } from "./figure.ts";

const postMiB = Number(Deno.env.get("BENCH_PREAUTH_MIB") ?? 200);
const concurrent = 10;

/** A body of `mib` MiB of zeros, produced as it is read; counts what was pulled. */
function zeros(mib: number): { stream: ReadableStream<Uint8Array>; pulled(): number } {
  const chunk = new Uint8Array(1024 * 1024);
  let sent = 0;
  return {
    stream: new ReadableStream<Uint8Array>({
      pull(ctrl) {
        if (sent >= mib) return ctrl.close();
        sent++;
        ctrl.enqueue(chunk);
      },
    }),
    pulled: () => sent,
  };
}

/** Posts `concurrent` unauthenticated bodies of {@link postMiB} MiB to `url`; statuses and MiB pulled. */
async function flood(
  url: string,
  headers: Record<string, string>,
): Promise<{ statuses: number[]; pulledMiB: number }> {
  const bodies = Array.from({ length: concurrent }, () => zeros(postMiB));
  const statuses = await Promise.all(bodies.map(async (b) => {
    try {
      const res = await fetch(url, { method: "POST", headers, body: b.stream });
      await res.body?.cancel();
      return res.status;
    } catch {
      return 0; // the NOC closed the connection while the body was still being sent
    } finally {
      await b.stream.cancel().catch(() => {});
    }
  }));
  return { statuses, pulledMiB: bodies.reduce((s, b) => s + b.pulled(), 0) };
}

/** Runs the benchmark; returns its figures. */
export async function preauthMemory(): Promise<Figure[]> {
  const work = await Deno.makeTempDir({ prefix: "noc-bench-preauth-" });
  const saved = Deno.env.get("TEST_DATABASE_URL");
  Deno.env.delete("TEST_DATABASE_URL");
  const noc = await startNoc({ NOC_DATA_DIR: `${work}/data`, NOC_REQUEST_LOG: "errors" }).finally(
    () => saved && Deno.env.set("TEST_DATABASE_URL", saved),
  );
  const rows: Figure[] = [];
  try {
    // Warm the routes (their first request loads code) before the baseline.
    await (await fetch(`${noc.url}/ui/login`)).body?.cancel();
    const targets: Array<[string, string, Record<string, string>]> = [
      [
        "console publish form (POST /ui/releases/publish, no session)",
        "/ui/releases/publish",
        { "content-type": "multipart/form-data; boundary=x" },
      ],
      [
        "admin package upload (POST /v1/admin/packages, bad token)",
        "/v1/admin/packages?app=a&name=n&version=1",
        { "content-type": "application/gzip", authorization: "Bearer noc_adm_wrong" },
      ],
      [
        "appliance beat (POST /v1/beats, no signature)",
        "/v1/beats",
        { "content-type": "application/json" },
      ],
    ];
    for (const [what, path, headers] of targets) {
      const before = await rssMiB(noc.pid);
      const sampler = rssSampler(noc.pid);
      const started = performance.now();
      const r = await flood(`${noc.url}${path}`, headers);
      const seconds = (performance.now() - started) / 1000;
      const peak = await sampler.stop();
      const growth = Math.max(0, peak - before);
      const codes = [...new Set(r.statuses)].sort().join(", ");
      rows.push({
        name: `NOC memory growth under ${concurrent} concurrent unauthenticated ${postMiB} MiB ` +
          `posts: ${what}`,
        value: Math.round(growth * 10) / 10,
        unit: "MiB",
        note:
          `RSS ${before.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB; answered ${codes} ` +
          `(0: connection closed) in ${seconds.toFixed(1)} s; the senders produced ` +
          `${r.pulledMiB} of ${concurrent * postMiB} MiB`,
        target: "< 16",
        met: growth < 16 && r.statuses.every((s) => s === 0 || (s >= 400 && s < 500)),
      });
    }
  } finally {
    await noc.stop();
    await Deno.remove(work, { recursive: true });
  }
  return rows;
}

if (import.meta.main) {
  for (const f of await preauthMemory()) {
    console.log(`${f.name}: ${f.value} ${f.unit} (target ${f.target}, met ${f.met})  ${f.note}`);
  }
}
