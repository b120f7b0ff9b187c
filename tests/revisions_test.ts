/**
 * Issue 22 item 2: every mutable resource of the admin API has a version. Through `app.request()`,
 * on PGlite and PostgreSQL, for each resource (assignments, appliances, holds, maintenance windows,
 * fileinfo, release keys, operators, enrolment tokens, local servers, phased rollouts): a read gives
 * its `revision` (and, for one resource, `ETag: "<revision>"`); a change sent with the current
 * `If-Match` passes and bumps it; one sent with an older revision is refused, 409 `stale_revision`
 * with `revision` and `current`, and nothing changes; a malformed `If-Match` is 400
 * `invalid_header`; of two concurrent changes sent against the same revision exactly one passes.
 * And: a beat never bumps an appliance's revision; internal writers (a phased rollout pausing its
 * assignment, a bulk move) do.
 */
import assert from "node:assert/strict";
import { dbTest, type TestNoc } from "./_harness.ts";
import { fleet, ref } from "./_rollouts.ts";
import type { Db } from "../noc/db/db.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { newSeed } from "../protocol/keys.ts";

// deno-lint-ignore no-explicit-any
type Json = any;
interface Answer {
  status: number;
  etag: string | null;
  body: Json;
}

/** An admin API call with extra headers (`If-Match`). */
async function call(
  noc: TestNoc,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await noc.app.request(`http://noc.test/v1/admin${path}`, {
    method,
    headers: {
      authorization: `Bearer ${noc.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    etag: res.headers.get("etag"),
    body: text ? JSON.parse(text) : null,
  };
}

/** One resource under test: how to read it, and a change that bumps its revision. */
interface Target {
  /** Its JSON now (a single GET, or its list item) and the ETag a single GET answered. */
  read(): Promise<{ json: Json; etag: string | null }>;
  /** A change that moves a field it shows (`variant` makes concurrent changes differ). */
  change(headers: Record<string, string>, variant: number): Promise<Answer>;
  /** Makes the next change possible again (a revoked thing live again), before it is read. */
  prepare?(): Promise<void>;
}

const ok = (a: Answer, what: string) => {
  assert.ok(a.status >= 200 && a.status < 300, `${what}: ${a.status} ${JSON.stringify(a.body)}`);
  return a;
};
async function item(noc: TestNoc, path: string, pick: (i: Json) => boolean): Promise<Json> {
  const r = ok(await call(noc, "GET", path), path);
  const found = r.body.items.find(pick);
  assert.ok(found, `${path}: not listed`);
  return found;
}
const single = (noc: TestNoc, path: string) => async () => {
  const r = ok(await call(noc, "GET", path), path);
  return { json: r.body, etag: r.etag };
};

const cases: Record<string, (noc: TestNoc, uids: string[], db: Db) => Promise<Target>> = {
  async assignment(noc) {
    const a = ok(
      await call(noc, "POST", "/assignments", {
        ...ref("2"),
        target: { type: "site", value: "s0" },
        rolloutPercent: 10,
      }),
      "assign",
    );
    const id = a.body.id;
    let n = 0;
    return {
      read: single(noc, `/assignments/${id}`),
      change: (h) => call(noc, "PATCH", `/assignments/${id}`, { rolloutPercent: 20 + ++n }, h),
    };
  },
  appliance(noc, uids) {
    const uid = uids[0]!;
    let n = 0;
    return Promise.resolve({
      read: single(noc, `/appliances/${uid}`),
      change: (h) => call(noc, "PATCH", `/appliances/${uid}`, { channel: `beta${++n}` }, h),
    });
  },
  async "maintenance window"(noc) {
    const m = ok(
      await call(noc, "POST", "/maintenance", {
        site: "s0",
        endsAt: new Date(noc.clock.now().getTime() + 3600_000).toISOString(),
        reason: "disk swap",
      }),
      "open window",
    );
    const id = m.body.id;
    return {
      read: async () => ({
        json: await item(noc, "/maintenance?all=true", (i) => i.id === id),
        etag: null,
      }),
      change: (h) => call(noc, "POST", `/maintenance/${id}/end`, undefined, h),
      prepare: async () => {
        noc.clock.advance(1000);
        await noc.deps.db.sql`
          update maintenance_windows set ends_at = ${new Date(
          noc.clock.now().getTime() + 3600_000,
        )}, ended_at = null, ended_by = null where id = ${id}`;
      },
    };
  },
  async fileinfo(noc) {
    ok(
      await call(noc, "PUT", "/apps/app/fileinfo/rules", { destination: "etc/r0", mode: "0644" }),
      "put fileinfo",
    );
    let n = 0;
    return {
      read: async () => ({
        json: await item(noc, "/apps/app/fileinfo", (i) => i.name === "rules"),
        etag: null,
      }),
      change: (h, v) =>
        call(
          noc,
          "PUT",
          "/apps/app/fileinfo/rules",
          { destination: `etc/r${++n}-${v}`, mode: "0644" },
          h,
        ),
    };
  },
  async "release key"(noc) {
    const release = await nocKeysFromSeed(newSeed());
    const k = ok(
      await call(noc, "POST", "/release-keys", {
        publicKey: release.published[0]!.publicKey,
        label: "offline 2026",
      }),
      "add key",
    );
    const kid = k.body.kid;
    return {
      read: async () => ({
        json: await item(noc, "/release-keys", (i) => i.kid === kid),
        etag: null,
      }),
      change: (h) => call(noc, "DELETE", `/release-keys/${kid}`, undefined, h),
      prepare: async () => {
        await noc.deps.db.sql`update release_keys set not_after = null where kid = ${kid}`;
      },
    };
  },
  async operator(noc) {
    ok(await call(noc, "POST", "/operators", { name: "ann", role: "operator" }), "add operator");
    return {
      read: single(noc, "/operators/ann"),
      change: async (h, v) => {
        const now = (await call(noc, "GET", "/operators/ann")).body.role;
        const roles = ["viewer", "admin", "operator"].filter((r) => r !== now);
        return call(noc, "PATCH", "/operators/ann", { role: roles[v % 2] }, h);
      },
    };
  },
  async "enrolment token"(noc) {
    const t = ok(await call(noc, "POST", "/enrollment-tokens", { label: "x" }), "token");
    const id = t.body.id;
    return {
      read: async () => ({
        json: await item(noc, "/enrollment-tokens", (i) => i.id === id),
        etag: null,
      }),
      change: (h) => call(noc, "DELETE", `/enrollment-tokens/${id}`, undefined, h),
      prepare: async () => {
        await noc.deps.db.sql`update enrollment_tokens set revoked_at = null where id = ${id}`;
      },
    };
  },
  async "local server"(noc, _uids, db) {
    const id = crypto.randomUUID();
    await db.sql`
      insert into local_servers (id, site, name, url, sign_key, enrolled_at)
      values (${id}, 's0', 'ls0', 'https://ls0.test', ${`key-${id}`}, ${noc.clock.now()})`;
    return {
      read: single(noc, `/local-servers/${id}`),
      change: (h) => call(noc, "POST", `/local-servers/${id}/revoke`, { reason: "stolen" }, h),
      prepare: async () => {
        await db.sql`update local_servers set revoked_at = null, revoked_reason = null`;
      },
    };
  },
  async "phased rollout"(noc) {
    const r = ok(
      await call(noc, "POST", "/rollouts", {
        component: ref("2"),
        target: { type: "all" },
        phases: [{ count: 2, soakS: 3600 }, { percent: 100, soakS: 0 }],
      }),
      "rollout",
    );
    const id = r.body.id;
    return {
      read: single(noc, `/rollouts/${id}`),
      change: async (h, v) => {
        const state = (await call(noc, "GET", `/rollouts/${id}`)).body.state;
        const action = state === "paused" ? "resume" : v === 0 ? "pause" : "advance";
        return call(noc, "POST", `/rollouts/${id}/${action}`, {}, h);
      },
    };
  },
};

const tag = (revision: number) => `"${revision}"`;

for (const [name, setup] of Object.entries(cases)) {
  dbTest(
    `revisions: ${name}: ETag, If-Match, 409 stale_revision, 400, one of two`,
    async ({ db }) => {
      const { noc, uids } = await fleet(db, 4);
      const t = await setup(noc, uids, db);

      // A read gives the revision (and a single GET its ETag).
      await t.prepare?.();
      const first = await t.read();
      const r0 = first.json.revision;
      assert.equal(typeof r0, "number", `${name}: revision in ${JSON.stringify(first.json)}`);
      if (first.etag !== null) assert.equal(first.etag, tag(r0));

      // The current revision passes and bumps it; a successful change answers its new ETag.
      const passed = ok(await t.change({ "if-match": tag(r0) }, 0), `${name}: current If-Match`);
      const second = await t.read();
      assert.ok(second.json.revision > r0, `${name}: bumped ${r0} → ${second.json.revision}`);
      if (passed.etag !== null) assert.equal(passed.etag, tag(second.json.revision));

      // The old revision: 409 stale_revision with the current state, and nothing changed.
      const stale = await t.change({ "if-match": tag(r0) }, 1);
      assert.equal(stale.status, 409, `${name}: ${JSON.stringify(stale.body)}`);
      assert.equal(stale.body.error, "stale_revision");
      assert.equal(stale.body.revision, second.json.revision);
      assert.equal(stale.body.current.revision, second.json.revision);
      assert.match(stale.body.message, /nothing was changed/);
      assert.equal(stale.etag, tag(second.json.revision));
      const third = await t.read();
      assert.equal(third.json.revision, second.json.revision, `${name}: unchanged`);

      // Malformed: 400 naming the header, nothing changed. A list with the current tag passes;
      // a weak tag never matches (409, not 400).
      for (const bad of ["abc", '"1', "1,2", 'W/"x" "y"']) {
        const r = await t.change({ "if-match": bad }, 1);
        assert.equal(r.status, 400, `${name}: If-Match ${bad}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error, "invalid_header");
        assert.equal(r.body.issues[0].path, "If-Match");
      }
      const weak = await t.change({ "if-match": `W/${tag(third.json.revision)}` }, 1);
      assert.equal(weak.status, 409, `${name}: weak tag`);
      // It says why: the tag, not the resource (newcomer review 22).
      assert.match(weak.body.message, /If-Match named no revision \(a weak/, name);
      assert.equal((await t.read()).json.revision, third.json.revision);

      // Two changes against the same revision at once: exactly one passes.
      await t.prepare?.();
      const r2 = (await t.read()).json.revision;
      const both = await Promise.all([
        t.change({ "if-match": `"0", ${tag(r2)}` }, 0),
        t.change({ "if-match": tag(r2) }, 1),
      ]);
      const statuses = both.map((a) => a.status).sort();
      assert.equal(
        statuses.filter((s) => s < 300).length,
        1,
        `${name}: ${JSON.stringify(both.map((a) => [a.status, a.body?.error]))}`,
      );
      assert.ok(statuses.includes(409), `${name}: the other is stale: ${statuses}`);
      assert.ok((await t.read()).json.revision > r2, `${name}: a new revision`);

      // `*` matches whatever is current; no If-Match: the last writer wins, as before.
      await t.prepare?.();
      ok(await t.change({ "if-match": "*" }, 0), `${name}: If-Match *`);
      await t.prepare?.();
      ok(await t.change({}, 1), `${name}: no If-Match`);
    },
  );
}

