/**
 * The HTTP ceiling's server: a bare `Deno.serve` that reads each request's
 * body and answers 200 `{}` to a SecureBeat, 304 to a catalog request and an unchanged catalog
 * to a joined check-in (`POST /v1/checkin`), with
 * no verification, database or framework. The simulator against it measures
 * what the machine, the runtime's HTTP stack and the simulator itself allow.
 *
 *   deno run --allow-net bench/bare_server.ts   (prints "listening on <url>")
 *
 * @module
 */
/** A running bare server (a child process). */
export interface BareServer {
  url: string;
  pid: number;
  /** Stops it (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts this module as a child process and waits for its "listening on" line. */
export async function startBareServer(): Promise<BareServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", new URL(import.meta.url).pathname],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let banner = "";
  while (!/listening on (\S+)/.test(banner)) {
    const { value, done } = await reader.read();
    if (done) throw new Error("The bare server exited before listening");
    banner += value;
  }
  return {
    url: /listening on (\S+)/.exec(banner)![1]!,
    pid: child.pid,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone already */ }
      await child.status;
      await reader.cancel().catch(() => {});
    },
  };
}

if (import.meta.main) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.arrayBuffer();
    if (req.method === "POST") {
      // A joined check-in gets what a NOC answers when the catalog is unchanged.
      const body = new URL(req.url).pathname === "/v1/checkin"
        ? '{"receipt":{},"catalog":null}'
        : "{}";
      return new Response(body, {
        headers: { "content-type": "application/json", etag: '"bare"' },
      });
    }
    return new Response(null, { status: 304, headers: { etag: '"bare"' } });
  });
  console.log(`listening on http://127.0.0.1:${server.addr.port}`);
  Deno.addSignalListener("SIGTERM", () => server.shutdown());
  await server.finished;
  Deno.exit(0);
}
