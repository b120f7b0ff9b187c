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
import { type Ed25519Key, exportRawPublic, generateEd25519 } from "../protocol/crypto/ed25519.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";

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
  return await keyBeat(noc, uid, forger.privateKey, address);
}

/** A beat for `uid` signed with `key`, from `address` (X-Forwarded-For), created `at`. */
async function keyBeat(
  noc: ServedNoc,
  uid: string,
  key: Ed25519Key,
  address: string,
  at = noc.clock.now(),
): Promise<Response> {
  return await fetch(
    await signedRequest({
      baseUrl: noc.url,
      uid,
      key,
      method: "POST",
      path: "/v1/beats",
      body: sampleBeat(1, at),
      now: at,
      headers: { "x-forwarded-for": address },
    }),
  );
}

/** The refusal code of `res` (its body read). */
async function refusal(res: Response): Promise<[number, string]> {
  return [res.status, (await res.json()).error];
}

async function provenRows(db: Db): Promise<number> {
  const [r] = await db.sql<{ n: number }>`
    select count(*)::int as n from auth_failures where proven`;
  return r!.n;
}

async function refusalRows(db: Db) {
  return await db.sql<
    {
      reason: string;
      keyid: string | null;
      address: string | null;
      proven: boolean;
      held_back: number;
    }
  >`select reason, keyid, address, proven, held_back from auth_failures order by id`;
}

