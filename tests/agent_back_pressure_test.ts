// deno-lint-ignore-file no-explicit-any
/**
 * Issue 23, item 2: the agent honours back-pressure. Real agent processes (`run`, `once`) against a
 * served NOC, behind a small real HTTP proxy that answers 503 or 429 (with or without
 * `Retry-After`) when told, and records when each request reached it:
 *
 * - a `Retry-After` (delay-seconds or an HTTP-date) stops the cycle's traffic and no request of
 *   the agent (beats, catalogs, wake-up polls) reaches the NOC before it has passed; one longer
 *   than the signed catalog's interval is held to the interval; then the agent resumes;
 * - failed cycles without one back off with full jitter: ceilings double from the base and stop
 *   at the interval; the failures are counted in state.json across runs, and reset by a beat the
 *   NOC accepts;
 * - `run` spreads its first cycle, but a fresh enrolment's first cycle is immediate.
 *
 * Plus unit tests of the Retry-After parser, the back-off functions (with an injected random) and
 * the gate (with an injected clock). The scenarios run side by side, with a 10 s interval and
 * back-off bases of 1–2 s, so the file takes about half a minute.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { type AgentProcess, enrolledAgent, type ServedNoc, serveNoc } from "./_agent.ts";
import { parseHttpDate, parseRetryAfter } from "../protocol/http/retry_after.ts";
import { sleep as timerSleep } from "../protocol/util/timer.ts";
import {
  BACKOFF_FLOOR_S,
  backoffCeilingS,
  BackPressure,
  BackPressureError,
  cycleBackoffS,
  retryDelayS,
  startDelayS,
} from "../agent/back_pressure.ts";

// ---------------------------------------------------------------------------------------------
// Units
// ---------------------------------------------------------------------------------------------

Deno.test("Retry-After: delay-seconds and the three HTTP-date forms; anything else is null", () => {
  const now = new Date("1994-11-06T08:49:00Z");
  assert.equal(parseRetryAfter("120", now), 120);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now), 37);
  assert.equal(parseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now), 37);
  assert.equal(parseRetryAfter("Sun Nov  6 08:49:37 1994", now), 37);
  assert.equal(parseRetryAfter("Sun, 06 Nov 1994 08:48:00 GMT", now), 0, "a past date: now");
  assert.equal(parseRetryAfter("99999999999999999999999", now), 2 ** 31, "a huge one is bounded");
  for (
    const bad of [
      null,
      undefined,
      "",
      "-5",
      "+5",
      "1.5",
      "5s",
      "soon",
      "Sun, 31 Feb 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 25:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 UTC",
      "sun, 06 nov 1994 08:49:37 gmt",
      "1994-11-06T08:49:37Z",
      "120, 60",
    ]
  ) {
    assert.equal(parseRetryAfter(bad, now), null, `garbled: ${JSON.stringify(bad)}`);
  }
  // A two-digit RFC 850 year more than 50 years ahead is the most recent past one.
  const later = new Date("2030-01-01T00:00:00Z");
  assert.equal(
    parseHttpDate("Thursday, 01-Jan-70 00:00:00 GMT", later),
    Date.UTC(2070, 0, 1),
  );
  assert.equal(parseHttpDate("Monday, 01-Jan-99 00:00:00 GMT", later), Date.UTC(1999, 0, 1));
});

Deno.test("full-jitter back-off: random(0, min(interval, base × 2^(n−1))), floored, capped", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 60].map((n) => backoffCeilingS(n, 909, 30)),
    [30, 60, 120, 240, 480, 909, 909],
  );
  assert.deepEqual([1, 2, 3, 4].map((n) => backoffCeilingS(n, 10, 2)), [2, 4, 8, 10]);
  assert.equal(backoffCeilingS(1, 909, 1), BACKOFF_FLOOR_S, "never below the floor");
  assert.equal(cycleBackoffS(3, 909, 30, () => 0.5), 60);
  assert.equal(cycleBackoffS(3, 909, 30, () => 0), BACKOFF_FLOOR_S, "never a tight loop");
  assert.equal(cycleBackoffS(9, 909, 30, () => 0.999999), 908.999);
  assert.equal(cycleBackoffS(1000, 10, 30, () => 0.999999), 10, "never past the interval");
  // Jitter: the same failure count gives delays spread over the whole range.
  const draws = [0.1, 0.4, 0.7, 0.95];
  assert.deepEqual(draws.map((r) => cycleBackoffS(4, 909, 30, () => r)), [24, 96, 168, 228]);
});

Deno.test("a Retry-After is waited for, bounded by the catalog's interval, with jitter on top", () => {
  assert.equal(retryDelayS(60, 1, 909, 30, () => 0), 60);
  assert.equal(retryDelayS(60, 1, 909, 30, () => 0.5), 75, "jitter up to the back-off ceiling");
  assert.equal(retryDelayS(600, 3, 909, 30, () => 0.9), 708);
  // The header is unsigned: never longer than the signed interval, however long it asks.
  assert.equal(retryDelayS(86400 * 365, 1, 909, 30, () => 0.9), 909);
  assert.equal(retryDelayS(880, 5, 909, 30, () => 0.9), 906.1, "the jitter stops at the interval");
  assert.equal(retryDelayS(0, 1, 909, 30, () => 0), BACKOFF_FLOOR_S);
});

Deno.test("the first-cycle spread: random(0, min(interval, spread)); none when never ran or 0", () => {
  assert.equal(startDelayS(60, 909, false, () => 0.5), 30);
  assert.equal(startDelayS(60, 20, false, () => 0.5), 10, "bounded by the interval");
  assert.equal(startDelayS(60, 909, true, () => 0.5), 0, "a fresh enrolment runs at once");
  assert.equal(startDelayS(0, 909, false, () => 0.5), 0, "0 turns it off");
});

Deno.test("the gate: a 503/429 with Retry-After holds every request until it has passed", async () => {
  let now = 1_000_000;
  const sent: string[] = [];
  let answer: () => Response = () => new Response("ok");
  const inner = ((input: string | URL | Request) => {
    sent.push(String(input));
    return Promise.resolve(answer());
  }) as typeof fetch;
  const gate = new BackPressure(() => now, () => 0.5, 2);
  gate.capS = 30;
  const send = gate.wrap(inner);

  answer = () => new Response("busy", { status: 503, headers: { "retry-after": "5" } });
  const e = await send("http://noc/v1/beats").catch((e) => e);
  assert.ok(e instanceof BackPressureError && e.retryAfterS === 5 && e.status === 503, String(e));
  answer = () => new Response("ok");
  now += 4_999;
  await assert.rejects(send("http://noc/v1/catalog"), BackPressureError);
  assert.equal(sent.length, 1, "nothing sent while the hold lasts");
  now += 1;
  assert.equal((await send("http://noc/v1/catalog")).status, 200);
  assert.equal(gate.resumeAt - 1_000_000, 5_000 + 0.5 * 2 * 1000, "resume after it, jittered");

  // Without a valid Retry-After a 503 is an ordinary answer (the caller's back-off).
  answer = () => new Response("busy", { status: 503, headers: { "retry-after": "later" } });
  assert.equal((await send("http://noc/x")).status, 503);
  answer = () => new Response("busy", { status: 500, headers: { "retry-after": "5" } });
  assert.equal((await send("http://noc/x")).status, 500);

  // Bounded by the interval (capS), an HTTP-date too; a cycle's gate refuses everything after
  // its first trip, even once the hold has passed.
  const date = new Date(now + 3_600_000).toUTCString();
  answer = () => new Response("slow down", { status: 429, headers: { "retry-after": date } });
  const cycle = gate.forCycle(inner);
  const e2 = await cycle.fetch("http://noc/v1/beats").catch((e) => e);
  assert.ok(e2 instanceof BackPressureError && e2.retryAfterS === 30, String(e2));
  assert.deepEqual(cycle.tripped, { retryAfterS: 30, status: 429 });
  now += 31_000;
  answer = () => new Response("ok");
  const before = sent.length;
  await assert.rejects(cycle.fetch("http://noc/v1/catalog"), BackPressureError);
  assert.equal(sent.length, before, "the tripped cycle sends nothing more");
  assert.equal((await gate.forCycle(inner).fetch("http://noc/v1/beats")).status, 200);
});

// ---------------------------------------------------------------------------------------------
// Real agents behind a proxy
// ---------------------------------------------------------------------------------------------

interface Hit {
  /** When the request reached the proxy (ms since the epoch). */
  at: number;
  method: string;
  path: string;
  status: number;
  /** For an answer the proxy made: no request is allowed before this. */
  holdUntil?: number;
}

