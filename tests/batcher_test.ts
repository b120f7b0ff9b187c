import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { batcher } from "../noc/services/batcher.ts";

Deno.test("batcher() sends a lone call on the next turn and groups calls that wait", async () => {
  const batches: number[][] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => release = r);
  const double = batcher<number, number>({
    maxInFlight: 1,
    run: async (xs) => {
      batches.push(xs);
      if (batches.length === 1) await gate;
      return xs.map((x) => x * 2);
    },
  });
  const first = double(1);
  await new Promise((r) => setTimeout(r, 0));
  strictEqual(batches.length, 1, "the lone call has left");
  const waiting = [2, 3, 4].map((x) => double(x));
  release();
  deepStrictEqual(await Promise.all([first, ...waiting]), [2, 4, 6, 8]);
  deepStrictEqual(batches, [[1], [2, 3, 4]]);
});

Deno.test("batcher() never puts two items with the same key in one batch", async () => {
  const batches: string[][] = [];
  const echo = batcher<string, string>({
    key: (s) => s,
    run: (xs) => {
      batches.push(xs);
      return Promise.resolve(xs);
    },
  });
  deepStrictEqual(await Promise.all(["a", "a", "b"].map((x) => echo(x))), ["a", "a", "b"]);
  for (const b of batches) strictEqual(new Set(b).size, b.length);
});

Deno.test("batcher() fails only the bad item when a batch fails", async () => {
  const check = batcher<number, number>({
    retrySingly: (e) => e instanceof Error && /not accepted/.test(e.message),
    run: (xs) =>
      xs.includes(13) ? Promise.reject(new Error("13 is not accepted")) : Promise.resolve(xs),
  });
  const results = await Promise.allSettled([1, 13, 2].map((x) => check(x)));
  deepStrictEqual(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
  await rejects(check(13), /13 is not accepted/);
});

Deno.test("batcher() fails the whole batch when the error may have come after a write", async () => {
  let runs = 0;
  const write = batcher<number, number>({
    retrySingly: () => false,
    run: () => {
      runs++;
      return Promise.reject(new Error("connection lost"));
    },
  });
  const results = await Promise.allSettled([1, 2, 3].map((x) => write(x)));
  deepStrictEqual(results.map((r) => r.status), ["rejected", "rejected", "rejected"]);
  strictEqual(runs, 1, "nothing run again");
});

Deno.test("batcher() keeps batches within maxBatch", async () => {
  const sizes: number[] = [];
  const echo = batcher<number, number>({
    maxBatch: 3,
    maxInFlight: 1,
    run: (xs) => {
      sizes.push(xs.length);
      return Promise.resolve(xs);
    },
  });
  deepStrictEqual(await Promise.all([1, 2, 3, 4, 5, 6, 7].map((x) => echo(x))), [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
  ]);
  deepStrictEqual(sizes, [3, 3, 1]);
});
