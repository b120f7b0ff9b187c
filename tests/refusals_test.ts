/**
 * Issue 16, item 11: refusals are cheap. A client sending refused requests is
 * counted per address, answered 429 once its refusals are used up (before any
 * work), and only a bounded number of its refusals are written; the refusal
 * path takes no global lock; the administrator is still notified, at most once
 * per window, with the count.
 */
import assert from "node:assert/strict";
import { count, countingDb, dbTest, sampleBeat, testNoc } from "./_harness.ts";
import { type ServedNoc, serveNoc } from "./_agent.ts";
import type { Db } from "../noc/db/db.ts";
import { signedRequest } from "../protocol/client.ts";
import { generateEd25519 } from "../protocol/crypto/ed25519.ts";

const attacker = "203.0.113.7";
const neighbour = "198.51.100.2";

dbTest(
  "an address past its refusals gets 429 before any work, its refusals are counted, not each written, and others are served",
  async ({ db }) => {
    const counted = countingDb(db);
    const noc = await serveNoc(counted.db, { trustProxy: true, rateRefusalsPerMin: 5 });
    try {
      const good = await noc.enrollAppliance();
      const from = (address: string) => ({ "x-forwarded-for": address });
      const unsigned = () =>
        fetch(`${noc.url}/v1/beats`, {
          method: "POST",
          headers: { "content-type": "application/json", ...from(attacker) },
          body: JSON.stringify(sampleBeat(1, noc.clock.now())),
        });
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await unsigned();
        statuses.push(res.status);
        await res.body?.cancel();
      }
      assert.deepEqual(statuses, [401, 401, 401, 401, 401]);
      assert.equal(await count(db, "auth_failures"), 5);
      const before = counted.count();
      for (let i = 0; i < 100; i++) {
        const res = await unsigned();
        assert.equal(res.status, 429);
        assert.ok(Number(res.headers.get("retry-after")) >= 1);
        assert.equal((await res.json()).error, "rate_limited");
      }
      // A forged signature for a real appliance, from the same address: refused before its key
      // is looked up.
      const forger = await generateEd25519();
      const forged = await signedRequest({
        baseUrl: noc.url,
        uid: good.uid,
        key: forger.privateKey,
        method: "POST",
        path: "/v1/beats",
        body: sampleBeat(1, noc.clock.now()),
        now: noc.clock.now(),
        headers: from(attacker),
      });
      assert.equal((await fetch(forged)).status, 429);
      assert.equal(counted.count(), before, "no statement ran for the refused address");
      assert.equal(await count(db, "auth_failures"), 5, "nothing more written");

      // An appliance at another address is served as usual.
      const beat = await signedRequest({
        baseUrl: noc.url,
        uid: good.uid,
        key: good.keys.signing,
        method: "POST",
        path: "/v1/beats",
        body: sampleBeat(1, noc.clock.now()),
        now: noc.clock.now(),
        headers: from(neighbour),
      });
      const ok = await fetch(beat);
      assert.equal(ok.status, 200, await ok.text());

      // One notice for the lot; the next window's notice counts what was refused meanwhile.
      const notices = await db.sql<{ text: string }>`select text from notices order by id`;
      assert.equal(notices.length, 1);
      noc.clock.advance(301);
      const next = await unsigned();
      assert.equal(next.status, 401, "refusals refill with time");
      await next.body?.cancel();
      const after = await db.sql<{ text: string }>`select text from notices order by id`;
      assert.equal(after.length, 2);
      assert.match(after[1]!.text, /(\d+) more refused since the last notice/);
      const more = Number(/(\d+) more refused/.exec(after[1]!.text)![1]);
      assert.ok(more >= 4, `the held-back refusals are counted too: ${after[1]!.text}`);
      const [row] = await db.sql<{ held_back: number }>`
        select held_back from auth_failures order by id desc limit 1`;
      assert.equal(row!.held_back, 101, "the new record carries what its address held back");
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "refusals from many addresses write at most the instance's record budget",
  async ({ db }) => {
    const noc = await testNoc(db, {
      settings: { trustProxy: true, rateRefusalsPerMin: 1000, refusalRecordsPerMin: 10 },
    });
    for (let i = 0; i < 40; i++) {
      const res = await noc.app.request("http://noc.test/v1/beats", {
        method: "POST",
        headers: { "x-forwarded-for": `192.0.2.${i}` },
        body: "{}",
      });
      assert.equal(res.status, 401);
    }
    assert.equal(await count(db, "auth_failures"), 10);
  },
);

dbTest(
  "a refusal takes no global lock: refusals are answered while another instance holds the notice row",
  async ({ db, another }) => {
    const noc = await testNoc(db, { settings: { trustProxy: true, identityNoticeWindowS: 60 } });
    const first = await noc.app.request("http://noc.test/v1/beats", { method: "POST" });
    assert.equal(first.status, 401);
    assert.equal((await db.sql`select 1 from notice_throttle`).length, 1);
    noc.clock.advance(61); // the window has passed: this instance will try to claim the next one
    const other = another();
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => locked = r);
    const holder = other.begin(async (tx) => {
      await tx`select * from notice_throttle where key = 'identity_failure' for update`;
      locked();
      await held;
    });
    await isLocked;
    try {
      const answers = await Promise.race([
        Promise.all(Array.from({ length: 20 }, async (_, i) => {
          const res = await noc.app.request("http://noc.test/v1/beats", {
            method: "POST",
            headers: { "x-forwarded-for": `192.0.2.${i}` },
          });
          return res.status;
        })),
        // A guard, not a measurement: with a lock on the refusal path these would wait for ever.
        new Promise<"blocked">((r) => setTimeout(() => r("blocked"), 20_000)),
      ]);
      assert.notEqual(answers, "blocked", "refusals waited for the notice row's lock");
      assert.deepEqual(answers, Array(20).fill(401));
      assert.equal(await count(db, "auth_failures"), 21);
    } finally {
      release();
      await holder;
    }
    assert.equal(
      await count(db, "notices"),
      1,
      "the holder's instance notifies; this one did not wait",
    );
  },
  { instances: 2 },
);

