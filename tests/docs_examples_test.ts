/**
 * Examples in the documentation that a newcomer copies: the enrolment request
 * of docs/protocol.md is accepted as written (only its one-time token is
 * replaced by a live one); every public key shown in a JSON example of
 * docs/*.md is canonical unpadded base64url (a key with nonzero padding bits
 * is refused with 400); the CLI writes the `.wrapped-key` file docs/protocol.md
 * describes, and its `curl` line publishes the package; the payload limits and
 * a development NOC's plain-HTTP files are as documented; so are the publish
 * content types and answer, the gzip header limit, GNU tar's hard links, the
 * listening addresses, and docs/operations.md's assignment body,
 * defaults and target shapes (through the API and the CLI).
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";
import { fetchCatalog, upload } from "./_components.ts";
import { keyId, newSeed } from "../protocol/keys.ts";
import { readPackagePrefix } from "../protocol/package/file.ts";
import { unwrapContentKey } from "../protocol/package/format.ts";
import { nocKeysFromSeed } from "../noc/services/signing_keys.ts";
import { listenAddresses, loadConfig } from "../noc/config.ts";
import { createAuthorities } from "../noc/services/authorities.ts";
import { agentEnvVars, loadAgentConfig, parseAgentArgs } from "../agent/config.ts";
import { ed25519PublicOf, exportRawPublic, importEd25519Seed } from "../protocol/crypto/ed25519.ts";
import { runCli } from "./_process.ts";
import { createTar, gzip } from "../protocol/package/tar.ts";
import { inspectPayload, PayloadError, payloadLimits } from "../protocol/package/payload.ts";
import { collectBytes } from "../protocol/util/bytes.ts";
import { fromBase64Url, toBase64Url, utf8 } from "../protocol/util/encoding.ts";
import { createHash } from "node:crypto";

const docsDir = new URL("../docs/", import.meta.url);
const protocol = await Deno.readTextFile(new URL("protocol.md", docsDir));

/** The JSON body of the http block that starts with `POST /v1/enroll`. */
function enrolmentExample(): Record<string, unknown> {
  const m = /```http\nPOST \/v1\/enroll HTTP\/1\.1\n[\s\S]*?\n\n([\s\S]*?)\n```/.exec(protocol);
  assert.ok(m, "docs/protocol.md has no enrolment example");
  return JSON.parse(m[1]!);
}

/** Whether `s` is unpadded base64url that decodes to bytes encoding back to `s` exactly. */
function canonicalBase64Url(s: string): boolean {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return false;
  const bytes = Uint8Array.from(
    atob(s.replace(/-/g, "+").replace(/_/g, "/")),
    (c) => c.charCodeAt(0),
  );
  const back = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
  return back === s;
}

Deno.test("canonicalBase64Url() refuses the old example key whose padding bits are not zero", () => {
  assert.equal(canonicalBase64Url("Yq3kW1cXyP7tJ0bR2sN5vL8mA4dF6hG9jK1zQ3wE5rT"), false);
  assert.equal(canonicalBase64Url("-_gjqxPD1QqsMCDf-GvYqKZ9UiDv9uL44O_IWTd8BFg"), true);
});

Deno.test("every key in a JSON example of docs/*.md is canonical unpadded base64url", async () => {
  let seen = 0;
  for await (const f of Deno.readDir(docsDir)) {
    if (!f.name.endsWith(".md")) continue;
    const text = await Deno.readTextFile(new URL(f.name, docsDir));
    for (const m of text.matchAll(/"(\w*[kK]ey)"\s*:\s*"([A-Za-z0-9_-]{40,})"/g)) {
      seen++;
      assert.ok(canonicalBase64Url(m[2]!), `docs/${f.name}: "${m[1]}": "${m[2]}" is not canonical`);
    }
  }
  assert.ok(seen >= 2, `only ${seen} keys found: the pattern no longer matches the docs`);
});

