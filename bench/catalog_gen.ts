/**
 * Catalog generation for one appliance with 200 packages: the first catalog
 * ever (built, 200 grants signed, 200 content keys wrapped to the appliance),
 * a rebuild after a catalog-epoch bump (wrapped keys already stored), and the
 * stored catalog served as is (200) or as a 304 with `If-None-Match` — timed
 * on {@link answerCatalog} directly, plus a signed `GET /v1/catalog` through
 * `app.request()` for comparison, and the cold path's crypto parts alone.
 *
 *   deno run -A bench/catalog_gen.ts
 *
 * Runs on an in-process PGlite, and on PostgreSQL too when TEST_DATABASE_URL
 * is set (in a fresh schema, dropped at the end).
 *
 * @module
 */
import { migrate } from "../noc/db/migrate.ts";
import { answerCatalog, bumpCatalogEpoch } from "../noc/services/catalogs.ts";
import { resolveCatalog } from "../noc/services/catalog_engine.ts";
import { issueGrant } from "../protocol/grants.ts";
import { wrapContentKey } from "../protocol/package/format.ts";
import { fromBase64Url } from "../protocol/util/encoding.ts";
import { verifyCatalog } from "../protocol/catalog.ts";
import { type TestAppliance, type TestNoc, testNoc } from "../tests/_harness.ts";
import { payload, upload } from "../tests/_components.ts";
import { type Figure, figureTable, percentile } from "./figure.ts";
import { type Backend, onEachBackend } from "./backends.ts";

/** A fresh request nonce, as the catalog route gets from a verified signature. */
const nonce = () => crypto.randomUUID();

/** Packages in the catalog. */
const components = 200;
/** Fresh appliances, each timed once cold and once rebuilt. */
const coldRuns = 5;
/** Timed requests per cached measurement. */
const cachedRuns = 200;
/** The model every package is assigned to (and every benchmark appliance has). */
const model = "bench-200";
const base = "https://noc.test";