dbTest(
  "admin API refusals count against their address, and past its budget get 429",
  async ({ db }) => {
    const noc = await testNoc(db, { settings: { trustProxy: true, rateRefusalsPerMin: 3 } });
    const call = (token: string, address: string) =>
      noc.app.request("http://noc.test/v1/admin/appliances", {
        headers: { authorization: `Bearer ${token}`, "x-forwarded-for": address },
      });
    for (let i = 0; i < 3; i++) {
      assert.equal(
        (await call("noc_adm_guess" + i, attacker)).status,
        401,
      );
    }
    assert.equal((await call("noc_adm_guess", attacker)).status, 429);
    assert.equal((await call(noc.adminToken, attacker)).status, 429, "even with the right token");
    assert.equal((await call(noc.adminToken, neighbour)).status, 200);
    assert.equal(await count(db, "auth_failures"), 0, "admin refusals are counted, never written");
  },
);

/** A beat for `uid` signed with a key that is not its own, from `address` (X-Forwarded-For). */
async function forgedBeat(noc: ServedNoc, uid: string, address: string): Promise<Response> {
  const forger = await generateEd25519();
  return await fetch(
    await signedRequest({
      baseUrl: noc.url,
      uid,
      key: forger.privateKey,
      method: "POST",
      path: "/v1/beats",
      body: sampleBeat(1, noc.clock.now()),
      now: noc.clock.now(),
      headers: { "x-forwarded-for": address },
    }),
  );
}

async function identifiedRows(db: Db): Promise<number> {
  const [r] = await db.sql<{ n: number }>`
    select count(*)::int as n from auth_failures where identified`;
  return r!.n;
}

