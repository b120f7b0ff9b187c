import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { payload, publishAndAssign, upload } from "./_components.ts";

async function tableCounts(
  db: Parameters<Parameters<typeof dbTest>[1]>[0]["db"],
): Promise<Record<string, number>> {
  const [r] = await db.sql<Record<string, number>>`
    select (select count(*)::int from components) as components, (select count(*)::int from blobs) as blobs,
      (select count(*)::int from assignments) as assignments, (select count(*)::int from fileinfo) as fileinfo,
      (select count(*)::int from release_keys) as release_keys, (select count(*)::int from holds) as holds,
      (select count(*)::int from install_outcomes) as install_outcomes,
      (select count(*)::int from deliveries) as deliveries`;
  return r!;
}

dbTest(
  "every component, release and fileinfo admin route answers bad input with a 4xx and writes nothing",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" });
    const before = await tableCounts(db);
    const cases: Array<[string, string, unknown, number, string]> = [
      [
        "POST",
        "/v1/admin/assignments",
        { kind: "package", app: "app", name: "pkg", version: "9", target: { type: "all" } },
        404,
        "not published",
      ],
      [
        "POST",
        "/v1/admin/assignments",
        { kind: "package", app: "app", name: "pkg", version: "1", target: { type: "planet" } },
        400,
        "target",
      ],
      [
        "POST",
        "/v1/admin/assignments",
        { kind: "package", app: "app", name: "pkg", version: "1", target: { type: "site" } },
        400,
        "target",
      ],
      [
        "POST",
        "/v1/admin/assignments",
        {
          kind: "package",
          app: "app",
          name: "pkg",
          version: "1",
          target: { type: "all" },
          rolloutPercent: 101,
        },
        400,
        "rolloutPercent",
      ],
      [
        "POST",
        "/v1/admin/assignments",
        { kind: "rpm", app: "app", name: "pkg", version: "1", target: { type: "all" } },
        400,
        "kind",
      ],
      ["PATCH", "/v1/admin/assignments/1", {}, 400, "at least one"],
      ["PATCH", "/v1/admin/assignments/999", { paused: true }, 404, "999"],
      ["DELETE", "/v1/admin/assignments/999", undefined, 404, "999"],
      ["GET", "/v1/admin/assignments?app=../x", undefined, 400, "app"],
      ["POST", "/v1/admin/holds", { uid: crypto.randomUUID(), reason: "x" }, 404, "does not exist"],
      ["POST", "/v1/admin/holds", { uid: a.uid }, 400, "reason"],
      ["DELETE", "/v1/admin/holds/5", undefined, 404, "5"],
      [
        "PUT",
        "/v1/admin/apps/app/fileinfo/f",
        { destination: "../etc/passwd", mode: "0644" },
        400,
        "destination",
      ],
      [
        "PUT",
        "/v1/admin/apps/app/fileinfo/f",
        { destination: "/etc/passwd", mode: "0644" },
        400,
        "destination",
      ],
      [
        "PUT",
        "/v1/admin/apps/app/fileinfo/f",
        { destination: "a//b", mode: "0644" },
        400,
        "destination",
      ],
      ["PUT", "/v1/admin/apps/app/fileinfo/f", { destination: "etc/f", mode: "rwx" }, 400, "mode"],
      [
        "PUT",
        "/v1/admin/apps/app/fileinfo/f",
        { destination: "etc/f", mode: "0644", action: "reboot" },
        400,
        "action",
      ],
      [
        "PUT",
        "/v1/admin/apps/..%2Fx/fileinfo/f",
        { destination: "etc/f", mode: "0644" },
        400,
        "app",
      ],
      ["DELETE", "/v1/admin/apps/app/fileinfo/none", undefined, 404, "none"],
      [
        "POST",
        "/v1/admin/release-keys",
        { publicKey: "A".repeat(43), label: "x" },
        400,
        "publicKey",
      ],
      [
        "POST",
        "/v1/admin/release-keys",
        { publicKey: noc.deps.keys.published[0]!.publicKey, label: "x" },
        409,
        "NOC's own",
      ],
      ["POST", "/v1/admin/release-keys", { label: "x" }, 400, "publicKey"],
      ["DELETE", "/v1/admin/release-keys/0123456789abcdef", undefined, 404, "0123456789abcdef"],
      ["GET", "/v1/admin/components?kind=rpm", undefined, 400, "kind"],
      ["GET", "/v1/admin/components/77", undefined, 404, "77"],
      [
        "GET",
        `/v1/admin/appliances/${crypto.randomUUID()}/configuration`,
        undefined,
        404,
        "does not exist",
      ],
    ];
    for (const [method, path, body, status, mention] of cases) {
      const r = await noc.admin(method, path, body);
      assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.ok(
        JSON.stringify(r.body).includes(mention),
        `${method} ${path} mentions ${mention}: ${JSON.stringify(r.body)}`,
      );
    }
    const uploads: Array<
      [string, Uint8Array<ArrayBuffer>, string, Record<string, string>, number, string]
    > = [
      [
        "/v1/admin/packages?app=app&name=pkg",
        await payload({ install: "x" }),
        "application/gzip",
        {},
        400,
        "version",
      ],
      [
        "/v1/admin/packages?app=a&name=b&version=1",
        new Uint8Array(10),
        "text/plain",
        {},
        415,
        "Content-Type",
      ],
      [
        "/v1/admin/packages",
        new Uint8Array(100),
        "application/vnd.noc-package",
        {},
        400,
        "X-NOC-Wrapped-Key",
      ],
      [
        "/v1/admin/packages",
        new Uint8Array(100),
        "application/vnd.noc-package",
        { "x-noc-wrapped-key": "A".repeat(107) },
        400,
        "NOCPKG1",
      ],
      [
        "/v1/admin/files?app=a&name=b&version=..",
        new Uint8Array(1),
        "application/octet-stream",
        {},
        400,
        "version",
      ],
      [
        "/v1/admin/files?app=a&name=b",
        new Uint8Array(1),
        "application/octet-stream",
        {},
        400,
        "version",
      ],
    ];
    for (const [path, body, type, headers, status, mention] of uploads) {
      const r = await upload(noc, path, body, type, headers);
      assert.equal(r.status, status, `${path}: ${JSON.stringify(r.body)}`);
      assert.ok(
        JSON.stringify(r.body).includes(mention),
        `${path} mentions ${mention}: ${JSON.stringify(r.body)}`,
      );
    }
    const small = await testNoc(db, { settings: { maxUploadBytes: 2048 } });
    const big = await upload(
      small,
      "/v1/admin/files?app=a&name=big&version=1",
      new Uint8Array(5000),
      "application/octet-stream",
    );
    assert.equal(big.status, 413);
    assert.deepEqual(await tableCounts(db), before);
  },
);

