/**
 * Assigning a file with the admin CLI, as docs/operations.md shows: `assign`
 * takes packages unless `--kind file` is given, and an assignment of a file
 * without it is refused with a message saying to add `--kind file`.
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { runCli } from "./_process.ts";

dbTest(
  "noc assign of a file without --kind file is refused with a hint to add it; with it the file is assigned",
  async ({ db }) => {
    const noc = await testNoc(db);
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      noc.app.fetch,
    );
    const env = { NOC_URL: `http://127.0.0.1:${server.addr.port}`, NOC_TOKEN: noc.adminToken };
    const work = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${work}/rules.conf`, "allow all\n");
      const put = await runCli(
        [
          "file",
          "put",
          `${work}/rules.conf`,
          "--app",
          "hello",
          "--name",
          "rules.conf",
          "--version",
          "1",
        ],
        env,
      );
      assert.equal(put.code, 0, put.err);
      const ids = ["--app", "hello", "--name", "rules.conf", "--version", "1"];
      const bare = await runCli(["assign", ...ids], env);
      assert.equal(bare.code, 1, bare.out);
      assert.match(
        bare.err,
        /NOC answered 404: package hello\/rules\.conf version "1" is not published/,
      );
      assert.match(bare.err, /is a file: add --kind file/);
      // A version that exists as neither kind gets no hint.
      const none = await runCli(
        ["assign", "--app", "hello", "--name", "rules.conf", "--version", "2"],
        env,
      );
      assert.equal(none.code, 1);
      assert.doesNotMatch(none.err, /--kind/);
      const ok = await runCli(["assign", ...ids, "--kind", "file"], env);
      assert.equal(ok.code, 0, ok.err);
      assert.match(ok.out, /^Assignment \d+: file hello\/rules\.conf@1 to all, rollout 100%/);
    } finally {
      await server.shutdown();
      await Deno.remove(work, { recursive: true });
    }
  },
);
