// deno-lint-ignore-file no-explicit-any
/**
 * Issue 16, items 1–4, as an attacker tries them: real agent processes, a NOC over real HTTP
 * (PGlite and PostgreSQL) and a real local component server process. The attacker holds an
 * appliance's or a local server's own key (read from its data folder) and signs what it likes.
 *
 * 1. An appliance downloads only what its catalog lists; a hold then pins nothing else.
 * 2. A local server's records cannot steer a catalog or grow its own stage.
 * 4. A revoked appliance's grant stops working at the local server within one sync.
 * And a compromised local server cannot roll a held appliance back.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { type AgentBox, agentBox, type ServedNoc, serveNoc } from "./_agent.ts";
import { payload, upload } from "./_components.ts";
import { type LocalProcess, startLocal } from "./_local.ts";
import { signedRequest, signingKeyFromSeed } from "../protocol/client.ts";
import { exportRawPublic, generateEd25519 } from "../protocol/crypto/ed25519.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";

const installScript = (marker: string) =>
  `#!/bin/sh
set -e
mkdir -p "$NOC_ROOT/${marker}"
printf '%s' "$NOC_VERSION" > "$NOC_ROOT/${marker}/version"
`;

/** Publishes package `app`/`name`@`version` and assigns it to `target` (with `extra`). */
async function publishPackage(
  noc: ServedNoc,
  ref: { app: string; name: string; version: string },
  target: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<number> {
  const up = await upload(
    noc,
    `/v1/admin/packages?app=${ref.app}&name=${ref.name}&version=${ref.version}`,
    await payload({ install: installScript(ref.app) }),
    "application/gzip",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const { paused, ...rest } = extra;
  const as = await noc.admin("POST", "/v1/admin/assignments", {
    kind: "package",
    ...ref,
    target,
    allowUnknownTarget: true, // assigned before the site's appliances enrol
    ...rest,
  });
  assert.equal(as.status, 201, JSON.stringify(as.body));
  if (paused) {
    const p = await noc.admin("PATCH", `/v1/admin/assignments/${as.body.id}`, { paused: true });
    assert.equal(p.status, 200, JSON.stringify(p.body));
  }
  return up.body.id;
}

/** The components of the signed catalog an agent last accepted, as `app/name@version`. */
async function catalogOf(box: AgentBox): Promise<string[]> {
  const stored = JSON.parse(await Deno.readTextFile(`${box.state}/catalog.json`));
  return JSON.parse(stored.catalog).components.map((c: any) => `${c.app}/${c.name}@${c.version}`);
}

/** Publishes file `app`/`name`@1 with fileinfo (an action leaving a mark) and assigns it to `target`. */
async function publishFile(
  noc: ServedNoc,
  app: string,
  name: string,
  text: string,
  target: Record<string, unknown>,
): Promise<number> {
  const up = await upload(
    noc,
    `/v1/admin/files?app=${app}&name=${name}&version=1`,
    new TextEncoder().encode(text),
    "application/octet-stream",
  );
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const fi = await noc.admin("PUT", `/v1/admin/apps/${app}/fileinfo/${name}`, {
    destination: `etc/${app}/${name}`,
    mode: "0644",
    action: ["/bin/sh", "-c", `echo ran >> "$NOC_ROOT/etc/${app}.actions"`],
  });
  assert.equal(fi.status, 200, JSON.stringify(fi.body));
  const as = await noc.admin("POST", "/v1/admin/assignments", {
    kind: "file",
    app,
    name,
    version: "1",
    target,
    allowUnknownTarget: true, // assigned before the site's appliances enrol
  });
  assert.equal(as.status, 201, JSON.stringify(as.body));
  return up.body.id;
}

/** A real agent enrolled in `site` (trusting `local`'s certificate when given). */
async function agentIn(noc: ServedNoc, site: string, local?: LocalProcess): Promise<AgentBox> {
  const box = await agentBox();
  if (local) await Deno.writeTextFile(`${box.state}/ca.pem`, local.certPem);
  const token = await noc.enrollmentToken({ site });
  const r = await box.run(["enroll", "--noc", noc.url, "--token", token, "--model", "vs-2000"]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return box;
}

/** Signs requests with the key an agent or a local server keeps in its data folder. */
async function keyOf(dir: string): Promise<
  { id: string; sign(method: string, url: string, body?: unknown): Promise<Request> }
> {
  const identity = JSON.parse(await Deno.readTextFile(`${dir}/identity.json`));
  const id: string = identity.uid ?? identity.id;
  const key = await signingKeyFromSeed(identity.signingSeed);
  return {
    id,
    sign: (method, url, body) => {
      const u = new URL(url);
      return signedRequest({
        baseUrl: u.origin,
        uid: id,
        key,
        method,
        path: u.pathname + u.search,
        ...(body === undefined ? {} : { body }),
      });
    },
  };
}

/** Waits (polling, bounded) until `check` holds. */
async function until<T>(
  what: string,
  check: () => Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits for a sync of `local` that started after this call. */
async function nextSync(local: LocalProcess): Promise<void> {
  const before = (await local.health() as any).lastSyncAt;
  await until("a sync", async () => (await local.health() as any).lastSyncAt !== before);
  const after = (await local.health() as any).lastSyncAt;
  await until("a whole sync after", async () => (await local.health() as any).lastSyncAt !== after);
}

async function localFor(noc: ServedNoc, site: string): Promise<LocalProcess> {
  return await startLocal({
    dataDir: await Deno.makeTempDir({ prefix: "noc-local-" }),
    args: [
      "--upstream",
      noc.url,
      "--allow-http-upstream",
      "true",
      "--site",
      site,
      "--token",
      await noc.enrollmentToken({ purpose: "local-server", site }),
      "--sync",
      "1",
    ],
  });
}

const once = ["once", "--allow-http-files"];

dbTest(
  "an appliance cannot download a component outside its catalog, and a hold then pins none of it",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const boxes: AgentBox[] = [];
    try {
      const pkg = await publishPackage(
        noc,
        { app: "secret", name: "engine", version: "1.0.0" },
        { type: "site", value: "a" },
      );
      const file = await publishFile(noc, "secret", "rules", "site a only\n", {
        type: "site",
        value: "a",
      });
      const a = await agentIn(noc, "a");
      const b = await agentIn(noc, "b");
      boxes.push(a, b);
      // Appliance A, in site a, is given both.
      const ra = await a.run(once);
      assert.equal(ra.code, 0, ra.stdout + ra.stderr);
      assert.equal(await a.readRoot("secret/version"), "1.0.0");
      assert.equal(await a.readRoot("etc/secret/rules"), "site a only\n");
      // Appliance B, in site b, has nothing assigned: an empty catalog.
      const rb = await b.run(once);
      assert.equal(rb.code, 0, rb.stdout + rb.stderr);
      assert.deepEqual(await catalogOf(b), []);

      // B's key, no grant: signed GET and HEAD of site a's package and file are refused.
      const bKey = await keyOf(b.state);
      for (const id of [pkg, file]) {
        for (const method of ["GET", "HEAD"]) {
          const res = await fetch(await bKey.sign(method, `${noc.url}/v1/components/${id}`));
          assert.equal(res.status, 403, `${method} ${id}`);
          if (method === "GET") {
            assert.match(res.headers.get("content-type") ?? "", /application\/json/);
            const body = await res.json();
            assert.equal(body.error, "not_in_catalog");
            assert.match(body.message, new RegExp(`Component ${id} is not in the catalog`));
          } else await res.body?.cancel();
        }
      }
      const recorded = await db.sql`select 1 from deliveries where uid = ${bKey.id}`;
      assert.equal(recorded.length, 0, "nothing recorded for B");

      // The operator holds B: its next catalog pins nothing it was not given, and wraps no key.
      const hold = await noc.admin("POST", "/v1/admin/holds", { uid: bKey.id, reason: "freeze" });
      assert.equal(hold.status, 201, JSON.stringify(hold.body));
      const held = await b.run(once);
      assert.equal(held.code, 0, held.stdout + held.stderr);
      assert.deepEqual(await catalogOf(b), []);
      assert.equal(await b.readRoot("secret/version"), null);
      assert.equal(await b.readRoot("etc/secret/rules"), null);
      assert.equal(await b.readRoot("etc/secret.actions"), null, "no action of site a ran on B");
      const wrapped = await db.sql`select 1 from wrapped_keys where uid = ${bKey.id}`;
      assert.equal(wrapped.length, 0, "no content key wrapped to B");

      // A's own signed, grant-less download of what its catalog lists still works.
      const aKey = await keyOf(a.state);
      const own = await fetch(await aKey.sign("GET", `${noc.url}/v1/components/${pkg}`));
      assert.equal(own.status, 200);
      await own.body?.cancel();
    } finally {
      for (const box of boxes) await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "a local server's forged records do not put a paused or another site's component in a catalog or its stage",
  async ({ db }) => {
    const noc = await serveNoc(db);
    let local: LocalProcess | null = null;
    let box: AgentBox | null = null;
    try {
      await publishPackage(
        noc,
        { app: "demo", name: "demo", version: "1.0.0" },
        { type: "site", value: "lab" },
      );
      // Version 2 is released to the lab at 0 %, paused: no appliance of the lab may get it.
      const paused = await publishPackage(
        noc,
        { app: "demo", name: "demo", version: "2.0.0" },
        { type: "site", value: "lab" },
        { rolloutPercent: 0, paused: true },
      );
      // And another site's file, never for the lab.
      const elsewhere = await publishFile(noc, "hq", "motd", "hq only\n", {
        type: "site",
        value: "hq",
      });
      local = await localFor(noc, "lab");
      box = await agentIn(noc, "lab", local);
      await nextSync(local);
      const first = await box.run(once);
      assert.equal(first.code, 0, first.stdout + first.stderr);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      const uid = (await keyOf(box.state)).id;
      // Its honest record (served by the local server, or by the NOC) is in.
      await until(
        "the download record",
        async () => (await db.sql`select 1 from deliveries where uid = ${uid}`).length === 1,
      );

      // The local server's own key signs records of what it never served.
      const server = await keyOf(local.dataDir);
      const at = new Date().toISOString();
      const res = await fetch(
        await server.sign("POST", `${noc.url}/v1/local/deliveries`, {
          epoch: crypto.randomUUID(),
          records: [
            { seq: 1, uid, componentId: paused, at },
            { seq: 2, uid, componentId: elsewhere, at },
          ],
        }),
      );
      assert.equal(res.status, 200);
      const answer = await res.json();
      assert.equal(answer.applied, 0);
      assert.deepEqual(answer.refusedRecords, [
        { seq: 1, uid, componentId: paused, reason: "not_in_catalog" },
        { seq: 2, uid, componentId: elsewhere, reason: "not_in_catalog" },
      ]);
      const recorded = await db.sql<{ component_id: number }>`
        select component_id from deliveries where uid = ${uid} order by component_id`;
      assert.ok(
        recorded.every((r) => r.component_id !== paused && r.component_id !== elsewhere),
        JSON.stringify(recorded),
      );
      // Records that got in before this defence (written straight into the table) change nothing
      // either: the engine counts a record only for what a catalog of the NOC's listed.
      await db.sql`
        insert into deliveries (uid, component_id, first_sent_at, last_sent_at)
        select ${uid}, id, ${noc.clock.now()}, ${noc.clock.now()} from components
        where id = any(${[paused, elsewhere]}::bigint[])`;

      // Not paused any more, but at 0 %: a record still does not put it in the catalog.
      const [v2] = await db.sql<{ id: number }>`
        select id from assignments where version = '2.0.0'`;
      await noc.admin("PATCH", `/v1/admin/assignments/${v2!.id}`, { paused: false });
      assert.equal((await box.run(once)).code, 0);
      assert.deepEqual(await catalogOf(box), ["demo/demo@1.0.0"]);
      await noc.admin("PATCH", `/v1/admin/assignments/${v2!.id}`, { paused: true });

      // The next catalog still holds version 1; held, the appliance is pinned to 1 alone.
      await noc.admin("POST", "/v1/admin/holds", { uid, reason: "freeze" });
      const next = await box.run(once);
      assert.equal(next.code, 0, next.stdout + next.stderr);
      assert.deepEqual(await catalogOf(box), ["demo/demo@1.0.0"]);
      assert.equal(await box.readRoot("demo/version"), "1.0.0");
      assert.equal(await box.readRoot("etc/hq/motd"), null);

      // Nor does the stage grow: after a sync the local server has fetched neither, and may not.
      await nextSync(local);
      const fetched = await db.sql<{ component_id: number }>`
        select component_id from local_server_fetches`;
      assert.ok(
        fetched.every((f) => f.component_id !== paused && f.component_id !== elsewhere),
        JSON.stringify(fetched),
      );
      for (const id of [paused, elsewhere]) {
        const get = await fetch(await server.sign("GET", `${noc.url}/v1/local/components/${id}`));
        assert.equal(get.status, 403, `component ${id}`);
        assert.equal((await get.json()).error, "not_staged");
      }
    } finally {
      await box?.remove();
      await local?.stop();
      await noc.close();
    }
  },
);

dbTest(
  "a revoked appliance's grant is refused by the local server after one sync, even across a restart",
  async ({ db }) => {
    const noc = await serveNoc(db);
    let local: LocalProcess | null = null;
    const boxes: AgentBox[] = [];
    try {
      await publishPackage(
        noc,
        { app: "demo", name: "demo", version: "1.0.0" },
        { type: "site", value: "lab" },
      );
      local = await localFor(noc, "lab");
      const revoked = await agentIn(noc, "lab", local);
      const kept = await agentIn(noc, "lab", local);
      boxes.push(revoked, kept);
      await until("staging", async () => (await local!.health() as any).cache.entries === 1);
      // Each appliance's catalog lists the local server first, with a grant valid for a day.
      const urlOf = async (box: AgentBox) => {
        assert.equal((await box.run(once)).code, 0);
        const catalog = JSON.parse(
          JSON.parse(await Deno.readTextFile(`${box.state}/catalog.json`)).catalog,
        );
        const url: string = catalog.components[0].urls[0];
        assert.ok(url.startsWith(`${local!.url}/`), url);
        return url;
      };
      const [stolen, honest] = [await urlOf(revoked), await urlOf(kept)];
      for (const url of [stolen!, honest!]) {
        const ok: Response = await local.fetch(url);
        assert.equal(ok.status, 200);
        await ok.body?.cancel();
      }

      const uid = (await keyOf(revoked.state)).id;
      const r = await noc.admin("POST", `/v1/admin/appliances/${uid}/revoke`, {
        reason: "stolen",
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      // The NOC refuses the revoked appliance's grant at once; the local server after one sync.
      const atNoc = await fetch(stolen!.replace(local.url, noc.url));
      assert.equal(atNoc.status, 404);
      await atNoc.body?.cancel();
      await nextSync(local);
      const refused: Response = await local.fetch(stolen!);
      assert.equal(refused.status, 403);
      const body = await refused.json();
      assert.equal(body.error, "revoked_appliance");
      assert.match(body.message, new RegExp(uid));
      const still: Response = await local.fetch(honest!);
      assert.equal(still.status, 200, "the other appliance is still served");
      await still.body?.cancel();

      // Restarted while the NOC is down, the local server still refuses it.
      const dataDir = local.dataDir;
      await local.stop();
      await noc.stop();
      local = await startLocal({ dataDir, args: ["--allow-http-upstream", "true"] });
      const again: Response = await local.fetch(stolen!.replace(/^https:\/\/[^/]+/, local.url));
      assert.equal(again.status, 403);
      assert.equal((await again.json()).error, "revoked_appliance");
    } finally {
      for (const box of boxes) await box.remove();
      await local?.stop();
      await noc.close();
    }
  },
);

dbTest(
  "a compromised local server cannot roll a held appliance back with records and URL changes",
  async ({ db }) => {
    const noc = await serveNoc(db);
    let box: AgentBox | null = null;
    try {
      const target = { type: "site", value: "lab" };
      const v1 = await publishPackage(noc, { app: "core", name: "core", version: "1.0.0" }, target);
      box = await agentIn(noc, "lab");
      assert.equal((await box.run(once)).code, 0);
      assert.equal(await box.readRoot("core/version"), "1.0.0");
      await publishPackage(noc, { app: "core", name: "core", version: "2.0.0" }, target);
      assert.equal((await box.run(once)).code, 0);
      assert.equal(await box.readRoot("core/version"), "2.0.0");
      const uid = (await keyOf(box.state)).id;
      const hold = await noc.admin("POST", "/v1/admin/holds", {
        uid,
        app: "core",
        reason: "freeze",
      });
      assert.equal(hold.status, 201, JSON.stringify(hold.body));

      // A minute later, the attacker enrols (or stole) the site's local server key, and signs what
      // it likes: a record of 1.0.0 (dated a day ahead), then URL changes.
      noc.clock.advance(60);
      {
        const pair = await generateEd25519();
        const res = await fetch(`${noc.url}/v1/local/enroll`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            token: await noc.enrollmentToken({ purpose: "local-server", site: "lab" }),
            name: "evil",
            url: "https://ls0.example",
            signingKey: toBase64Url(await exportRawPublic(pair.publicKey)),
          }),
        });
        const enrolled = await res.json();
        assert.equal(res.status, 201, JSON.stringify(enrolled));
        const sign = (method: string, path: string, body?: unknown) =>
          signedRequest({
            baseUrl: noc.url,
            uid: enrolled.id,
            key: pair.privateKey,
            method,
            path,
            now: noc.clock.now(),
            ...(body === undefined ? {} : { body }),
          });
        const rec = await fetch(
          await sign("POST", "/v1/local/deliveries", {
            epoch: crypto.randomUUID(),
            records: [{
              seq: 1,
              uid,
              componentId: v1,
              at: new Date(noc.clock.now().getTime() + 86400e3).toISOString(),
            }],
          }),
        );
        assert.equal(rec.status, 200);
        await rec.body?.cancel();
        for (let i = 0; i < 4; i++) {
          const s = await fetch(
            await sign("POST", "/v1/local/sync", {
              url: `https://ls${(i + 1) % 2}.example`,
              version: "evil",
              cache: { bytes: 0, limit: 0, entries: 0 },
              hits: 0,
              misses: 0,
              servedBytes: 0,
              pendingRecords: 0,
              problems: [],
            }),
          );
          assert.equal(s.status, 200);
          await s.body?.cancel();
        }
      }
      // The appliance's next catalog still pins 2.0.0, and it stays there.
      const next = await box.run(once);
      assert.equal(next.code, 0, next.stdout + next.stderr);
      assert.deepEqual(await catalogOf(box), ["core/core@2.0.0"]);
      assert.equal(await box.readRoot("core/version"), "2.0.0");
    } finally {
      await box?.remove();
      await noc.close();
    }
  },
);
