/**
 * The Releases page for a viewer: the rollouts, their target sizes and the failures drill-down are
 * there, the controls the admin API would refuse them (publish, assign, Save, Pause rollout,
 * Delete, hold) are not; and a viewer's posted assignment is refused for their role, changing
 * nothing.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { signIn } from "./_console.ts";
import { publishAndAssign } from "./_components.ts";

dbTest(
  "a viewer sees the releases and their target sizes without the controls; a viewer's assign is refused",
  async ({ db }) => {
    const noc = await testNoc(db);
    for (let i = 0; i < 3; i++) await noc.enrollAppliance({ model: "vs-2000" });
    const { assignmentId } = await publishAndAssign(
      noc,
      { app: "demo", name: "demo", version: "1.0.0" },
      undefined,
      { type: "model", value: "vs-2000" },
      { rolloutPercent: 50 },
    );
    const made = await noc.admin("POST", "/v1/admin/operators", {
      name: "vera",
      role: "viewer",
      password: "a long enough password",
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const issued = await noc.admin("POST", "/v1/admin/operators/vera/tokens", { label: "t" });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));

    const admin = await signIn(noc);
    const adminPage = await (await admin.get("/ui/releases")).text();
    assert.match(adminPage, /50 % of 3 vs-2000 ≈ 2/);
    assert.match(adminPage, /Pause rollout/);
    assert.match(
      adminPage,
      /<form method="post" action="\/ui\/releases\/assign" class="panel" id="assign">/,
    );

    const viewer = await signIn({ ...noc, adminToken: issued.body.token });
    const page = await (await viewer.get("/ui/releases")).text();
    assert.match(page, /50 % of 3 vs-2000 ≈ 2/);
    for (const control of ["Pause rollout", ">Save<", ">Delete<", ">Release<"]) {
      assert.ok(!page.includes(control), `a viewer is not offered ${control}`);
    }
    assert.match(page, /<form hidden="" method="post" action="\/ui\/releases\/publish"/);
    assert.match(page, /action="\/ui\/releases\/assign" class="panel" id="assign" hidden=""/);
    const drill = await viewer.get(`/ui/releases/assignments/${assignmentId}/appliances`);
    assert.equal(drill.status, 200);
    await drill.body?.cancel();

    // The console refuses what the page does not offer, for the role, before reading the form.
    const refusal = await noc.app.request("http://noc.test/ui/releases/assign", {
      method: "POST",
      headers: { cookie: viewer.session, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        _csrf: viewer.csrf,
        _form: "assign",
        component: "package/demo/demo/1.0.0",
        target: "all",
      }),
    });
    assert.equal(refusal.status, 403);
    assert.match(await refusal.text(), /needs the operator role; vera has the viewer role/);
    assert.equal((await noc.admin("GET", "/v1/admin/assignments")).body.items.length, 1);
  },
);