/** What the proxy answers itself: a status and a Retry-After, or null to pass the request on. */
type Verdict = { status: number; retryAfter?: string; holdUntil?: number } | null;

/** A real HTTP proxy in front of `noc` that answers for it when `decide` says so. */
function gatedProxy(noc: ServedNoc) {
  const hits: Hit[] = [];
  let decide: (req: Request, path: string) => Verdict = () => null;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req, info) => {
      const path = new URL(req.url).pathname;
      const hit: Hit = { at: Date.now(), method: req.method, path, status: 0 };
      hits.push(hit);
      const v = decide(req, path);
      if (v) {
        hit.status = v.status;
        if (v.holdUntil !== undefined) hit.holdUntil = v.holdUntil;
        await req.body?.cancel().catch(() => {});
        return Response.json({ error: "overloaded", message: "the NOC is busy" }, {
          status: v.status,
          headers: v.retryAfter === undefined ? {} : { "retry-after": v.retryAfter },
        });
      }
      const res = await (noc.app.fetch as any)(req, info);
      hit.status = res.status;
      return res;
    },
  );
  noc.deps.authorities.listening({ hostname: "127.0.0.1", port: server.addr.port });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    hits,
    answer(d: (req: Request, path: string) => Verdict) {
      decide = d;
    },
    close: () => server.shutdown(),
  };
}

