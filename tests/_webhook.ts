/** A real HTTP webhook receiver for tests: records every body, can be told to fail. */
export interface WebhookServer {
  /** Its URL. */
  url: string;
  /** Bodies accepted, in arrival order. */
  received: Array<Record<string, unknown>>;
  /** Requests refused while down. */
  refused: number;
  /** While true, answers 503. */
  down: boolean;
  /** Resolves once `n` bodies have been accepted. */
  waitFor(n: number): Promise<void>;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Starts a webhook receiver on a free loopback port. */
export function startWebhook(): WebhookServer {
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const state = { received: [] as Array<Record<string, unknown>>, refused: 0, down: false };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json();
    if (hook.down) {
      hook.refused++;
      return new Response("down", { status: 503 });
    }
    hook.received.push(body);
    for (const w of waiters.filter((w) => hook.received.length >= w.n)) w.resolve();
    return new Response(null, { status: 204 });
  });
  const hook: WebhookServer = {
    ...state,
    url: `http://127.0.0.1:${server.addr.port}/hooks/slack`,
    waitFor: (n) =>
      hook.received.length >= n
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ n, resolve })),
    close: () => server.shutdown(),
  };
  return hook;
}
