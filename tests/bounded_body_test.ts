/** Issue 16 item 13: no client here reads a server's body without a bound. */
import assert from "node:assert/strict";
import {
  BodyTooLargeError,
  ERROR_BODY_LIMIT,
  errorJson,
  errorText,
  readTextBounded,
} from "../protocol/http/bounded_body.ts";
import { download } from "../agent/download.ts";
import { silentLog } from "../agent/log.ts";
import { AgentError } from "../agent/errors.ts";
import { enroll, NocError } from "../protocol/client.ts";

/** A server whose every answer is `status` with a body that never ends; counts bytes it sent. */
function endlessServer(status: number) {
  const sent = { bytes: 0 };
  const chunk = new Uint8Array(64 * 1024).fill(0x7b); // "{{{{…": never valid JSON
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent.bytes += chunk.length;
        controller.enqueue(chunk);
      },
    });
    return new Response(body, { status, headers: { "content-type": "application/json" } });
  });
  return { server, sent, url: `http://127.0.0.1:${server.addr.port}` };
}

Deno.test("readTextBounded() refuses an endless body after its bound, and cancels the rest", async () => {
  const { server, sent, url } = endlessServer(200);
  try {
    await assert.rejects(
      readTextBounded(await fetch(url), 1024 * 1024),
      (e) => e instanceof BodyTooLargeError && e.limit === 1024 * 1024,
    );
    const cut = await readTextBounded(await fetch(url), 1000, { truncate: true });
    assert.equal(cut.length, 1000);
    // The server stopped being read: far less than a few MiB left it.
    assert.ok(sent.bytes < 16 * 1024 * 1024, `${sent.bytes} bytes sent`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("errorText() and errorJson() read at most ERROR_BODY_LIMIT of an endless refusal", async () => {
  const { server, url } = endlessServer(500);
  try {
    assert.equal((await errorText(await fetch(url))).length, 300);
    assert.deepEqual(await errorJson(await fetch(url)), {});
    const ok = new Response(JSON.stringify({ error: "bad", message: 7 }), { status: 400 });
    assert.deepEqual(await errorJson(ok), { error: "bad", message: undefined });
    assert.ok(ERROR_BODY_LIMIT <= 1024 * 1024);
  } finally {
    await server.shutdown();
  }
});

Deno.test("agent download: a mirror answering 500 with an endless body fails that URL, bounded", async () => {
  const { server, sent, url } = endlessServer(500);
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      download(`${dir}/x.part`, {
        urls: [`${url}/v1/components/1`],
        size: 10,
        sha256: "0".repeat(64),
        label: "x",
      }, { idleMs: 10_000, log: silentLog }),
      (e) => e instanceof AgentError && e.code === "download_failed" && /500/.test(e.message),
    );
    assert.ok(sent.bytes < 16 * 1024 * 1024, `${sent.bytes} bytes sent`);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("enrol client: an endless error answer from the NOC is a NocError, not a hang", async () => {
  const { server, url } = endlessServer(503);
  try {
    await assert.rejects(
      enroll(
        fetch,
        url,
        {
          token: "t",
          model: "m",
          hostname: "h",
          keys: { signingPublic: "x", encryptionPublic: "y" } as Parameters<
            typeof enroll
          >[2]["keys"],
        },
      ),
      (e) => e instanceof NocError && e.status === 503,
    );
  } finally {
    await server.shutdown();
  }
});
