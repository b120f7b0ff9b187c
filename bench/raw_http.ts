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

/** Most bytes of an answer's head, or of a chunk-size line. */
const HEAD_LIMIT = 64 * 1024;

/** One connection and the bytes read off it but not yet used. */
class Connection {
  pending = new Uint8Array(0);
  /** Its own: reads on several connections at once must not share a buffer. */
  readonly scratch = new Uint8Array(16 * 1024);
  constructor(readonly conn: Deno.TcpConn) {}

  /** Reads once; the bytes read (a view of `scratch`), or null at the end of the stream. */
  async read(): Promise<Uint8Array | null> {
    const n = await this.conn.read(this.scratch);
    return n === null ? null : this.scratch.subarray(0, n);
  }

  /** At least one more byte appended to `pending`; false at the end of the stream. */
  async more(): Promise<boolean> {
    const got = await this.read();
    if (got === null) return false;
    const joined = new Uint8Array(this.pending.length + got.length);
    joined.set(this.pending);
    joined.set(got, this.pending.length);
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
export class RawHttpError extends Error {
  override name = "RawHttpError";
}

/**
 * A pool of kept-alive connections to one `http://host:port`: a request takes an idle connection
 * or opens one, and gives it back once its answer is read whole. An aborted request closes its
 * connection, as `fetch` does.
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
   * reason when aborted (connecting included), {@link RawHttpError} when the server closes the
   * connection first. Only a request that is not a POST is sent again, once and on a new
   * connection, when a kept-alive connection ends before any answer (review 24a: a POST sent again
   * may be processed twice; the NOC then refuses the beat as a replay).
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
    const again = req.method !== "POST";
    for (let attempt = 0;; attempt++) {
      // A second attempt never takes another pooled connection (review 24a: it may be stale too).
      const pooled = attempt === 0 ? this.#idle.pop() : undefined;
      const c = pooled ?? await this.#connect(signal);
      if (signal?.aborted) {
        this.#drop(c);
        signal.throwIfAborted();
      }
      const onAbort = () => this.#drop(c);
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        let writeError: unknown = null;
        await c.writeAll(bytes).catch((e) => writeError = e);
        // A server may answer (503) and close before reading a large body: its answer is read
        // even when the write failed (review 24a).
        // A connection whose write failed is not kept, however it answered (review 24c).
        const answer = await this.#read(c, writeError === null).catch((e) => {
          throw writeError ?? e;
        });
        if (answer === null) {
          // Nothing came back.
          this.#drop(c);
          if (pooled && again && attempt === 0) continue;
          if (writeError) throw writeError;
          throw new RawHttpError("the server closed the connection before answering");
        }
        return answer;
      } catch (e) {
        this.#drop(c);
        signal?.throwIfAborted();
        if (pooled && again && attempt === 0 && !(e instanceof RawHttpError)) continue;
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

  /** A new connection; an abort while connecting throws its reason (and closes it if it opens). */
  async #connect(signal?: AbortSignal): Promise<Connection> {
    const connecting = Deno.connect({ hostname: this.#hostname, port: this.#port });
    let conn: Deno.TcpConn;
    if (signal) {
      const aborted = Promise.withResolvers<never>();
      const onAbort = () => aborted.reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        conn = await Promise.race([connecting, aborted.promise]);
      } catch (e) {
        connecting.then((late) => late.close(), () => {});
        throw e;
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    } else conn = await connecting;
    conn.setNoDelay(true);
    const c = new Connection(conn);
    this.#open.add(c);
    return c;
  }

  #drop(c: Connection) {
    c.close();
    this.#open.delete(c);
  }

  /**
   * One final answer off `c` (null when the connection ended before its first byte); `c` goes back
   * to the pool after it only when `keep` and the answer leaves it clean.
   */
  async #read(c: Connection, keep: boolean): Promise<RawAnswer | null> {
    for (let first = true;; first = false) {
      let end = -1;
      for (;;) {
        end = indexOfSeq(c.pending, CRLF2, Math.max(0, end));
        if (end >= 0) break;
        if (c.pending.length > HEAD_LIMIT) throw new RawHttpError("an answer's head is too long");
        end = Math.max(0, c.pending.length - 3);
        if (!await c.more()) {
          if (c.pending.length === 0 && first) return null;
          throw new RawHttpError("the connection ended inside an answer's head");
        }
      }
      const lines = decoder.decode(c.pending.subarray(0, end)).split("\r\n");
      c.pending = c.pending.subarray(end + 4);
      const status = Number(lines[0]!.split(" ", 3)[1]);
      if (!Number.isInteger(status)) throw new RawHttpError(`not an HTTP answer: ${lines[0]}`);
      if (status === 101) throw new RawHttpError("the server switched protocols");
      // An interim answer (100, 103): the final one follows (review 24a: it was taken as final,
      // and every later answer on the connection went to the request after its own).
      if (status >= 100 && status < 200) continue;
      return await this.#rest(c, status, lines, keep);
    }
  }

  /** The rest of a final answer whose head is `lines`: its body skipped, the connection kept. */
  async #rest(c: Connection, status: number, lines: string[], keep: boolean): Promise<RawAnswer> {
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
    const noBody = status === 204 || status === 304;
    if (noBody) length = 0;
    if (length !== null && !(Number.isSafeInteger(length) && length >= 0)) {
      throw new RawHttpError(`a malformed Content-Length in answer ${status}`);
    }
    if (chunked && !noBody) await this.#skipChunked(c);
    else if (length !== null) await this.#skip(c, length);
    else {
      // Neither: the body runs to the end of the connection.
      c.pending = new Uint8Array(0);
      while (await c.read() !== null);
      close = true;
    }
    if (close || !keep || c.pending.length > 0) this.#drop(c);
    else this.#idle.push(c);
    return { status, etag, retryAfter };
  }

  /** Skips `n` bytes, counting down as they arrive (review 24a: not gathered, then dropped). */
  async #skip(c: Connection, n: number) {
    if (c.pending.length >= n) {
      c.pending = c.pending.subarray(n);
      return;
    }
    let left = n - c.pending.length;
    c.pending = new Uint8Array(0);
    while (left > 0) {
      const got = await c.read();
      if (got === null) throw new RawHttpError("the connection ended in a body");
      if (got.length > left) c.pending = got.slice(left);
      left -= Math.min(left, got.length);
    }
  }

  async #line(c: Connection): Promise<string> {
    for (let from = 0;;) {
      const eol = indexOfSeq(c.pending, [13, 10], from);
      if (eol >= 0) {
        const line = decoder.decode(c.pending.subarray(0, eol));
        c.pending = c.pending.subarray(eol + 2);
        return line;
      }
      if (c.pending.length > HEAD_LIMIT) throw new RawHttpError("a chunk's line is too long");
      from = Math.max(0, c.pending.length - 1);
      if (!await c.more()) throw new RawHttpError("the connection ended in a chunk");
    }
  }

  async #skipChunked(c: Connection) {
    for (;;) {
      const size = parseInt((await this.#line(c)).split(";")[0]!.trim(), 16);
      if (!Number.isSafeInteger(size) || size < 0) throw new RawHttpError("a malformed chunk size");
      if (size === 0) {
        // Trailers, to the empty line.
        while ((await this.#line(c)) !== "");
        return;
      }
      await this.#skip(c, size + 2);
    }
  }
}