dbTest("the NOC accepts docs/protocol.md's enrolment example as written", async ({ db }) => {
  const noc = await testNoc(db);
  const body = { ...enrolmentExample(), token: await noc.enrollmentToken() };
  const res = await noc.app.request("http://noc.example.net/v1/enroll", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  assert.ok(JSON.parse(text).uid);
});

/** The text of docs/protocol.md's section with heading `title`, up to the next heading. */
function protocolSection(title: string): string {
  const at = protocol.indexOf(`\n${title}\n`) + 1;
  assert.ok(at > 0, `docs/protocol.md has no heading ${title}`);
  const rest = protocol.slice(at + title.length + 1);
  const next = /\n#{1,6} /.exec(rest);
  return next ? rest.slice(0, next.index) : rest;
}

/** A folder holding an executable `install` and one more file. */
async function appFolder(work: string): Promise<string> {
  await Deno.mkdir(`${work}/app`);
  await Deno.writeTextFile(`${work}/app/install`, "#!/bin/sh\necho hello\n", { mode: 0o755 });
  await Deno.writeTextFile(`${work}/app/README`, "demo\n");
  return `${work}/app`;
}

/** Checks a `.wrapped-key` file as docs/protocol.md describes it; returns the value. */
async function checkWrappedKeyFile(path: string): Promise<string> {
  const info = await Deno.stat(path);
  assert.equal(info.mode! & 0o777, 0o600, "readable by its owner only");
  const text = await Deno.readTextFile(path);
  assert.match(text, /^[A-Za-z0-9_-]{107}\n$/, "one line: 107 base64url characters, a newline");
  return text.trim();
}

Deno.test("noc package --out --noc-key writes the .wrapped-key docs/protocol.md describes, to the NOC's key", async () => {
  const text = protocolSection("## Publishing packages: `POST /v1/admin/packages`");
  const master = /master key \(`NOC_MASTER_KEY`[^)]*\) is\s+`([A-Za-z0-9_-]{43})`/.exec(text)?.[1];
  const encryptionKey = /its `encryptionKey` is\s+`([A-Za-z0-9_-]{43})`/.exec(text)?.[1];
  assert.ok(master && encryptionKey, "the documented NOC keys");
  const work = await Deno.makeTempDir();
  try {
    const dir = await appFolder(work);
    await Deno.writeTextFile(`${work}/release.key`, newSeed() + "\n", { mode: 0o600 });
    const out = `${work}/demo-hello-1.0.0.nocpkg`;
    // No NOC at all: the NOC's key is given.
    const r = await runCli(
      [
        "package",
        dir,
        ...["--app", "demo", "--name", "hello", "--version", "1.0.0"],
        ...["--key", `${work}/release.key`, "--out", out, "--noc-key", encryptionKey],
      ],
      {},
      { clearEnv: true },
    );
    assert.equal(r.code, 0, r.err);
    const wrapped = await checkWrappedKeyFile(`${out}.wrapped-key`);
    const header = (await readPackagePrefix(out)).header;
    const noc = await nocKeysFromSeed(newSeed(), { master });
    assert.equal(noc.hpke.publicKey, encryptionKey);
    const key = await unwrapContentKey(wrapped, noc.hpke.privateKey, header);
    assert.equal(key.length, 32);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

dbTest(
  "docs/protocol.md's curl line publishes a package the CLI wrote with its .wrapped-key",
  async ({ db }) => {
    const noc = await testNoc(db);
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      noc.app.fetch,
    );
    const url = `http://127.0.0.1:${server.addr.port}`;
    const work = await Deno.makeTempDir();
    try {
      const dir = await appFolder(work);
      const seed = newSeed();
      await Deno.writeTextFile(`${work}/release.key`, seed + "\n", { mode: 0o600 });
      const priv = await importEd25519Seed(fromBase64Url(seed));
      const raw = new Uint8Array(await exportRawPublic(await ed25519PublicOf(priv)));
      const reg = await noc.admin("POST", "/v1/admin/release-keys", {
        publicKey: toBase64Url(raw),
        label: "release team",
      });
      assert.equal(reg.status, 201, JSON.stringify(reg.body));
      const env = { NOC_URL: url, NOC_TOKEN: noc.adminToken };
      const r = await runCli(
        [
          "package",
          dir,
          ...["--app", "demo", "--name", "hello", "--version", "1.0.0"],
          ...["--key", `${work}/release.key`, "--out", `${work}/demo-hello-1.0.0.nocpkg`],
        ],
        env,
        { clearEnv: true },
      );
      assert.equal(r.code, 0, r.err);
      // Wrapped to the NOC's encryptionKey, fetched from GET /v1/keys.
      const wrapped = await checkWrappedKeyFile(`${work}/demo-hello-1.0.0.nocpkg.wrapped-key`);
      const header = (await readPackagePrefix(`${work}/demo-hello-1.0.0.nocpkg`)).header;
      await unwrapContentKey(wrapped, noc.deps.keys.hpke.privateKey, header);
      // The documented curl line, as written, in the folder holding both files.
      const curl = protocolSection("### The `.wrapped-key` file").match(
        /```sh\n(curl[\s\S]*?)\n```/,
      )
        ?.[1];
      assert.ok(curl, "the curl line");
      const out = await new Deno.Command("sh", {
        args: ["-c", curl],
        cwd: work,
        env: { ...env, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const answer = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const published = JSON.parse(answer);
      assert.equal(published.error, undefined, answer);
      assert.deepEqual(
        [published.kind, published.app, published.name, published.version, published.signerKid],
        ["package", "demo", "hello", "1.0.0", await keyId(raw)],
      );
    } finally {
      await server.shutdown();
      await Deno.remove(work, { recursive: true });
    }
  },
);

Deno.test("docs/protocol.md states the payload limits protocol/package/payload.ts applies", () => {
  const text = protocolSection("### Package payloads").replace(/\s+/g, " ");
  const entries = payloadLimits.maxEntries.toLocaleString("en-US");
  assert.ok(text.includes(`at most ${entries} entries`), `${entries} entries`);
  const gib = payloadLimits.maxBytes / 1024 ** 3;
  assert.ok(Number.isInteger(gib) && text.includes(`${gib} GiB of file content`), `${gib} GiB`);
});

Deno.test("a --dev NOC serves files over plain HTTP, and an agent takes them only as docs/protocol.md says", async () => {
  const text = protocolSection("### A development NOC serves files over plain HTTP");
  assert.equal(loadConfig({}, ["--dev"]).settings.allowPlainHttpFiles, true);
  assert.equal(loadConfig({}, []).settings.allowPlainHttpFiles, false);
  for (
    const v of [
      "`--allow-http-files`",
      "`NOC_AGENT_ALLOW_HTTP_FILES=true`",
      '`"allowHttpFiles": true`',
    ]
  ) {
    assert.ok(text.includes(v), v);
  }
  assert.ok(agentEnvVars.includes("NOC_AGENT_ALLOW_HTTP_FILES"));
  const state = await Deno.makeTempDir();
  try {
    const load = async (args: string[], env: Record<string, string> = {}) =>
      (await loadAgentConfig(parseAgentArgs(["once", "--state", state, ...args]).flags, env))
        .allowHttpFiles;
    assert.equal(await load([]), false, "off unless asked");
    assert.equal(await load(["--allow-http-files"]), true);
    assert.equal(await load([], { NOC_AGENT_ALLOW_HTTP_FILES: "true" }), true);
    await Deno.writeTextFile(`${state}/agent.json`, JSON.stringify({ allowHttpFiles: true }));
    assert.equal(await load([]), true);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

dbTest("a file goes over plain HTTP from a NOC with --dev's settings only", async ({ db }) => {
  for (const dev of [true, false]) {
    const noc = await testNoc(db, { settings: loadConfig({}, dev ? ["--dev"] : []).settings });
    const a = await noc.enrollAppliance();
    const put = await upload(
      noc,
      `/v1/admin/files?app=app${dev}&name=rules.conf&version=1`,
      new TextEncoder().encode("rules\n"),
      "application/octet-stream",
    );
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const as = await noc.admin("POST", "/v1/admin/assignments", {
      kind: "file",
      app: `app${dev}`,
      name: "rules.conf",
      version: "1",
      target: { type: "appliance", value: a.uid },
    });
    assert.equal(as.status, 201, JSON.stringify(as.body));
    const cat = await fetchCatalog(noc, a);
    const fileUrl = cat.doc!.components.find((c) => c.kind === "file")!.urls[0]!;
    const res = await noc.app.request(fileUrl.replace(/^https:/, "http:"));
    const body = await res.text();
    assert.equal(res.status, dev ? 200 : 403, body);
    if (!dev) assert.equal(JSON.parse(body).error, "https_required");
  }
});

/** A payload (gzip'd tar of a folder with an executable `install`) as the CLI archives it. */
async function appPayload(): Promise<Uint8Array<ArrayBuffer>> {
  const work = await Deno.makeTempDir();
  try {
    return await collectBytes(gzip(createTar(await appFolder(work))));
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** The field names of the first column of the markdown table whose header starts `| Field`. */
function tableFields(text: string): string[] {
  const table = /^\| Field[^\n]*\n\|[-| ]+\n((?:\|[^\n]*\n)+)/m.exec(text);
  assert.ok(table, "a field table");
  return table[1]!.trim().split("\n").flatMap((row) =>
    [...row.split("|")[1]!.matchAll(/`(\w+)`/g)].map((m) => m[1]!)
  );
}

dbTest(
  "POST /v1/admin/packages takes the Content-Types docs/protocol.md names, files take any, and the answer has its fields",
  async ({ db }) => {
    const text = protocolSection("## Publishing packages: `POST /v1/admin/packages`");
    const f = text.replace(/\s+/g, " ");
    for (
      const t of ["application/gzip", "application/x-gzip", "application/octet-stream"]
    ) {
      assert.ok(new RegExp(`\`[^\`]*${t}\``).test(f), `docs/protocol.md names ${t}`);
    }
    const noc = await testNoc(db);
    const body = await appPayload();
    let n = 0;
    for (
      const type of [
        "application/gzip",
        "application/x-gzip",
        "application/octet-stream",
        "Application/GZIP; charset=binary",
      ]
    ) {
      const r = await upload(
        noc,
        `/v1/admin/packages?app=demo&name=hello&version=1.${n++}`,
        body,
        type,
      );
      assert.equal(r.status, 201, `${type}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(
        Object.keys(r.body).sort(),
        tableFields(text).sort(),
        "the documented fields",
      );
      assert.equal(r.body.contentSha256, createHash("sha256").update(body).digest("hex"));
      assert.equal(r.body.signerKid, noc.deps.keys.kid);
    }
    const again = await upload(
      noc,
      "/v1/admin/packages?app=demo&name=hello&version=1.0",
      body,
      "application/gzip",
    );
    assert.equal(again.status, 200, "the same content again");
    for (const type of ["text/plain", "application/json", "application/zip"]) {
      const r = await upload(noc, "/v1/admin/packages?app=demo&name=hello&version=2", body, type);
      assert.equal(r.status, 415, type);
      assert.equal(r.body.error, "unsupported_media_type");
    }
    // Files: any Content-Type, or none; signerKid null, contentSha256 the file's own digest.
    for (const [i, type] of ["text/plain", "application/gzip", ""].entries()) {
      const res = await noc.app.request(
        `http://noc.test/v1/admin/files?app=demo&name=f&version=${i}`,
        {
          method: "POST",
          headers: {
            authorization: `Bearer ${noc.adminToken}`,
            ...(type ? { "content-type": type } : {}),
          },
          body: utf8(`file ${i}\n`),
        },
      );
      const answer = await res.json();
      assert.equal(res.status, 201, `${type || "no type"}: ${JSON.stringify(answer)}`);
      assert.equal(answer.signerKid, null);
      assert.equal(answer.contentSha256, answer.sha256);
    }
  },
);

/** `gz` with a gzip header field (FNAME or FCOMMENT) of `n` bytes added (CompressionStream writes none). */
function withHeaderField(gz: Uint8Array, flag: 0x08 | 0x10, n: number): Uint8Array<ArrayBuffer> {
  assert.equal(gz[3], 0, "no header fields yet");
  const out = new Uint8Array(gz.length + n + 1);
  out.set(gz.subarray(0, 10));
  out[3] = flag;
  out.fill(0x61, 10, 10 + n); // "a" × n, then the NUL that ends the field
  out.set(gz.subarray(10), 11 + n);
  return out;
}

Deno.test("docs/protocol.md's gzip header field limit is the one inspectPayload() applies", async () => {
  const text = protocolSection("### Package payloads").replace(/\s+/g, " ");
  const limit = 65_535;
  assert.ok(text.includes(`of more than ${limit.toLocaleString("en-US")} bytes is refused`));
  const gz = await appPayload();
  for (const flag of [0x08, 0x10] as const) {
    await inspectPayload(ReadableStream.from([withHeaderField(gz, flag, limit)]));
    await assert.rejects(
      inspectPayload(ReadableStream.from([withHeaderField(gz, flag, limit + 1)])),
      (e) => e instanceof PayloadError && /gzip header field too long/.test(e.message),
    );
  }
});

Deno.test("GNU tar's links are refused, and docs/protocol.md's --hard-dereference lines and the CLI's archive are not", async () => {
  const text = protocolSection("### Package payloads").replace(/\s+/g, " ");
  const line = /`(tar czf p\.tgz --hard-dereference -C dir \.)`/.exec(text)?.[1];
  assert.ok(line, "the tar line");
  const work = await Deno.makeTempDir();
  try {
    const dir = await appFolder(work);
    await Deno.link(`${dir}/README`, `${dir}/README.copy`);
    const tar = async (cmd: string) => {
      const out = await new Deno.Command("sh", {
        args: ["-c", cmd.replace(" dir ", ` ${dir} `)],
        cwd: work,
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      return await Deno.readFile(`${work}/p.tgz`);
    };
    await assert.rejects(
      inspectPayload(ReadableStream.from([await tar("tar czf p.tgz -C dir .")])),
      (e) => e instanceof PayloadError && /hard link/.test(e.message),
    );
    await inspectPayload(ReadableStream.from([await tar(line)]));
    await inspectPayload(gzip(createTar(dir)));
    // A symbolic link to a file of the tree: refused as such, and as a hard link after -h alone.
    await Deno.remove(`${dir}/README.copy`);
    await Deno.symlink("README", `${dir}/README.link`);
    const symlinks = /`(tar czf p\.tgz -h --hard-dereference -C dir \.)`/.exec(text)?.[1];
    assert.ok(symlinks, "the tar line for symbolic links");
    for (
      const [cmd, refused] of [["tar czf p.tgz -C dir .", /symbolic link/], [
        "tar czf p.tgz -h -C dir .",
        /hard link/,
      ]] as const
    ) {
      await assert.rejects(
        inspectPayload(ReadableStream.from([await tar(cmd)])),
        (e) => e instanceof PayloadError && refused.test(e.message),
        cmd,
      );
    }
    await inspectPayload(ReadableStream.from([await tar(symlinks)]));
    await assert.rejects(collectBytes(gzip(createTar(dir))), /symbolic link/);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

const operations = await Deno.readTextFile(new URL("operations.md", docsDir));

/** The text of docs/operations.md's section with heading `title`, up to the next heading. */
function operationsSection(title: string): string {
  const at = operations.indexOf(`\n${title}\n`) + 1;
  assert.ok(at > 0, `docs/operations.md has no heading ${title}`);
  const rest = operations.slice(at + title.length + 1);
  const next = /\n#{1,6} /.exec(rest);
  return next ? rest.slice(0, next.index) : rest;
}

dbTest(
  "docs/operations.md's assignment example, defaults, target shapes and CLI --target forms are the NOC's",
  async ({ db }) => {
    const text = operationsSection("## Releasing: assignments, rollouts, holds");
    const noc = await testNoc(db);
    const put = await upload(
      noc,
      "/v1/admin/packages?app=vscreen&name=vscreen&version=4.2.1",
      await appPayload(),
      "application/gzip",
    );
    assert.equal(put.status, 201, JSON.stringify(put.body));
    // The curl example's body, as written, and the documented answer's shape.
    const curlBody = /-d '(\{[\s\S]*?\})'/.exec(text)?.[1];
    assert.ok(curlBody, "the curl example's body");
    const example = await noc.admin("POST", "/v1/admin/assignments", JSON.parse(curlBody));
    assert.equal(example.status, 201, JSON.stringify(example.body));
    const answer = JSON.parse(/```json\n(\{\n {2}"id"[\s\S]*?\n\})\n```/.exec(text)![1]!);
    assert.deepEqual(Object.keys(example.body), Object.keys(answer), "the answer's fields");
    assert.deepEqual(Object.keys(example.body.progress), Object.keys(answer.progress));
    for (const k of ["target", "rolloutPercent", "failureThresholdPercent", "minSample"]) {
      assert.deepEqual(example.body[k], answer[k], k);
    }
    // The defaults the table states.
    const row = (field: string) =>
      new RegExp(`^\\| \`${field}\`\\s*\\| ([^|]*?)\\s*\\|`, "m").exec(text)?.[1];
    assert.equal(row("rolloutPercent"), "`100`");
    assert.equal(row("failureThresholdPercent"), "none (`null`)");
    assert.equal(row("minSample"), "`5`");
    const bare = { kind: "package", app: "vscreen", name: "vscreen", version: "4.2.1" };
    const plain = await noc.admin("POST", "/v1/admin/assignments", {
      ...bare,
      target: { type: "all" },
    });
    assert.equal(plain.status, 201, JSON.stringify(plain.body));
    assert.deepEqual(
      [plain.body.rolloutPercent, plain.body.failureThresholdPercent, plain.body.minSample],
      [100, null, 5],
    );
    // Each target shape through the API, and its CLI form through the CLI, give the same target.
    const shapes = [...text.matchAll(/^\| `(\{"type":[^`]*\})`\s*\| `([^`]+)`/gm)];
    assert.equal(shapes.length, 6, "six target shapes");
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      noc.app.fetch,
    );
    try {
      const env = { NOC_URL: `http://127.0.0.1:${server.addr.port}`, NOC_TOKEN: noc.adminToken };
      for (const [, json, cli] of shapes) {
        const target = JSON.parse(json!);
        // No appliance is enrolled here: every valued target is unknown, so it is said explicitly.
        const api = await noc.admin("POST", "/v1/admin/assignments", {
          ...bare,
          target,
          allowUnknownTarget: true,
        });
        assert.equal(api.status, 201, `${json}: ${JSON.stringify(api.body)}`);
        assert.deepEqual(api.body.target, target);
        const r = await runCli(
          [
            "assign",
            ...["--app", "vscreen", "--name", "vscreen", "--version", "4.2.1"],
            ...["--target", cli!, "--allow-unknown-target", "--json"],
          ],
          env,
          { clearEnv: true },
        );
        assert.equal(r.code, 0, r.err);
        assert.deepEqual(JSON.parse(r.out).target, target, cli);
      }
    } finally {
      await server.shutdown();
    }
  },
);

Deno.test("the docs' listener notes hold: NOC_HOST unset takes both families, 0.0.0.0 no IPv6 connection", async () => {
  const flatProtocol = protocol.replace(/\s+/g, " ");
  const flatOperations = operations.replace(/\s+/g, " ");
  assert.ok(
    flatProtocol.includes("the default, `NOC_HOST` unset, takes every IPv4 and IPv6 address"),
  );
  assert.ok(flatOperations.includes("unset or empty: every IPv4 and IPv6 address (`::`;"));
  for (const text of [flatProtocol, flatOperations]) {
    assert.ok(
      /`NOC_HOST=0\.0\.0\.0` \(IPv4 only\)[^.]*a connection to `\[::1\]` is refused/.test(text),
    );
  }
  assert.equal(loadConfig({}, []).host, undefined);
  assert.equal(loadConfig({ NOC_HOST: "" }, ["--dev"]).host, undefined);
  assert.deepEqual(listenAddresses(undefined), ["::", "0.0.0.0"]);
  // A request signed for [::1] is accepted by name whatever the listener...
  const names = createAuthorities([]);
  names.listening({ hostname: "0.0.0.0", port: 8000 });
  assert.ok(names.accepts("[::1]:8000") && names.accepts("localhost:8000"));
  // ...but an IPv4-only listener takes no connection to it.
  const server = Deno.serve(
    { hostname: "0.0.0.0", port: 0, onListen: () => {} },
    () => new Response("ok"),
  );
  try {
    const port = server.addr.port;
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "ok");
    await assert.rejects(fetch(`http://[::1]:${port}/`));
  } finally {
    await server.shutdown();
  }
});
