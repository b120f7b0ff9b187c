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
  /** Stops the server. */
  close(): Promise<void>;
}

/** Starts a webhook receiver on a free loopback port. */
export function startWebhook(): WebhookServer {
  const state = { received: [] as Array<Record<string, unknown>>, refused: 0, down: false };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json();
    if (hook.down) {
      hook.refused++;
      return new Response("down", { status: 503 });
    }
    hook.received.push(body);
    return new Response(null, { status: 204 });
  });
  const hook: WebhookServer = {
    ...state,
    url: `http://127.0.0.1:${server.addr.port}/hooks/slack`,
    close: () => server.shutdown(),
  };
  return hook;
}
