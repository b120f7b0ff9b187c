/**
 * A latency probe for the overload bench (bench/overload.ts): a process of its own, apart from the
 * fleet simulator, that sends signed check-ins (`POST /v1/checkin`) at a low rate (20 a second) and
 * times each as a client whose own event loop is idle sees it. The simulator offering twice the
 * NOC's capacity from the same 2-core machine is itself saturated (its CPU profile: about 90 % of a
 * core, a tenth of it garbage collection), so its timings include its own queueing; the probe's do
 * not (and the NOC's `noc_http_request_duration_seconds` gives the NOC's own side).
 *
 *   deno run -A bench/probe.ts NOC_URL ADMIN_TOKEN DURATION_S GAP_MS
 *
 * Enrols 10 appliances (retrying a 503 or 429), prints `ready` on stdout, waits for a line on
 * stdin, then sends for DURATION_S a check-in every GAP_MS (open loop: whether or not the last
 * was answered), each with a `GET /probe-floor` beside it (a 404 that needs nothing: the floor of
 * what any answer waits), and prints one JSON line: `{ samples: [{ kind, status, ms }] }` (status
 * 0: no answer, with `error`). Each request is abandoned at 30 s, as the agent does.
 *
 * @module
 */
import { signedRequest, signingKeyFromSeed } from "../protocol/client.ts";
import {
  exportEd25519Seed,
  exportRawPublic,
  generateEd25519,
  generateX25519,
} from "../protocol/crypto/ed25519.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { simBeat } from "./simulate.ts";

/** One timed request of the probe. */
export interface ProbeSample {
  /**
   * `checkin`, or `floor`: `GET /probe-floor`, which the NOC answers 404 through its whole
   * middleware chain without touching the database — the least any answer waits on its event loop.
   */
  kind: "checkin" | "floor";
  /** HTTP status (0: no answer). */
  status: number;
  /** From just before `fetch` to the whole answer read, ms. */
  ms: number;
  /** Why there was no answer. */
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `send()` again while answered 503 or 429, after a short pause, until it is not. */
async function untilAdmitted(send: () => Promise<Response>): Promise<Response> {
  for (;;) {
    const r = await send();
    if (r.status !== 503 && r.status !== 429) return r;
    await r.body?.cancel();
    await sleep(200);
  }
}

async function main(args: string[]): Promise<void> {
  const [url, token] = [args[0]!, args[1]!];
  const durationS = Number(args[2] ?? 60);
  const gapMs = Number(args[3] ?? 50);
  const fleet = [];
  for (let i = 0; i < 10; i++) {
    const s = await generateEd25519();
    const x = await generateX25519();
    const t = await untilAdmitted(() =>
      fetch(`${url}/v1/admin/enrollment-tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ label: "overload probe" }),
      })
    );
    const { token: enrolment } = await t.json();
    const body = JSON.stringify({
      token: enrolment,
      model: "sim-1",
      hostname: `probe-${crypto.randomUUID().slice(0, 8)}`,
      signingKey: toBase64Url(await exportRawPublic(s.publicKey)),
      encryptionKey: toBase64Url(await exportRawPublic(x.publicKey)),
    });
    const r = await untilAdmitted(() =>
      fetch(`${url}/v1/enroll`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      })
    );
    const e = await r.json();
    if (r.status !== 201) throw new Error(`probe enrolment: ${r.status} ${JSON.stringify(e)}`);
    fleet.push({
      uid: e.uid as string,
      key: await signingKeyFromSeed(toBase64Url(await exportEd25519Seed(s.privateKey))),
      seq: 0,
      etag: null as string | null,
    });
  }
  console.log("ready");
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  await lines.read();
  const samples: ProbeSample[] = [];
  const pending: Promise<void>[] = [];
  const started = performance.now();
  const end = started + durationS * 1000;
  // Open loop: one request each GAP_MS whether or not the last was answered (one appliance of
  // the ten at a time: each has ten gaps before its next).
  for (let i = 0; performance.now() < end; i++) {
    const a = fleet[i % fleet.length]!;
    a.seq++;
    const now = new Date();
    const req = await signedRequest({
      baseUrl: url,
      uid: a.uid,
      key: a.key,
      method: "POST",
      path: "/v1/checkin",
      body: simBeat(a.seq, now),
      now,
      ...(a.etag ? { headers: { "if-none-match": a.etag } } : {}),
    });
    const timed = async (kind: ProbeSample["kind"], r: Request) => {
      const t = performance.now();
      try {
        const res = await fetch(r, { signal: AbortSignal.timeout(30_000) });
        await res.arrayBuffer();
        if (kind === "checkin" && res.status === 200) a.etag = res.headers.get("etag") ?? a.etag;
        samples.push({ kind, status: res.status, ms: performance.now() - t });
      } catch (e) {
        samples.push({ kind, status: 0, ms: performance.now() - t, error: String(e) });
      }
    };
    pending.push(timed("checkin", req), timed("floor", new Request(`${url}/probe-floor`)));
    const wait = started + (i + 1) * gapMs - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await Promise.all(pending);
  console.log(JSON.stringify({ samples }));
}

if (import.meta.main) await main(Deno.args);