dbTest(
  "bad admin tokens from many addresses cannot silence an enrolled identity's refusals: each is recorded and notified",
  async ({ db }) => {
    // The NOC's defaults: 30 refusals per address, 300 records a minute.
    const noc = await serveNoc(db, { trustProxy: true });
    try {
      const victim = await noc.enrollAppliance();
      // 13 addresses × 30 bad admin tokens: 390 refusals, more than the record budget.
      for (let i = 0; i < 13; i++) {
        const statuses = await Promise.all(Array.from({ length: 30 }, async (_, j) => {
          const res = await fetch(`${noc.url}/v1/admin/appliances`, {
            headers: {
              authorization: `Bearer noc_adm_guess${j}`,
              "x-forwarded-for": `198.18.0.${60 + i}`,
            },
          });
          await res.body?.cancel();
          return res.status;
        }));
        assert.deepEqual(new Set(statuses), new Set([401]));
      }
      assert.equal(await count(db, "auth_failures"), 0, "refused admin tokens are never written");
      assert.equal(await count(db, "notices"), 0);
      // Three forged beats for an enrolled UID, from a fresh address.
      for (let k = 0; k < 3; k++) {
        const res = await forgedBeat(noc, victim.uid, "198.18.0.160");
        assert.equal(res.status, 401);
        assert.equal((await res.json()).error, "bad_signature");
      }
      assert.equal(await identifiedRows(db), 3, "each forged beat is recorded");
      const notices = await db.sql<{ kind: string; text: string }>`
        select kind, text from notices order by id`;
      assert.equal(notices.length, 1, "one notice for the window");
      assert.equal(notices[0]!.kind, "identity_failure");
      assert.match(notices[0]!.text, /bad_signature/);
      assert.ok(notices[0]!.text.includes(victim.uid), notices[0]!.text);
      const listed = await noc.admin("GET", "/v1/admin/auth-failures");
      assert.deepEqual(
        listed.body.items.map((f: { reason: string; identified: boolean }) => [
          f.reason,
          f.identified,
        ]),
        [["bad_signature", true], ["bad_signature", true], ["bad_signature", true]],
      );
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "an anonymous flood spends neither the record budget nor the notice window of an enrolled identity's refusals",
  async ({ db }) => {
    const noc = await serveNoc(db, {
      trustProxy: true,
      rateRefusalsPerMin: 1000,
      refusalRecordsPerMin: 10,
      identityRefusalRecordsPerMin: 10,
    });
    try {
      const victim = await noc.enrollAppliance();
      const other = await noc.enrollAppliance();
      // 40 unsigned requests from 40 addresses: 10 recorded, and they take the anonymous notice.
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${noc.url}/v1/beats`, {
          method: "POST",
          headers: { "x-forwarded-for": `192.0.2.${i}` },
          body: "{}",
        });
        assert.equal(res.status, 401);
        await res.body?.cancel();
      }
      assert.equal(await count(db, "auth_failures"), 10);
      assert.equal(await count(db, "notices"), 1);
      // In the same window: a forged signature, a replay and a revoked key, all recorded, and
      // one notice of their own.
      assert.equal((await forgedBeat(noc, victim.uid, "203.0.113.50")).status, 401);
      const genuine = await signedRequest({
        baseUrl: noc.url,
        uid: other.uid,
        key: other.keys.signing,
        method: "POST",
        path: "/v1/beats",
        body: sampleBeat(1, noc.clock.now()),
        now: noc.clock.now(),
      });
      assert.equal((await fetch(genuine.clone())).status, 200);
      const replay = await fetch(genuine);
      assert.equal((await replay.json()).error, "replayed_signature");
      await noc.admin("POST", `/v1/admin/appliances/${other.uid}/revoke`, { reason: "stolen" });
      const revoked = await fetch(
        await signedRequest({
          baseUrl: noc.url,
          uid: other.uid,
          key: other.keys.signing,
          method: "POST",
          path: "/v1/beats",
          body: sampleBeat(2, noc.clock.now()),
          now: noc.clock.now(),
        }),
      );
      assert.equal((await revoked.json()).error, "revoked_key");
      assert.equal(await identifiedRows(db), 3);
      const notices = await db.sql<{ text: string }>`select text from notices order by id`;
      assert.equal(notices.length, 2, "the enrolled identity's refusal is notified");
      assert.match(notices[1]!.text, /enrolled identity: bad_signature/);

      // One identity's refusals: a few recorded a minute, the rest counted and carried.
      for (let i = 0; i < 10; i++) {
        assert.equal((await forgedBeat(noc, victim.uid, `203.0.113.${100 + i}`)).status, 401);
      }
      assert.equal(await identifiedRows(db), 3 + 5, "six records a minute for one identity");
      assert.equal(await count(db, "notices"), 2, "at most one notice a window");
      noc.clock.advance(301);
      assert.equal((await forgedBeat(noc, victim.uid, "203.0.113.200")).status, 401);
      const [last] = await db.sql<{ held_back: number }>`
        select held_back from auth_failures where identified order by id desc limit 1`;
      assert.equal(last!.held_back, 5, "the next record carries what the identity held back");
      const after = await db.sql<{ text: string }>`select text from notices order by id`;
      assert.equal(after.length, 3);
      const more = Number(/(\d+) more refused/.exec(after[2]!.text)?.[1]);
      assert.ok(more >= 12, `every refusal of the window is counted: ${after[2]!.text}`);
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "refusals from an IPv6 address count against its /64: rotating addresses within it gets 429",
  async ({ db }) => {
    const noc = await serveNoc(db, { trustProxy: true, rateRefusalsPerMin: 5 });
    try {
      const unsigned = async (address: string) => {
        const res = await fetch(`${noc.url}/v1/beats`, {
          method: "POST",
          headers: { "x-forwarded-for": address },
          body: "{}",
        });
        await res.body?.cancel();
        return res.status;
      };
      const statuses = [];
      for (let i = 1; i <= 8; i++) statuses.push(await unsigned(`2001:db8:1:2::${i.toString(16)}`));
      assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
      assert.equal(await unsigned("2001:db8:1:2:ffff:ffff:ffff:ffff"), 429);
      assert.equal(await unsigned("2001:db8:1:3::1"), 401, "another /64 has its own budget");
      assert.equal(await count(db, "auth_failures"), 6);
    } finally {
      await noc.close();
    }
  },
);
