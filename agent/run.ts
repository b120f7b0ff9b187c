/**
 * `run`: the daemon loop. A cycle, then sleep until the next is due — unless
 * the NOC wakes the agent first through the long poll it keeps open. An
 * unexpected error is logged and the loop goes on; a stop signal ends it
 * between cycles.
 *
 * @module
 */
import { errorJson, errorText } from "../protocol/http/bounded_body.ts";
import { type CycleContext, runCycle } from "./cycle.ts";
import { statePaths } from "./state.ts";
import { readJson, writeJsonAtomic } from "../protocol/util/atomic_file.ts";
import { signedRequest, signingKeyFromSeed } from "../protocol/client.ts";
import { sleep } from "../protocol/util/timer.ts";
import { INTERVAL_RANGE_S } from "../protocol/catalog.ts";

/**
 * The least time between two cycles a wake-up starts early, seconds. A wake-up answer is not
 * signed: a man in the middle could answer every long poll at once, so a wake-up is a hint. The
 * first one starts a cycle at once; one that comes sooner than this after the last cycle a wake-up
 * started is kept, and its cycle starts when the gap has passed (or at the regular time, if that
 * comes first). The regular schedule comes from signed catalogs only.
 */
export const WAKE_FLOOR_S = 120;

/** Runs cycles until `signal` aborts. */
export async function runLoop(ctx: CycleContext, signal: AbortSignal): Promise<void> {
  let wakePending = false;
  let lastWoken = -Infinity;
  let wakeUp: () => void = () => {
    wakePending = true;
  };
  const poller = ctx.config.wakeWaitS > 0
    ? pollWakeups(ctx, signal, () => wakeUp())
    : Promise.resolve();
  while (!signal.aborted) {
    let nextDue: number;
    try {
      const r = await runCycle(ctx);
      nextDue = Date.parse(r.nextDueAt);
    } catch (e) {
      ctx.log.error("cycle_crashed", { error: e instanceof Error ? e.message : String(e) });
      nextDue = Date.now() + 60_000;
    }
    if (Number.isNaN(nextDue)) nextDue = Date.now() + 60_000;
    // Never longer than the NOC's longest interval, whatever the state file says (a timer past
    // 2^31 ms would fire at once; sleep() waits in pieces in any case).
    nextDue = Math.min(nextDue, Date.now() + INTERVAL_RANGE_S.max * 1000);
    let deferredLogged = false;
    while (!signal.aborted) {
      const now = Date.now();
      const wakeAt = wakePending ? Math.max(now, lastWoken + WAKE_FLOOR_S * 1000) : Infinity;
      if (wakeAt <= now && wakeAt < nextDue) {
        lastWoken = now;
        ctx.log.info("woken", { by: "noc" });
        break;
      }
      if (nextDue <= now) break;
      if (wakePending && !deferredLogged) {
        deferredLogged = true;
        ctx.log.info("wake_deferred", {
          until: new Date(Math.min(wakeAt, nextDue)).toISOString(),
          floorS: WAKE_FLOOR_S,
        });
      }
      await sleep(Math.min(wakeAt, nextDue) - now, signal, (wake) => {
        wakeUp = () => {
          wakePending = true;
          wake();
        };
      });
      wakeUp = () => {
        wakePending = true;
      };
    }
    wakePending = false;
  }
  await poller;
}

/** Keeps a long poll open to the NOC; calls `onWake` when the NOC asks for a cycle now. */
async function pollWakeups(
  ctx: CycleContext,
  signal: AbortSignal,
  onWake: () => void,
): Promise<void> {
  const key = await signingKeyFromSeed(ctx.identity.signingSeed);
  const base = ctx.config.noc ?? ctx.identity.noc;
  let cursor = await loadCursor(ctx);
  let failures = 0;
  while (!signal.aborted) {
    try {
      const query = `wait=${ctx.config.wakeWaitS}${cursor === null ? "" : `&after=${cursor}`}`;
      const req = await signedRequest({
        baseUrl: base,
        uid: ctx.identity.uid,
        key,
        method: "GET",
        path: `/v1/wake?${query}`,
        now: ctx.now(),
      });
      const res = await ctx.fetch(req, {
        signal: AbortSignal.any([signal, AbortSignal.timeout((ctx.config.wakeWaitS + 30) * 1000)]),
      });
      if (!res.ok) {
        throw new Error(`NOC answered ${res.status}: ${await errorText(res, 200)}`);
      }
      const answer = await errorJson(res) as { wake?: unknown; cursor?: unknown };
      failures = 0;
      if (typeof answer.cursor === "number" && Number.isSafeInteger(answer.cursor)) {
        const changed = answer.cursor !== cursor;
        cursor = answer.cursor;
        if (changed) await persistCursor(ctx, cursor);
      }
      if (answer.wake === true) onWake();
      // Never a tight loop, even against a NOC that answers at once (one shutting down, say).
      await pause(1_000, signal);
    } catch (e) {
      if (signal.aborted) break;
      failures++;
      const delay = Math.min(60_000, 2_000 * 2 ** Math.min(failures - 1, 5));
      ctx.log.warn("wake_poll_failed", {
        error: e instanceof Error ? e.message : String(e),
        retryInMs: delay,
      });
      await pause(delay, signal);
    }
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, signal);
}

// The cursor has a file of its own: the cycle rewrites state.json concurrently.
async function persistCursor(ctx: CycleContext, cursor: number): Promise<void> {
  await writeJsonAtomic(statePaths(ctx.config.state).wakeCursor, { cursor }).catch(() => {});
}

async function loadCursor(ctx: CycleContext): Promise<number | null> {
  const raw = await readJson(statePaths(ctx.config.state).wakeCursor).catch(() => null) as
    | { cursor?: unknown }
    | null;
  return typeof raw?.cursor === "number" && Number.isSafeInteger(raw.cursor) ? raw.cursor : null;
}
