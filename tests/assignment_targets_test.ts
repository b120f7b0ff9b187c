/**
 * Assignments and their targets through the admin API: an unknown site, model, channel, tag or
 * appliance is refused with a 400 naming it (and writes nothing) unless `allowUnknownTarget`; a
 * target's size counts the appliances (not revoked) it matches; `GET /targets` lists the known
 * values with their counts; the gate's minimum sample can be changed; the drill-down takes
 * several states; deleting an assignment removes it alone and the catalogs stop listing it.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { fetchCatalog, payload, publishAndAssign, upload } from "./_components.ts";
import { signedCall } from "../protocol/client.ts";

const ref = { app: "demo", name: "demo", version: "1.0.0" };

async function publish(noc: Awaited<ReturnType<typeof testNoc>>, version = "1.0.0") {
  const up = await upload(
    noc,
    `/v1/admin/packages?app=demo&name=demo&version=${version}`,
    await payload({ install: "#!/bin/sh\nexit 0\n" }),
    "application/gzip",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
}

dbTest(
  "an assignment to an unknown site, model, channel, tag or appliance is refused, naming it",
  async ({ db }) => {
    const noc = await testNoc(db);
    await publish(noc);
    await noc.enrollAppliance({ model: "vs-2000" });
    const assign = (target: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      noc.admin("POST", "/v1/admin/assignments", {
        kind: "package",
        ...ref,
        target,
        ...extra,
      });
    const unknown: Array<[Record<string, unknown>, string]> = [
      [{ type: "site", value: "atlantis" }, 'site "atlantis"'],
      [{ type: "model", value: "vs-9999" }, 'model "vs-9999"'],
      [{ type: "channel", value: "nightly" }, 'channel "nightly"'],
      [{ type: "tag", value: "edge" }, 'tag "edge"'],
      [{ type: "appliance", value: crypto.randomUUID() }, "appliance"],
    ];
    for (const [target, named] of unknown) {
      const r = await assign(target);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error, "invalid_body");
      assert.ok(r.body.message.includes(named), r.body.message);
      assert.match(r.body.message, /matches 0 appliances/);
      assert.equal(r.body.issues[0].path, "target.value");
    }
    // Nothing was written.
    assert.equal((await noc.admin("GET", "/v1/admin/assignments")).body.items.length, 0);

    // The model its appliance has is known; a site is known once a live token names it.
    assert.equal((await assign({ type: "model", value: "vs-2000" })).status, 201);
    await noc.enrollmentToken({ site: "atlantis", channel: "nightly", tags: ["edge"] });
    for (const [target] of unknown.slice(0, 4)) {
      if (target.type === "model") continue;
      const r = await assign(target);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.targetSize, 0);
    }
    // Said explicitly, an unknown target is accepted, with its size of 0.
    const pre = await assign({ type: "model", value: "vs-9999" }, { allowUnknownTarget: true });
    assert.equal(pre.status, 201, JSON.stringify(pre.body));
    assert.equal(pre.body.targetSize, 0);
  },
);

dbTest(
  "a target's size counts the appliances it matches, revoked ones not; targets lists the choices",
  async ({ db }) => {
    const noc = await testNoc(db);
    await publish(noc);
    const lab = await noc.enrollmentToken({ site: "lab", tags: ["edge"] });
    const fleet = [];
    for (let i = 0; i < 5; i++) fleet.push(await noc.enrollAppliance({ model: "vs-2000" }));
    for (let i = 0; i < 3; i++) fleet.push(await noc.enrollAppliance({ model: "rt-10" }));
    await noc.admin("PATCH", `/v1/admin/appliances/${fleet[0]!.uid}`, {
      site: "lab",
      tags: ["edge"],
    });
    await noc.admin("PATCH", `/v1/admin/appliances/${fleet[5]!.uid}`, {
      site: "lab",
      channel: "beta",
    });
    const revoked = await noc.admin("POST", `/v1/admin/appliances/${fleet[1]!.uid}/revoke`, {
      reason: "gone",
    });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.ok(lab);

    const sizes: Array<[Record<string, unknown>, number]> = [
      [{ type: "all" }, 7],
      [{ type: "model", value: "vs-2000" }, 4],
      [{ type: "model", value: "rt-10" }, 3],
      [{ type: "site", value: "lab" }, 2],
      [{ type: "channel", value: "beta" }, 1],
      [{ type: "channel", value: "stable" }, 6],
      [{ type: "tag", value: "edge" }, 1],
      [{ type: "appliance", value: fleet[2]!.uid }, 1],
    ];
    for (const [target, size] of sizes) {
      const r = await noc.admin("POST", "/v1/admin/assignments", {
        kind: "package",
        ...ref,
        target,
        rolloutPercent: 10,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.targetSize, size, JSON.stringify(target));
    }
    const list = (await noc.admin("GET", "/v1/admin/assignments")).body.items as Array<
      { target: { type: string; value?: string }; targetSize: number }
    >;
    assert.deepEqual(
      list.map((a) => [a.target.type, a.target.value ?? null, a.targetSize]).reverse(),
      sizes.map(([t, n]) => [t.type, t.value ?? null, n]),
    );

    const choices = (await noc.admin("GET", "/v1/admin/assignments/targets")).body;
    assert.equal(choices.all, 7);
    assert.deepEqual(choices.model, [
      { value: "vs-2000", appliances: 4 },
      { value: "rt-10", appliances: 3 },
    ]);
    assert.deepEqual(choices.site, [{ value: "lab", appliances: 2 }]);
    assert.deepEqual(choices.channel, [
      { value: "stable", appliances: 6 },
      { value: "beta", appliances: 1 },
    ]);
    assert.deepEqual(choices.tag, [{ value: "edge", appliances: 1 }]);
    // A site only a live enrolment token names is a choice with 0 appliances.
    await noc.enrollmentToken({ site: "sin-pop" });
    const more = (await noc.admin("GET", "/v1/admin/assignments/targets?limit=5")).body;
    assert.deepEqual(more.site, [
      { value: "lab", appliances: 2 },
      { value: "sin-pop", appliances: 0 },
    ]);
    assert.equal((await noc.admin("GET", "/v1/admin/assignments/targets?limit=0")).status, 400);
  },
);

dbTest(
  "the gate's minimum sample changes; failed appliances are listed by several states at once",
  async ({ db }) => {
    const noc = await testNoc(db);
    const fleet = [];
    for (let i = 0; i < 3; i++) fleet.push(await noc.enrollAppliance());
    const { assignmentId } = await publishAndAssign(noc, ref, undefined, { type: "all" }, {
      failureThresholdPercent: 50,
    });
    const patched = await noc.admin("PATCH", `/v1/admin/assignments/${assignmentId}`, {
      minSample: 12,
      failureThresholdPercent: 30,
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.minSample, 12);
    assert.equal(patched.body.failureThresholdPercent, 30);
    assert.equal(
      (await noc.admin("PATCH", `/v1/admin/assignments/${assignmentId}`, { minSample: 0 })).status,
      400,
    );
    for (const [i, a] of fleet.entries()) {
      const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
      const got = await noc.app.request(entry.urls[0]!.replace("http://", "https://"));
      assert.equal(got.status, 200);
      await got.body?.cancel();
      if (i === 2) continue;
      await signedCall(noc.send, {
        baseUrl: "http://noc.test",
        uid: a.uid,
        key: a.keys.signing,
        method: "POST",
        path: "/v1/installs",
        body: {
          results: [{
            kind: "package",
            ...ref,
            outcome: i === 0 ? "failed" : "installed",
            ...(i === 0 ? { message: "disk full" } : {}),
          }],
        },
        now: noc.clock.now(),
      });
    }
    const path = `/v1/admin/assignments/${assignmentId}/appliances`;
    const failing = await noc.admin("GET", `${path}?state=failed,reverted,other`);
    assert.equal(failing.status, 200, JSON.stringify(failing.body));
    assert.deepEqual(
      failing.body.items.map((x: { uid: string; outcome: { message: string } }) => [
        x.uid,
        x.outcome.message,
      ]),
      [[fleet[0]!.uid, "disk full"]],
    );
    const two = await noc.admin("GET", `${path}?state=failed,pending`);
    assert.equal(two.body.items.length, 2);
    assert.equal((await noc.admin("GET", `${path}?state=failed,bogus`)).status, 400);
  },
);

dbTest(
  "deleting an assignment removes it alone: history stays, catalogs stop listing it, then 404",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const v1 = await publishAndAssign(noc, ref);
    const v2 = await publishAndAssign(noc, { ...ref, version: "2.0.0" });
    const entry = (await fetchCatalog(noc, a)).doc!.components[0]!;
    assert.equal(entry.version, "2.0.0");
    const got = await noc.app.request(entry.urls[0]!.replace("http://", "https://"));
    await got.body?.cancel();
    const deliveries = async () =>
      (await db.sql<{ n: number }>`select count(*)::int as n from deliveries`)[0]!.n;
    assert.equal(await deliveries(), 1);

    const gone = await noc.admin("DELETE", `/v1/admin/assignments/${v2.assignmentId}`);
    assert.equal(gone.status, 204);
    // The assignment that remains decides: the appliance is given 1.0.0 again.
    assert.deepEqual(
      (await fetchCatalog(noc, a)).doc!.components.map((c) => c.version),
      ["1.0.0"],
    );
    // Its delivery record of 2.0.0 stays: the appliance's history.
    assert.equal(await deliveries(), 1);
    assert.equal(
      (await noc.admin("DELETE", `/v1/admin/assignments/${v2.assignmentId}`)).status,
      404,
    );
    assert.equal(
      (await noc.admin("DELETE", `/v1/admin/assignments/${v1.assignmentId}`)).status,
      204,
    );
    assert.deepEqual((await fetchCatalog(noc, a)).doc!.components, []);
    assert.equal((await noc.admin("GET", "/v1/admin/assignments")).body.items.length, 0);
  },
);
