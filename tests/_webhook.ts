/**
 * A real HTTP webhook receiver for tests: records every body, can be told to fail, to hold its
 * answers until released, or to answer only once the sender has given up (slower than any
 * time limit).
 */
export interface WebhookServer {
  /** Its URL. */
  url: string;
  /** Bodies accepted, in arrival order. */
  received: Array<Record<string, unknown>>;
  /** Requests refused while down. */
  refused: number;
  /** While true, answers 503. */
  down: boolean;
  /**
   * While true, each request is recorded on arrival and answered only once the sender stops
   * waiting (its time limit passed): a receiver slower than every attempt's limit.
   */
  stalled: boolean;
  /**
   * While true, each request is recorded on arrival and answered (204) only when {@link release}
   * is called: a receiver that is slow but succeeds.
   */
  held: boolean;
  /** Answers every held request now. */
  release(): void;
  /** Resolves once `n` bodies have been accepted. */
  waitFor(n: number): Promise<void>;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Starts a webhook receiver on a free loopback port. */
export function startWebhook(): WebhookServer {
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  let holding: Array<() => void> = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json();
    if (hook.down) {
      hook.refused++;
      return new Response("down", { status: 503 });
    }
    hook.received.push(body);
    for (const w of waiters.filter((w) => hook.received.length >= w.n)) w.resolve();
    if (hook.stalled) {
      await new Promise<void>((resolve) => {
        if (req.signal.aborted) resolve();
        req.signal.addEventListener("abort", () => resolve(), { once: true });
      });
    } else if (hook.held) {
      await new Promise<void>((resolve) => holding.push(resolve));
    }
    return new Response(null, { status: 204 });
  });
  const hook: WebhookServer = {
    received: [],
    refused: 0,
    down: false,
    stalled: false,
    held: false,
    url: `http://127.0.0.1:${server.addr.port}/hooks/slack`,
    release() {
      const now = holding;
      holding = [];
      for (const r of now) r();
    },
    waitFor: (n) =>
      hook.received.length >= n
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ n, resolve })),
    close: () => {
      hook.stalled = false;
      hook.release();
      return server.shutdown();
    },
  };
  return hook;
}
