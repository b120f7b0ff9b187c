// deno-lint-ignore-file no-explicit-any
/**
 * Key rotation as docs/operations.md ("Rotating the NOC signing key") tells
 * the operator, step for step, twice in a row: real NOC processes restarted
 * with each new key and its statement, the statements signed with the CLI
 * (`cli/keygen.ts statement`), and real agent processes enrolled before the
 * first rotation — one of them offline through both, walking the whole key
 * chain at once. A package signed with the first key, past its end date,
 * still installs (the current catalog vouches for it). On PGlite (the data
 * folder) and, with TEST_DATABASE_URL, on PostgreSQL.
 */
import assert from "node:assert/strict";
import { type NocProcess, startNoc } from "./_process.ts";
import { type AgentBox, agentBox } from "./_agent.ts";
import { payload } from "./_components.ts";
import { scratchDatabase } from "./_harness.ts";

const repo = new URL("..", import.meta.url).pathname;
const pgUrl = Deno.env.get("TEST_DATABASE_URL");

/** Runs `deno <args>` in the repository; returns exit code, stdout and stderr. */
async function deno(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: repo,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

/** Step 1: `deno task keygen > <file>`. */
async function keygen(file: string): Promise<string> {
  const r = await deno(["task", "keygen"]);
  assert.equal(r.code, 0, r.err);
  await Deno.writeTextFile(file, r.out);
  return r.err.match(/Key id ([0-9a-f]{16})/)![1]!;
}

/** Step 2: `deno run --allow-read=old,new cli/keygen.ts statement --from old --to new [--until t] > file`. */
async function statement(from: string, to: string, file: string, until?: string): Promise<void> {
  const r = await deno([
    "run",
    `--allow-read=${from},${to}`,
    "cli/keygen.ts",
    "statement",
    "--from",
    from,
    "--to",
    to,
    ...(until ? ["--until", until] : []),
  ]);
  assert.equal(r.code, 0, r.err);
  await Deno.writeTextFile(file, r.out);
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Starts `main.ts` and expects it to refuse to start; returns what it said. */
async function refusedStart(env: Record<string, string>): Promise<string> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "--dev"],
    cwd: repo,
    env: { PORT: "0", NOC_HOST: "127.0.0.1", ...env },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
  assert.notEqual(o.code, 0, `the NOC started when it should have refused:\n${text}`);
  return text;
}

