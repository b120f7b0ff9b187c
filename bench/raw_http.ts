/**
 * A keep-alive HTTP/1.1 client over plain TCP, for the fleet simulator's overload rows
 * (bench/overload.ts): the load generator shares the machine's two cores with the NOC and
 * PostgreSQL, and at twice the capacity `fetch` made it the largest user of CPU (85 % of a core
 * in the full run of 2026-12-02 07:55Z), taking the CPU the NOC was being measured on.
 *
 * Hand-written because it is a measured hot path of the bench (not of the product): per signed
 * check-in, `fetch` costs the simulator about 80 µs of CPU more than writing the request's bytes
 * on a kept-alive connection and reading the answer (measured with a bare `Deno.serve` in another
 * process: 198 against 126 µs a request, signing included). It speaks only what the NOC answers:
 * `Content-Length` or chunked bodies, `Connection: close`, no pipelining, no TLS, no redirects.
 *
 * @module
 */

/** An answer: its status and the headers the simulator reads. */
export interface RawAnswer {
  /** Status code. */
  status: number;
  /** `ETag`, when sent. */
  etag: string | null;
  /** `Retry-After`, when sent. */
  retryAfter: string | null;
}

/** A request, its headers as name-value pairs (`Host` and `Content-Length` are added). */
export interface RawRequest {
  method: string;
  /** Path and query, e.g. `/v1/checkin`. */
  path: string;
  headers: Iterable<[string, string]>;
  body?: Uint8Array;
}

const CRLF2 = [13, 10, 13, 10];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function indexOfSeq(buf: Uint8Array, seq: number[], from: number): number {
  outer: for (let i = from; i <= buf.length - seq.length; i++) {
    for (let j = 0; j < seq.length; j++) if (buf[i + j] !== seq[j]) continue outer;
    return i;
  }
  return -1;
}

/** One connection and the bytes read off it but not yet used. */
class Connection {
  pending = new Uint8Array(0);
  /** Its own: reads on several connections at once must not share a buffer. */
  readonly scratch = new Uint8Array(16 * 1024);
  constructor(readonly conn: Deno.TcpConn) {}

  /** At least one more byte appended to `pending`; false at the end of the stream. */
  async more(): Promise<boolean> {
    const scratch = this.scratch;
    const n = await this.conn.read(scratch);
    if (n === null) return false;
    const joined = new Uint8Array(this.pending.length + n);
    joined.set(this.pending);
    joined.set(scratch.subarray(0, n), this.pending.length);
    this.pending = joined;
    return true;
  }

  async writeAll(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) at += await this.conn.write(bytes.subarray(at));
  }

  close() {
    try {
      this.conn.close();
    } catch {
      // Closed already (an abort, or the server).
    }
  }
}

/** The connection ended before a whole answer (the server closed it, or an abort). */
export class RawHttpError extends Error {}

/**
 * A pool of kept-alive connections to one `http://host:port`: a request takes an idle connection
 * or opens one, and gives it back once its answer is read whole. An aborted request closes its
 * connection, as `fetch` does, so the server sees its client gone.
 */
export class RawHttpClient {
  readonly #hostname: string;
  readonly #port: number;
  readonly #host: string;
  readonly #idle: Connection[] = [];
  readonly #open = new Set<Connection>();

  /** @param baseUrl `http://host:port` (TLS is not spoken). */
  constructor(baseUrl: string) {
    const u = new URL(baseUrl);
    if (u.protocol !== "http:") throw new TypeError(`RawHttpClient speaks http: only, not ${u}`);
    this.#hostname = u.hostname.replace(/^\[|\]$/g, "");
    this.#port = Number(u.port || 80);
    this.#host = u.host;
  }

  /** Open connections (idle or busy). */
  get connections(): number {
    return this.#open.size;
  }

