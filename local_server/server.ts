/**
 * Running a local component server: enrol once, then listen over HTTPS,
 * sync with the NOC (report, learn the site's stage and the appliances
 * revoked lately, adopt the NOC's keys),
 * pre-fetch what the stage lists (the spec's "staged for download"), and send
 * the download journal upstream — each on its own, so a NOC that is down for
 * hours stops none of the serving.
 *
 * @module
 */
import { sleep } from "../protocol/util/timer.ts";
import { errorText } from "../protocol/http/bounded_body.ts";
import { readJson, writeJsonAtomic } from "../protocol/util/atomic_file.ts";
import { signingKeyFromSeed } from "../protocol/client.ts";
import type { Logger } from "../protocol/util/log.ts";
import type { PublishedKey } from "../protocol/keys.ts";
import type { StageItem } from "../protocol/schemas.ts";
import { CacheError, openCache } from "./cache.ts";
import type { LocalConfig } from "./config.ts";
import { LocalConfigError } from "./config.ts";
import { openJournal } from "./records.ts";
import { loadOrMakeCertificate } from "./tls.ts";
import { createLocalApp, type LocalCounters } from "./app.ts";
import {
  enrollLocalServer,
  type LocalIdentity,
  localServerVersion,
  type LocalStatus,
  stageItemSchema,
  upstreamClient,
} from "./upstream.ts";

/** A running local component server. */
export interface LocalServer {
  /** The URL appliances reach it at. */
  url: string;
  /** Its identity. */
  identity: LocalIdentity;
  /** The certificate file it serves. */
  certFile: string;
  /** Whether that certificate was made here, self-signed. */
  selfSigned: boolean;
  /** Stops serving and the loops; waits for them. */
  close(): Promise<void>;
}

const batchSize = 500;
/** A fill from the NOC is given up after this long without a byte. */
const fillIdleMs = 60_000;

