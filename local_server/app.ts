/**
 * The local component server's HTTP side: `GET`/`HEAD /v1/components/:id`
 * with the download grant from the appliance's catalog — checked with the
 * NOC's public keys alone, so it keeps serving while the NOC is unreachable,
 * and never for an appliance the last sync named revoked (a revocation
 * reaches it within one sync) —
 * from the cache, checked before every answer; a miss is filled from the NOC
 * (pull-through) or sends the appliance to its next URL. `GET /healthz` says
 * how it is doing.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { z } from "zod";
import { ApiError, errorHandler } from "../protocol/http/errors.ts";
import { GrantError, verifyGrant } from "../protocol/grants.ts";
import { componentAnswer } from "../protocol/http/range.ts";
import { validate } from "../protocol/http/validate.ts";
import type { Logger } from "../protocol/util/log.ts";
import type { PublishedKey } from "../protocol/keys.ts";
import { CacheError, type ComponentCache } from "./cache.ts";
import type { RecordJournal } from "./records.ts";

/** Counters the local server reports. */
export interface LocalCounters {
  /** Downloads answered from the cache. */
  hits: number;
  /** Downloads not in the cache when asked (filled or sent elsewhere). */
  misses: number;
  /** Bytes served to appliances. */
  servedBytes: number;
}

/** What the local server's app is built from. */
export interface LocalAppDeps {
  /** The cache. */
  cache: ComponentCache;
  /** The download record journal. */
  journal: RecordJournal;
  /** The NOC's keys (grants and package signatures). */
  keys(): readonly PublishedKey[];
  /**
   * Whether appliance `uid` was revoked, as of the last sync: its grants are refused, however
   * long they would still verify.
   */
  revoked(uid: string): boolean;
  /** The time. */
  now(): Date;
  /** Fills component `id` from the NOC (one fetch however many ask); resolves when held. */
  fill(id: number, grant: string): Promise<void>;
  /** Seconds a request waits for a fill before the appliance is sent to its next URL. */
  missWaitS: number;
  counters: LocalCounters;
  /** A refusal or failure worth telling the NOC about. */
  problem(code: string, message: string, componentId?: number): void;
  /** Called after a download record is written. */
  recorded(): void;
  /** Health details. */
  health(): Record<string, unknown>;
  log: Logger;
}

const idParam = z.strictObject({ id: z.coerce.number().int().min(1).max(2 ** 53 - 1) });

/** Streams bytes `start`..`end` (inclusive) of an open file, closing it when done or cancelled. */
async function* fileRange(
  file: Deno.FsFile,
  start: number,
  end: number,
): AsyncGenerator<Uint8Array> {
  try {
    await file.seek(start, Deno.SeekMode.Start);
    let left = end - start + 1;
    const buf = new Uint8Array(256 * 1024);
    while (left > 0) {
      const n = await file.read(buf.subarray(0, Math.min(buf.length, left)));
      if (n === null || n === 0) throw new Error("Cached file ended early");
      left -= n;
      yield buf.slice(0, n);
    }
  } finally {
    file.close();
  }
}

/** Builds the local component server's Hono app. */
export function createLocalApp(deps: LocalAppDeps) {
  const serve = async (
    c: Context,
    id: number,
    head: boolean,
  ) => {
    const grant = c.req.query("grant");
    if (grant === undefined) {
      throw new ApiError(401, "grant_required", "A download grant from the catalog is required");
    }
    let uid: string;
    try {
      uid = (await verifyGrant(grant, id, deps.keys(), deps.now())).u;
    } catch (e) {
      if (!(e instanceof GrantError)) throw e;
      throw new ApiError(e.reason === "expired_grant" ? 401 : 403, e.reason, e.message);
    }
    if (deps.revoked(uid)) {
      throw new ApiError(403, "revoked_appliance", `Appliance "${uid}" has been revoked`);
    }
    const open = async () => {
      try {
        return await deps.cache.open(id, deps.keys());
      } catch (e) {
        if (!(e instanceof CacheError)) throw e;
        deps.log.error("cache_refused", { id, reason: e.reason, message: e.message });
        deps.problem(`cache_${e.reason}`, `Cached copy refused and dropped: ${e.message}`, id);
        return undefined;
      }
    };
    let held = await open();
    if (held === undefined) {
      deps.counters.misses++;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const filled = await Promise.race([
        deps.fill(id, grant).then(() => true, () => false),
        new Promise<false>((r) => timer = setTimeout(() => r(false), deps.missWaitS * 1000)),
      ]);
      clearTimeout(timer);
      held = filled ? await open() : undefined;
      if (held === undefined) {
        throw new ApiError(
          503,
          "not_cached",
          `Component ${id} is not held here yet; use the next URL in the catalog`,
          {},
          { "retry-after": "60" },
        );
      }
    } else {
      deps.counters.hits++;
    }
    const { entry, file } = held;
    deps.cache.touch(id);
    let answer: ReturnType<typeof componentAnswer>;
    try {
      answer = componentAnswer(c.req.header("range"), entry);
    } catch (e) {
      file.close();
      throw e;
    }
    const { status, start, end, length, headers } = answer;
    if (head || length === 0) file.close();
    if (head) return c.body(null, status, headers);
    try {
      // On disk before the first byte goes out: the NOC hears of every download, even after a crash.
      await deps.journal.append({ uid, componentId: id, at: deps.now().toISOString() });
    } catch (e) {
      if (length > 0) file.close();
      throw e;
    }
    deps.recorded();
    deps.counters.servedBytes += length;
    if (length === 0) return c.body(null, status, headers);
    return c.body(ReadableStream.from(fileRange(file, start, end)), status, headers);
  };
  const app = new Hono()
    .get("/healthz", (c) => c.json({ ok: true, ...deps.health() }))
    .on(
      "HEAD",
      "/v1/components/:id",
      validate("param", idParam),
      (c) => serve(c, c.req.valid("param").id, true),
    )
    .get(
      "/v1/components/:id",
      validate("param", idParam),
      (c) => serve(c, c.req.valid("param").id, c.req.method === "HEAD"),
    );
  app.notFound((c) =>
    c.json({ error: "not_found", message: `No route for ${c.req.method} ${c.req.path}` }, 404)
  );
  app.onError(errorHandler(deps.log));
  return app;
}
