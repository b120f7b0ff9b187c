import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import type { TestAppliance, TestNoc } from "./_harness.ts";
import { memoryLogger } from "../protocol/util/log.ts";
import { createWakeHub } from "../noc/services/wakeups.ts";
import { broadcastBus, parseWakeMessage } from "../noc/services/wake_bus.ts";
import { pruneHistory } from "../noc/jobs/retention.ts";

async function poll(noc: TestNoc, a: TestAppliance, query: string) {
  const res = await noc.send(await a.request("GET", `/v1/wake?${query}`));
  assert.equal(res.status, 200);
  return await res.json() as { wake: boolean; cursor: number };
}

dbTest("a long poll is answered at once when an admin wakes its appliance", async ({ db }) => {
  const noc = await testNoc(db);
  try {
    const a = await noc.enrollAppliance();
    const first = await poll(noc, a, "wait=0");
    assert.deepEqual(first, { wake: false, cursor: 0 });
    const waiting = poll(noc, a, `after=${first.cursor}&wait=60`);
    const r = await noc.admin("POST", "/v1/admin/wake", { uid: a.uid });
    assert.equal(r.status, 202);
    const answer = await waiting;
    assert.equal(answer.wake, true);
    assert.equal(answer.cursor, r.body.id);
    // The cursor moves past it: the same wake-up is not delivered twice.
    assert.deepEqual(await poll(noc, a, `after=${answer.cursor}&wait=0`), {
      wake: false,
      cursor: answer.cursor,
    });
  } finally {
    await noc.deps.wakeups.close();
  }
});

dbTest("a wake-up sent between two polls is delivered by the next poll", async ({ db }) => {
  const noc = await testNoc(db);
  try {
    const a = await noc.enrollAppliance();
    const { cursor } = await poll(noc, a, "wait=0");
    const r = await noc.admin("POST", "/v1/admin/wake", { all: true });
    assert.deepEqual(await poll(noc, a, `after=${cursor}&wait=60`), {
      wake: true,
      cursor: r.body.id,
    });
    // Too old to replay: a wake-up is for now, not for an agent that comes back a day later.
    const later = await noc.admin("POST", "/v1/admin/wake", { uid: a.uid });
    noc.clock.advance(601);
    assert.deepEqual(await poll(noc, a, `after=${r.body.id}&wait=0`), {
      wake: false,
      cursor: later.body.id,
    });
    noc.clock.advance(86_400);
    assert.equal((await pruneHistory(noc.deps, 30)).wakeRequests, 2);
  } finally {
    await noc.deps.wakeups.close();
  }
});

dbTest("a site wake-up reaches that site's appliances and no other", async ({ db }) => {
  const noc = await testNoc(db);
  try {
    const hq = await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "hq" }) });
    const branch = await noc.enrollAppliance({
      token: await noc.enrollmentToken({ site: "branch" }),
    });
    const r = await noc.admin("POST", "/v1/admin/wake", { site: "hq" });
    assert.equal((await poll(noc, hq, "after=0&wait=0")).wake, true);
    assert.deepEqual(await poll(noc, branch, "after=0&wait=0"), { wake: false, cursor: r.body.id });
  } finally {
    await noc.deps.wakeups.close();
  }
});

dbTest("wake-up requests and polls with bad input get a 4xx naming the problem", async ({ db }) => {
  const noc = await testNoc(db);
  try {
    const a = await noc.enrollAppliance();
    for (const body of [{}, { uid: "x" }, { all: false }, { site: "hq", all: true }]) {
      const r = await noc.admin("POST", "/v1/admin/wake", body);
      assert.equal(r.status, 400, JSON.stringify(body));
    }
    const unknown = await noc.admin("POST", "/v1/admin/wake", { uid: crypto.randomUUID() });
    assert.equal(unknown.status, 404);
    const res = await noc.send(await a.request("GET", "/v1/wake?wait=3600"));
    assert.equal(res.status, 400);
    assert.match((await res.json()).message, /wait/);
    const anon = await noc.app.request("http://noc.test/v1/wake?wait=0");
    assert.equal(anon.status, 401);
    assert.equal((await db.sql`select count(*)::int as n from wake_requests`)[0]!.n, 0);
  } finally {
    await noc.deps.wakeups.close();
  }
});

dbTest(
  "a wake-up triggered on one NOC instance answers the long poll held by another",
  async ({ db, another }) => {
    const log = memoryLogger();
    const clock = { now: () => new Date() };
    const holder = createWakeHub({ db, clock, log });
    const other = createWakeHub({ db: another(), clock, log });
    try {
      // From the newest stored id: nothing stored answers this poll, only the notification can
      // (within the 60 s wait), and the poll then finds the stored wake-up.
      const { cursor } = await holder.wait({ uid: "u-1", site: "hq" }, null, 0);
      const waiting = holder.wait({ uid: "u-1", site: "hq" }, cursor, 60_000);
      while (holder.held === 0) await new Promise((r) => setTimeout(r, 0));
      const id = await other.trigger({ type: "appliance", value: "u-1" }, "test");
      assert.deepEqual(await waiting, { wake: true, cursor: id });
      assert.ok(id > 0);
    } finally {
      await holder.close();
      await other.close();
    }
  },
);

