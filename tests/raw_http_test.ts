/**
 * The overload bench's bare HTTP/1.1 client (bench/raw_http.ts) against real servers: `Deno.serve`
 * for what the NOC sends (lengths, chunks, 304, a 503 before the body is read), a raw TCP server
 * for what it must survive (a kept-alive connection closed while idle, an answer cut short).
 */
import assert from "node:assert/strict";
import { RawHttpClient, RawHttpError } from "../bench/raw_http.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

/** A check-in of `bytes` zero bytes (a body a server may answer before reading). */
const postZeros = (client: RawHttpClient, bytes: number) =>
  client.send({ method: "POST", path: "/v1/checkin", headers: [], body: new Uint8Array(bytes) });

function serve(handler: (req: Request) => Response | Promise<Response>) {
  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    handler,
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async close() {
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test("RawHttpClient reads each of 64 answers at once whole, on their own connections", async () => {
  // Review of the first version: one read buffer shared by every connection mixed their bytes
  // and left requests waiting for bodies that had arrived.
  const s = serve(async (req) => {
    const n = Number(new URL(req.url).searchParams.get("n"));
    await req.arrayBuffer();
    return new Response(String(n).repeat(n * 37 + 1), { headers: { etag: `"${n}"` } });
  });
  const client = new RawHttpClient(s.url);
  try {
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(
        Array.from({ length: 64 }, (_, n) =>
          client.send(
            { method: "POST", path: `/x?n=${n}`, headers: [], body: utf8("x".repeat(n * 100)) },
            AbortSignal.timeout(10_000),
          )),
      );
      answers.forEach((a, n) =>
        assert.deepEqual(a, { status: 200, etag: `"${n}"`, retryAfter: null })
      );
    }
    assert.ok(client.connections <= 64, `${client.connections} connections: kept alive, reused`);
  } finally {
    client.close();
    await s.close();
  }
});

Deno.test("RawHttpClient: chunked, 304 and a 503 sent before the body is read", async () => {
  const s = serve((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/chunked") {
      const body = new ReadableStream({
        start(c) {
          for (let i = 0; i < 5; i++) c.enqueue(utf8(`part ${i};`.repeat(500)));
          c.close();
        },
      });
      return new Response(body, { headers: { etag: '"c"' } });
    }
    if (path === "/shed") {
      return Response.json({ error: "overloaded" }, {
        status: 503,
        headers: { "retry-after": "7" },
      });
    }
    return new Response(null, { status: 304, headers: { etag: '"n"' } });
  });
  const client = new RawHttpClient(s.url);
  try {
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await client.send({ method: "GET", path: "/chunked", headers: [] }), {
        status: 200,
        etag: '"c"',
        retryAfter: null,
      });
      assert.equal((await client.send({ method: "GET", path: "/n", headers: [] })).status, 304);
      const shed = await client.send({
        method: "POST",
        path: "/shed",
        headers: [["content-type", "application/json"]],
        body: utf8(JSON.stringify({ pad: "y".repeat(200_000) })),
      });
      assert.deepEqual(shed, { status: 503, etag: null, retryAfter: "7" });
      // The connection goes on (or is replaced) after the unread body.
      assert.equal((await client.send({ method: "GET", path: "/n", headers: [] })).status, 304);
    }
  } finally {
    client.close();
    await s.close();
  }
});

/**
 * A TCP server answering request `request` of connection `conn` with `script`'s bytes: null closes
 * the connection unanswered, `{ text }` answers and then closes it.
 */
function rawServer(script: (conn: number, request: number) => string | { text: string } | null) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let accepted = 0;
  const loop = (async () => {
    for await (const conn of listener) {
      const id = accepted++;
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(65536);
        for (let n = 0;; n++) {
          let head = "";
          while (!head.includes("\r\n\r\n")) {
            const got = await conn.read(buf).catch(() => null);
            if (got === null) return conns.delete(conn);
            head += new TextDecoder().decode(buf.subarray(0, got));
          }
          const answer = script(id, n);
          if (answer === null) {
            conn.close();
            return conns.delete(conn);
          }
          await conn.write(utf8(typeof answer === "string" ? answer : answer.text));
          if (typeof answer !== "string") {
            conn.close();
            return conns.delete(conn);
          }
        }
      })();
    }
  })();
  const { port } = listener.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop.catch(() => {});
    },
  };
}

const ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

Deno.test("RawHttpClient retries once on a new connection when a kept-alive one was closed idle", async () => {
  // The first connection answers one request, then closes without answering the second.
  const s = rawServer((conn, n) => conn === 0 && n === 1 ? null : ok);
  const client = new RawHttpClient(s.url);
  try {
    assert.equal((await client.send({ method: "GET", path: "/", headers: [] })).status, 200);
    assert.equal((await client.send({ method: "GET", path: "/", headers: [] })).status, 200);
    assert.equal(s.accepted, 2);
  } finally {
    client.close();
    await s.close();
  }
});