dbTest(
  "appliance catalog, download and install routes answer bad input with a 4xx and write nothing",
  async ({ db }) => {
    const noc = await testNoc(db);
    const a = await noc.enrollAppliance();
    const { componentId } = await publishAndAssign(noc, { app: "app", name: "pkg", version: "1" });
    const before = await tableCounts(db);
    const send = async (req: Request) => {
      const res = await noc.app.request(req);
      return { status: res.status, body: await res.json() };
    };
    const installs: Array<[unknown, string]> = [
      [{ results: [] }, "results"],
      [
        { results: [{ kind: "package", app: "app", name: "pkg", version: "1", outcome: "meh" }] },
        "outcome",
      ],
      [{
        results: [{
          kind: "package",
          app: "app",
          name: "pkg",
          version: "1",
          outcome: "failed",
          message: "\u0000",
        }],
      }, "message"],
      [{ results: "all good" }, "results"],
    ];
    for (const [body, field] of installs) {
      const r = await send(await a.request("POST", "/v1/installs", body));
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.ok(JSON.stringify(r.body).includes(field), JSON.stringify(r.body));
    }
    assert.equal(
      (await send(new Request("https://noc.test/v1/catalog"))).status,
      401,
      "an unsigned catalog request",
    );
    assert.equal(
      (await send(new Request(`https://noc.test/v1/components/${componentId}`))).status,
      401,
      "no grant, no signature",
    );
    for (
      const [path, status] of [["/v1/components/abc", 400], ["/v1/components/0", 400], [
        `/v1/components/${componentId}?grant=x.y`,
        403,
      ], [`/v1/components/${componentId}?grant=`, 403]] as const
    ) {
      const r = await send(new Request(`https://noc.test${path}`));
      assert.equal(r.status, status, `${path}: ${JSON.stringify(r.body)}`);
    }
    // Signed, no grant: a component outside the appliance's catalog, existing or not, is refused.
    const missing = await send(await a.request("GET", "/v1/components/424242"));
    assert.equal(missing.status, 403);
    assert.equal(missing.body.error, "not_in_catalog");
    assert.deepEqual(await tableCounts(db), before);
  },
);