async function rotationProcedure(backend: "pglite" | "postgres"): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "noc-rotation-" });
  const scratch = backend === "postgres" ? await scratchDatabase(pgUrl!, "rotation") : null;
  const port = freePort();
  const base: Record<string, string> = {
    PORT: String(port),
    NOC_DATA_DIR: `${work}/data`,
    NOC_REQUEST_LOG: "errors",
    ...(scratch ? { DATABASE_URL: scratch.url } : {}),
  };
  const boxes: AgentBox[] = [];
  let noc: NocProcess | null = null;
  const start = async (env: Record<string, string>) => {
    await noc?.stop();
    noc = await startNoc({ ...base, ...env });
    return noc;
  };
  try {
    const k0 = `${work}/noc-signing-key.0`;
    const kid0 = await keygen(k0);
    let n = await start({ NOC_SIGNING_KEY_FILE: k0 });
    const token = n.adminToken;
    const admin = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${noc!.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    const publish = async (name: string, version: string) => {
      const up = await fetch(
        `${noc!.url}/v1/admin/packages?app=demo&name=${name}&version=${version}`,
        {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/gzip" },
          body: await payload({
            install: `#!/bin/sh\nset -e\nmkdir -p "$NOC_ROOT/demo"\n` +
              `printf '%s' "$NOC_VERSION" > "$NOC_ROOT/demo/${name}"\n`,
          }),
        },
      );
      const body = await up.json();
      assert.equal(up.status, 201, JSON.stringify(body));
      const as = await admin("POST", "/v1/admin/assignments", {
        kind: "package",
        app: "demo",
        name,
        version,
        target: { type: "all" },
      });
      assert.equal(as.status, 201, JSON.stringify(as.body));
      return body;
    };
    const enrol = async () => {
      const box = await agentBox();
      boxes.push(box);
      const t = await admin("POST", "/v1/admin/enrollment-tokens", {});
      assert.equal(t.status, 201, JSON.stringify(t.body));
      const r = await box.run(["enroll", "--noc", noc!.url, "--token", t.body.token]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      return box;
    };
    const once = async (box: AgentBox) => {
      const r = await box.run(["once", "--allow-http-files"]);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      return r;
    };
    const pinned = async (box: AgentBox) =>
      JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).pinnedKeys.map((
        k: any,
      ) => `${k.kid}${k.notAfter === null ? "" : " retired"}`);

    // Before any rotation: a package signed with key 0, two agents enrolled. `a` installs it;
    // `b` stays offline through both rotations.
    const p0 = await publish("first", "1.0.0");
    assert.equal(p0.signerKid, kid0);
    const a = await enrol();
    const b = await enrol();
    await once(a);
    assert.equal(await a.readRoot("demo/first"), "1.0.0");
    assert.deepEqual(await pinned(b), [kid0]);

    // Rotation 1, steps 1–3. The old key is retired at once (--until now), so its end date has
    // passed for every check that follows.
    const k1 = `${work}/noc-signing-key.1`;
    const kid1 = await keygen(k1);
    await statement(k0, k1, `${work}/key-statement.1.json`, new Date().toISOString());
    n = await start({
      NOC_SIGNING_KEY_FILE: k1,
      NOC_KEY_STATEMENT_FILE: `${work}/key-statement.1.json`,
    });
    assert.match(n.output(), new RegExp(`NOC key id:\\s+${kid1}`));

    // Step 4: the keys and the chain are published; `a` moves to key 1 at its next cycle.
    const keys1 = await (await fetch(`${n.url}/v1/keys`)).json();
    assert.equal(keys1.keys[0].kid, kid1);
    assert.ok(keys1.keys.some((k: any) => k.kid === kid0 && k.notAfter !== null));
    assert.equal(keys1.chain.length, 1);
    const r1 = await once(a);
    const rotated = r1.events.find((e) => e.event === "keys_rotated");
    assert.ok(rotated, r1.stdout);
    assert.deepEqual(rotated.to, [kid1]);
    assert.equal((await pinned(a))[0], kid1);

    // The package signed with key 0, past that key's end date, installs again on a restored
    // appliance: the current catalog names it and vouches for its digest.
    await a.wipe();
    await once(a);
    assert.equal(await a.readRoot("demo/first"), "1.0.0");
    const p1 = await publish("second", "1.0.0");
    assert.equal(p1.signerKid, kid1);

    // Rotation 2, from key 1 (default end date, 7 days).
    const k2 = `${work}/noc-signing-key.2`;
    const kid2 = await keygen(k2);
    await statement(k1, k2, `${work}/key-statement.2.json`);
    await start({
      NOC_SIGNING_KEY_FILE: k2,
      NOC_KEY_STATEMENT_FILE: `${work}/key-statement.2.json`,
    });
    // Later starts need no statement.
    n = await start({ NOC_SIGNING_KEY_FILE: k2 });
    const keys2 = await (await fetch(`${n.url}/v1/keys`)).json();
    assert.equal(keys2.keys[0].kid, kid2);
    assert.equal(keys2.chain.length, 2);

    // `a` walks one step; `b`, enrolled before both rotations, walks both in one cycle and
    // installs everything, the package signed with the long-retired key 0 included.
    const r2 = await once(a);
    assert.deepEqual(r2.events.find((e) => e.event === "keys_rotated")?.to, [kid2]);
    assert.equal(await a.readRoot("demo/second"), "1.0.0");
    const rb = await once(b);
    assert.deepEqual(rb.events.find((e) => e.event === "keys_rotated")?.to, [kid1, kid2]);
    assert.equal(await b.readRoot("demo/first"), "1.0.0");
    assert.equal(await b.readRoot("demo/second"), "1.0.0");
    const pb = await pinned(b);
    assert.equal(pb[0], kid2);
    assert.ok(pb.includes(`${kid0} retired`) && pb.includes(`${kid1} retired`), pb.join(","));

    // Step 3's refusals: going back to a replaced key, or a new key with no statement.
    await noc!.stop();
    noc = null;
    const back = await refusedStart({ ...base, NOC_SIGNING_KEY_FILE: k1 });
    assert.match(back, /already replaced/);
    const k3 = `${work}/noc-signing-key.3`;
    await keygen(k3);
    const bare = await refusedStart({ ...base, NOC_SIGNING_KEY_FILE: k3 });
    assert.match(bare, /NOC_KEY_STATEMENT_FILE/);
    // A statement signed by the wrong key (from key 0 to key 3): refused too.
    await statement(k0, k3, `${work}/key-statement.bad.json`);
    const wrong = await refusedStart({
      ...base,
      NOC_SIGNING_KEY_FILE: k3,
      NOC_KEY_STATEMENT_FILE: `${work}/key-statement.bad.json`,
    });
    assert.match(wrong, /refused/);
  } finally {
    await (noc as NocProcess | null)?.stop();
    for (const box of boxes) await box.remove();
    await scratch?.drop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name:
    "key rotation, twice, as docs/operations.md says: agents enrolled before both walk the key chain and keep installing [pglite]",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => rotationProcedure("pglite"),
});

Deno.test({
  name:
    "key rotation, twice, as docs/operations.md says: agents enrolled before both walk the key chain and keep installing [postgres]",
  ignore: !pgUrl,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => rotationProcedure("postgres"),
});