Deno.test("RawHttpClient refuses an answer cut short, and a fresh connection closed unanswered", async () => {
  const s = rawServer((conn) =>
    conn === 0 ? { text: "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort" } : null
  );
  const client = new RawHttpClient(s.url);
  try {
    await assert.rejects(
      client.send({ method: "GET", path: "/", headers: [] }),
      RawHttpError,
      "95 bytes of the body never came",
    );
    assert.equal(client.connections, 0, "a connection cut short is not kept");
    await assert.rejects(
      client.send({ method: "GET", path: "/", headers: [] }),
      RawHttpError,
      "a new connection closed before any answer is an error, not retried for ever",
    );
  } finally {
    client.close();
    await s.close();
  }
});

Deno.test("RawHttpClient: an aborted request closes its connection, which the server sees", async () => {
  const received = Promise.withResolvers<void>();
  const gone = Promise.withResolvers<void>();
  const s = serve(async (req) => {
    received.resolve();
    await new Promise((r) => req.signal.addEventListener("abort", r));
    gone.resolve();
    return new Response("late");
  });
  const client = new RawHttpClient(s.url);
  try {
    const ac = new AbortController();
    const sent = client.send({ method: "GET", path: "/slow", headers: [] }, ac.signal);
    await received.promise;
    ac.abort(new DOMException("gave up", "TimeoutError"));
    await assert.rejects(sent, (e: Error) => e.name === "TimeoutError");
    assert.equal(client.connections, 0);
    await gone.promise;
  } finally {
    client.close();
    await s.close();
  }
});

Deno.test("RawHttpClient refuses anything but http:", () => {
  assert.throws(() => new RawHttpClient("https://127.0.0.1:1"), TypeError);
});

Deno.test("RawHttpClient skips an interim 1xx answer: each request gets its own final answer", async () => {
  // Review 24a: a 103 was taken as the answer, and every later one went to the next request.
  const s = rawServer((_conn, n) =>
    n === 0
      ? "HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + ok
      : "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
  );
  const client = new RawHttpClient(s.url);
  try {
    const post = (body: string) =>
      client.send({ method: "POST", path: "/v1/checkin", headers: [], body: utf8(body) });
    assert.equal((await post("beat-1")).status, 200);
    assert.equal((await post("beat-2")).status, 401, "the refusal is beat-2's");
    assert.equal((await post("beat-3")).status, 401);
  } finally {
    client.close();
    await s.close();
  }
});

Deno.test("RawHttpClient never sends a POST twice; a GET on stale connections is sent again on new ones", async () => {
  // Review 24a: a POST the server had taken was sent again (a replayed beat), and the retry took
  // another stale pooled connection.
  const s = rawServer((conn, n) => conn < 8 && n === 1 ? null : ok);
  const client = new RawHttpClient(s.url);
  try {
    await Promise.all(
      Array.from({ length: 8 }, () => client.send({ method: "GET", path: "/", headers: [] })),
    );
    assert.equal(client.connections, 8);
    await assert.rejects(
      client.send({ method: "POST", path: "/v1/checkin", headers: [], body: utf8("{}") }),
      RawHttpError,
    );
    assert.equal(s.accepted, 8, "not sent again on a new connection");
    for (let i = 0; i < 7; i++) {
      assert.equal((await client.send({ method: "GET", path: "/", headers: [] })).status, 200);
    }
  } finally {
    client.close();
    await s.close();
  }
});

Deno.test("RawHttpClient reads a 503 sent before a large body was read, and the connection closed", async () => {
  // Review 24a: with a 4 MiB body the write failed (BrokenPipe) and the 503 was lost.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(1024));
    await conn.write(
      utf8("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nretry-after: 7\r\n\r\nshed"),
    );
    conn.close();
  })();
  const client = new RawHttpClient(`http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`);
  try {
    const shed = await postZeros(client, 4 * 1024 * 1024);
    assert.deepEqual(shed, { status: 503, etag: null, retryAfter: "7" });
  } finally {
    client.close();
    await server;
    listener.close();
  }
});

Deno.test("RawHttpClient does not keep a connection whose write failed, whatever it answered", async () => {
  // Review 24c: an early 503 without `Connection: close`, then the server closed, and the broken
  // connection went back to the pool for the next POST.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    const first = await listener.accept();
    await first.read(new Uint8Array(1024));
    await first.write(utf8("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"));
    first.close();
    const second = await listener.accept();
    await second.read(new Uint8Array(65536));
    await second.write(utf8(ok));
    return second;
  })();
  const client = new RawHttpClient(`http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`);
  try {
    const big = await postZeros(client, 8 * 1024 * 1024);
    assert.equal(big.status, 503);
    assert.equal(client.connections, 0, "not pooled");
    const next = await client.send({
      method: "POST",
      path: "/v1/checkin",
      headers: [],
      body: utf8("{}"),
    });
    assert.equal(next.status, 200);
  } finally {
    client.close();
    listener.close(); // a second connection that never came: accept() rejects, no hang
    (await server.catch(() => null))?.close();
  }
});