/** Starts a local component server from `config`. */
export async function startLocalServer(config: LocalConfig, log: Logger): Promise<LocalServer> {
  const dir = config.dataDir.replace(/\/+$/, "");
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const identityPath = `${dir}/identity.json`;
  const stagePath = `${dir}/stage.json`;
  const revokedPath = `${dir}/revoked.json`;
  const statsPath = `${dir}/stats.json`;
  let identity = await readJson(identityPath) as LocalIdentity | null;
  if (identity && config.site && identity.site !== config.site) {
    throw new LocalConfigError(
      `"${dir}" holds the identity of a server for site "${identity.site}", not "${config.site}"`,
    );
  }
  if (!identity && (!config.upstream || !config.site || !config.token)) {
    throw new LocalConfigError(
      `No identity in "${dir}": the first start needs --upstream, --site and --token`,
    );
  }
  const upstreamCa = config.upstreamCaFile ? await Deno.readTextFile(config.upstreamCaFile) : null;
  const client = upstreamCa ? Deno.createHttpClient({ caCerts: [upstreamCa] }) : null;
  const fetcher: typeof fetch = client
    ? (input, init) => fetch(input, { ...init, client })
    : (input, init) => fetch(input, init);

  const listenHost = config.host === "0.0.0.0" || config.host === "::"
    ? Deno.hostname()
    : config.host;
  const publicHost = config.publicUrl ? new URL(config.publicUrl).hostname : listenHost;
  const tls = await loadOrMakeCertificate({
    certFile: config.certFile,
    keyFile: config.keyFile,
    dir: `${dir}/tls`,
    hosts: [publicHost.replace(/^\[|\]$/g, ""), listenHost, "localhost", "127.0.0.1"],
  });
  const cache = await openCache({
    dir: `${dir}/cache`,
    limit: config.cacheBytes,
    now: () => new Date(),
    log: (e, f) => log.info(e, f),
  });
  const journal = await openJournal(dir);
  const stats = (await readJson(statsPath).catch(() => null) ?? {}) as Partial<LocalCounters>;
  const counters: LocalCounters = {
    hits: stats.hits ?? 0,
    misses: stats.misses ?? 0,
    servedBytes: stats.servedBytes ?? 0,
  };
  let keys: PublishedKey[] = identity?.keys ?? [];
  let stage = ((await readJson(stagePath).catch(() => null)) ?? []) as StageItem[];
  await cache.setReferenced(stage.map((s) => s.id));
  // Appliances revoked as of the last sync (kept across restarts): their grants are refused.
  let revoked = new Set(((await readJson(revokedPath).catch(() => null)) ?? []) as string[]);
  const problems: LocalStatus["problems"] = [];
  const problem = (code: string, message: string, componentId?: number) => {
    problems.push({
      code,
      message: message.slice(0, 1000),
      ...(componentId ? { componentId } : {}),
      at: new Date().toISOString(),
    });
    problems.splice(0, Math.max(0, problems.length - 50));
  };
  let lastSync: { at: string | null; error: string | null } = { at: null, error: null };
  const inflight = new Map<number, Promise<void>>();
  // Assigned once enrolled; fills and syncs before that have nothing to ask.
  let upstream: ReturnType<typeof upstreamClient> | null = null;

  const stop = new AbortController();
  const fill = (id: number, grant?: string, expect?: StageItem): Promise<void> => {
    const running = inflight.get(id);
    if (running) return running;
    const job = (async () => {
      if (!upstream) throw new Error("Not enrolled yet");
      // A NOC that stops sending is given up on after a minute without a byte (or at shutdown).
      const idle = new AbortController();
      let timer = setTimeout(() => idle.abort(), fillIdleMs);
      const touch = () => {
        clearTimeout(timer);
        timer = setTimeout(() => idle.abort(), fillIdleMs);
      };
      try {
        const signal = AbortSignal.any([idle.signal, stop.signal]);
        const res = await upstream.fetchComponent(id, grant, signal);
        if (!res.ok || !res.body) {
          const text = await errorText(res);
          throw new Error(`NOC answered ${res.status} for component ${id}: ${text}`);
        }
        let meta: StageItem;
        try {
          meta = stageItemSchema.parse(JSON.parse(res.headers.get("x-noc-component") ?? "null"));
        } catch {
          await res.body.cancel();
          throw new Error(`NOC sent component ${id} without a valid description`);
        }
        if (meta.id !== id || (expect && expect.sha256 !== meta.sha256)) {
          await res.body.cancel();
          throw new Error(`NOC sent a different component than ${id} was staged as`);
        }
        const stream = res.body;
        const body = (async function* () {
          for await (const chunk of stream) {
            touch();
            yield chunk;
          }
        })();
        try {
          await cache.store(meta, body, keys);
          log.info("cached", { id, app: meta.app, name: meta.name, version: meta.version });
        } catch (e) {
          if (e instanceof CacheError) {
            problem(e.reason, e.message, id);
            log.error("cache_store_refused", { id, reason: e.reason, message: e.message });
          }
          throw e;
        }
      } finally {
        clearTimeout(timer);
      }
    })();
    inflight.set(id, job);
    job.catch((e) =>
      log.warn("fill_failed", { id, error: String(e instanceof Error ? e.message : e) })
    ).finally(() => inflight.delete(id));
    return job;
  };

  const app = createLocalApp({
    cache,
    journal,
    keys: () => keys,
    revoked: (uid) => revoked.has(uid),
    now: () => new Date(),
    fill: (id, grant) => fill(id, grant),
    missWaitS: config.missWaitS,
    counters,
    problem,
    recorded: () => kickRecords(),
    health: () => ({
      id: identity?.id ?? null,
      site: identity?.site ?? config.site,
      upstream: identity?.upstream ?? config.upstream,
      lastSyncAt: lastSync.at,
      lastSyncError: lastSync.error,
      cache: { ...cache.stats(), staged: stage.length },
      revoked: revoked.size,
      pendingRecords: journal.size(),
      ...counters,
    }),
    log,
  });
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    cert: tls.cert,
    key: tls.key,
    onListen: () => {},
  }, app.fetch);
  const url = config.publicUrl ??
    `https://${publicHost.includes(":") ? `[${publicHost}]` : publicHost}:${server.addr.port}`;

  if (!identity) {
    try {
      identity = await enrollLocalServer(fetcher, {
        upstream: config.upstream!,
        token: config.token!,
        name: config.name,
        url,
      });
    } catch (e) {
      await server.shutdown();
      throw e;
    }
    await writeJsonAtomic(identityPath, identity);
    keys = identity.keys;
    log.info("local_server_enrolled", { id: identity.id, site: identity.site, url });
  }
  const me = identity;
  upstream = upstreamClient(me, await signingKeyFromSeed(me.signingSeed), fetcher);

  const sendRecords = async () => {
    for (;;) {
      const batch = journal.nextBatch(batchSize);
      if (!batch) return;
      const { acked, refusedRecords } = await upstream!.sendRecords(batch.epoch, batch.records);
      if (refusedRecords && refusedRecords.length > 0) {
        log.warn("records_refused", { refused: refusedRecords.length, records: refusedRecords });
        const first = refusedRecords[0]!;
        problem(
          "records_refused",
          `The NOC refused ${refusedRecords.length} download record(s): appliance ${first.uid}, ` +
            `component ${first.componentId}: ${first.reason}`,
          first.componentId,
        );
      }
      await journal.ack(batch.epoch, acked);
      if (acked < batch.records[batch.records.length - 1]!.seq) return;
    }
  };

  const syncOnce = async () => {
    const sent = problems.splice(0, problems.length);
    let answer;
    try {
      answer = await upstream!.sync({
        url,
        version: localServerVersion,
        cache: cache.stats(),
        ...counters,
        pendingRecords: journal.size(),
        problems: sent,
      });
    } catch (e) {
      problems.unshift(...sent);
      throw e;
    }
    lastSync = { at: new Date().toISOString(), error: null };
    await writeJsonAtomic(statsPath, counters);
    if (JSON.stringify(answer.keys) !== JSON.stringify(keys)) {
      keys = answer.keys as PublishedKey[];
      await writeJsonAtomic(identityPath, { ...me, keys });
    }
    // Revocations first: a revoked appliance's grant is refused from this moment on.
    if (
      answer.revoked.length !== revoked.size || answer.revoked.some((uid) => !revoked.has(uid))
    ) {
      revoked = new Set(answer.revoked);
      await writeJsonAtomic(revokedPath, answer.revoked);
    }
    stage = answer.stage;
    await writeJsonAtomic(stagePath, stage);
    await cache.setReferenced(stage.map((s) => s.id));
    startStaging();
    await sendRecords();
    return answer.syncS;
  };

  // Staging runs on its own, one pass at a time: a long or stalled download never holds up a sync.
  let staging: Promise<void> | null = null;
  let stageAgain = false;
  const startStaging = () => {
    if (staging) {
      stageAgain = true;
      return;
    }
    staging = (async () => {
      do {
        stageAgain = false;
        // What the site's catalogs reference is fetched before any appliance asks.
        for (const item of stage) {
          if (stop.signal.aborted) return;
          if (cache.entry(item.id)?.sha256 === item.sha256) continue;
          await fill(item.id, undefined, item).catch(() => {});
        }
      } while (stageAgain && !stop.signal.aborted);
    })().finally(() => staging = null);
  };

  // sleep() cannot overflow (a setTimeout past 2^31 ms fires at once).
  const pause = (ms: number) => sleep(ms, stop.signal);
  let syncing: Promise<unknown> = Promise.resolve();
  const syncNow = () => {
    syncing = syncing.then(syncOnce, syncOnce);
    return syncing as Promise<number>;
  };
  const syncLoop = (async () => {
    let failures = 0;
    while (!stop.signal.aborted) {
      let waitS: number;
      try {
        const suggested = await syncNow();
        failures = 0;
        // The NOC's suggestion is held to the range --sync accepts (1 s to a day).
        waitS = config.syncS ?? Math.min(86400, Math.max(1, suggested));
      } catch (e) {
        failures++;
        const message = e instanceof Error ? e.message : String(e);
        lastSync = { ...lastSync, error: message };
        waitS = Math.min(config.syncS ?? 60, 5 * 2 ** Math.min(failures - 1, 4));
        log.warn("sync_failed", { error: message, retryInS: waitS });
      }
      await pause(waitS * 1000);
    }
  })();

  // Records go up soon after each download (a second's worth at a time), and retry while the NOC is away.
  let recordsTimer: ReturnType<typeof setTimeout> | null = null;
  let recordFailures = 0;
  const kickRecords = (delayMs = 1000) => {
    if (recordsTimer !== null || stop.signal.aborted) return;
    recordsTimer = setTimeout(async () => {
      recordsTimer = null;
      try {
        await sendRecords();
        recordFailures = 0;
      } catch (e) {
        recordFailures++;
        const retry = Math.min(300_000, 2_000 * 2 ** Math.min(recordFailures - 1, 8));
        log.warn("records_not_sent", {
          pending: journal.size(),
          error: e instanceof Error ? e.message : String(e),
          retryInMs: retry,
        });
        kickRecords(retry);
      }
    }, delayMs);
  };
  if (journal.size() > 0) kickRecords();

  return {
    url,
    identity: me,
    certFile: tls.certFile,
    selfSigned: tls.selfSigned,
    async close() {
      stop.abort();
      if (recordsTimer !== null) clearTimeout(recordsTimer);
      await server.shutdown();
      await syncLoop;
      await staging;
      await Promise.allSettled([...inflight.values()]);
      await writeJsonAtomic(statsPath, counters).catch(() => {});
      journal.close();
      client?.close();
    },
  };
}
