/**
 * `run`: the daemon loop. A cycle, then sleep until the next is due — unless
 * the NOC wakes the agent first through the long poll it keeps open. An
 * unexpected error is logged and the loop goes on; a stop signal ends it
 * between cycles. The first cycle waits a random part of `startSpreadS`
 * (not after a fresh enrolment), and no cycle or poll starts while a
 * `Retry-After` holds (agent/back_pressure.ts).
 *
 * @module
 */
import { errorJson, errorText } from "../protocol/http/bounded_body.ts";
import { type CycleContext, runCycle } from "./cycle.ts";
import { defaultIntervalS, loadState, statePaths } from "./state.ts";
import { readJson, writeJsonAtomic } from "../protocol/util/atomic_file.ts";
import { signedRequest, signingKeyFromSeed } from "../protocol/client.ts";
import { sleep } from "../protocol/util/timer.ts";
import { clampIntervalS, INTERVAL_RANGE_S } from "../protocol/catalog.ts";
import { BackPressure, BackPressureError, startDelayS } from "./back_pressure.ts";

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
  const random = ctx.random ?? Math.random;
  // One gate for the process: a Retry-After a cycle or the wake-up poll meets holds both.
  const pressure = ctx.backPressure ??
    new BackPressure(() => ctx.now().getTime(), random, ctx.config.backoffBaseS);
  ctx = { ...ctx, backPressure: pressure, checkin: ctx.checkin ?? { joined: true } };
  let wakePending = false;
  let lastWoken = -Infinity;
  let wakeUp: () => void = () => {
    wakePending = true;
  };
  let nextDue = Date.now() + await firstCycleDelayS(ctx, pressure, random) * 1000;
  // The wake-up poll answered 503/429 with a Retry-After: the next cycle waits for it too.
  const onPressure = () => {
    nextDue = Math.max(nextDue, pressure.resumeAt);
  };
  const poller = ctx.config.wakeWaitS > 0
    ? pollWakeups(ctx, pressure, signal, () => wakeUp(), onPressure)
    : Promise.resolve();
  while (!signal.aborted) {
    let deferredLogged = false;
    while (!signal.aborted) {
      const now = Date.now();
      // Times set before the clock was stepped back lie ahead by the step: none waits longer
      // than the interval from now (review 23a: a hold armed an hour "ahead" outlived it).
      pressure.rebase();
      nextDue = Math.min(nextDue, now + pressure.capS * 1000);
      lastWoken = Math.min(lastWoken, now);
      // No cycle while a Retry-After holds, woken or not.
      const due = Math.max(nextDue, pressure.until);
      const wakeAt = wakePending
        ? Math.max(now, lastWoken + WAKE_FLOOR_S * 1000, pressure.until)
        : Infinity;
      if (wakeAt <= now && wakeAt < due) {
        lastWoken = now;
        ctx.log.info("woken", { by: "noc" });
        break;
      }
      if (due <= now) break;
      if (wakePending && !deferredLogged) {
        deferredLogged = true;
        ctx.log.info("wake_deferred", {
          until: new Date(Math.min(wakeAt, due)).toISOString(),
          floorS: WAKE_FLOOR_S,
        });
      }
      await sleep(Math.min(wakeAt, due) - now, signal, (wake) => {
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
    if (signal.aborted) break;
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
  }
  await poller;
}

/**
 * Seconds before `run`'s first cycle: a random part of `startSpreadS` (at most the interval), so
 * a fleet started together (a power cut, an upgrade) does not cycle in the same second; none for
 * an agent that never finished a cycle (a fresh enrolment). A Retry-After an earlier run was
 * answered (`notBefore` in state.json, within the interval) is waited for too.
 */
async function firstCycleDelayS(
  ctx: CycleContext,
  pressure: BackPressure,
  random: () => number,
): Promise<number> {
  // A state file that cannot be read is not a fresh enrolment (that has none): it is spread too.
  const state = await loadState(ctx.config.state).catch(() => null);
  const interval = clampIntervalS(state?.intervalS ?? defaultIntervalS);
  pressure.capS = interval;
  const neverRan = state !== null && state.lastCycle.outcome === "none";
  const spreadS = ctx.config.startSpreadS;
  let delayS = startDelayS(spreadS, interval, neverRan, random);
  const notBefore = state?.notBefore ? Date.parse(state.notBefore) : NaN;
  const heldS = Number.isNaN(notBefore)
    ? 0
    : Math.min(interval, (notBefore - ctx.now().getTime()) / 1000);
  if (heldS > 0) {
    // The wake-up poll waits for it too.
    pressure.until = Math.max(pressure.until, ctx.now().getTime() + heldS * 1000);
    pressure.resumeAt = Math.max(pressure.resumeAt, pressure.until);
  }
  if (heldS > delayS) delayS = Math.round(heldS * 1000) / 1000;
  if (delayS > 0) {
    ctx.log.info("first_cycle_delayed", {
      delayS,
      spreadS: Math.min(interval, spreadS),
      ...(heldS > 0 ? { notBefore: state!.notBefore } : {}),
    });
  }
  return delayS;
}

/** Keeps a long poll open to the NOC; calls `onWake` when the NOC asks for a cycle now. */
async function pollWakeups(
  ctx: CycleContext,
  pressure: BackPressure,
  signal: AbortSignal,
  onWake: () => void,
  onPressure: () => void,
): Promise<void> {
  const send = pressure.wrap(ctx.fetch);
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
      const res = await send(req, {
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
      if (e instanceof BackPressureError) {
        // A Retry-After (this poll's, or a cycle's still holding): no poll until it has passed,
        // plus jitter; one answered to this poll holds the next cycle too.
        if (e.status !== null) onPressure();
        pressure.rebase();
        const delay = Math.max(1_000, pressure.resumeAt - ctx.now().getTime());
        ctx.log.warn("wake_poll_failed", {
          error: e.message,
          retryAfterS: e.retryAfterS,
          retryInMs: Math.round(delay),
        });
        await pause(delay, signal);
        continue;
      }
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
