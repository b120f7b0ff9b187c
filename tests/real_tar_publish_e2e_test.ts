/**
 * The package people build, through every way to publish it (issue 17, "done when"): a payload
 * made by real `tar czf p.tgz -C dir .` (GNU tar's default format, with its `./` entries) is
 * published through the admin API with real `curl`, through the CLI signed offline with a key
 * made by real `openssl genpkey -algorithm ed25519`, and through the console's publish form, all
 * against a NOC served over real HTTP; a real enrolled agent process installs all three.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { type AgentBox, enrolledAgent, serveNoc } from "./_agent.ts";
import { run } from "./_process.ts";
import { assignToAll } from "./_components.ts";
import { signIn } from "./_console.ts";

/** Runs `cmd args…`; asserts it succeeded; returns its standard output. */
async function ok(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await run(cmd, args, env);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")}: ${r.err}${r.out}`);
  return r.out;
}

/**
 * The package's install program: copies a file from a subfolder of the payload (so the `./`
 * folder entries were unpacked) to a marker under the appliance root named for the component,
 * with the version it installed.
 */
const installScript = `#!/bin/sh
set -e
mkdir -p "$NOC_ROOT/markers"
cp "$NOC_STAGING/share/doc/hello.txt" "$NOC_ROOT/markers/.$NOC_NAME.tmp"
printf '%s\\n' "$NOC_VERSION" >> "$NOC_ROOT/markers/.$NOC_NAME.tmp"
mv "$NOC_ROOT/markers/.$NOC_NAME.tmp" "$NOC_ROOT/markers/$NOC_NAME"
`;

/** Builds `<work>/p.tgz` with real `tar czf p.tgz -C dir .`; returns its path. */
async function realTarball(work: string): Promise<string> {
  const dir = `${work}/pkg`;
  await Deno.mkdir(`${dir}/share/doc`, { recursive: true });
  await Deno.writeTextFile(`${dir}/install`, installScript);
  await Deno.chmod(`${dir}/install`, 0o755);
  await Deno.writeTextFile(`${dir}/share/doc/hello.txt`, "hello from a real tar\n");
  const tgz = `${work}/p.tgz`;
  await ok("tar", ["czf", tgz, "-C", dir, "."]);
  // What the issue found the agent refused: an archive of "." with its "./" entry.
  const listing = (await ok("tar", ["tzf", tgz])).split("\n");
  assert.ok(listing.includes("./"), `tar lists ./ first: ${listing.join(" ")}`);
  assert.ok(listing.includes("./install"), listing.join(" "));
  return tgz;
}

dbTest(
  "a package made by `tar czf p.tgz -C dir .` is published through curl, the CLI with an openssl key and the console, and a real agent installs all three",
  async ({ db }) => {
    const noc = await serveNoc(db);
    const work = await Deno.makeTempDir({ prefix: "noc-real-tar-" });
    let box: AgentBox | null = null;
    try {
      const tgz = await realTarball(work);
      const env = { NOC_URL: noc.url, NOC_TOKEN: noc.adminToken };

      // (a) The admin API, with real curl: the NOC checks, encrypts and signs the payload.
      const curl = await ok("curl", [
        "-sS",
        "-o",
        `${work}/curl.json`,
        "-w",
        "%{http_code}",
        "-H",
        `authorization: Bearer ${noc.adminToken}`,
        "-H",
        "content-type: application/gzip",
        "--data-binary",
        `@${tgz}`,
        `${noc.url}/v1/admin/packages?app=realtar&name=via-api&version=1.0.0`,
      ]);
      assert.equal(curl, "201", await Deno.readTextFile(`${work}/curl.json`));
      assert.equal(
        JSON.parse(await Deno.readTextFile(`${work}/curl.json`)).signerKid,
        noc.deps.keys.kid,
      );

      // (b) The CLI, signed offline with an Ed25519 key made by openssl, registered in PEM.
      const pem = `${work}/k.pem`;
      await ok("openssl", ["genpkey", "-algorithm", "ed25519", "-out", pem]);
      await ok("openssl", ["pkey", "-in", pem, "-pubout", "-out", `${work}/k.pub.pem`]);
      const deno = Deno.execPath();
      const added = JSON.parse(
        await ok(deno, [
          "task",
          "-q",
          "noc",
          "release-key",
          "add",
          `${work}/k.pub.pem`,
          "--label",
          "release team",
        ], env),
      );
      const cli = JSON.parse(
        await ok(deno, [
          "task",
          "-q",
          "noc",
          "package",
          tgz,
          "--key",
          pem,
          "--app",
          "realtar",
          "--name",
          "via-cli",
          "--version",
          "2.0.0",
        ], env),
      );
      assert.equal(cli.signerKid, added.kid, "signed by the openssl-made key");

      // (c) The console's publish form.
      const ui = await signIn(noc);
      assert.equal(
        await ui.post("/ui/releases/publish", {
          kind: "package",
          app: "realtar",
          name: "via-console",
          version: "3.0.0",
          file: new File([await Deno.readFile(tgz)], "p.tgz"),
        }),
        "Published package realtar/via-console@3.0.0",
      );

      const versions = { "via-api": "1.0.0", "via-cli": "2.0.0", "via-console": "3.0.0" };
      for (const [name, version] of Object.entries(versions)) {
        await assignToAll(noc, "package", { app: "realtar", name, version });
      }

      // A real agent installs all three.
      box = await enrolledAgent(noc);
      const cycle = await box.run(["once", "--allow-http-files"]);
      assert.equal(cycle.code, 0, cycle.stdout + cycle.stderr);
      const uid = JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid;
      for (const [name, version] of Object.entries(versions)) {
        assert.equal(
          await box.readRoot(`markers/${name}`),
          `hello from a real tar\n${version}\n`,
          `${name}: ${cycle.stdout}`,
        );
      }
      const outcomes = await db.sql<{ name: string; version: string; outcome: string }>`
        select name, version, outcome from install_outcomes where uid = ${uid} order by name`;
      assert.deepEqual(
        outcomes.map((o) => `${o.name}@${o.version}:${o.outcome}`),
        ["via-api@1.0.0:installed", "via-cli@2.0.0:installed", "via-console@3.0.0:installed"],
      );
    } finally {
      await box?.remove();
      await noc.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);