/** Runs `fn` `n` times; returns the durations in milliseconds, ascending. */
async function timed(n: number, fn: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

const median = (sorted: number[]) => percentile(sorted, 50);

function spread(sorted: number[]): string {
  return `n=${sorted.length}, min ${sorted[0]?.toFixed(2)}, max ${
    sorted[sorted.length - 1]?.toFixed(2)
  } ms`;
}

function figure(
  name: string,
  value: number,
  unit: string,
  note: string,
  target?: string,
): Figure {
  if (target === undefined) return { name, value, unit, note };
  const limit = Number(target.replace(/^[<≤]\s*/, ""));
  return { name, value, unit, note, target, met: Number.isFinite(value) && value < limit };
}

/** Publishes `components` NOC-signed packages with a tiny payload, each assigned to `model`. */
async function publishPackages(noc: TestNoc): Promise<number> {
  const bytes = await payload({ install: "#!/bin/sh\nexit 0\n" });
  for (let i = 0; i < components; i++) {
    const ref = {
      app: `app-${String(i % 20).padStart(2, "0")}`,
      name: `pkg-${String(i).padStart(3, "0")}`,
      version: "1.0.0",
    };
    const up = await upload(
      noc,
      `/v1/admin/packages?app=${ref.app}&name=${ref.name}&version=${ref.version}`,
      bytes,
      "application/gzip",
    );
    if (up.status !== 201) throw new Error(`publish failed: ${JSON.stringify(up.body)}`);
    const as = await noc.admin("POST", "/v1/admin/assignments", {
      kind: "package",
      ...ref,
      target: { type: "model", value: model },
      // The bench may assign before any appliance of the model has enrolled.
      allowUnknownTarget: true,
    });
    if (as.status !== 201) throw new Error(`assign failed: ${JSON.stringify(as.body)}`);
  }
  return bytes.length;
}

/** A signed catalog request as an appliance sends it (over https), optionally conditional. */
async function catalogRequest(a: TestAppliance, etag?: string): Promise<Request> {
  const req = await a.request("GET", "/v1/catalog");
  const headers = new Headers(req.headers);
  if (etag !== undefined) headers.set("if-none-match", etag);
  return new Request(req.url.replace("http://", "https://"), { headers });
}

/** Every measurement on one backend. */
async function measure(backend: Backend): Promise<Figure[]> {
  const { db, name: be } = backend;
  const figures: Figure[] = [];
  await migrate(db);
  // Signed requests are not rate limited here: 2 × 200 catalog requests come from one appliance.
  const noc = await testNoc(db, { settings: { rateAppliancePerMin: 0 } });
  const deps = noc.deps;

  const setupStart = performance.now();
  const payloadBytes = await publishPackages(noc);
  const fleet: TestAppliance[] = [];
  for (let i = 0; i < coldRuns; i++) fleet.push(await noc.enrollAppliance({ model }));
  figures.push(figure(
    `setup: publish + assign ${components} packages, enrol ${coldRuns} appliances (${be})`,
    (performance.now() - setupStart) / 1000,
    "s",
    `through the admin API (app.request); each package NOC-signed and encrypted, payload a ` +
      `${payloadBytes}-byte gzip tar; assigned by model`,
  ));

  // (a) Cold: the first catalog ever for each fresh appliance.
  const etags: string[] = [];
  let bodyBytes = 0;
  const cold = await timed(coldRuns, async (i) => {
    const ans = await answerCatalog(deps, fleet[i]!.uid, undefined, base, nonce());
    if (ans.status !== 200) throw new Error(`cold catalog answered ${ans.status}`);
    etags[i] = ans.etag;
    bodyBytes = ans.body.length;
  });
  // Not timed: the catalogs are real (signature, 200 packages, each with its wrapped key).
  const first = await answerCatalog(deps, fleet[0]!.uid, undefined, base, nonce());
  if (first.status !== 200) throw new Error("stored catalog not served");
  const doc = await verifyCatalog(first.body, {
    pinned: fleet[0]!.enrollment.nocKeys,
    uid: fleet[0]!.uid,
    lastSerial: 0,
    now: noc.clock.now(),
  });
  const withKeys = doc.components.filter((c) => c.kind === "package" && c.wrappedKey).length;
  if (doc.components.length !== components || withKeys !== components) {
    throw new Error(`catalog has ${doc.components.length} entries, ${withKeys} with wrapped keys`);
  }
  const [wk] = await db.sql<{ n: number }>`select count(*)::int as n from wrapped_keys`;
  figures.push(figure(
    `catalog cold: first ever, ${components} packages (${be})`,
    median(cold),
    "ms",
    `median of ${coldRuns} fresh appliances (${spread(cold)}); answerCatalog builds, signs ` +
      `${components} grants + the catalog, wraps and stores ${components} content keys ` +
      `(${wk!.n} wrapped_keys rows after); body ${(bodyBytes / 1024).toFixed(0)} KiB, verified`,
    "< 50",
  ));

  // (b) Rebuilt: the epoch moved on, the wrapped keys are already stored.
  const rebuilt: number[] = [];
  for (let i = 0; i < coldRuns; i++) {
    await db.begin((tx) => bumpCatalogEpoch(tx)); // not timed
    const t = performance.now();
    const ans = await answerCatalog(deps, fleet[i]!.uid, undefined, base, nonce());
    rebuilt.push(performance.now() - t);
    if (ans.status !== 200 || ans.etag === etags[i]) throw new Error("catalog not rebuilt");
    etags[i] = ans.etag;
  }
  const rebuiltSorted = rebuilt.sort((a, b) => a - b);
  figures.push(figure(
    `catalog rebuilt after epoch bump (${be})`,
    median(rebuiltSorted),
    "ms",
    `median of ${coldRuns} appliances (${spread(rebuiltSorted)}); regenerated and re-signed ` +
      `(${components} grants), wrapped keys read back, none wrapped`,
  ));

  // (c) Cached: served as stored, and 304 with If-None-Match.
  const a = fleet[0]!;
  // The later bumps made this appliance's rebuilt catalog stale again: bring it up to date (not timed).
  const current = await answerCatalog(deps, a.uid, etags[0], base, nonce());
  const etag = current.etag;
  for (let i = 0; i < 20; i++) {
    if ((await answerCatalog(deps, a.uid, etag, base, nonce())).status !== 304) {
      throw new Error("catalog not stored");
    }
  }
  const cached = await timed(cachedRuns, async () => {
    const ans = await answerCatalog(deps, a.uid, undefined, base, nonce());
    if (ans.status !== 200 || ans.etag !== etag) throw new Error("cached catalog not served");
  });
  const notModified = await timed(cachedRuns, async () => {
    const ans = await answerCatalog(deps, a.uid, etag, base, nonce());
    if (ans.status !== 304) throw new Error(`conditional catalog answered ${ans.status}`);
  });
  for (
    const [label, t] of [["200, stored body", cached], ["304, If-None-Match", notModified]] as const
  ) {
    figures.push(figure(
      `catalog cached ${label}: median (${be})`,
      median(t),
      "ms",
      `answerCatalog, ${spread(t)}; one statement (touch + read)`,
      "< 5",
    ));
    figures.push(figure(
      `catalog cached ${label}: p95 (${be})`,
      percentile(t, 95),
      "ms",
      `p99 ${percentile(t, 99).toFixed(2)} ms`,
      "< 5",
    ));
  }

  // The same through the app: signature check, nonce, route, 200 or 304 (requests signed beforehand).
  for (const conditional of [false, true]) {
    const requests: Request[] = [];
    for (let i = 0; i < cachedRuns; i++) {
      requests.push(await catalogRequest(a, conditional ? etag : undefined));
    }
    const want = conditional ? 304 : 200;
    const t = await timed(cachedRuns, async (i) => {
      const res = await noc.app.request(requests[i]!);
      await res.text();
      if (res.status !== want) throw new Error(`GET /v1/catalog answered ${res.status}`);
    });
    figures.push(figure(
      `GET /v1/catalog signed, cached ${want} via app.request (${be})`,
      median(t),
      "ms",
      `median; p95 ${percentile(t, 95).toFixed(2)} ms, ${spread(t)}; ` +
        `includes signature verification and nonce spend, excludes client signing`,
    ));
  }

  // What cold generation spends its time on: the same work, piece by piece, outside the transaction.
  const [app0] = await db.sql<
    { enc_key: string; model: string; site: string | null; channel: string; tags: string[] }
  >`select enc_key, model, site, channel, tags from appliances where uid = ${a.uid}`;
  const subject = { uid: a.uid, model: app0!.model, site: app0!.site, channel: app0!.channel };
  const resolveT = await timed(
    coldRuns,
    async () => void await resolveCatalog(db.sql, { ...subject, tags: app0!.tags }),
  );
  const chosen = await resolveCatalog(db.sql, { ...subject, tags: app0!.tags });
  const signer = { kid: deps.keys.kid, privateKey: deps.keys.privateKey };
  const expires = new Date(noc.clock.now().getTime() + deps.settings.catalogTtlS * 1000);
  const grantsT = await timed(3, async () => {
    for (const c of chosen) await issueGrant(signer, a.uid, c.id, expires);
  });
  const encKey = fromBase64Url(app0!.enc_key);
  const keys: Uint8Array<ArrayBuffer>[] = [];
  const unsealT = await timed(3, async () => {
    keys.length = 0;
    for (const c of chosen) {
      keys.push(await deps.contentKeys.get({ ...c, sealed_key: c.sealedKey! }));
    }
  });
  const wrapsT = await timed(3, async () => {
    for (const [i, c] of chosen.entries()) {
      await wrapContentKey(keys[i]!, encKey, { ...c, ciphertextSha256: c.ciphertextSha256! });
    }
  });
  figures.push(figure(
    `cold part: resolveCatalog, ${components} candidates (${be})`,
    median(resolveT),
    "ms",
    `median of ${coldRuns}; the assignment × component join`,
  ));
  figures.push(figure(
    `cold part: ${components} download grants, Ed25519 (${be})`,
    median(grantsT),
    "ms",
    "median of 3 passes; also paid by every rebuild",
  ));
  figures.push(figure(
    `cold part: ${components} content keys unsealed, AES-GCM (${be})`,
    median(unsealT),
    "ms",
    "median of 3 passes",
  ));
  figures.push(figure(
    `cold part: ${components} HPKE wraps to the appliance (${be})`,
    median(wrapsT),
    "ms",
    `median of 3 passes, crypto only; cold − rebuilt = ${
      (median(cold) - median(rebuiltSorted)).toFixed(1)
    } ms = unseal (content keys are kept in memory after the first appliance) + wraps + one insert of ${components} wrapped_keys rows`,
  ));
  return figures;
}

/**
 * Measures catalog generation (cold, rebuilt, cached, and through the app)
 * for one appliance with 200 packages on PGlite, and on PostgreSQL when
 * TEST_DATABASE_URL is set; returns the figures.
 */
export async function catalogGeneration(): Promise<Figure[]> {
  return await onEachBackend({
    name: "catalog generation (PostgreSQL)",
    value: NaN,
    unit: "ms",
    note: "skipped: set TEST_DATABASE_URL to measure on PostgreSQL",
  }, measure);
}

if (import.meta.main) {
  console.log(figureTable(await catalogGeneration()));
}
