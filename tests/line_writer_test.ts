import assert from "node:assert/strict";
import { type ByteSink, lineWriter } from "../protocol/util/line_writer.ts";

/** A sink whose writes finish only when the test says so, taking at most `chunk` bytes each. */
function heldSink(chunk = Infinity) {
  const decoder = new TextDecoder();
  const writes: string[] = [];
  const waiting: Array<() => void> = [];
  const sink: ByteSink & { writes: string[]; release(): void; pending(): number } = {
    writes,
    write(p) {
      const n = Math.min(p.length, chunk);
      return new Promise((resolve) =>
        waiting.push(() => {
          writes.push(decoder.decode(p.subarray(0, n)));
          resolve(n);
        })
      );
    },
    writeSync(p) {
      writes.push(decoder.decode(p));
      return p.length;
    },
    release() {
      for (const w of waiting.splice(0)) w();
    },
    pending: () => waiting.length,
  };
  return sink;
}

/** Lets the writer's end-of-turn timer and promise callbacks run. */
const turn = () => new Promise((r) => setTimeout(r, 0));

Deno.test("lineWriter() returns at once and sends one turn's lines in one write", async () => {
  const sink = heldSink();
  const out = lineWriter(sink);
  out.write("a");
  out.write("b");
  assert.equal(sink.pending(), 0, "nothing is written before the turn ends");
  await turn();
  assert.equal(sink.pending(), 1);
  sink.release();
  await out.drained();
  assert.deepEqual(sink.writes, ["a\nb\n"]);
});

Deno.test("lineWriter() keeps lines while the reader is stuck and sends them together after", async () => {
  const sink = heldSink();
  const out = lineWriter(sink);
  out.write("first");
  await turn();
  assert.equal(sink.pending(), 1);
  for (let i = 0; i < 1000; i++) out.write(`line ${i}`);
  assert.equal(sink.pending(), 1, "one write at a time");
  sink.release();
  await turn();
  sink.release();
  await out.drained();
  assert.equal(sink.writes.length, 2);
  assert.equal(sink.writes[1]!.split("\n").length, 1001);
  assert.equal(out.dropped, 0);
});

Deno.test("lineWriter() drops lines past its bound, counts them and says so after the kept ones", async () => {
  const sink = heldSink();
  const drops: number[] = [];
  const out = lineWriter(sink, { maxChars: 20, onDrop: (n) => drops.push(n) });
  out.write("0123456789"); // 11 characters with its newline
  out.write("abcdefgh"); // 9 more: 20, still fits
  out.write("x"); // over the bound
  out.write("y");
  assert.equal(out.dropped, 2);
  assert.deepEqual(drops, [1, 1]);
  await turn();
  sink.release();
  await out.drained();
  const [kept, said] = sink.writes[0]!.split(/(?<=abcdefgh\n)/);
  assert.equal(kept, "0123456789\nabcdefgh\n", "the lines within the bound are kept, in order");
  const report = JSON.parse(said!.trim());
  assert.equal(report.event, "log_lines_dropped");
  assert.equal(report.count, 2);
});

Deno.test("lineWriter() finishes a write the sink took only part of", async () => {
  const sink = heldSink(3);
  const out = lineWriter(sink);
  out.write("hello");
  out.write("world");
  for (let i = 0; i < 20 && sink.writes.join("").length < 12; i++) {
    await turn();
    sink.release();
  }
  await out.drained();
  assert.deepEqual(sink.writes, ["hel", "lo\n", "wor", "ld\n"]);
});

Deno.test("lineWriter() counts lines a closed reader refused, and never throws", async () => {
  const out = lineWriter({ write: () => Promise.reject(new Error("Broken pipe")) });
  out.write("lost");
  out.write("too");
  await out.drained();
  assert.equal(out.dropped, 2);
  out.write("again");
  await out.drained();
  assert.equal(out.dropped, 3);
});

Deno.test("lineWriter() flushSync() writes what waits, for exit paths", () => {
  const sink = heldSink();
  const out = lineWriter(sink);
  out.write("last words");
  out.flushSync();
  assert.deepEqual(sink.writes, ["last words\n"]);
});