/** Every request reached the proxy only after the holds the proxy's earlier answers asked for. */
function assertHoldsKept(hits: Hit[], label: string) {
  for (const h of hits.filter((h) => h.holdUntil !== undefined)) {
    // A request already on its way when the answer left (the poll and the beat start together)
    // is not one the agent could hold back.
    const later = hits.filter((x) => x.at > h.at + 300);
    for (const x of later) {
      assert.ok(
        x.at >= h.holdUntil! - 5,
        `${label}: ${x.method} ${x.path} reached the NOC ${h.holdUntil! - x.at} ms before the ` +
          `Retry-After of the ${h.status} to ${h.method} ${h.path} had passed`,
      );
    }
  }
}

/** A beat's path: alone, or with the catalog in one request (the agent's way with a NOC of role all). */
const isBeat = (path: string) => path === "/v1/beats" || path === "/v1/checkin";
const beats = (hits: Hit[]) => hits.filter((h) => h.method === "POST" && isBeat(h.path));
/** A catalog answered: on its own, or with the beat. */
const catalogServed = (h: Hit) =>
  (h.path === "/v1/catalog" && [200, 304].includes(h.status)) ||
  (h.path === "/v1/checkin" && h.status === 200);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const eventsOf = (p: AgentProcess | { events: any[] }, name: string) =>
  p.events.filter((e: any) => e.event === name);
async function stateJson(state: string): Promise<any> {
  return JSON.parse(await Deno.readTextFile(`${state}/state.json`));
}