dbTest(
  "on the BroadcastChannel bus, a wake-up triggered by one hub answers the poll held by another",
  async ({ db, another }) => {
    const log = memoryLogger();
    const clock = { now: () => new Date() };
    // Two channels of one name, as two isolates of one deployment have; a name of this test's
    // own, so no other test's wake-ups cross it.
    const name = `noc_wake_${crypto.randomUUID().replace(/-/g, "")}`;
    const holder = createWakeHub({ db, clock, log, bus: broadcastBus(name) });
    const other = createWakeHub({ db: another(), clock, log, bus: broadcastBus(name) });
    const stranger = createWakeHub({ db, clock, log, bus: broadcastBus(`${name}_x`) });
    try {
      assert.equal(holder.bus, "broadcast");
      const { cursor } = await holder.wait({ uid: "u-1", site: "hq" }, null, 0);
      const waiting = holder.wait({ uid: "u-1", site: "hq" }, cursor, 60_000);
      const elsewhere = stranger.wait({ uid: "u-1", site: "hq" }, cursor, 60_000);
      while (holder.held === 0 || stranger.held === 0) await new Promise((r) => setTimeout(r, 0));
      const id = await other.trigger({ type: "site", value: "hq" }, "test");
      assert.ok(id > 0);
      assert.deepEqual(await waiting, { wake: true, cursor: id });
      // A channel of another name (another deployment) heard nothing: its poll is still held
      // until its hub shuts down.
      assert.equal(stranger.held, 1);
      await stranger.close();
      const quiet = await elsewhere;
      assert.equal(quiet.wake, false);
      // Its first read (done before `held` counted it) came before the wake-up was stored.
      assert.equal(quiet.cursor, cursor);
    } finally {
      await holder.close();
      await other.close();
      await stranger.close();
    }
  },
);

dbTest("on the BroadcastChannel bus, a hub wakes the polls it holds itself", async ({ db }) => {
  const hub = createWakeHub({
    db,
    clock: { now: () => new Date() },
    log: memoryLogger(),
    bus: "broadcast",
  });
  try {
    assert.equal(hub.bus, "broadcast");
    const { cursor } = await hub.wait({ uid: "u-2", site: null }, null, 0);
    const waiting = hub.wait({ uid: "u-2", site: null }, cursor, 60_000);
    while (hub.held === 0) await new Promise((r) => setTimeout(r, 0));
    const id = await hub.trigger({ type: "appliance", value: "u-2" }, "test");
    assert.deepEqual(await waiting, { wake: true, cursor: id });
  } finally {
    await hub.close();
  }
});

dbTest("a wake hub announces on pg_notify unless told otherwise", async ({ db }) => {
  const hub = createWakeHub({ db, clock: { now: () => new Date() }, log: memoryLogger() });
  const heard: string[] = [];
  const stop = await db.listen("noc_wake", (p) => heard.push(p));
  try {
    assert.equal(hub.bus, "postgres");
    const id = await hub.trigger({ type: "all", value: null }, "test");
    while (heard.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(heard.map(parseWakeMessage), [{ id, target: { type: "all", value: null } }]);
  } finally {
    await stop();
    await hub.close();
  }
});

Deno.test("a wake message that is not {id, target} is dropped, not delivered", () => {
  for (
    const bad of [
      "not json",
      "null",
      `{"id":1}`,
      `{"id":"1","target":{"type":"all","value":null}}`,
      `{"id":0,"target":{"type":"all","value":null}}`,
      `{"id":1,"target":{"type":"appliance","value":null}}`,
      `{"id":1,"target":{"type":"everyone","value":"x"}}`,
    ]
  ) assert.equal(parseWakeMessage(bad), null, bad);
  assert.deepEqual(parseWakeMessage(`{"id":7,"target":{"type":"site","value":"hq"},"x":1}`), {
    id: 7,
    target: { type: "site", value: "hq" },
  });
});

dbTest(
  "a forged bus message wakes nothing and poisons no cursor: the poll reads wake_requests",
  async ({ db }) => {
    const name = `noc_wake_${crypto.randomUUID().replace(/-/g, "")}`;
    const hub = createWakeHub({
      db,
      clock: { now: () => new Date() },
      log: memoryLogger(),
      bus: broadcastBus(name),
    });
    const forger = new BroadcastChannel(name);
    try {
      const { cursor } = await hub.wait({ uid: "u-3", site: null }, null, 0);
      const waiting = hub.wait({ uid: "u-3", site: null }, cursor, 60_000);
      while (hub.held === 0) await new Promise((r) => setTimeout(r, 0));
      // Posted before the real wake-up: had it been believed, it would have answered first.
      forger.postMessage({ id: Number.MAX_SAFE_INTEGER, target: { type: "all", value: null } });
      const id = await hub.trigger({ type: "appliance", value: "u-3" }, "test");
      assert.deepEqual(await waiting, { wake: true, cursor: id }, "answered by the stored wake-up");
      // A cursor from the future (one a forged message could hand out before) is pulled back to
      // the newest stored id, and the next real wake-up reaches it.
      assert.deepEqual(
        await hub.wait({ uid: "u-3", site: null }, Number.MAX_SAFE_INTEGER, 0),
        { wake: false, cursor: id },
      );
      const healed = hub.wait({ uid: "u-3", site: null }, Number.MAX_SAFE_INTEGER, 60_000);
      while (hub.held === 0) await new Promise((r) => setTimeout(r, 0));
      const next = await hub.trigger({ type: "appliance", value: "u-3" }, "test");
      assert.deepEqual(await healed, { wake: true, cursor: next });
    } finally {
      forger.close();
      await hub.close();
    }
  },
);
