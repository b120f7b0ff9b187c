/**
 * Key rotation on the embedded database (`deno task dev`, no NOC_SIGNING_KEY):
 * docs/operations.md, "Rotating the NOC signing key", the PGlite way, step for
 * step — the current seed copied out of the data folder, the new seed copied
 * over `<data>/noc-signing-key`, the old copy shredded — with real NOC and
 * agent processes; plain restarts keep working afterwards. And the start-up
 * refusals name where the key came from (NOC_SIGNING_KEY, NOC_SIGNING_KEY_FILE
 * or the data folder's file), and a data folder whose database already has a
 * key chain gets no fresh random key.
 */
import assert from "node:assert/strict";
import { type NocProcess, startNoc } from "./_process.ts";
import { type AgentBox, agentBox } from "./_agent.ts";
import { dbTest } from "./_harness.ts";
import { loadConfig } from "../noc/config.ts";
import { loadNocKeys } from "../noc/services/startup_secrets.ts";
import { KeyChainError } from "../noc/services/key_chain.ts";
import { newSeed } from "../protocol/keys.ts";

const repo = new URL("..", import.meta.url).pathname;

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

dbTest(
  "loadNocKeys() names where a refused signing key came from, and makes no key for a data folder whose database has a key chain",
  async ({ db }) => {
    const dir = await Deno.makeTempDir({ prefix: "noc-keys-" });
    try {
      const data = `${dir}/data`;
      const dataKey = `${data}/noc-signing-key`;
      const config = (env: Record<string, string> = {}) =>
        loadConfig({ NOC_DATA_DIR: data, ...env });
      const first = await loadNocKeys(config(), db);
      const seed = (await Deno.readTextFile(dataKey)).trim();

      const other = newSeed();
      await Deno.writeTextFile(`${dir}/other`, other);
      const refusal = async (env: Record<string, string>) => {
        let message = "";
        await assert.rejects(loadNocKeys(config(env), db), (e) => {
          message = (e as Error).message;
          return e instanceof KeyChainError;
        });
        return message;
      };
      assert.match(await refusal({ NOC_SIGNING_KEY: other }), /^NOC_SIGNING_KEY holds key/);
      assert.match(
        await refusal({ NOC_SIGNING_KEY_FILE: `${dir}/other` }),
        new RegExp(`^NOC_SIGNING_KEY_FILE \\(${dir}/other\\) holds key`),
      );
      await Deno.writeTextFile(dataKey, other);
      assert.match(
        await refusal({}),
        new RegExp(`^the data folder's file ${dataKey} holds key .*NOC_KEY_STATEMENT_FILE`),
      );

      // The data folder's key is gone, but the database pins one: no new key is written.
      await Deno.remove(dataKey);
      const missing = await refusal({});
      assert.match(missing, /is missing, but the database already has a key chain/);
      assert.ok(missing.includes(first.kid), missing);
      assert.equal(await exists(dataKey), false, "no stray key written");
      // Putting the seed back is the way out.
      await Deno.writeTextFile(dataKey, seed + "\n", { mode: 0o600 });
      assert.equal((await loadNocKeys(config(), db)).kid, first.kid);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** Runs `deno <args>` in the repository. */
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

/** Runs a shell command as the docs write it, in `cwd`. */
async function sh(cwd: string, command: string): Promise<void> {
  const o = await new Deno.Command("sh", { args: ["-c", command], cwd, stderr: "piped" }).output();
  assert.equal(o.code, 0, `${command}: ${new TextDecoder().decode(o.stderr)}`);
}

/** Starts `main.ts --dev` and expects it to refuse; returns what it said. */
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

Deno.test({
  name:
    "key rotation on the data folder, as docs/operations.md says for PGlite: plain restarts work after it, and the old seed is refused naming the data folder's file",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "noc-rotation-dir-" });
    const data = `${work}/.noc-data`;
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    // One port throughout: the agent stays enrolled at the same URL across restarts.
    const base = { PORT: String(port), NOC_DATA_DIR: data, NOC_REQUEST_LOG: "errors" };
    let noc: NocProcess | null = null;
    let box: AgentBox | null = null;
    try {
      // `deno task dev`: the NOC makes its key in the data folder; an agent enrols.
      noc = await startNoc(base);
      const kid0 = noc.output().match(/NOC key id:\s+(\S+)/)![1]!;
      box = await agentBox();
      const enrolled = await box.run(["enroll", "--noc", noc.url, "--token", noc.enrollmentToken]);
      assert.equal(enrolled.code, 0, enrolled.stderr + enrolled.stdout);

      // Step 1 (PGlite): copy the current seed out of the data folder, make the new key.
      await sh(work, "cp .noc-data/noc-signing-key noc-signing-key.old");
      const gen = await deno(["task", "keygen"]);
      assert.equal(gen.code, 0, gen.err);
      await Deno.writeTextFile(`${work}/noc-signing-key.new`, gen.out);
      const kid1 = gen.err.match(/Key id ([0-9a-f]{16})/)![1]!;
      // Step 2: the statement, signed with both seeds.
      const st = await deno([
        "run",
        `--allow-read=${work}/noc-signing-key.old,${work}/noc-signing-key.new`,
        "cli/keygen.ts",
        "statement",
        "--from",
        `${work}/noc-signing-key.old`,
        "--to",
        `${work}/noc-signing-key.new`,
      ]);
      assert.equal(st.code, 0, st.err);
      await Deno.writeTextFile(`${work}/key-statement.json`, st.out);
      // Keep a copy of the old seed, for the refusal below (not part of the procedure).
      await Deno.copyFile(`${work}/noc-signing-key.old`, `${work}/old-copy`);

      // Step 3 (PGlite): stop, copy the new seed over the data folder's, start with the statement.
      await noc.stop();
      noc = null;
      await sh(work, "cp noc-signing-key.new .noc-data/noc-signing-key");
      noc = await startNoc({ ...base, NOC_KEY_STATEMENT_FILE: `${work}/key-statement.json` });
      assert.match(noc.output(), new RegExp(`NOC key id:\\s+${kid1}`));
      // A plain `deno task dev` afterwards starts with the new key.
      await noc.stop();
      noc = await startNoc(base);
      assert.match(noc.output(), new RegExp(`NOC key id:\\s+${kid1}`));

      // Step 4: the agent walks to the new key.
      const r = await box.run(["once", "--allow-http-files"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(r.events.find((e) => e.event === "keys_rotated")?.to, [kid1]);

      // Step 5 (PGlite): shred the separate old copy; the data folder keeps the new seed.
      await sh(work, "shred -u noc-signing-key.old");
      await noc.stop();
      noc = await startNoc(base);
      assert.match(noc.output(), new RegExp(`NOC key id:\\s+${kid1}`));
      await noc.stop();
      noc = null;

      // The old seed back in the data folder is refused, naming that file (not NOC_SIGNING_KEY).
      await Deno.copyFile(`${work}/old-copy`, `${data}/noc-signing-key`);
      const back = await refusedStart(base);
      assert.match(back, /the data folder's file \S+noc-signing-key holds key/);
      assert.match(back, new RegExp(`"${kid0}", which the key chain already replaced`));
      assert.doesNotMatch(back, /NOC_SIGNING_KEY /);
      // Shredding the data folder's seed instead: refused, and no stray key is written.
      await Deno.remove(`${data}/noc-signing-key`);
      const gone = await refusedStart(base);
      assert.match(gone, /noc-signing-key is missing, but the database already has a key chain/);
      assert.equal(await exists(`${data}/noc-signing-key`), false);
    } finally {
      await (noc as NocProcess | null)?.stop();
      await box?.remove();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
