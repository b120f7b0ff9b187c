/**
 * A NOC whose log reader stops reading (a full pipe: a stuck journald or log
 * shipper) keeps answering, and loses no line once the reader is back.
 */
import assert from "node:assert/strict";
import { nocFlags } from "./_process.ts";

Deno.test("a NOC whose stdout reader stalls keeps answering and loses no log line", async () => {
  const work = await Deno.makeTempDir({ prefix: "noc-stalled-log-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...nocFlags, "main.ts", "--dev"],
    cwd: new URL("..", import.meta.url),
    env: {
      PORT: "0",
      NOC_HOST: "127.0.0.1",
      NOC_DATA_DIR: `${work}/data`,
      NOC_REQUEST_LOG: "all",
    },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  try {
    while (!/listening on (\S+)[\s\S]*enrolment token/.test(out)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`The NOC exited before listening:\n${out}`);
      out += value;
    }
    const url = /listening on (\S+)/.exec(out)![1]!.replace("localhost", "127.0.0.1");
    // From here nobody reads stdout. A request's log line is ~150 bytes, so 3,000 of them are
    // several times what a pipe holds (64 KiB): a NOC writing its log synchronously would stop
    // answering after a few hundred, and these requests would time out.
    const requests = 3000;
    for (let i = 0; i < requests; i += 50) {
      await Promise.all(Array.from({ length: 50 }, async () => {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(20_000) });
        assert.equal(res.status, 200);
        await res.body?.cancel();
      }));
    }
    // The reader is back: every line arrives, none was dropped.
    const lines = () => out.split("\n").filter((l) => l.includes('"event":"request"')).length;
    while (lines() < requests) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    assert.equal(lines(), requests);
    assert.ok(!out.includes("log_lines_dropped"), "nothing dropped");
  } finally {
    child.kill("SIGINT");
    // Keep reading so the exit flush is not held up by a full pipe.
    (async () => {
      while (!(await reader.read()).done);
    })().catch(() => {});
    await child.status;
    await Deno.remove(work, { recursive: true });
  }
});