dbTest("revisions: hold: listed with its revision; DELETE with If-Match", async ({ db }) => {
  const { noc, uids } = await fleet(db, 2);
  const made = ok(
    await call(noc, "POST", "/holds", { uid: uids[0], reason: "incident" }),
    "hold",
  );
  const id = made.body.id;
  const listed = await item(noc, `/holds?uid=${uids[0]}`, (h) => h.id === id);
  assert.ok(Number.isSafeInteger(listed.revision) && listed.revision > 0);
  const rev = `"${listed.revision}"`;
  const stale = await call(noc, "DELETE", `/holds/${id}`, undefined, {
    "if-match": `"${listed.revision + 1000}"`,
  });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.error, "stale_revision");
  assert.equal(stale.body.current.id, id);
  assert.equal(
    (await call(noc, "DELETE", `/holds/${id}`, undefined, { "if-match": "x" })).status,
    400,
  );
  await item(noc, `/holds?uid=${uids[0]}`, (h) => h.id === id);
  // Two deletions against its revision: one passes, the other finds it gone.
  const both = await Promise.all(
    [1, 2].map(() => call(noc, "DELETE", `/holds/${id}`, undefined, { "if-match": rev })),
  );
  assert.deepEqual(both.map((a) => a.status).sort(), [204, 404]);
});