  /**
   * Sends `req` and reads its answer whole (the body is read and dropped). Throws the signal's
   * reason when aborted, {@link RawHttpError} when the server closes the connection first (a
   * kept-alive connection the server closed while idle is retried once on a new one).
   */
  async send(req: RawRequest, signal?: AbortSignal): Promise<RawAnswer> {
    signal?.throwIfAborted();
    let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${this.#host}\r\n`;
    for (const [k, v] of req.headers) head += `${k}: ${v}\r\n`;
    const body = req.body ?? new Uint8Array(0);
    if (body.length > 0 || req.method === "POST" || req.method === "PUT") {
      head += `content-length: ${body.length}\r\n`;
    }
    head += "\r\n";
    const h = encoder.encode(head);
    const bytes = new Uint8Array(h.length + body.length);
    bytes.set(h);
    bytes.set(body, h.length);
    for (let attempt = 0;; attempt++) {
      const reused = this.#idle.length > 0;
      const c = this.#idle.pop() ?? await this.#connect();
      if (signal?.aborted) {
        this.#drop(c);
        signal.throwIfAborted();
      }
      const onAbort = () => this.#drop(c);
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        await c.writeAll(bytes);
        const answer = await this.#read(c);
        if (answer === null) {
          // Nothing came back: a kept-alive connection the server had closed.
          this.#drop(c);
          if (reused && attempt === 0) continue;
          throw new RawHttpError("the server closed the connection before answering");
        }
        return answer;
      } catch (e) {
        this.#drop(c);
        signal?.throwIfAborted();
        if (reused && attempt === 0 && !(e instanceof RawHttpError)) continue;
        throw e;
      } finally {
        signal?.removeEventListener("abort", onAbort);
      }
    }
  }

  /** Closes every connection. */
  close(): void {
    for (const c of this.#open) c.close();
    this.#open.clear();
    this.#idle.length = 0;
  }

  async #connect(): Promise<Connection> {
    const conn = await Deno.connect({ hostname: this.#hostname, port: this.#port });
    conn.setNoDelay(true);
    const c = new Connection(conn);
    this.#open.add(c);
    return c;
  }

  #drop(c: Connection) {
    c.close();
    this.#open.delete(c);
  }

  /** One answer off `c` (null when the connection ended before its first byte). */
  async #read(c: Connection): Promise<RawAnswer | null> {
    let end = -1;
    for (;;) {
      end = indexOfSeq(c.pending, CRLF2, Math.max(0, end));
      if (end >= 0) break;
      end = Math.max(0, c.pending.length - 3);
      if (!await c.more()) {
        if (c.pending.length === 0) return null;
        throw new RawHttpError("the connection ended inside an answer's head");
      }
    }
    const lines = decoder.decode(c.pending.subarray(0, end)).split("\r\n");
    const status = Number(lines[0]!.split(" ", 3)[1]);
    if (!Number.isInteger(status)) throw new RawHttpError(`not an HTTP answer: ${lines[0]}`);
    let length: number | null = null;
    let chunked = false;
    let close = false;
    let etag: string | null = null;
    let retryAfter: string | null = null;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "content-length") length = Number(value);
      else if (name === "transfer-encoding") chunked = /chunked/i.test(value);
      else if (name === "connection") close = /close/i.test(value);
      else if (name === "etag") etag = value;
      else if (name === "retry-after") retryAfter = value;
    }
    c.pending = c.pending.subarray(end + 4);
    const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
    if (noBody) length = 0;
    if (chunked && !noBody) await this.#skipChunked(c);
    else if (length !== null) await this.#skip(c, length);
    else {
      // Neither: the body runs to the end of the connection.
      while (await c.more()) c.pending = new Uint8Array(0);
      close = true;
    }
    if (close || c.pending.length > 0) this.#drop(c);
    else this.#idle.push(c);
    return { status, etag, retryAfter };
  }

  async #skip(c: Connection, n: number) {
    while (c.pending.length < n) {
      if (!await c.more()) throw new RawHttpError("the connection ended in a body");
    }
    c.pending = c.pending.subarray(n);
  }

  async #line(c: Connection): Promise<string> {
    for (;;) {
      const eol = indexOfSeq(c.pending, [13, 10], 0);
      if (eol >= 0) {
        const line = decoder.decode(c.pending.subarray(0, eol));
        c.pending = c.pending.subarray(eol + 2);
        return line;
      }
      if (!await c.more()) throw new RawHttpError("the connection ended in a chunk");
    }
  }

  async #skipChunked(c: Connection) {
    for (;;) {
      const size = parseInt((await this.#line(c)).split(";")[0]!.trim(), 16);
      if (!Number.isFinite(size) || size < 0) throw new RawHttpError("a malformed chunk size");
      if (size === 0) {
        // Trailers, to the empty line.
        while ((await this.#line(c)) !== "");
        return;
      }
      await this.#skip(c, size + 2);
    }
  }
}
