/**
 * Real agents against a NOC whose signing key is stolen (issue 16, key review F1 and F2): the
 * thief sets the key list the NOC publishes and signs catalogs with the key it holds. What the
 * agent pins can only shrink, so neither attack gets through.
 */
// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { agentBox, type ServedNoc, serveNoc } from "./_agent.ts";
import { payload, upload } from "./_components.ts";
import {
  type KeyStatement,
  type KeyStatementEnvelope,
  newSeed,
  type PublishedKey,
  signKeyStatement,
} from "../protocol/keys.ts";
import { type NocKeys, nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { contentKeyCache } from "../noc/services/publishing.ts";
import { bumpCatalogEpoch } from "../noc/services/catalogs.ts";
import { endorseKey, MAX_PINNED_KEYS } from "../protocol/release_keys.ts";

const once = ["once", "--allow-http-files"];

async function pins(state: string): Promise<string[]> {
  const identity = JSON.parse(await Deno.readTextFile(`${state}/identity.json`));
  return identity.pinnedKeys.map((k: PublishedKey) => `${k.kid}:${k.use.join("+")}`);
}

function setKeys(noc: ServedNoc, keys: NocKeys): void {
  noc.deps.keys = keys;
  noc.deps.contentKeys = contentKeyCache(keys);
}

dbTest(
  "release-keys-only: the NOC key alone cannot give itself package use by re-listing a release key as a NOC key",
  async ({ db }) => {
    const R = (await nocKeysFromSeed(newSeed())).published[0]!;
    const noc = await serveNoc(db, { releaseKeyRoots: [R.publicKey] });
    setKeys(noc, await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true }));
    const reg = await noc.admin("POST", "/v1/admin/release-keys", {
      publicKey: R.publicKey,
      label: "root",
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const box = await agentBox();
    try {
      const token = await noc.enrollmentToken();
      const en = await box.run(["enroll", "--noc", noc.url, "--token", token, "--model", "m"]);
      assert.equal(en.code, 0, en.stderr + en.stdout);
      assert.equal(
        JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).releaseKeysOnly,
        true,
      );
      assert.equal((await box.run(once)).code, 0);
      const nocKid = noc.deps.keys.kid;
      assert.deepEqual(await pins(box.state), [`${nocKid}:catalog`, `${R.kid}:package`]);

      // Step 1: the release key re-listed (same key, same end date) with "catalog" use added.
      noc.deps.keys.published.push({ ...R, use: ["catalog", "package"], notAfter: null });
      await bumpCatalogEpoch(db.sql);
      const a = await box.run(once);
      assert.ok(a.events.some((e: any) => e.event === "keys_refused" && e.kids.includes(R.kid)));
      assert.deepEqual(await pins(box.state), [`${nocKid}:catalog`, `${R.kid}:package`]);

      // Step 2: the NOC key claims package use and signs a package itself.
      noc.deps.keys.published[0] = { ...noc.deps.keys.published[0]!, use: ["catalog", "package"] };
      const up = await upload(
        noc,
        "/v1/admin/packages?app=demo&name=demo&version=6.6.6",
        await payload({ install: '#!/bin/sh\nid > "$NOC_ROOT/pwned"\n' }),
        "application/gzip",
      );
      assert.equal(up.status, 201, JSON.stringify(up.body));
      const as = await noc.admin("POST", "/v1/admin/assignments", {
        kind: "package",
        app: "demo",
        name: "demo",
        version: "6.6.6",
        target: { type: "all" },
      });
      assert.equal(as.status, 201, JSON.stringify(as.body));
      const b = await box.run(once);
      assert.equal(
        b.events.find((e: any) => e.event === "install_failed")?.reason,
        "unknown_key",
        JSON.stringify(b.events),
      );
      assert.equal(await box.readRoot("pwned"), null, "the NOC key alone ran an install program");
      assert.deepEqual(await pins(box.state), [`${nocKid}:catalog`, `${R.kid}:package`]);
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "a retired NOC key cannot take over agents that rotated away from it: its catalogs are refused and the current key stays pinned",
  async ({ db }) => {
    const master = newSeed();
    const A = await nocKeysFromSeed(newSeed(), { master });
    const B = await nocKeysFromSeed(newSeed(), { master });
    const X = await nocKeysFromSeed(newSeed(), { master });
    const noc = await serveNoc(db, {});
    setKeys(noc, A);
    const box = await agentBox();
    try {
      const token = await noc.enrollmentToken();
      const en = await box.run(["enroll", "--noc", noc.url, "--token", token, "--model", "m"]);
      assert.equal(en.code, 0, en.stderr + en.stdout);
      // The legitimate rotation A -> B, A retired in 7 days.
      const until = new Date(Date.now() + 7 * 86400_000).toISOString();
      const statement: KeyStatement = {
        format: "noc-keys/1",
        previous: A.kid,
        issuedAt: new Date().toISOString(),
        keys: [B.published[0]!, { ...A.published[0]!, notAfter: until }],
      };
      const env = await signKeyStatement(statement, [A, B]);
      const legit: NocKeys = { ...B, published: statement.keys, chain: [env] };
      setKeys(noc, legit);
      await bumpCatalogEpoch(db.sql);
      assert.equal((await box.run(once)).code, 0);
      const rotated = await pins(box.state);
      assert.deepEqual(rotated, [`${B.kid}:catalog+package`, `${A.kid}:catalog+package`]);

      // The thief holds retired A: a catalog whose key list is only X (current), and one that
      // extends A's own end date.
      for (
        const published of [[X.published[0]!], [{ ...A.published[0]!, notAfter: null }]]
      ) {
        setKeys(noc, { ...A, published, chain: [] });
        await bumpCatalogEpoch(db.sql);
        const r = await box.run(once);
        const refused = r.events.find((e: any) => e.event === "catalog_refused");
        assert.equal(refused?.reason, "unknown_key", JSON.stringify(r.events));
        assert.match(refused.message, /retired/);
        assert.deepEqual(await pins(box.state), rotated);
      }
      // The real NOC is still taken; the thief's own key is not.
      setKeys(noc, legit);
      await bumpCatalogEpoch(db.sql);
      assert.equal((await box.run(once)).code, 0);
      setKeys(noc, { ...X, chain: [] });
      await bumpCatalogEpoch(db.sql);
      const r = await box.run(once);
      assert.equal(r.events.find((e: any) => e.event === "catalog_refused")?.reason, "unknown_key");
      assert.deepEqual(await pins(box.state), rotated);
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);

dbTest(
  "release-keys-only: a stolen NOC key that pads an agent's pins past their bound through the key chain cannot bring a retired release key back",
  async ({ db }) => {
    const S = await nocKeysFromSeed(newSeed()); // an offline release key, still valid
    const R = await nocKeysFromSeed(newSeed()); // a release key S endorsed, retired below
    const noc = await serveNoc(db, { releaseKeyRoots: [S.published[0]!.publicKey] });
    const A = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
    setKeys(noc, A);
    const add = (body: unknown) => noc.admin("POST", "/v1/admin/release-keys", body);
    assert.equal((await add({ publicKey: S.published[0]!.publicKey, label: "S" })).status, 201);
    const endorsement = await endorseKey(R.published[0]!.publicKey, null, S);
    const regR = await add({ publicKey: R.published[0]!.publicKey, label: "R", endorsement });
    assert.equal(regR.status, 201, JSON.stringify(regR.body));
    const box = await agentBox();
    const identity = async () =>
      JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)) as {
        pinnedKeys: PublishedKey[];
      };
    try {
      const token = await noc.enrollmentToken();
      const en = await box.run(["enroll", "--noc", noc.url, "--token", token, "--model", "m"]);
      assert.equal(en.code, 0, en.stderr + en.stdout);
      assert.equal((await box.run(once)).code, 0);
      // The operator retires R; the agent pins its end date.
      assert.equal((await noc.admin("DELETE", `/v1/admin/release-keys/${R.kid}`)).status, 204);
      await bumpCatalogEpoch(db.sql);
      assert.equal((await box.run(once)).code, 0);
      const retiredAt = (await identity()).pinnedKeys.find((k) => k.kid === R.kid)?.notAfter;
      assert.ok(retiredAt, "R retired on the agent");
      assert.ok(Date.parse(retiredAt) <= Date.now());

      // The thief, holding A, chains A -> F1 ... F126 (each replaced key given a 2099 end date),
      // served 64 links a cycle (an agent reads 64), each catalog signed by the chain's last key.
      const thief = new Map<string, NocKeys>([[A.kid, A]]);
      const links: KeyStatementEnvelope[] = [];
      let prev = A;
      for (let i = 0; i < 126; i++) {
        const next = await nocKeysFromSeed(newSeed(), { releaseKeysOnly: true });
        thief.set(next.kid, next);
        links.push(
          await signKeyStatement({
            format: "noc-keys/1",
            previous: prev.kid,
            issuedAt: new Date().toISOString(),
            keys: [next.published[0]!, {
              ...prev.published[0]!,
              notAfter: "2099-01-01T00:00:00.000Z",
            }],
          }, [prev, next]),
        );
        prev = next;
      }
      const serve = (k: NocKeys, chain: KeyStatementEnvelope[]) =>
        setKeys(noc, { ...k, published: [k.published[0]!], chain });
      serve(thief.get(links[63]!.signatures[1]!.kid)!, links.slice(0, 64));
      await bumpCatalogEpoch(db.sql);
      assert.equal((await box.run(once)).code, 0);
      assert.equal((await identity()).pinnedKeys.length, 67);
      serve(prev, links.slice(64));
      await bumpCatalogEpoch(db.sql);
      const full = await box.run(once);
      const padded = (await identity()).pinnedKeys;

      // The thief re-lists R with no end date and its original endorsement, in a catalog signed
      // by whichever of its keys the agent pins as current.
      await db.sql`update release_keys set not_after = null where kid = ${R.kid}`;
      const current = padded.find((k) => k.use.includes("catalog") && k.notAfter === null)!;
      serve(thief.get(current.kid)!, []);
      await bumpCatalogEpoch(db.sql);
      const back = await box.run(once);
      assert.ok(
        back.events.some((e: any) => e.event === "keys_refused" && e.kids?.includes(R.kid)),
        JSON.stringify(back.events),
      );
      const after = (await identity()).pinnedKeys;
      assert.equal(after.find((k) => k.kid === R.kid)?.notAfter, retiredAt, "R stays retired");
      assert.equal(after.find((k) => k.kid === S.kid)?.notAfter, null, "S stays valid");
      assert.ok(after.some((k) => k.kid === A.kid), "the first NOC key is kept");
      // The walk stopped at the bound and said so; no key was forgotten to make room.
      const refusal = full.events.find((e: any) =>
        e.event === "keys_refused" && e.via === "key_chain" && e.max === MAX_PINNED_KEYS
      );
      assert.ok(refusal, JSON.stringify(full.events));
      assert.equal(padded.length, MAX_PINNED_KEYS);
      const trusted = after.filter((k) =>
        k.use.includes("package") && (k.notAfter === null || Date.parse(k.notAfter) > Date.now())
      );
      assert.deepEqual(trusted.map((k) => k.kid), [S.kid], "only S may sign packages");
    } finally {
      await box.remove();
      await noc.close();
    }
  },
);