dbTest("revisions: a beat does not bump an appliance; operator changes do", async ({ db }) => {
  const { noc } = await fleet(db, 1);
  const box = await noc.enrollAppliance();
  const before = (await call(noc, "GET", `/appliances/${box.uid}`)).body.revision;
  noc.clock.advance(60_000);
  await box.beat();
  noc.clock.advance(60_000);
  await box.beat();
  const after = await call(noc, "GET", `/appliances/${box.uid}`);
  assert.ok(after.body.lastBeatAt);
  assert.equal(after.body.revision, before, "beats leave the revision alone");
  assert.equal(after.etag, tag(before));
  // A bulk move (an internal writer) bumps it.
  ok(
    await call(noc, "POST", "/appliances/bulk", {
      uids: [box.uid],
      action: { type: "move", channel: "beta" },
    }),
    "bulk move",
  );
  assert.ok((await call(noc, "GET", `/appliances/${box.uid}`)).body.revision > before);
});

dbTest("revisions: a phased rollout moving its assignment bumps the assignment", async ({ db }) => {
  const { noc } = await fleet(db, 4);
  const r = ok(
    await call(noc, "POST", "/rollouts", {
      component: ref("2"),
      target: { type: "all" },
      phases: [{ count: 2, soakS: 3600 }, { percent: 100, soakS: 0 }],
    }),
    "rollout",
  );
  const aid = r.body.assignmentId;
  const a0 = (await call(noc, "GET", `/assignments/${aid}`)).body.revision;
  ok(await call(noc, "POST", `/rollouts/${r.body.id}/pause`, {}), "pause");
  const paused = await call(noc, "GET", `/assignments/${aid}`);
  assert.equal(paused.body.paused, true);
  assert.ok(paused.body.revision > a0, "the rollout's pause bumped its assignment");
  // A form loaded before the pause is refused.
  const stale = await call(noc, "PATCH", `/assignments/${aid}`, { minSample: 7 }, {
    "if-match": tag(a0),
  });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.current.paused, true);
});