dbTest(
  "bad admin tokens from many addresses cannot silence refusals naming an appliance: each is recorded and notified",
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
        assert.deepEqual(
          await refusal(await forgedBeat(noc, victim.uid, "198.18.0.160")),
          [401, "bad_signature"],
        );
      }
      assert.equal(await count(db, "auth_failures"), 3, "each forged beat is recorded");
      const notices = await db.sql<{ kind: string; text: string }>`
        select kind, text from notices order by id`;
      assert.equal(notices.length, 1, "one notice for the window");
      assert.equal(notices[0]!.kind, "identity_failure");
      assert.match(notices[0]!.text, /bad_signature for claimed key .* \(not proven\)/);
      assert.ok(notices[0]!.text.includes(victim.uid), notices[0]!.text);
      const listed = await noc.admin("GET", "/v1/admin/auth-failures");
      assert.deepEqual(
        listed.body.items.map((f: { reason: string; proven: boolean }) => [f.reason, f.proven]),
        [["bad_signature", false], ["bad_signature", false], ["bad_signature", false]],
        "a signature that does not verify proves nothing of the UID it names",
      );
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "forged signatures for a known UID cannot hide its revoked key's thief: the thief's refusals are recorded and notified",
  async ({ db }) => {
    // The NOC's defaults; only the proxy is trusted, so the two parties have their own addresses.
    const noc = await serveNoc(db, { trustProxy: true });
    const decoy = "198.51.100.7", thief = "203.0.113.66";
    try {
      const victim = await noc.enrollAppliance({ hostname: "victim" });
      // A decoy knowing only the UID (UIDs appear in grants, records and notices).
      for (let i = 0; i < 7; i++) {
        assert.deepEqual(
          await refusal(await forgedBeat(noc, victim.uid, decoy)),
          [401, "bad_signature"],
        );
      }
      const revoked = await noc.admin("POST", `/v1/admin/appliances/${victim.uid}/revoke`, {
        reason: "stolen",
      });
      assert.equal(revoked.status, 200);
      // After the revocation the forger still learns nothing of the appliance's state.
      assert.deepEqual(
        await refusal(await forgedBeat(noc, victim.uid, decoy)),
        [401, "bad_signature"],
      );
      // The thief, with the appliance's real key.
      for (let i = 0; i < 5; i++) {
        assert.deepEqual(
          await refusal(await keyBeat(noc, victim.uid, victim.keys.signing, thief)),
          [401, "revoked_key"],
        );
      }
      const rows = await refusalRows(db);
      assert.deepEqual(
        rows.filter((r) => r.proven).map((r) => [r.reason, r.keyid, r.address, r.held_back]),
        Array(5).fill(["revoked_key", victim.uid, thief, 0]),
        "every refusal of the thief is recorded, as proven",
      );
      assert.deepEqual(
        rows.filter((r) => !r.proven).map((r) => [r.reason, r.address]),
        Array(8).fill(["bad_signature", decoy]),
        "the decoy's forgeries are anonymous",
      );
      const notices = (await db.sql<{ text: string }>`select text from notices order by id`)
        .map((n) => n.text);
      assert.equal(notices.length, 2, "one notice per class");
      assert.match(notices[0]!, /bad_signature .*not proven.* from 198\.51\.100\.7/);
      assert.match(
        notices[1]!,
        new RegExp(`enrolled key of "${victim.uid}": revoked_key .* from 203\\.0\\.113\\.66$`),
      );
      const listed = await noc.admin("GET", "/v1/admin/auth-failures");
      assert.deepEqual(
        listed.body.items.filter((f: { proven: boolean }) => f.proven).map((
          f: { reason: string; address: string },
        ) => [f.reason, f.address])[0],
        ["revoked_key", thief],
      );
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "only a refusal after the signature verified is proven: revoked key, a body not matching its digest, a replay",
  async ({ db }) => {
    const noc = await serveNoc(db, {});
    try {
      const a = await noc.enrollAppliance();
      const b = await noc.enrollAppliance();
      const here = "127.0.0.1";
      const genuine = async () =>
        await signedRequest({
          baseUrl: noc.url,
          uid: a.uid,
          key: a.keys.signing,
          method: "POST",
          path: "/v1/beats",
          body: sampleBeat(1, noc.clock.now()),
          now: noc.clock.now(),
        });
      const answers: Array<[string, string]> = [];
      const send = async (what: string, req: Request | Promise<Response>) => {
        const res = req instanceof Request ? await fetch(req) : await req;
        const [status, code] = await refusal(res);
        assert.equal(status, 401, what);
        answers.push([what, code]);
      };
      await send("forged", forgedBeat(noc, a.uid, here));
      await send("unknown", forgedBeat(noc, crypto.randomUUID(), here));
      await send(
        "skewed, with the real key",
        keyBeat(noc, a.uid, a.keys.signing, here, new Date(noc.clock.now().getTime() - 3600_000)),
      );
      const swapped = await genuine();
      await send(
        "another body",
        new Request(swapped.url, {
          method: "POST",
          headers: swapped.headers,
          body: JSON.stringify(sampleBeat(2, noc.clock.now())),
        }),
      );
      const undigested = await genuine();
      undigested.headers.delete("content-digest");
      await send("digest header removed", undigested);
      const replayed = await genuine();
      assert.equal((await fetch(replayed.clone())).status, 200);
      await send("replay", replayed);
      await noc.admin("POST", `/v1/admin/appliances/${b.uid}/revoke`, { reason: "stolen" });
      await send("revoked, with the real key", keyBeat(noc, b.uid, b.keys.signing, here));
      await send("revoked, forged", forgedBeat(noc, b.uid, here));
      // A local component server: the same rule.
      const local = await enrolLocal(noc);
      await noc.admin("POST", `/v1/admin/local-servers/${local.id}/revoke`, { reason: "stolen" });
      await send("local server revoked, real key", local.sync(local.key));
      await send("local server revoked, forged", local.sync((await generateEd25519()).privateKey));

      assert.deepEqual(answers.map(([, code]) => code), [
        "bad_signature",
        "unknown_key",
        "clock_skew",
        "bad_digest",
        "bad_digest",
        "replayed_signature",
        "revoked_key",
        "bad_signature",
        "revoked_key",
        "bad_signature",
      ]);
      const rows = await refusalRows(db);
      assert.deepEqual(
        rows.map((r, i) => [answers[i]![0], r.reason, r.proven]),
        answers.map(([what, code]) => [
          what,
          code,
          ["another body", "replay", "revoked, with the real key", "local server revoked, real key"]
            .includes(what),
        ]),
      );
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "an anonymous flood, forgeries for a UID included, spends neither the record budget nor the notice window of proven refusals",
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
      // 40 unsigned requests and 20 forgeries naming the victim, from 60 addresses: 10 recorded,
      // and they take the anonymous notice.
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${noc.url}/v1/beats`, {
          method: "POST",
          headers: { "x-forwarded-for": `192.0.2.${i}` },
          body: "{}",
        });
        assert.equal(res.status, 401);
        await res.body?.cancel();
      }
      for (let i = 0; i < 20; i++) {
        assert.equal((await forgedBeat(noc, victim.uid, `203.0.113.${i}`)).status, 401);
      }
      assert.equal(await count(db, "auth_failures"), 10);
      assert.equal(await count(db, "notices"), 1);
      // In the same window: a replay and a revoked key, both recorded, and a notice of their own.
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
      assert.deepEqual(await refusal(await fetch(genuine)), [401, "replayed_signature"]);
      await noc.admin("POST", `/v1/admin/appliances/${other.uid}/revoke`, { reason: "stolen" });
      const stolen = () => keyBeat(noc, other.uid, other.keys.signing, "198.51.100.9");
      assert.deepEqual(await refusal(await stolen()), [401, "revoked_key"]);
      assert.equal(await provenRows(db), 2);
      const notices = await db.sql<{ text: string }>`select text from notices order by id`;
      assert.equal(notices.length, 2, "the proven refusal is notified");
      assert.match(notices[1]!.text, /enrolled key of .*: replayed_signature/);

      // One identity's proven refusals: six records a minute, the rest counted and carried.
      for (let i = 0; i < 10; i++) assert.equal((await stolen()).status, 401);
      assert.equal(await provenRows(db), 6, "six records a minute for one identity");
      assert.equal(await count(db, "notices"), 2, "at most one notice a window per class");
      noc.clock.advance(301);
      assert.equal((await stolen()).status, 401);
      const [last] = await db.sql<{ held_back: number }>`
        select held_back from auth_failures where proven order by id desc limit 1`;
      assert.equal(last!.held_back, 6, "the next record carries what the identity held back");
      const after = await db.sql<{ text: string }>`select text from notices order by id`;
      assert.equal(after.length, 3);
      assert.match(
        after[2]!.text,
        /revoked_key .*\(11 more refused since the last notice\)$/,
        "every proven refusal of the window is counted, and nothing anonymous",
      );
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "past the proven record budget, each identity's first proven refusal after a quiet minute is still written",
  async ({ db }) => {
    const noc = await serveNoc(db, {
      trustProxy: true,
      rateRefusalsPerMin: 1000,
      refusalRecordsPerMin: 5,
      identityRefusalRecordsPerMin: 5,
    });
    try {
      const a = await noc.enrollAppliance();
      const b = await noc.enrollAppliance();
      for (const x of [a, b]) {
        await noc.admin("POST", `/v1/admin/appliances/${x.uid}/revoke`, { reason: "stolen" });
      }
      const stolen = (x: typeof a) => keyBeat(noc, x.uid, x.keys.signing, "198.51.100.20");
      // a: its first (quiet) plus four within the instance's five; its sixth is held back.
      for (let i = 0; i < 6; i++) assert.equal((await stolen(a)).status, 401);
      assert.equal(await provenRows(db), 5);
      // The instance's proven budget is spent: b's first refusal is still written, not its second.
      for (let i = 0; i < 2; i++) assert.equal((await stolen(b)).status, 401);
      const rows = await refusalRows(db);
      assert.deepEqual(
        rows.map((r) => [r.keyid, r.proven, r.held_back]),
        [...Array(5).fill([a.uid, true, 0]), [b.uid, true, 0]],
      );
      noc.clock.advance(61);
      assert.equal((await stolen(a)).status, 401);
      const [last] = await db.sql<{ keyid: string; held_back: number }>`
        select keyid, held_back from auth_failures order by id desc limit 1`;
      assert.deepEqual([last!.keyid, last!.held_back], [a.uid, 1]);
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "anonymous and proven refusals are notified in windows of their own: neither class closes the other's",
  async ({ db }) => {
    const noc = await serveNoc(db, { trustProxy: true });
    try {
      const a = await noc.enrollAppliance();
      await noc.admin("POST", `/v1/admin/appliances/${a.uid}/revoke`, { reason: "stolen" });
      const unsigned = async (address: string) => {
        const res = await fetch(`${noc.url}/v1/beats`, {
          method: "POST",
          headers: { "x-forwarded-for": address },
          body: "{}",
        });
        await res.body?.cancel();
        assert.equal(res.status, 401);
      };
      const stolen = async () =>
        assert.equal((await keyBeat(noc, a.uid, a.keys.signing, "198.51.100.30")).status, 401);
      const texts = async () =>
        (await db.sql<{ text: string }>`select text from notices order by id`).map((n) => n.text);
      // Anonymous first: the proven one is still notified in the same window.
      await unsigned("192.0.2.1");
      await stolen();
      await unsigned("192.0.2.2");
      await stolen();
      assert.equal((await texts()).length, 2);
      noc.clock.advance(301);
      // Proven first: the anonymous one is still notified; each counts only its own class.
      await stolen();
      await unsigned("192.0.2.3");
      const all = await texts();
      assert.equal(all.length, 4);
      assert.match(all[2]!, /revoked_key .*\(1 more refused since the last notice\)$/);
      assert.match(all[3]!, /missing_signature .*\(1 more refused since the last notice\)$/);
    } finally {
      await noc.close();
    }
  },
);

/** Enrols a local component server at `noc` over HTTP; `sync(key)` signs a sync with `key`. */
async function enrolLocal(noc: ServedNoc) {
  const pair = await generateEd25519();
  const token = await noc.enrollmentToken({ purpose: "local-server", site: "lab" });
  const res = await fetch(`${noc.url}/v1/local/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      token,
      name: "cache-1",
      url: "https://cache.lab.example:8443",
      signingKey: toBase64Url(await exportRawPublic(pair.publicKey)),
    }),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  const id: string = body.id;
  return {
    id,
    key: pair.privateKey,
    sync: async (key: Ed25519Key) =>
      await fetch(
        await signedRequest({
          baseUrl: noc.url,
          uid: id,
          key,
          method: "POST",
          path: "/v1/local/sync",
          body: {},
          now: noc.clock.now(),
        }),
      ),
  };
}

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
