/**
 * One agent cycle (spec, FIGURES 10A/10B): init plug-ins, the SecureBeat, the
 * catalog (with `If-None-Match`), the comparison with `catalog.cur`, installs
 * (packages first, then files), the install report, post plug-ins. Every step
 * that can fail is caught, recorded as a problem and reported in the next
 * SecureBeat; nothing here can stop the next cycle.
 *
 * @module
 */
import { downloadPath } from "./download.ts";
import {
  type ErrorBody,
  errorJson,
  errorText,
  readTextBounded,
} from "../protocol/http/bounded_body.ts";
import { nameSchema } from "../protocol/schemas.ts";
import { AgentError, describe } from "./errors.ts";
import { collectHealth } from "./health.ts";
import {
  type BeatBody,
  type BeatCycle,
  beatHostname,
  fitBeat,
  INSTANCE_ID,
  jsonBytes,
  problemsDropped,
  reportLimits,
  SMALLEST_STEPS,
  smallestBeat,
} from "./beat.ts";
import { runPlugins } from "./plugins.ts";
import { type InstallContext, installPackage, rollback } from "./install_package.ts";
import { fileDestination, installFile } from "./install_file.ts";
import { downloadAhead, installDecision } from "./install_window.ts";
import { findAttempt } from "./install_attempts.ts";
import {
  type AgentState,
  componentKey,
  type CycleSummary,
  freshState,
  type Identity,
  type Installed,
  type InstallReport,
  loadInstalled,
  loadState,
  type Problem,
  saveIdentity,
  saveInstalled,
  saveState,
  statePaths,
} from "./state.ts";
import { writeFileAtomic } from "../protocol/util/atomic_file.ts";
import { forget, journalled, journalOutcome, type KeyedReport } from "./outcome_journal.ts";
import { settleLeftovers } from "./install_guard.ts";
import { adoptablePackageKeys, rotatedPackageKeys } from "../protocol/release_keys.ts";
import { agentVersion, reportedHostname } from "./config.ts";
import {
  newNonce,
  NocError,
  readNocAnswer,
  signedRequest,
  signingKeyFromSeed,
} from "../protocol/client.ts";
import {
  CATALOG_BINDING_HEADER,
  CATALOG_BODY_LIMIT,
  CatalogError,
  clampIntervalS,
  verifyCatalog,
  verifyCatalogBinding,
} from "../protocol/catalog.ts";
import { MAX_PINNED_KEYS, releaseKeysOnlyOf, walkKeyChain } from "../protocol/keys.ts";
import type { CatalogDocument, CatalogEntry } from "../protocol/catalog.ts";
import {
  backoffCeilingS,
  BackPressure,
  boundRetryAfterS,
  cycleBackoffS,
  type CycleGate,
  type Random,
  retryDelayS,
} from "./back_pressure.ts";

/** What a cycle needs. */
export interface CycleContext extends InstallContext {
  /**
   * The process's back-pressure gate (`run` keeps one across cycles and its wake-up poll); a
   * cycle without one makes its own.
   */
  backPressure?: BackPressure;
  /** Random numbers in [0, 1) for the schedule's jitter (tests inject one). */
  random?: Random;
  /**
   * Whether the NOC takes a whole cycle in one request (`POST /v1/checkin`); false once it answered
   * 404 (roles split, an older NOC), for the rest of the process. `run` keeps one across cycles;
   * a cycle without one asks again.
   */
  checkin?: { joined: boolean };
}

/** The result of a cycle. */
export interface CycleResult extends CycleSummary {
  /** Components installed this cycle. */
  installed: string[];
  /** When the next cycle is due. */
  nextDueAt: string;
}

/** Seconds before a failed install of the same version is tried again, after `attempts` failures. */
export function backoffS(attempts: number, random: () => number = Math.random): number {
  const base = Math.min(6 * 3600, 60 * 2 ** Math.min(attempts - 1, 12));
  return Math.round(base * (0.75 + 0.5 * random()));
}

const apiTimeoutMs = 30_000;

/**
 * The cycle state this process could not save (its state folder unwritable), by state folder:
 * its next cycle goes on from it (the sequence number keeps rising), and the first save that
 * works again forgets it.
 */
const unsaved = new Map<string, AgentState>();

