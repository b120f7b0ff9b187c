/**
 * A real HTTP server for download tests: serves `bytes`, and the rest of them from `bytes=N-`
 * (206 with `Content-Range`), recording every `Range` header asked for (null: none).
 */

/** Serves `bytes` (ranges too) while `fn` runs; `ranges` holds the Range headers asked for. */
export async function servingRanges(
  bytes: Uint8Array<ArrayBuffer>,
  fn: (url: string, ranges: Array<string | null>) => Promise<void>,
): Promise<void> {
  const ranges: Array<string | null> = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const range = req.headers.get("range");
    ranges.push(range);
    const m = range?.match(/^bytes=(\d+)-$/);
    if (m) {
      const from = Number(m[1]);
      return new Response(bytes.slice(from), {
        status: 206,
        headers: { "content-range": `bytes ${from}-${bytes.length - 1}/${bytes.length}` },
      });
    }
    return new Response(bytes);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/blob`, ranges);
  } finally {
    await server.shutdown();
  }
}