/** 503 with Retry-After (seconds and an HTTP-date), 429 past the interval: held, then resumed. */
async function retryAfterScenario(noc: ServedNoc) {
  const proxy = gatedProxy(noc);
  const box = await enrolledAgentVia(noc, proxy.url);
  let agent: AgentProcess | null = null;
  try {
    const first = await box.run(["once"]);
    assert.equal(first.code, 0, first.stdout + first.stderr);

    // `once` answered 503 with an HTTP-date: one cycle, one request (the beat), nothing after it;
    // exit 1, and the pause is kept in state.json for the next run.
    const date = new Date((Math.floor(Date.now() / 1000) + 5) * 1000);
    proxy.answer((_req, path) =>
      isBeat(path)
        ? { status: 503, retryAfter: date.toUTCString(), holdUntil: date.getTime() }
        : null
    );
    const before = proxy.hits.length;
    const held = await box.run(["once"]);
    assert.equal(held.code, 1, held.stdout + held.stderr);
    assert.deepEqual(
      proxy.hits.slice(before).map((h) => `${h.method} ${h.path} ${h.status}`),
      ["POST /v1/checkin 503"],
      "after a Retry-After the cycle sends nothing more",
    );
    const off = eventsOf(held, "backing_off")[0];
    assert.ok(
      off && off.failures === 1 && off.retryAfterS >= 1 && off.retryAfterS <= 5,
      held.stdout,
    );
    const saved = await stateJson(box.state);
    assert.equal(saved.failedCycles, 1);
    assert.ok(Math.abs(Date.parse(saved.notBefore) - date.getTime()) < 1500, saved.notBefore);
    // `noc-agent status` says so, in JSON and in words.
    const status = await box.run(["status", "--json"]);
    const shown = JSON.parse(status.stdout);
    assert.equal(shown.failedCycles, 1);
    assert.equal(shown.notBefore, saved.notBefore);
    const words = (await box.run(["status"])).stdout;
    assert.match(words, /backing off: 1 cycle\(s\) failed in a row/);
    assert.match(words, /NOC busy: +no cycle before /);

    // `run` (no spread) waits for that date first, its wake-up poll too. Then: a beat answered 503
    // with Retry-After: 3; then a 429 asking for a day, held to the catalog's 10 s interval; then
    // a wake-up poll answered 503 with Retry-After: 3 (which holds the cycles too); then the NOC
    // answers.
    let busy: Array<{ status: number; s: number }> = [{ status: 503, s: 3 }, {
      status: 429,
      s: 86400,
    }];
    let pollBusy = true;
    proxy.answer((_req, path) => {
      if (path === "/v1/wake" && busy.length === 0 && pollBusy) {
        pollBusy = false;
        return { status: 503, retryAfter: "3", holdUntil: Date.now() + 3000 };
      }
      if (busy.length === 0 || !isBeat(path)) return null;
      const { status, s } = busy[0]!;
      busy = busy.slice(1);
      return { status, retryAfter: String(s), holdUntil: Date.now() + Math.min(s, 10) * 1000 };
    });
    const runFrom = proxy.hits.length;
    agent = box.spawn(["run"], {
      NOC_AGENT_START_SPREAD_S: "0",
      NOC_AGENT_BACKOFF_BASE_S: "1",
      NOC_AGENT_WAKE_WAIT_S: "5",
    });
    const delayed = await agent.waitFor((e) => e.event === "first_cycle_delayed");
    assert.ok(delayed.notBefore, "run waits for the Retry-After an earlier process was given");
    await agent.waitFor((e) => e.event === "cycle_finished" && e.outcome === "ok", 0, 45_000);
    await agent.stop();
    const ran = proxy.hits.slice(runFrom);
    assert.ok(
      ran[0]!.at >= date.getTime() - 5,
      `run sent ${ran[0]!.path} ${date.getTime() - ran[0]!.at} ms before the stored Retry-After`,
    );
    assertHoldsKept(proxy.hits, "Retry-After");
    // (A third one when the poll's 503 came before the last cycle's beat.)
    const offs = eventsOf(agent, "backing_off");
    assert.deepEqual(
      offs.slice(0, 2).map((e) => [e.failures, e.retryAfterS, e.status]),
      [[2, 3, 503], [3, 10, 429]],
    );
    assert.ok(offs[0].delayS >= 3 && offs[0].delayS <= 3 + backoffCeilingS(2, 10, 1), offs[0]);
    assert.equal(offs[1].delayS, 10, "a day asked for, the catalog's interval waited");
    const b = beats(ran);
    assert.deepEqual(b.map((h) => h.status), [503, 429, 200], JSON.stringify(ran));
    assert.ok(b[1]!.at - b[0]!.at >= offs[0].delayS * 1000 - 5, "the jittered delay was kept");
    assert.ok(b[2]!.at - b[1]!.at >= 10_000 - 5);
    const poll = ran.find((h) => h.path === "/v1/wake" && h.status === 503);
    assert.ok(poll, "a wake-up poll was answered 503 (and assertHoldsKept checked its hold)");
    // No more than one cycle per Retry-After.
    assert.ok(b[1]!.at - b[0]!.at >= 3000 && b[1]!.at - b[0]!.at < 3000 + 2000 + 4000);
    assert.ok(
      ran.some(catalogServed),
      "and it resumed",
    );
    assert.equal((await stateJson(box.state)).failedCycles, 0, "reset by a beat accepted");
  } finally {
    await agent?.stop();
    await box.remove();
    await proxy.close();
  }
}