/** An OS error's own words (a Deno error's message, e.g. "Read-only file system (os error 30)"). */
function osError(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/: (open|mkdir|rename|remove|write|stat|lstat)[ '"].*$/s, "");
}

/**
 * Runs one cycle under the state folder's lock. A state folder that cannot be written (remounted
 * read-only, a full disk, wrong owner) does not stop the cycle: it runs without the lock (or with
 * a read-only handle's lock), on in-memory state, and its beat carries a `state_unwritable`
 * problem naming the path and the OS error (docs/agent.md, "A state folder that cannot be written").
 */
export async function runCycle(ctx: CycleContext): Promise<CycleResult> {
  const paths = statePaths(ctx.config.state);
  let lock: Deno.FsFile | null = null;
  let unwritable: Problem | null = null;
  try {
    lock = await Deno.open(paths.lock, { write: true, create: true, mode: 0o600 });
  } catch (e) {
    unwritable = {
      code: "state_unwritable",
      message: `Cannot write ${paths.lock}: ${osError(e)}`,
    };
    ctx.log.error("state_unwritable", { path: paths.lock, message: osError(e) });
    // A lock file already there still locks through a read-only handle.
    lock = await Deno.open(paths.lock, { read: true }).catch(() => null);
  }
  try {
    if (lock) {
      await lock.lock(true).catch((e) =>
        ctx.log.warn("lock_failed", { path: paths.lock, message: describe(e).message })
      );
    }
    // Every request of the cycle goes through the back-pressure gate: after a 503 or 429 with a
    // Retry-After, the rest of the cycle sends nothing (agent/back_pressure.ts).
    const pressure = ctx.backPressure ??
      new BackPressure(() => ctx.now().getTime(), ctx.random, ctx.config.backoffBaseS);
    const gate = pressure.forCycle(ctx.fetch);
    return await cycle({ ...ctx, fetch: gate.fetch, backPressure: pressure }, unwritable, gate);
  } finally {
    if (lock) {
      await lock.unlock().catch(() => {});
      lock.close();
    }
  }
}

async function cycle(
  ctx: CycleContext,
  unwritable: Problem | null,
  gate: CycleGate,
): Promise<CycleResult> {
  const started = ctx.now();
  const paths = statePaths(ctx.config.state);
  const problems: Problem[] = unwritable ? [unwritable] : [];
  // A damaged state file is moved aside rather than stopping every cycle from now on; one that
  // cannot be moved (an unwritable folder) is worked around with an empty one.
  const orAside = async <T>(path: string, load: () => Promise<T>, empty: () => T): Promise<T> => {
    try {
      return await load();
    } catch (e) {
      const moved = await Deno.rename(path, `${path}.damaged`).then(() => true, () => false);
      problems.push({
        code: "state_damaged",
        message: `${describe(e).message}; ${moved ? "moved aside" : "could not be moved aside"}`,
      });
      return await load().catch(empty);
    }
  };
  // The state this process could not save goes on, but a state file written meanwhile by another
  // process (`noc-agent once` once the folder was writable again) may have counted further: the
  // sequence number goes on from the higher of the two, never repeating one sent (review 21d).
  const kept = unsaved.get(ctx.config.state);
  const onDisk = kept
    ? await loadState(ctx.config.state).catch(() => null)
    : await orAside(paths.state, () => loadState(ctx.config.state), freshState);
  const state = kept ? { ...kept, seq: Math.max(kept.seq, onDisk?.seq ?? 0) } : onDisk!;
  // A Retry-After is held to the interval of the signed catalog (it is not signed itself).
  if (ctx.backPressure) ctx.backPressure.capS = clampIntervalS(state.intervalS);
  let installed = await orAside(
    paths.catalogCur,
    () => loadInstalled(ctx.config.state),
    () => [],
  );
  // Saves the cycle state; one that cannot be saved is kept in memory for this process's next
  // cycle, and said (once a cycle) in the next beat.
  const save = async () => {
    try {
      await saveState(ctx.config.state, state);
      unsaved.delete(ctx.config.state);
    } catch (e) {
      unsaved.set(ctx.config.state, state);
      if (!problems.some((p) => p.code === "state_unwritable")) {
        problems.push({
          code: "state_unwritable",
          message: `Cannot write ${paths.state}: ${osError(e)}`,
        });
        ctx.log.error("state_unwritable", { path: paths.state, message: osError(e) });
      }
    }
  };
  // Each install outcome goes to the journal (outcomes/) the moment the install ends, so an agent
  // killed later in the cycle still reports it at its next run; if the journal cannot be written
  // (a full disk), to state.json's pendingReports, saved with the state. Its reportId, drawn here,
  // is its idempotency key: every re-send carries it, and the NOC stores the outcome once.
  const journal = async (r: InstallReport) => {
    const report: KeyedReport = {
      ...r,
      ...(r.message === undefined ? {} : { message: clean(r.message, 2000) }),
      reportId: crypto.randomUUID(),
    };
    try {
      await journalOutcome(ctx.config.state, report, ctx.now());
    } catch (e) {
      ctx.log.warn("outcome_not_journalled", { message: describe(e).message });
      state.pendingReports = [...state.pendingReports, report].slice(-500);
    }
  };
  // Outcomes an older agent (or a full disk) left in state.json join the journal.
  while (state.pendingReports.length > 0) {
    try {
      await journalOutcome(ctx.config.state, state.pendingReports[0]!, ctx.now());
    } catch {
      break;
    }
    state.pendingReports = state.pendingReports.slice(1);
    await save();
  }
  const done: string[] = [];
  const identity = ctx.identity;
  const key = await signingKeyFromSeed(identity.signingSeed);
  const base = ctx.config.noc ?? identity.noc;
  const send = (req: Request) => ctx.fetch(req, { signal: AbortSignal.timeout(apiTimeoutMs) });
  // The catalog server: the NOC itself unless its beat answer names another (spec, FIGURE 2).
  let catalogBase = base;
  let catalogBases = [base];
  const callAt = (baseUrl: () => string) =>
  async (
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
    nonce?: string,
  ) =>
    await send(
      await signedRequest({
        baseUrl: baseUrl(),
        uid: identity.uid,
        key,
        method,
        path,
        ...(body === undefined ? {} : { body }),
        ...(headers ? { headers } : {}),
        ...(nonce ? { nonce } : {}),
        now: ctx.now(),
      }),
    );
  const call = callAt(() => base);
  const catalogCall = callAt(() => catalogBase);
  // Where install reports go: the NOC, or a catalog server that proved itself this cycle (below).
  let reportBase = base;
  const reportCall = callAt(() => reportBase);

  // A program an earlier run's install started and that may still run (its agent was killed): it
  // is stopped before anything else, and what it was installing counts as not installed, so this
  // cycle installs it again over whatever it left. While one cannot be stopped, nothing is installed.
  const leftovers = await settleLeftovers(ctx).catch((e) => ({
    dropped: [] as string[],
    blocked: true,
    problems: [{
      code: "leftovers_unchecked",
      message: `An earlier run's install programs could not be checked: ${describe(e).message}`,
    }],
  }));
  if (leftovers.dropped.length > 0) {
    installed = installed.filter((c) => !leftovers.dropped.includes(componentKey(c)));
    await saveInstalled(ctx.config.state, installed).catch((e) =>
      ctx.log.warn("save_failed", { path: paths.catalogCur, message: describe(e).message })
    );
  }
  problems.push(...leftovers.problems);

  // Leftovers of an install cut short (a crash, a SIGKILL): never half-used, always redone. One
  // leftover that cannot be removed is logged and does not keep the others.
  await Deno.remove(paths.staging, { recursive: true }).catch(async (e) => {
    if (e instanceof Deno.errors.NotFound) return;
    ctx.log.warn("cleanup_failed", { path: paths.staging, message: describe(e).message });
    try {
      for await (const left of Deno.readDir(paths.staging)) {
        const path = `${paths.staging}/${left.name}`;
        await Deno.remove(path, { recursive: true }).catch((e) =>
          ctx.log.warn("cleanup_failed", { path, message: describe(e).message })
        );
      }
    } catch {
      // Not a folder one can list: the mkdir below reports it.
    }
  });
  if (!unwritable) {
    await Deno.mkdir(paths.staging, { recursive: true, mode: 0o700 }).catch((e) =>
      problems.push({
        code: "state_unwritable",
        message: `Cannot write ${paths.staging}: ${osError(e)}`,
      })
    );
  }
  // A new appliance's root may not exist yet (nothing installed so far): it is made here, as an
  // install would make it, so that the first beat reports its free space rather than a problem.
  // One that cannot be made is reported below, as a mount whose free space cannot be read.
  await Deno.mkdir(ctx.config.root, { recursive: true }).catch(() => {});

  const pluginEnv = (phase: string) => ({
    NOC_PHASE: phase,
    NOC_STATE: ctx.config.state,
    NOC_ROOT: ctx.config.root,
    NOC_UID: identity.uid,
  });
  const plugins = async (dir: string, phase: string) => {
    try {
      return await runPlugins(dir, {
        timeoutMs: ctx.config.pluginTimeoutS * 1000,
        env: pluginEnv(phase),
      });
    } catch (e) {
      const p: Problem = { kind: "plugin", code: "plugin_failed", message: describe(e).message };
      return { apps: {}, problems: [p], ran: [] };
    }
  };
  const init = await plugins(paths.initD, "init");
  problems.push(...init.problems);

  // When the next cycle is due: the interval, with jitter (`interval`); sooner, for a cycle to be
  // retried (seconds); or, after a failed cycle, the back-off (`backoff`). A cycle the NOC answered
  // with a Retry-After (the gate tripped) always waits for it (agent/back_pressure.ts).
  const finish = async (
    outcome: CycleSummary["outcome"],
    message?: string,
    after: "interval" | "backoff" | number = "interval",
  ): Promise<CycleResult> => {
    const finished = ctx.now();
    const random = ctx.random ?? Math.random;
    // Jitter spreads a fleet's beats; the next one is never later than the interval the NOC expects.
    // The interval comes from signed catalogs only, and within the NOC's range whatever the state
    // file holds: nothing unsigned can make the agent sleep for weeks.
    const interval = clampIntervalS(state.intervalS);
    const tripped = gate.tripped;
    let delayS: number;
    state.notBefore = null;
    if (tripped || after === "backoff") {
      const failures = (state.failedCycles ?? 0) + 1;
      const base = ctx.config.backoffBaseS;
      state.failedCycles = failures;
      delayS = tripped
        ? retryDelayS(tripped.retryAfterS, failures, interval, base, random)
        : cycleBackoffS(failures, interval, base, random);
      if (tripped) {
        const wait = boundRetryAfterS(tripped.retryAfterS, interval);
        state.notBefore = new Date(finished.getTime() + wait * 1000).toISOString();
      }
      ctx.log.warn("backing_off", {
        failures,
        delayS,
        ceilingS: backoffCeilingS(failures, interval, base),
        ...(tripped ? { retryAfterS: tripped.retryAfterS } : {}),
        ...(tripped?.status ? { status: tripped.status } : {}),
      });
    } else {
      const cap = typeof after === "number" ? Math.min(interval, after) : interval;
      delayS = Math.max(1, Math.round(cap * (1 - 0.1 * random())));
    }
    const nextDueAt = new Date(finished.getTime() + delayS * 1000).toISOString();
    state.lastCycle = {
      outcome,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      ...(message ? { message } : {}),
      ...(problems.length ? { problems: problems.slice(0, MAX_BEAT_PROBLEMS) } : {}),
      // More than a beat lists: the next beat says how many were cut (`dropped`).
      ...(problems.length > MAX_BEAT_PROBLEMS ? { problemsReported: problems.length } : {}),
    };
    state.nextDueAt = nextDueAt;
    await save();
    const level = outcome === "ok" ? "info" : "warn";
    ctx.log[level]("cycle_finished", {
      outcome,
      installed: done,
      problems: problems.length,
      ...(message ? { message } : {}),
      nextDueAt,
    });
    return { ...state.lastCycle, installed: done, nextDueAt };
  };

  // Sends the journalled outcomes (and any only state.json holds), oldest first, 50 a request; each
  // is forgotten once the NOC acknowledged it, or refused its batch for good (400, 413).
  /** Whether outcomes wait in the journal (or state.json) to be sent. */
  const outcomesWaiting = async (): Promise<boolean> => {
    if (state.pendingReports.length > 0) return true;
    const { outcomes } = await journalled(ctx.config.state).catch(() => ({ outcomes: [1] }));
    return outcomes.length > 0;
  };
  const sendOutcomes = async (post: Call): Promise<number> => {
    const { outcomes, damaged } = await journalled(ctx.config.state).catch((e) => {
      problems.push({ code: "state_damaged", message: describe(e).message });
      return { outcomes: [], damaged: [] };
    });
    for (const path of damaged) ctx.log.warn("outcome_damaged", { path, message: "removed" });
    const queue: Array<{ report: KeyedReport; path: string | null }> = [
      ...outcomes,
      ...state.pendingReports.map((report) => ({ report, path: null })),
    ];
    let sent = 0;
    while (queue.length > 0 && !gate.tripped) {
      const batch = queue.slice(0, 50);
      try {
        // An outcome may be held twice (journalled again after a crash before state.json was
        // saved): one copy per reportId goes, and both are forgotten once the NOC has it.
        const ids = new Set<string>();
        const results = batch.map((b) => b.report).filter((r) => {
          if (r.reportId === undefined) return true;
          if (ids.has(r.reportId)) return false;
          ids.add(r.reportId);
          return true;
        });
        const res = await post("POST", "/v1/installs", { results });
        if (res.status === 400 || res.status === 413) {
          // A batch the NOC will never take must not block the ones after it.
          ctx.log.warn("report_dropped", {
            status: res.status,
            body: await errorText(res),
          });
        } else if (!res.ok) {
          throw new NocError(res.status, await errorJson(res));
        } else {
          await res.body?.cancel().catch(() => {});
          sent += batch.length;
        }
      } catch (e) {
        problems.push({ code: "report_failed", message: describe(e).message });
        break;
      }
      queue.splice(0, batch.length);
      await forget(
        ctx.config.state,
        batch.flatMap((b) => b.path === null ? [] : [{ ...b, path: b.path }]),
      );
      const unjournalled = batch.filter((b) => b.path === null).length;
      if (unjournalled > 0) {
        state.pendingReports = state.pendingReports.slice(unjournalled);
        await save();
      }
    }
    return sent;
  };

  // The stored catalog: one that no longer verifies (a changed byte) is set aside now, so the
  // catalog is fetched again in full this cycle (no If-None-Match); one that does gives the limits.
  const stored = await checkStoredCatalog(ctx, state, problems);

  // The SecureBeat.
  const { health, skipped, dropped: unreportable } = await collectHealth(ctx.config.mounts);
  for (const m of skipped) {
    problems.push({ code: "disk_unreadable", message: `Free space of "${m}" cannot be read` });
  }
  // The sequence number is saved before the beat goes: an agent killed after sending it never
  // sends the same number again (which the NOC would take for a copied state folder).
  state.seq += 1;
  await save();
  // The limits the NOC signed into its last catalog (the stored one, checked above), else its
  // defaults: the report is fitted to them before it goes (agent/beat.ts).
  const limits = reportLimits(stored?.limits);
  const urgent = problems.filter((p) => p.code === "state_unwritable");
  const { lastCycle, dropped: cycleCut } = cycleForBeat(state.lastCycle, urgent);
  const cut = [...unreportable, ...cycleCut];
  const hostname = beatHostname(reportedHostname(ctx.config, ctx.identity));
  const full: BeatBody = {
    seq: state.seq,
    sentAt: ctx.now().toISOString(),
    agentVersion,
    instanceId: INSTANCE_ID,
    ...(hostname ? { hostname } : {}),
    health,
    components: installed.map((c) => ({
      kind: c.kind,
      app: c.app,
      name: c.name,
      version: c.version,
    })),
    lastCycle,
    apps: { ...state.apps, ...init.apps },
    ...(cut.length > 0 ? { dropped: cut } : {}),
  };
  const { beat, dropped } = fitBeat(full, limits);
  if (dropped.length > 0) {
    ctx.log.warn("beat_fitted", { dropped, bytes: jsonBytes(beat), limits });
  }
  // Set when the NOC cannot be reached: the last verified catalog, still unexpired, is worked from.
  let offline: CatalogDocument | null = null;
  // The catalog the NOC answered with the beat (POST /v1/checkin), when it did.
  let joined: CatalogAnswer | null = null;
  try {
    let res: Response;
    let body: ErrorBody;
    /**
     * The beat again, under a new sequence number (saved first, as for the first send): the NOC may
     * have recorded the one before (a man in the middle can forward a request and answer it 404 or
     * 413 himself), and a seq sent twice is how two devices sharing one identity show (review 23).
     */
    const again = async <B extends { seq: number }>(b: B): Promise<B> => {
      state.seq += 1;
      await save();
      return { ...b, seq: state.seq };
    };
    const beatAlone = async (resend: boolean) => {
      res = await call("POST", "/v1/beats", resend ? await again(beat) : beat);
      body = await errorJson(res);
    };
    // One request for the beat and the catalog when the NOC serves both (its answer names no
    // catalog server apart, it has not answered 404) and no earlier outcomes wait: those go
    // before the catalog is asked for, as ever.
    const checkin = ctx.checkin ?? { joined: true };
    if (checkin.joined && !state.catalogUrl && !await outcomesWaiting()) {
      const cached = await cachedCatalog(ctx, state);
      const nonce = newNonce();
      res = await call(
        "POST",
        "/v1/checkin",
        beat,
        cached ? { "if-none-match": state.etag! } : undefined,
        nonce,
      );
      if (res.status === 404) {
        // A NOC whose roles are split, or an older one: two requests from now on.
        await res.body?.cancel();
        checkin.joined = false;
        ctx.log.info("checkin_split", { reason: "POST /v1/checkin answered 404" });
        await beatAlone(true);
      } else if (res.ok) {
        const answer = await joinedAnswer(res, cached, nonce);
        body = answer.receipt;
        joined = answer.catalog;
      } else body = await errorJson(res);
    } else await beatAlone(false);
    res = res!;
    body = body!;
    if (res.status === 400 || res.status === 413) {
      // A refusal of size or shape (plug-in data, most likely, or a NOC whose limit is below the
      // one it announced): the smallest valid beat still tells the NOC the appliance is alive,
      // names what it left out, and the refusal is reported in the next beat.
      const reason = `${res.status} ${String(body.error ?? "error")}`;
      const said = String(body.message ?? "").slice(0, 500);
      problems.push({
        code: "beat_refused",
        message: `The NOC refused the full report (${jsonBytes(beat)} bytes): ${reason}: ${said}`,
      });
      ctx.log.warn("beat_refused", { status: res.status, reason: body.error, message: said });
      const why = `the NOC refused the full report (${reason}): a smaller one, without`;
      // Smaller and smaller: the reasons kept first, then the outcome alone, then no components.
      for (const step of SMALLEST_STEPS) {
        if (step === "bare" && beat.components.length === 0) break;
        const smallest = await again(
          smallestBeat(beat, why, { step, installed: installed.length }),
        );
        res = await call("POST", "/v1/beats", smallest);
        body = await errorJson(res);
        ctx.log.warn("beat_smallest", {
          status: res.status,
          step,
          bytes: jsonBytes(smallest),
          dropped: smallest.dropped,
        });
        if (res.status !== 400 && res.status !== 413) break;
      }
    }
    if (!res.ok) throw new NocError(res.status, body);
    // The beat answer's intervalS is not taken: the answer is unsigned, and a man in the middle
    // could put the agent to sleep for weeks. The schedule comes from the signed catalog alone.
    // catalogUrl is unsigned too: it only says where to ask first. A server earns the install
    // reports only by answering with a catalog signed and bound to this request; otherwise the
    // agent asks the last catalog server that did, then the NOC (below).
    const named = catalogServer(body.catalogUrl, base);
    catalogBases = [...new Set([named, state.catalogUrl ?? null, base])].filter((b) => b !== null);
    state.apps = {};
    // The NOC has the beat: the back-off starts again from its base.
    state.failedCycles = 0;
  } catch (e) {
    const d = describe(e);
    problems.push({ code: "beat_failed", message: `SecureBeat not accepted: ${d.message}` });
    // The NOC (or a proxy before it) asked for a pause: nothing more is sent this cycle, the stored
    // catalog's downloads included, and the next cycle waits for the Retry-After.
    if (gate.tripped) return await finish("failed", `NOC busy: ${d.message.slice(0, 300)}`);
    // A NOC that is down (not one that refuses) leaves the stored catalog in force until it expires:
    // what is missing can still come from the site's local component server.
    const unreachable = !(e instanceof NocError) || e.status >= 500;
    const why = beatFailure(e, base);
    if (unreachable) ctx.log.warn("noc_unreachable", { message: d.message });
    else {
      const n = e as NocError;
      ctx.log.error("beat_refused_by_noc", {
        status: n.status,
        reason: n.body.error ?? null,
        message: n.body.message ?? null,
      });
    }
    offline = unreachable && !unwritable ? await storedCatalog(ctx, state) : null;
    // Retry sooner than a whole interval, but never in a hot loop.
    if (!offline) return await finish("failed", why, "backoff");
    problems.push({
      code: "offline",
      message: `NOC unreachable: working from the stored catalog (serial ${offline.serial}, ` +
        `expires ${offline.expiresAt})`,
    });
    ctx.log.warn("offline", { serial: offline.serial, expiresAt: offline.expiresAt });
  }
  // The beat went through; nothing is fetched or installed without a state folder to keep it in.
  if (unwritable) return await finish("failed", `State folder unwritable: ${unwritable.message}`);

  // Outcomes an earlier run journalled and never got acknowledged (it was killed, or the NOC was
  // down): sent now, before this cycle's installs, so they reach the NOC whatever happens next.
  if (!offline) {
    const earlier = await sendOutcomes(call);
    if (earlier > 0) ctx.log.info("outcomes_sent", { count: earlier, from: "journal" });
  }
  // An earlier run's install program that survived SIGKILL (a process stuck in the kernel): no new
  // install starts while it lives; the next cycle tries again.
  if (leftovers.blocked) {
    return await finish("failed", "An install an earlier run started is still running", 60);
  }

  // The catalog: from the first server that answers with a catalog bound to this request.
  const fetchFromCatalogServers = async (): Promise<CatalogDocument> => {
    let first: unknown = null;
    for (const b of catalogBases) {
      catalogBase = b;
      try {
        const d = await fetchCatalog(ctx, state, catalogCall);
        reportBase = b;
        state.catalogUrl = b === base ? null : b;
        if (first !== null) {
          problems.push({
            kind: "catalog",
            code: "catalog_server_refused",
            message: `The catalog server the beat answer named failed: ${describe(first).message}`,
          });
        }
        return d;
      } catch (e) {
        first ??= e;
        ctx.log.warn("catalog_server_failed", { server: b, message: describe(e).message });
        if (gate.tripped) break;
      }
    }
    throw first;
  };
  let doc: CatalogDocument;
  try {
    doc = offline ??
      (joined && catalogBases.length === 1 && catalogBases[0] === base
        ? await acceptCatalog(ctx, state, joined)
        : await fetchFromCatalogServers());
  } catch (e) {
    const d = describe(e);
    problems.push({ kind: "catalog", code: d.code, message: d.message });
    ctx.log.error("catalog_refused", { reason: d.code, message: d.message });
    // An outage (no answer, a 5xx) is retried with the back-off; a refusal waits for the interval.
    return await finish(
      "failed",
      `Catalog refused: ${d.message}`,
      outage(e) ? "backoff" : "interval",
    );
  }

  // A site's local component servers (every URL of a line but its last, the NOC's): their
  // Retry-After is theirs alone (agent/back_pressure.ts).
  if (ctx.backPressure) {
    const noc = new Set([base, ...catalogBases].map((u) => new URL(u).origin));
    for (const c of doc.components) {
      for (const u of c.urls.slice(0, -1)) {
        const origin = URL.canParse(u) ? new URL(u).origin : null;
        if (origin && !noc.has(origin)) ctx.backPressure.mirrors.add(origin);
      }
    }
  }

  // Downloads the catalog no longer wants (superseded, refused) are dropped; the rest may resume.
  const held = new Set(doc.components.map((c) => downloadPath(paths.downloads, c.sha256)));
  // Each is removed on its own (a folder with what it holds, a link itself): one that cannot be
  // is logged, and the rest are still removed.
  try {
    for await (const e of Deno.readDir(paths.downloads)) {
      const path = `${paths.downloads}/${e.name}`;
      if (held.has(path)) continue;
      await Deno.remove(path, { recursive: e.isDirectory }).catch((e) =>
        ctx.log.warn("cleanup_failed", { path, message: describe(e).message })
      );
    }
  } catch {
    // No downloads folder yet.
  }

  // Packages first, then files: a file may replace a placeholder a package installed.
  const wanted = [...doc.components].sort((a, b) =>
    a.kind === b.kind ? 0 : a.kind === "package" ? -1 : 1
  );
  // Packages installed this cycle, by application: a post plug-in may still find them unhealthy.
  const newlyInstalled = new Map<
    string,
    Array<{ entry: CatalogEntry; previous: Installed | undefined; attempts: number }>
  >();
  for (const entry of wanted) {
    // The NOC asked for a pause: nothing more is fetched this cycle.
    if (gate.tripped) break;
    const k = componentKey(entry);
    const current = installed.find((c) => componentKey(c) === k);
    if (
      current && current.version === entry.version && current.sha256 === entry.sha256 &&
      await stillThere(ctx, entry)
    ) continue;
    const failure = state.failures[k];
    if (
      failure && failure.version === entry.version && failure.sha256 === entry.sha256 &&
      Date.parse(failure.retryAt) > ctx.now().getTime()
    ) {
      problems.push({
        kind: entry.kind,
        app: entry.app,
        name: entry.name,
        version: entry.version,
        code: "backing_off",
        message: `Not retried before ${failure.retryAt}: ${failure.message}`,
      });
      continue;
    }
    const label = `${entry.app}/${entry.name}@${entry.version}`;
    // Outside the catalog's install window, and not urgent: downloaded ahead, installed when it
    // opens (agent/install_window.ts). An install already under way (awaiting its reboot) goes on.
    const decision = installDecision(doc, entry, ctx.now());
    if (decision.install && decision.invalid) {
      problems.push({
        ...pick(entry),
        kind: entry.kind,
        code: "install_window_invalid",
        message: decision.invalid,
      });
    }
    const underWay = decision.install ? null : await findAttempt(ctx.config.state, entry);
    if (
      !decision.install &&
      !(underWay?.version === entry.version && underWay.sha256 === entry.sha256)
    ) {
      try {
        await downloadAhead(ctx, entry);
      } catch (e) {
        const d = describe(e);
        ctx.log.warn("download_ahead_failed", {
          component: label,
          reason: d.code,
          message: d.message,
        });
      }
      problems.push({
        ...pick(entry),
        kind: entry.kind,
        code: "install_deferred",
        message: decision.message,
        // The NOC counts the appliance as waiting (not failing) only until then.
        opensAt: decision.opensAt.toISOString(),
      });
      ctx.log.info("install_deferred", {
        component: label,
        opensAt: decision.opensAt.toISOString(),
      });
      continue;
    }
    try {
      let record: Installed | null = null;
      if (entry.kind === "package") {
        // installPackage logs install_started itself, only when it runs the install program (not
        // for one awaiting its reboot, judged after it, or past its bounded runs).
        const r = await installPackage(ctx, entry, current);
        if (r.outcome === "awaiting_reboot") {
          // Its install asked for a reboot: no outcome yet; its health check decides after it.
          // Said once a cycle: the cycle's start may have said it already (install_guard.ts).
          const said = problems.some((p) =>
            p.code === "awaiting_reboot" && p.app === entry.app && p.name === entry.name &&
            p.version === entry.version
          );
          if (!said) {
            problems.push({ ...pick(entry), kind: "package", code: r.outcome, message: r.message });
          }
          continue;
        }
        if (r.outcome === "rolled_back") throw new RolledBack(r.message);
        record = r.installed;
        newlyInstalled.set(entry.app, [...newlyInstalled.get(entry.app) ?? [], {
          entry,
          previous: current,
          attempts: failure && failure.version === entry.version ? failure.attempts : 0,
        }]);
      } else {
        ctx.log.info("install_started", { kind: entry.kind, component: label });
        record = await installFile(ctx, entry);
      }
      // The outcome is journalled first, then catalog.cur: a crash between the two sends the
      // outcome and installs the same version again (a second outcome, with a key of its own).
      await journal({ ...pick(entry), outcome: "installed" });
      installed = [...installed.filter((c) => componentKey(c) !== k), record];
      // Recorded only now, after the install succeeded: a crash before this line redoes the install.
      await saveInstalled(ctx.config.state, installed);
      delete state.failures[k];
      done.push(label);
      ctx.log.info("installed", { kind: entry.kind, component: label });
    } catch (e) {
      if (gate.tripped && !(e instanceof RolledBack)) {
        // Not this component's failure: a server asked for a pause. Tried again next cycle, with
        // no back-off of its own.
        problems.push({
          ...pick(entry),
          kind: entry.kind,
          code: "back_pressure",
          message: `Not fetched: ${describe(e).message}`,
        });
        break;
      }
      const d = e instanceof RolledBack ? { code: "rolled_back", message: e.message } : describe(e);
      const attempts = failure && failure.version === entry.version ? failure.attempts + 1 : 1;
      state.failures[k] = {
        version: entry.version,
        sha256: entry.sha256,
        attempts,
        retryAt: new Date(ctx.now().getTime() + backoffS(attempts) * 1000).toISOString(),
        message: d.message,
      };
      problems.push({ ...pick(entry), kind: entry.kind, code: d.code, message: d.message });
      await journal({
        ...pick(entry),
        outcome: e instanceof RolledBack ? "rolled_back" : "failed",
        message: clean(`${d.code}: ${d.message}`, 2000),
      });
      ctx.log.error("install_failed", { component: label, reason: d.code, message: d.message });
      if (d.code === "write_failed") break;
    }
    await save();
  }

  // Post plug-ins; one that reports its application unhealthy undoes this cycle's install of it.
  const post = await plugins(paths.postD, "post");
  problems.push(...post.problems);
  state.apps = post.apps;
  let rolledBack = false;
  const unhealthy = Object.entries(post.apps).flatMap(([app, data]) =>
    data["healthy"] === false ? newlyInstalled.get(app) ?? [] : []
  );
  for (const { entry, previous, attempts } of unhealthy) {
    rolledBack = true;
    const k = componentKey(entry);
    const why = `${entry.app}/${entry.name}@${entry.version} reported unhealthy by a post plug-in`;
    try {
      // catalog.cur goes back first: a crash during the rollback never leaves the new version recorded.
      installed = [
        ...installed.filter((c) => componentKey(c) !== k),
        ...(previous ? [previous] : []),
      ];
      await saveInstalled(ctx.config.state, installed);
      const r = await rollback(ctx, entry, previous, why);
      await journal({
        ...pick(entry),
        outcome: "rolled_back",
        message: r.outcome === "rolled_back" ? r.message : why,
      });
      problems.push({ ...pick(entry), kind: "package", code: "rolled_back", message: why });
    } catch (e) {
      const d = describe(e);
      problems.push({ ...pick(entry), kind: "package", code: d.code, message: d.message });
      await journal({ ...pick(entry), outcome: "failed", message: clean(d.message, 2000) });
    }
    state.failures[k] = {
      version: entry.version,
      sha256: entry.sha256,
      attempts: attempts + 1,
      retryAt: new Date(ctx.now().getTime() + backoffS(attempts + 1) * 1000)
        .toISOString(),
      message: why,
    };
  }

  if (rolledBack) {
    // The report should describe the appliance as it is now, after the rollback.
    const after = await plugins(paths.postD, "post");
    state.apps = after.apps;
  }

  // Install outcomes: the journal's (this cycle's and any an earlier run left), kept until the NOC
  // has them.
  await sendOutcomes(reportCall);
  // A deferred install (outside its window) is not a failure, nor one awaiting its reboot.
  const failed = problems.some((p) =>
    (p.kind === "package" || p.kind === "file") && p.code !== "install_deferred" &&
    p.code !== "awaiting_reboot"
  );
  if (offline) {
    return await finish("failed", "NOC unreachable; worked from the stored catalog", "backoff");
  }
  return await finish(failed ? "partial" : "ok");
}

/**
 * Whether a catalog fetch failed for an outage (no answer, a timeout, a 5xx) rather than a
 * refusal (a 4xx, a catalog or binding that does not verify).
 */
function outage(e: unknown): boolean {
  if (e instanceof NocError) return e.status >= 500;
  return !(e instanceof CatalogError) && !(e instanceof AgentError);
}

/** The stored catalog, if it still verifies (pinned keys, this UID, not expired, serial not lower). */
async function storedCatalog(
  ctx: CycleContext,
  state: AgentState,
): Promise<CatalogDocument | null> {
  const body = await Deno.readTextFile(statePaths(ctx.config.state).catalog).catch(() => null);
  if (body === null) return null;
  try {
    return await verifyCatalog(body, {
      pinned: ctx.identity.pinnedKeys,
      uid: ctx.identity.uid,
      lastSerial: state.lastSerial,
      now: ctx.now(),
    });
  } catch (e) {
    ctx.log.warn("stored_catalog_unusable", { message: describe(e).message });
    return null;
  }
}

/**
 * Checks the stored catalog on its own (signature, appliance, shape; not its age or serial, which
 * the fetch checks): one that does not verify — a byte changed on disk — is set aside as
 * `catalog.json.damaged` with a `state_damaged` problem, and its ETag forgotten, so this cycle
 * fetches the catalog again without `If-None-Match` instead of re-reading the damaged copy after a
 * 304. Returns the stored catalog when it verifies (its `limits` fit the beat), else null.
 */
async function checkStoredCatalog(
  ctx: CycleContext,
  state: AgentState,
  problems: Problem[],
): Promise<CatalogDocument | null> {
  const path = statePaths(ctx.config.state).catalog;
  const body = await Deno.readTextFile(path).catch(() => null);
  if (body === null) return null;
  try {
    return await verifyCatalog(body, {
      pinned: ctx.identity.pinnedKeys,
      uid: ctx.identity.uid,
      lastSerial: 0,
      now: new Date(0),
    });
  } catch (e) {
    const d = describe(e);
    const aside = `${path}.damaged`;
    const moved = await Deno.rename(path, aside).then(() => true, (e) => {
      ctx.log.warn("cleanup_failed", { path, message: describe(e).message });
      return false;
    });
    state.etag = null;
    problems.push({
      code: "state_damaged",
      message: `The stored catalog ${path} does not verify (${d.message}); ` +
        (moved ? `moved aside to ${aside}` : "it could not be moved aside") +
        ", and the catalog is fetched again in full",
    });
    ctx.log.warn("stored_catalog_damaged", { path, reason: d.code, message: d.message, moved });
    return null;
  }
}

class RolledBack extends Error {}

/** Text the NOC stores: no NUL, no lone surrogate (a cut can split a pair), at most `max` characters. */
function clean(s: string, max: number): string {
  return s.replaceAll("\u0000", "").slice(0, max).toWellFormed();
}

function pick(e: { kind: "package" | "file"; app: string; name: string; version: string }) {
  return { kind: e.kind, app: e.app, name: e.name, version: e.version };
}

/** A file whose destination went missing (a wiped root) is installed again. */
async function stillThere(ctx: CycleContext, entry: CatalogEntry): Promise<boolean> {
  if (entry.kind !== "file") return true;
  try {
    return (await Deno.stat(fileDestination(ctx, entry).path)).size === entry.size;
  } catch {
    return false;
  }
}

/** The last cycle in the shape the NOC accepts. */
/** The most problems a beat's `lastCycle` lists (protocol/schemas.ts). */
const MAX_BEAT_PROBLEMS = 100;

/**
 * The last cycle `last` as the beat reports it, with this cycle's `urgent` problems
 * (`state_unwritable`: there may be no next cycle's state to carry them) put first. At most
 * {@link MAX_BEAT_PROBLEMS} problems go; when more were reported (the cycle had more, or the
 * urgent ones push some out), `dropped` says how many (`lastCycle.problems: 130 reported, 100
 * kept`).
 */
export function cycleForBeat(
  last: CycleSummary,
  urgent: readonly Problem[],
): { lastCycle: BeatCycle; dropped: string[] } {
  const lastCycle = beatCycle(last);
  const stored = last.problems ?? [];
  // Problems the cycle had beyond those its state kept.
  const beyond = Math.max(
    0,
    (last.problemsReported ?? stored.length) - Math.min(stored.length, MAX_BEAT_PROBLEMS),
  );
  let listed = lastCycle.problems ?? [];
  if (urgent.length > 0) {
    const others = listed.filter((p) => p.code !== "state_unwritable");
    listed = [...beatCycle({ outcome: "none", problems: [...urgent] }).problems!, ...others];
  }
  const reported = listed.length + beyond;
  if (listed.length > 0) lastCycle.problems = listed.slice(0, MAX_BEAT_PROBLEMS);
  const kept = lastCycle.problems?.length ?? 0;
  return {
    lastCycle,
    dropped: reported > kept ? [problemsDropped(reported, kept)] : [],
  };
}

function beatCycle(c: CycleSummary): BeatCycle {
  const nameOk = (s: string | undefined): s is string =>
    s !== undefined && nameSchema.safeParse(s).success;
  return {
    outcome: c.outcome,
    ...(c.startedAt ? { startedAt: c.startedAt } : {}),
    ...(c.finishedAt ? { finishedAt: c.finishedAt } : {}),
    ...(c.message ? { message: clean(c.message, 2000) } : {}),
    ...(c.problems?.length
      ? {
        problems: c.problems.slice(0, MAX_BEAT_PROBLEMS).map((p) => ({
          code: clean(p.code, 64),
          message: clean(p.message, 2000),
          ...(p.kind ? { kind: p.kind } : {}),
          ...(nameOk(p.app) ? { app: p.app } : {}),
          ...(nameOk(p.name) ? { name: p.name } : {}),
          ...(p.version ? { version: clean(p.version, 128) } : {}),
          ...(p.opensAt && !Number.isNaN(Date.parse(p.opensAt)) ? { opensAt: p.opensAt } : {}),
        })),
      }
      : {}),
  };
}

type Call = (
  m: string,
  p: string,
  b?: unknown,
  h?: Record<string, string>,
  nonce?: string,
) => Promise<Response>;

/**
 * Fetches the catalog and accepts it only if it was made for this request: a
 * fresh nonce goes with the (signed) request, and the answer — 200 or 304 —
 * must carry a `Catalog-Binding` signed by a pinned key over this appliance,
 * that nonce and the SHA-256 of the body used (as Omaha's CUP). A replayed
 * answer fails, whatever state the agent lost. A catalog or binding signed by
 * a key the agent does not pin sends it to the key chain first (key rotation).
 */
async function fetchCatalog(
  ctx: CycleContext,
  state: AgentState,
  call: Call,
): Promise<CatalogDocument> {
  const cached = await cachedCatalog(ctx, state);
  const nonce = newNonce();
  const res = await call(
    "GET",
    "/v1/catalog",
    undefined,
    cached ? { "if-none-match": state.etag! } : undefined,
    nonce,
  );
  let body: string;
  if (res.status === 304 && cached) {
    body = cached;
  } else if (res.ok) {
    body = await readTextBounded(res, CATALOG_BODY_LIMIT);
  } else {
    throw new NocError(res.status, await errorJson(res));
  }
  return await acceptCatalog(ctx, state, {
    body,
    fresh: res.status !== 304,
    binding: res.headers.get(CATALOG_BINDING_HEADER),
    etag: res.headers.get("etag"),
    nonce,
  });
}

/**
 * Reads a `POST /v1/checkin` 200: the beat's receipt (as `POST /v1/beats` answers it) and the
 * catalog answer — null when the answer carries none (a catalog server apart) or one the agent
 * cannot use (then the catalog is asked for on its own, and the refusal is that request's).
 * Bounded: twice the catalog limit (its text escaped in JSON) and the receipt.
 */
async function joinedAnswer(
  res: Response,
  cached: string | null,
  nonce: string,
): Promise<{ receipt: ErrorBody; catalog: CatalogAnswer | null }> {
  let v: unknown;
  try {
    v = JSON.parse(await readTextBounded(res, 2 * CATALOG_BODY_LIMIT + 65_536));
  } catch {
    return { receipt: {}, catalog: null };
  }
  const o = v !== null && typeof v === "object" ? v as Record<string, unknown> : {};
  const r = o.receipt;
  const receipt = r !== null && typeof r === "object" && !Array.isArray(r) ? r as ErrorBody : {};
  const text = o.catalog === null ? cached : typeof o.catalog === "string" ? o.catalog : null;
  // Held to the limit of GET /v1/catalog's body: a larger one is asked for on its own (and refused).
  if (text === null || new TextEncoder().encode(text).length > CATALOG_BODY_LIMIT) {
    return { receipt, catalog: null };
  }
  return {
    receipt,
    catalog: {
      body: text,
      fresh: o.catalog !== null,
      binding: res.headers.get(CATALOG_BINDING_HEADER),
      etag: res.headers.get("etag"),
      nonce,
    },
  };
}

/** The catalog the agent holds (null: none, or no ETag to ask with), to send its ETag. */
async function cachedCatalog(ctx: CycleContext, state: AgentState): Promise<string | null> {
  if (!state.etag) return null;
  return await Deno.readTextFile(statePaths(ctx.config.state).catalog).catch(() => null);
}

/**
 * A catalog answer, from `GET /v1/catalog` or `POST /v1/checkin`: `body` is the envelope's text
 * (the one held, when the answer said "unchanged"), `fresh` when the answer carried it.
 */
interface CatalogAnswer {
  body: string;
  fresh: boolean;
  /** The `Catalog-Binding` header. */
  binding: string | null;
  /** The `ETag` header. */
  etag: string | null;
  /** The nonce the request was signed with. */
  nonce: string;
}

/**
 * Accepts a catalog answer only if it was made for its request (the binding, signed by a pinned
 * key over this appliance, the request's nonce and the SHA-256 of the body) and the catalog
 * verifies (signature, appliance, expiry, serial); follows the key chain once for a key the agent
 * does not pin. Keeps a fresh body and its ETag, and takes the catalog's interval and keys.
 */
async function acceptCatalog(
  ctx: CycleContext,
  state: AgentState,
  answer: CatalogAnswer,
): Promise<CatalogDocument> {
  const paths = statePaths(ctx.config.state);
  const { body, binding, nonce } = answer;
  const verify = async () => {
    const options = {
      pinned: ctx.identity.pinnedKeys,
      uid: ctx.identity.uid,
      now: ctx.now(),
    };
    await verifyCatalogBinding(binding, { ...options, nonce, body });
    return await verifyCatalog(body, { ...options, lastSerial: state.lastSerial });
  };
  let doc: CatalogDocument;
  try {
    doc = await verify();
  } catch (e) {
    if (!(e instanceof CatalogError && e.reason === "unknown_key")) throw e;
    if (!await followKeyChain(ctx)) throw e;
    doc = await verify();
  }
  if (answer.fresh) {
    await writeFileAtomic(paths.catalog, body);
    state.etag = answer.etag;
  }
  state.lastSerial = doc.serial;
  state.intervalS = clampIntervalS(doc.intervalS);
  if (ctx.backPressure) ctx.backPressure.capS = state.intervalS;
  await adoptKeys(ctx, doc);
  return doc;
}

/**
 * Key rotation: fetches the NOC's key chain (`GET /v1/keys`, unsigned — every
 * statement is checked) and walks it from the pinned current key, each step
 * signed by the key before it. Pins the result; true when a new key was
 * learnt.
 */
async function followKeyChain(ctx: CycleContext): Promise<boolean> {
  const base = ctx.config.noc ?? ctx.identity.noc;
  let chain: unknown;
  try {
    const res = await ctx.fetch(new URL("/v1/keys", base), {
      signal: AbortSignal.timeout(apiTimeoutMs),
    });
    chain = (await readNocAnswer(res) as { chain?: unknown } | null)?.chain;
  } catch (e) {
    ctx.log.warn("key_chain_unavailable", { message: describe(e).message });
    return false;
  }
  if (!Array.isArray(chain)) return false;
  const before = ctx.identity.pinnedKeys;
  const releaseKeysOnly = pinnedMode(ctx.identity);
  const chained = await walkKeyChain(before, chain, { releaseKeysOnly });
  if (chained.full) ctx.log.warn("keys_refused", pinsFull(before.length, "key_chain"));
  const walked = chained.walked;
  if (walked.length === 0) return false;
  // A rotation hands on "package" use only where the NOC key had it (not in release-keys-only
  // mode); no key gains a use or a later end date, and no pinned key is dropped.
  const { keys, refused, full } = rotatedPackageKeys(before, chained.keys, releaseKeysOnly);
  if (full) {
    ctx.log.warn("keys_refused", { ...pinsFull(before.length, "key_chain"), kids: refused });
    return false;
  }
  if (refused.length > 0) ctx.log.warn("keys_refused", { kids: refused, via: "key_chain" });
  ctx.identity.pinnedKeys = keys;
  ctx.identity.releaseKeysOnly = releaseKeysOnly || releaseKeysOnlyOf(keys);
  await saveIdentity(ctx.config.state, ctx.identity);
  ctx.log.info("keys_rotated", {
    from: before.find((k) => k.use.includes("catalog") && k.notAfter === null)?.kid ?? null,
    to: walked,
  });
  return true;
}

/**
 * The `keys_refused` fields for a new key refused because the appliance pins
 * {@link MAX_PINNED_KEYS} keys: it forgets none (a retired key is the record of
 * its retirement), so it takes no more until it is enrolled again.
 */
function pinsFull(pinned: number, via: "key_chain" | "catalog") {
  return {
    via,
    pinned,
    max: MAX_PINNED_KEYS,
    message: `the appliance pins ${pinned} keys, the most it may (${MAX_PINNED_KEYS}); ` +
      "it forgets no key to make room, so it pins no new one: enrol it again",
  };
}

/**
 * The mode the appliance pinned (release-keys-only or not): from its identity, or for an identity
 * written before the mode was pinned, as its pins tell.
 */
function pinnedMode(identity: Identity): boolean {
  return identity.releaseKeysOnly ?? releaseKeysOnlyOf(identity.pinnedKeys);
}

/**
 * Key revocation and new release keys: a catalog signed by the pinned current
 * NOC key carries the NOC's key list, and the agent takes from it only what
 * takes trust away, or adds a release key (protocol/release_keys.ts
 * adoptablePackageKeys): no key gains a use (but "package" use with an
 * endorsement by a key pinned for packages), no end date moves later, a key
 * left out is retired (never forgotten, so it cannot come back), and NOC keys
 * change only through the key chain. In release-keys-only mode (pinned, never
 * left) whoever holds the NOC's key alone cannot add a key that runs code.
 */
async function adoptKeys(ctx: CycleContext, doc: CatalogDocument): Promise<void> {
  const releaseKeysOnly = pinnedMode(ctx.identity);
  const { keys: next, refused, full } = await adoptablePackageKeys(
    ctx.identity.pinnedKeys,
    doc.keys,
    ctx.now(),
    releaseKeysOnly,
  );
  if (full) ctx.log.warn("keys_refused", pinsFull(ctx.identity.pinnedKeys.length, "catalog"));
  if (refused.length > 0) {
    ctx.log.warn("keys_refused", {
      kids: refused,
      message: "a key list may not add a use (but endorsed package use), move an end date later, " +
        "or change NOC keys",
    });
  }
  if (!next.some((k) => k.use.includes("catalog"))) return;
  const mode = releaseKeysOnly || releaseKeysOnlyOf(next);
  const same = JSON.stringify(next) === JSON.stringify(ctx.identity.pinnedKeys) &&
    ctx.identity.releaseKeysOnly === mode;
  if (same) return;
  const before = new Set(ctx.identity.pinnedKeys.map((k) => k.kid));
  const after = new Set(next.map((k) => k.kid));
  ctx.identity.pinnedKeys = next;
  ctx.identity.releaseKeysOnly = mode;
  await saveIdentity(ctx.config.state, ctx.identity);
  ctx.log.info("keys_pinned", {
    added: [...after].filter((k) => !before.has(k)),
    removed: [...before].filter((k) => !after.has(k)),
  });
}

/** Reads the identity or says how to enrol. */
export function requireIdentity(identity: Identity | null, state: string): Identity {
  if (!identity) {
    throw new AgentError(
      "not_enrolled",
      `No identity in "${state}": run "enroll --noc <url> --token <token>" first`,
    );
  }
  return identity;
}

/**
 * The catalog server's base URL from a beat answer's `catalogUrl`: an http(s) URL, and https when
 * the NOC is reached over https (an unsigned answer cannot downgrade the transport).
 */
function catalogServer(value: unknown, noc: string): string | null {
  if (typeof value !== "string" || value.length > 2000) return null;
  try {
    const u = new URL(value);
    if (u.username || u.password) return null;
    if (u.protocol !== "https:" && u.protocol !== "http:") return null;
    if (u.protocol === "http:" && new URL(noc).protocol === "https:") return null;
    return value.replace(/\/$/, "");
  } catch {
    return null;
  }
}

/**
 * Why a SecureBeat failed, for the cycle's message: a refusal (a 4xx answer)
 * names the NOC's code and message — with a hint for `wrong_authority`, whose
 * cause is on this side (the URL the agent uses is not a name the NOC
 * accepts) — and anything else is an outage.
 */
export function beatFailure(e: unknown, base: string): string {
  if (e instanceof NocError && e.status < 500) {
    const text = `NOC refused the beat: ${e.status} ${e.body.error ?? "error"}: ` +
      `${String(e.body.message ?? "").slice(0, 300)}`;
    return e.body.error === "wrong_authority"
      ? `${text} (this agent signs for ${new URL(base).host}, the host of its NOC URL ${base}; ` +
        `set "noc" in agent.json to a URL the NOC accepts, see docs/agent.md)`
      : text;
  }
  return `NOC unreachable: ${describe(e).message.slice(0, 300)}`;
}
