/**
 * The fleet simulator's command line (review 23k): a mistyped option once ran the defaults (1,000
 * appliances at 200 cycles a second against a dev NOC), and a refused token was a stack trace.
 */
import assert from "node:assert/strict";

const simulator = new URL("../bench/simulate.ts", import.meta.url).pathname;
const config = new URL("../deno.json", import.meta.url).pathname;

async function simulate(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", config, simulator, ...args],
    env: { NOC_TOKEN: "", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("deno task simulate refuses an unknown or malformed option with 64, running nothing", async () => {
  const unknown = await simulate(["--noc", "http://127.0.0.1:9", "--bogus"]);
  assert.equal(unknown.code, 64);
  assert.match(unknown.stderr, /simulate: Unknown option '--bogus'/);
  const rate = await simulate(["--noc", "http://127.0.0.1:9", "--rate", "fast"]);
  assert.equal(rate.code, 64);
  assert.match(rate.stderr, /--rate must be a number/);
  const client = await simulate(["--noc", "http://127.0.0.1:9", "--client", "curl"]);
  assert.equal(client.code, 64);
  assert.match(client.stderr, /--client must be fetch or raw, not "curl"/);
  // Review 24b: a URL without its scheme, or another scheme, ran on to a misleading error.
  for (const url of ["127.0.0.1:9", "ftp://127.0.0.1:9"]) {
    const bad = await simulate(["--noc", url, "--token", "noc_adm_x"]);
    assert.equal(bad.code, 64, url);
    assert.match(bad.stderr, /--noc must be an http: or https: URL/);
  }
  // Review 24b: the bare client over https failed every cycle as {"TypeError":4} and exited 0.
  const tls = await simulate(["--noc", "https://127.0.0.1:9", "--client", "raw", "--token", "x"]);
  assert.equal(tls.code, 64);
  assert.match(tls.stderr, /--client raw speaks plain http: only/);
});

Deno.test("deno task simulate exits 1 naming why when no cycle completes", async () => {
  // A server that enrols but fails every check-in (a fault, not a NOC): the run must not pass.
  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    async (req) => {
      await req.body?.cancel();
      const path = new URL(req.url).pathname;
      if (path === "/v1/admin/enrollment-tokens") return Response.json({ token: "t" });
      if (path === "/v1/enroll") {
        return Response.json({ uid: crypto.randomUUID() }, { status: 201 });
      }
      return Response.json({ error: "internal" }, { status: 500 });
    },
  );
  try {
    const url = `http://127.0.0.1:${server.addr.port}`;
    for (const client of ["fetch", "raw"]) {
      const r = await simulate([
        "--noc",
        url,
        "--token",
        "noc_adm_x",
        "--appliances",
        "2",
        "--rate",
        "4",
        "--duration",
        "1",
        "--client",
        client,
      ]);
      assert.equal(r.code, 1, client);
      assert.match(r.stderr, /simulate: no cycle completed \(\d+ errors, 0 shed\)/);
    }
  } finally {
    ac.abort();
    await server.finished;
  }
});

Deno.test("deno task simulate says plainly when it has no admin token or the NOC fails it", async () => {
  const empty = await Deno.makeTempDir();
  try {
    const none = await simulate(["--noc", "http://127.0.0.1:9"], { NOC_DATA_DIR: empty });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no admin token for --noc/);
    // A NOC that does not answer: one line, no stack trace.
    const gone = await simulate(["--noc", "http://127.0.0.1:9", "--token", "noc_adm_x"]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^simulate: /m);
    // With its cause, not "fetch failed" alone (review 24b).
    assert.match(gone.stderr, /refused|127\.0\.0\.1:9/i);
    assert.doesNotMatch(gone.stderr, /Uncaught|^ {4}at /m);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});