/** Failures without Retry-After: growing ceilings up to the interval, jittered delays, counted. */
async function backoffScenario(noc: ServedNoc) {
  const proxy = gatedProxy(noc);
  const box = await enrolledAgentVia(noc, proxy.url);
  let agent: AgentProcess | null = null;
  try {
    const first = await box.run(["once"]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    proxy.answer((_req, path) => isBeat(path) ? { status: 503 } : null);
    const from = proxy.hits.length;
    agent = box.spawn(["run"], {
      NOC_AGENT_START_SPREAD_S: "0",
      NOC_AGENT_BACKOFF_BASE_S: "2",
      NOC_AGENT_WAKE_WAIT_S: "0",
    });
    await agent.waitFor(() => eventsOf(agent!, "backing_off").length >= 4, 0, 45_000);
    await agent.stop();
    const offs = eventsOf(agent, "backing_off").slice(0, 4);
    assert.deepEqual(offs.map((e) => e.failures), [1, 2, 3, 4], "counted in a row");
    assert.deepEqual(offs.map((e) => e.ceilingS), [2, 4, 8, 10], "doubling, capped at 10 s");
    for (const e of offs) {
      assert.ok(e.delayS >= BACKOFF_FLOOR_S && e.delayS <= e.ceilingS, JSON.stringify(e));
      assert.equal(e.retryAfterS, undefined);
    }
    // Full jitter: the delays are drawn, not the ceilings themselves.
    assert.ok(offs.slice(1).some((e) => e.delayS < e.ceilingS), JSON.stringify(offs));
    assert.equal(new Set(offs.slice(1).map((e) => e.delayS / e.ceilingS)).size, 3);
    // The proxy saw the delays: each beat after the one before plus its logged delay.
    const b = beats(proxy.hits.slice(from));
    assert.ok(b.length >= 4, JSON.stringify(b));
    for (let i = 1; i < 4; i++) {
      const gap = b[i]!.at - b[i - 1]!.at;
      const want = offs[i - 1].delayS * 1000;
      assert.ok(gap >= want - 5 && gap <= want + 5000, `gap ${i}: ${gap} ms, delay ${want} ms`);
    }

    // Across runs: `once` goes on counting, and a beat the NOC accepts resets the count.
    const fifth = await box.run(["once"], { NOC_AGENT_BACKOFF_BASE_S: "2" });
    assert.equal(fifth.code, 1);
    assert.equal(eventsOf(fifth, "backing_off")[0]?.failures, 5, fifth.stdout);
    assert.equal(eventsOf(fifth, "first_cycle_delayed").length, 0, "once runs at once");
    assert.equal((await stateJson(box.state)).failedCycles, 5);
    proxy.answer(() => null);
    const ok = await box.run(["once"]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(eventsOf(ok, "backing_off").length, 0);
    assert.equal((await stateJson(box.state)).failedCycles, 0);
  } finally {
    await agent?.stop();
    await box.remove();
    await proxy.close();
  }
}

/** `run` spreads its first cycle, unless the agent has never run a cycle. */
async function spreadScenario(noc: ServedNoc) {
  const proxy = gatedProxy(noc);
  const ran = await enrolledAgentVia(noc, proxy.url);
  const fresh = await enrolledAgentVia(noc, proxy.url);
  const agents: AgentProcess[] = [];
  try {
    const first = await ran.run(["once"]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const env = { NOC_AGENT_START_SPREAD_S: "3", NOC_AGENT_WAKE_WAIT_S: "0" };
    const spread = ran.spawn(["run"], env);
    const now = fresh.spawn(["run"], { ...env, NOC_AGENT_START_SPREAD_S: "30" });
    agents.push(spread, now);
    const delayed = await spread.waitFor((e) => e.event === "first_cycle_delayed");
    assert.ok(delayed.delayS >= 0 && delayed.delayS <= 3 && delayed.spreadS === 3, delayed);
    await spread.waitFor((e) => e.event === "cycle_finished");
    const started = Date.parse(delayed.time);
    const beatAt = beats(proxy.hits).filter((h) => h.at >= started)
      .map((h) => h.at);
    // The spread agent's beat came after its drawn delay (the fresh one's may come first).
    assert.ok(
      beatAt.some((t) => t >= started + delayed.delayS * 1000 - 5),
      `${JSON.stringify(beatAt)} vs ${started} + ${delayed.delayS} s`,
    );

    const hello = await now.waitFor((e) => e.event === "agent_started");
    const done = await now.waitFor((e) => e.event === "cycle_finished", 0, 20_000);
    assert.equal(eventsOf(now, "first_cycle_delayed").length, 0, "a fresh enrolment waits not");
    assert.equal(done.outcome, "ok");
    assert.ok(
      Date.parse(done.time) - Date.parse(hello.time) < 10_000,
      "its first cycle ran at once, not 30 s later",
    );
  } finally {
    for (const a of agents) await a.stop();
    await ran.remove();
    await fresh.remove();
    await proxy.close();
  }
}

/** An agent enrolled through `url` (the proxy), so all its requests go through it. */
async function enrolledAgentVia(noc: ServedNoc, url: string) {
  return await enrolledAgent({ ...noc, url });
}

dbTest(
  "real agents honour back-pressure: Retry-After holds every request, failures back off with jitter up to the interval, run spreads its first cycle",
  async ({ db }) => {
    const noc = await serveNoc(db, { reportIntervalS: 10 });
    try {
      const results = await Promise.allSettled([
        retryAfterScenario(noc),
        backoffScenario(noc),
        spreadScenario(noc),
      ]);
      const failed = results.flatMap((r, i) =>
        r.status === "rejected"
          ? [`${["Retry-After", "back-off", "spread"][i]}: ${r.reason?.stack ?? r.reason}`]
          : []
      );
      assert.deepEqual(failed, []);
    } finally {
      await sleep(0);
      await noc.close();
    }
  },
);

Deno.test("the gate: a local component server's Retry-After is its own failure, not a pause", async () => {
  const pressure = new BackPressure(() => Date.UTC(2026, 11, 1), () => 0.5, 30);
  pressure.mirrors.add("https://mirror.site.test");
  const busy = () =>
    Promise.resolve(new Response("busy", { status: 503, headers: { "retry-after": "60" } }));
  const gate = pressure.forCycle(busy);
  const res = await gate.fetch("https://mirror.site.test/v1/components/4");
  assert.equal(res.status, 503, "answered as it is: the download tries the next URL");
  await res.body?.cancel();
  assert.equal(gate.tripped, null);
  assert.equal(pressure.heldS(), 0);
  // The NOC's own 503 with Retry-After does pause the cycle.
  await assert.rejects(() => gate.fetch("https://noc.test/v1/components/4"), BackPressureError);
  const tripped = gate.tripped as { retryAfterS: number } | null;
  assert.equal(tripped?.retryAfterS, 60);
});

Deno.test("a hold armed before the clock was stepped back is brought within the interval", () => {
  // Review 23a: armed an hour "ahead" (the clock then stepped back an hour), the hold outlived
  // the interval by the step, and blocked the operator's wake-up too.
  let now = 10_000_000;
  const gate = new BackPressure(() => now, () => 0, 2);
  gate.capS = 20;
  gate.hold(15);
  assert.equal(gate.until, now + 15_000);
  now -= 3_600_000; // stepped back an hour
  assert.ok(gate.heldS() > 3600, "held an hour more, as it was");
  gate.rebase();
  assert.ok(gate.heldS() <= 20, `held ${gate.heldS()} s after rebase`);
  assert.ok(gate.resumeAt <= now + 20_000);
  // A hold within the interval is left as it is.
  now += 3_600_000;
  const fresh = new BackPressure(() => now, () => 0, 2);
  fresh.capS = 20;
  fresh.hold(5);
  const until = fresh.until;
  fresh.rebase();
  assert.equal(fresh.until, until);
});

Deno.test("sleep() is measured on the monotonic clock: a wall clock stepped back does not stretch it", async () => {
  const realNow = Date.now;
  const t = realNow();
  let calls = 0;
  // The wall clock reads an hour back from the first look on.
  Date.now = () => (calls++ === 0 ? t : t - 3_600_000);
  try {
    let stretched: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      timerSleep(5).then(() => "slept"),
      // Only when it fails: a sleep stretched by the step would take an hour.
      new Promise((r) => stretched = setTimeout(() => r("stretched"), 5_000)),
    ]);
    clearTimeout(stretched);
    assert.equal(outcome, "slept");
  } finally {
    Date.now = realNow;
  }
});

dbTest(
  "a new agent takes its interval from the enrolment answer until its first signed catalog",
  async ({ db }) => {
    // Review 23a: before its first catalog an agent bounded a Retry-After (and its back-off) by
    // the default 909 s, whatever the NOC's interval: a first catalog answered 503 held it 909 s
    // on a NOC of 20 s, past its deadline.
    const noc = await serveNoc(db, { reportIntervalS: 20 });
    try {
      const box = await enrolledAgent(noc);
      try {
        assert.equal((await stateJson(box.state)).intervalS, 20);
      } finally {
        await box.remove();
      }
    } finally {
      await noc.close();
    }
  },
);
