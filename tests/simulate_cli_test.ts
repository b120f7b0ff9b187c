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
    assert.doesNotMatch(gone.stderr, /Uncaught|^ {4}at /m);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});
