/**
 * The HTTP ceiling's server: a bare `Deno.serve` that reads each request's
 * body and answers 200 `{}` to a SecureBeat and 304 to a catalog request, with
 * no verification, database or framework. The simulator against it measures
 * what the machine, the runtime's HTTP stack and the simulator itself allow.
 *
 *   deno run --allow-net bench/bare_server.ts   (prints "listening on <url>")
 *
 * @module
 */
if (import.meta.main) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.arrayBuffer();
    if (req.method === "POST") {
      return new Response("{}", { headers: { "content-type": "application/json" } });
    }
    return new Response(null, { status: 304, headers: { etag: '"bare"' } });
  });
  console.log(`listening on http://127.0.0.1:${server.addr.port}`);
  Deno.addSignalListener("SIGTERM", () => server.shutdown());
  await server.finished;
  Deno.exit(0);
}
