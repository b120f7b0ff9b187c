/** A bare HTTP/1.1 client over TCP, for requests `fetch` cannot make (a `Host` of the test's choosing, a body that never ends). */

/** An answer read off the socket. */
export interface RawAnswer {
  /** Status code. */
  status: number;
  /** Header lines, lower-cased names. */
  headers: Headers;
  /** The body, de-chunked, as text. */
  text: string;
}

function dechunk(bytes: Uint8Array): Uint8Array {
  const out: number[] = [];
  let i = 0;
  const dec = new TextDecoder();
  for (;;) {
    const eol = bytes.indexOf(0x0a, i);
    if (eol < 0) break;
    const size = parseInt(dec.decode(bytes.subarray(i, eol)).trim(), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(...bytes.subarray(eol + 1, eol + 1 + size));
    i = eol + 1 + size + 2;
  }
  return new Uint8Array(out);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

/** Reads one answer: up to its Content-Length, its last chunk, or the end of the connection. */
async function readAnswer(conn: Deno.Conn): Promise<RawAnswer> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  let all: Uint8Array = new Uint8Array();
  for (;;) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    parts.push(buf.slice(0, n));
    all = concat(parts);
    const sep = headEnd(all);
    if (sep < 0) continue;
    const head = new TextDecoder().decode(all.subarray(0, sep)).toLowerCase();
    const len = /\r\ncontent-length:\s*(\d+)/.exec(head);
    if (len && all.length - sep - 4 >= Number(len[1])) break;
    if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
      const tail = new TextDecoder().decode(all.subarray(Math.max(sep, all.length - 7)));
      if (tail.endsWith("0\r\n\r\n")) break;
    }
  }
  const sep = headEnd(all);
  const head = new TextDecoder().decode(all.subarray(0, sep));
  const [statusLine, ...lines] = head.split("\r\n");
  const headers = new Headers();
  for (const l of lines) {
    const c = l.indexOf(":");
    if (c > 0) headers.append(l.slice(0, c).trim(), l.slice(c + 1).trim());
  }
  let body: Uint8Array = all.subarray(sep + 4);
  if (headers.get("transfer-encoding")?.includes("chunked")) body = dechunk(body);
  return {
    status: Number(statusLine!.split(" ")[1]),
    headers,
    text: new TextDecoder().decode(body),
  };
}

function headEnd(all: Uint8Array): number {
  for (let i = 0; i + 3 < all.length; i++) {
    if (all[i] === 13 && all[i + 1] === 10 && all[i + 2] === 13 && all[i + 3] === 10) return i;
  }
  return -1;
}

/**
 * Sends `req` (its method, path, query, headers and body) to the server on 127.0.0.1:`port`
 * with `Host: host` and `extra` headers, over a connection of its own; reads the answer.
 */
export async function sendWithHost(
  port: number,
  req: Request,
  host: string,
  extra: Record<string, string> = {},
): Promise<RawAnswer> {
  const url = new URL(req.url);
  const body = new Uint8Array(await req.arrayBuffer());
  const lines = [`${req.method} ${url.pathname}${url.search} HTTP/1.1`, `host: ${host}`];
  for (const [k, v] of req.headers) if (k !== "host") lines.push(`${k}: ${v}`);
  for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
  lines.push(`content-length: ${body.length}`, "connection: close", "", "");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const head = new TextEncoder().encode(lines.join("\r\n"));
    const all = new Uint8Array(head.length + body.length);
    all.set(head);
    all.set(body, head.length);
    for (let off = 0; off < all.length;) off += await conn.write(all.subarray(off));
    return await readAnswer(conn);
  } finally {
    try {
      conn.close();
    } catch {
      // already closed by the server
    }
  }
}

/**
 * Sends the head of a request to 127.0.0.1:`port` with a chunked body of which only the first
 * `firstChunkBytes` ever arrive, and reads the answer: a server that waits for the rest of the
 * body never answers (the caller bounds the wait).
 */
export async function sendEndlessBody(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  firstChunkBytes = 64 * 1024,
): Promise<{ answer: Promise<RawAnswer>; close(): void }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [`${method} ${path} HTTP/1.1`, `host: 127.0.0.1:${port}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  lines.push("transfer-encoding: chunked", "", "");
  const head = new TextEncoder().encode(
    lines.join("\r\n") + `${firstChunkBytes.toString(16)}\r\n`,
  );
  await conn.write(head);
  const chunk = new Uint8Array(firstChunkBytes).fill(0x41);
  for (let off = 0; off < chunk.length;) off += await conn.write(chunk.subarray(off));
  await conn.write(new TextEncoder().encode("\r\n"));
  return {
    answer: readAnswer(conn),
    close() {
      try {
        conn.close();
      } catch {
        // already closed
      }
    },
  };
}
