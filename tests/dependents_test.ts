// deno-lint-ignore-file no-explicit-any
/**
 * Issue 22 item 3: deleting what live assignments depend on is refused with 409 `in_use` naming
 * them (noc/services/dependents.ts), or, for a release key retired by force, answered with what
 * stops installing. Through the admin API, on PGlite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { assignToAll, payload, signedPackage, upload, uploadSigned } from "./_components.ts";
import { newSeed } from "../protocol/keys.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";

dbTest(
  "deleting the fileinfo of an assigned file is refused 409 in_use naming the assignment",
  async ({ db }) => {
    const noc = await testNoc(db);
    try {
      const up = await upload(
        noc,
        "/v1/admin/files?app=vscreen&name=rules.conf&version=7",
        new TextEncoder().encode("rules\n"),
        "application/octet-stream",
      );
      assert.equal(up.status, 201, JSON.stringify(up.body));
      const fi = await noc.admin("PUT", "/v1/admin/apps/vscreen/fileinfo/rules.conf", {
        destination: "etc/vscreen/rules.conf",
        mode: "0640",
        action: ["systemctl", "reload", "vscreen"],
      });
      assert.equal(fi.status, 200, JSON.stringify(fi.body));
      const id = await assignToAll(noc, "file", {
        app: "vscreen",
        name: "rules.conf",
        version: "7",
      });

      const refused = await noc.admin("DELETE", "/v1/admin/apps/vscreen/fileinfo/rules.conf");
      assert.equal(refused.status, 409, JSON.stringify(refused.body));
      assert.equal(refused.body.error, "in_use");
      assert.match(refused.body.message, /used by 1 assignment \(the first: #\d+, file vscreen/);
      assert.deepEqual(refused.body.dependents, [{
        assignmentId: id,
        kind: "file",
        app: "vscreen",
        name: "rules.conf",
        version: "7",
        target: "all",
        rolloutId: null,
      }]);
      assert.equal(refused.body.more, 0);
      // Nothing changed: the fileinfo is still there, and catalogs still carry it.
      const list = await noc.admin("GET", "/v1/admin/apps/vscreen/fileinfo");
      assert.deepEqual(list.body.items.map((f: any) => f.name), ["rules.conf"]);

      // Another app's file of the same name is not a dependent; once the assignment is gone, the
      // fileinfo may go.
      assert.equal((await noc.admin("DELETE", `/v1/admin/assignments/${id}`)).status, 204);
      const gone = await noc.admin("DELETE", "/v1/admin/apps/vscreen/fileinfo/rules.conf");
      assert.equal(gone.status, 204, JSON.stringify(gone.body));
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);

dbTest(
  "retiring a release key that signed an assigned package is refused, and forced names them",
  async ({ db }) => {
    const noc = await testNoc(db);
    try {
      const release = await nocKeysFromSeed(newSeed());
      const reg = await noc.admin("POST", "/v1/admin/release-keys", {
        publicKey: release.published[0]!.publicKey,
        label: "release team",
      });
      assert.equal(reg.status, 201, JSON.stringify(reg.body));
      const kid = reg.body.kid;
      assert.equal(kid, release.kid);
      const ref = { app: "vscreen", name: "engine", version: "4.3.0" };
      const pkg = await signedPackage(
        noc,
        ref,
        await payload({ install: "#!/bin/sh\nexit 0\n" }),
        release,
      );
      const up = await uploadSigned(noc, pkg);
      assert.equal(up.status, 201, JSON.stringify(up.body));
      await noc.enrollAppliance({ token: await noc.enrollmentToken({ site: "lab" }) });
      const lab = await noc.admin("POST", "/v1/admin/assignments", {
        kind: "package",
        ...ref,
        target: { type: "site", value: "lab" },
      });
      assert.equal(lab.status, 201, JSON.stringify(lab.body));
      const ids = [lab.body.id, await assignToAll(noc, "package", ref)];
      // A key no assignment needs retires as before.
      const idle = await nocKeysFromSeed(newSeed());
      const other = await noc.admin("POST", "/v1/admin/release-keys", {
        publicKey: idle.published[0]!.publicKey,
        label: "spare",
      });
      assert.equal(other.status, 201);
      assert.equal((await noc.admin("DELETE", `/v1/admin/release-keys/${idle.kid}`)).status, 204);

      const refused = await noc.admin("DELETE", `/v1/admin/release-keys/${kid}`);
      assert.equal(refused.status, 409, JSON.stringify(refused.body));
      assert.equal(refused.body.error, "in_use");
      assert.match(refused.body.message, /used by 2 assignments/);
      assert.match(refused.body.message, /\?force=true/);
      assert.deepEqual(refused.body.dependents.map((d: any) => [d.assignmentId, d.target]), [
        [ids[0], "site:lab"],
        [ids[1], "all"],
      ]);
      const keys = await noc.admin("GET", "/v1/admin/release-keys");
      const still = keys.body.items.find((k: any) => k.kid === kid);
      assert.equal(still.notAfter, null, "not retired");
      const bad = await noc.admin("DELETE", `/v1/admin/release-keys/${kid}?force=yes`);
      assert.equal(bad.status, 400, JSON.stringify(bad.body));

      const forced = await noc.admin("DELETE", `/v1/admin/release-keys/${kid}?force=true`);
      assert.equal(forced.status, 200, JSON.stringify(forced.body));
      assert.equal(forced.body.retired, true);
      assert.deepEqual(forced.body.dependents.map((d: any) => d.assignmentId), ids);
      const after = await noc.admin("GET", "/v1/admin/release-keys");
      assert.notEqual(after.body.items.find((k: any) => k.kid === kid).notAfter, null);
    } finally {
      await noc.deps.wakeups.close();
    }
  },
);
