/**
 * The operator's command line (`deno task noc <command>`): build and publish
 * packages and files, and make release keys.
 *
 * ```
 * noc package <dir> --app A --name N --version V [--noc URL --token T]
 *     The NOC signs: the payload (gzip tar of <dir>) is streamed to the NOC, which encrypts and signs it.
 * noc package <dir> --app A --name N --version V --key release.key (--noc URL --token T | --out FILE [--noc-key K])
 *     Signed here with an offline release key; the content key travels wrapped to the NOC's X25519 key.
 * noc upload <package file> [--noc URL --token T]    upload a package built with --out (reads <file>.wrapped-key)
 * noc file put <path> --app A --name N --version V [--noc URL --token T]
 * noc keygen --out release.key                        make a release key; prints its public half to register
 * noc release-key add <public key> --label L [--noc URL --token T]
 * noc local-servers token --site S [--label L]          a one-time token for a site's local component server
 * noc local-servers [list] [--site S] [--json]          local component servers: state, cache, hit rate
 * noc local-servers revoke <id> --reason R
 * ```
 *
 * `--noc` and `--token` default to NOC_URL and NOC_TOKEN.
 *
 * @module
 */
import { createTar, gzip } from "./tar.ts";
import { buildPackage } from "./package_file.ts";
import { wrapContentKey } from "./package_format.ts";
import { readPackagePrefix } from "./package_file.ts";
import { ed25519PublicOf, exportRawPublic, importEd25519Seed } from "./ed25519.ts";
import { fromBase64Url, toBase64Url } from "./encoding.ts";
import { keyId, newSeed } from "./noc_keys.ts";

/** A command-line failure: printed without a stack, exit code 1 (2 for usage). */
export class CliError extends Error {
  /** Creates an error with an exit code. */
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

function parse(args: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith("--")) {
      const next = args[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        flags.set(a.slice(2), next);
        i++;
      } else flags.set(a.slice(2), true);
    } else positional.push(a);
  }
  return { positional, flags };
}

function flag(p: Parsed, name: string, env?: string): string | undefined {
  const v = p.flags.get(name);
  if (v === true) throw new CliError(`--${name} needs a value`, 2);
  return v ?? (env ? Deno.env.get(env) : undefined);
}

function need(p: Parsed, name: string, env?: string): string {
  const v = flag(p, name, env);
  if (v === undefined) throw new CliError(`--${name} is required${env ? ` (or ${env})` : ""}`, 2);
  return v;
}

async function call(
  p: Parsed,
  method: string,
  path: string,
  init: RequestInit = {},
): Promise<unknown> {
  const noc = need(p, "noc", "NOC_URL").replace(/\/$/, "");
  const token = need(p, "token", "NOC_TOKEN");
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  const res = await fetch(`${noc}${path}`, { ...init, method, headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* keep text */ }
  if (!res.ok) {
    const e = body as { error?: string; message?: string };
    throw new CliError(`NOC answered ${res.status}: ${e.message ?? text.slice(0, 300)}`);
  }
  return body;
}

async function isDir(path: string): Promise<void> {
  const info = await Deno.stat(path).catch(() => null);
  if (!info?.isDirectory) throw new CliError(`"${path}" is not a folder`, 2);
  const install = await Deno.stat(`${path}/install`).catch(() => null);
  if (!install?.isFile) {
    throw new CliError(`"${path}" has no install program (a file named "install")`, 2);
  }
  if (install.mode !== null && (install.mode & 0o111) === 0) {
    throw new CliError(`"${path}/install" is not executable (chmod +x it)`, 2);
  }
}

async function releaseKey(
  path: string,
): Promise<{ kid: string; privateKey: CryptoKey; publicKey: string }> {
  const privateKey = await importEd25519Seed(fromBase64Url((await Deno.readTextFile(path)).trim()));
  const raw = new Uint8Array(await exportRawPublic(await ed25519PublicOf(privateKey)));
  return { kid: await keyId(raw), privateKey, publicKey: toBase64Url(raw) };
}

async function nocEncryptionKey(p: Parsed): Promise<string> {
  const given = flag(p, "noc-key");
  if (given) return given;
  const keys = await call(p, "GET", "/v1/keys") as { encryptionKey: string };
  return keys.encryptionKey;
}

async function uploadPackageFile(p: Parsed, file: string, wrapped: string): Promise<unknown> {
  using f = await Deno.open(file, { read: true });
  return await call(p, "POST", "/v1/admin/packages", {
    headers: { "content-type": "application/vnd.noc-package", "x-noc-wrapped-key": wrapped },
    body: f.readable,
  });
}

interface LocalServerListing {
  id: string;
  site: string;
  name: string;
  url: string;
  state: string;
  lastContactAt: string | null;
  cache: { bytes: number; limit: number; entries: number; staged: number };
  hits: number;
  misses: number;
  hitRate: number | null;
  pendingRecords: number;
  problems: unknown[];
}

/** Runs the CLI with `args`; returns what to print. */
export async function runCli(args: string[]): Promise<string> {
  const p = parse(args);
  const [command, ...rest] = p.positional;
  switch (command) {
    case "package": {
      const dir = rest[0];
      if (!dir) throw new CliError("Usage: noc package <dir> --app A --name N --version V", 2);
      await isDir(dir);
      const ref = { app: need(p, "app"), name: need(p, "name"), version: need(p, "version") };
      const keyFile = flag(p, "key");
      if (!keyFile) {
        if (flag(p, "out")) {
          throw new CliError("--out needs --key: only a release key can sign away from the NOC", 2);
        }
        const q = new URLSearchParams(ref).toString();
        const body = ReadableStream.from(gzip(createTar(dir)));
        return JSON.stringify(
          await call(p, "POST", `/v1/admin/packages?${q}`, {
            headers: { "content-type": "application/gzip" },
            body,
          }),
          null,
          2,
        );
      }
      const signer = await releaseKey(keyFile);
      const out = flag(p, "out") ?? await Deno.makeTempFile({ suffix: ".nocpkg" });
      const built = await buildPackage({
        plaintext: gzip(createTar(dir)),
        ...ref,
        signer,
        out,
        now: new Date(),
      });
      const wrapped = await wrapContentKey(
        built.contentKey,
        fromBase64Url(await nocEncryptionKey(p)),
        built.header,
      );
      built.contentKey.fill(0);
      if (flag(p, "out")) {
        await Deno.writeTextFile(`${out}.wrapped-key`, wrapped + "\n", { mode: 0o600 });
        return `Wrote ${out} (${built.fileSize} bytes, signed by ${signer.kid}) and ${out}.wrapped-key`;
      }
      try {
        return JSON.stringify(await uploadPackageFile(p, out, wrapped), null, 2);
      } finally {
        await Deno.remove(out).catch(() => {});
      }
    }
    case "upload": {
      const file = rest[0];
      if (!file) throw new CliError("Usage: noc upload <package file>", 2);
      await readPackagePrefix(file);
      const wrapped = (await Deno.readTextFile(`${file}.wrapped-key`)).trim();
      return JSON.stringify(await uploadPackageFile(p, file, wrapped), null, 2);
    }
    case "file": {
      const [sub, path] = rest;
      if (sub !== "put" || !path) {
        throw new CliError("Usage: noc file put <path> --app A --name N --version V", 2);
      }
      const q = new URLSearchParams({
        app: need(p, "app"),
        name: need(p, "name"),
        version: need(p, "version"),
      });
      using f = await Deno.open(path, { read: true });
      return JSON.stringify(
        await call(p, "POST", `/v1/admin/files?${q}`, {
          headers: { "content-type": "application/octet-stream" },
          body: f.readable,
        }),
        null,
        2,
      );
    }
    case "keygen": {
      const out = need(p, "out");
      const seed = newSeed();
      await Deno.writeTextFile(out, seed + "\n", { mode: 0o600, createNew: true });
      const k = await releaseKey(out);
      return `Wrote ${out} (keep it offline). Key id ${k.kid}; register its public half with:\n` +
        `  deno task noc release-key add ${k.publicKey} --label "<who holds it>"`;
    }
    case "release-key": {
      const [sub, publicKey] = rest;
      if (sub !== "add" || !publicKey) {
        throw new CliError("Usage: noc release-key add <public key> --label L", 2);
      }
      return JSON.stringify(
        await call(p, "POST", "/v1/admin/release-keys", {
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ publicKey, label: need(p, "label") }),
        }),
        null,
        2,
      );
    }
    case "local-servers": {
      const [sub = "list", id] = rest;
      const json = (v: unknown) => JSON.stringify(v, null, 2);
      if (sub === "token") {
        const label = flag(p, "label");
        const t = await call(p, "POST", "/v1/admin/enrollment-tokens", {
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            purpose: "local-server",
            site: need(p, "site"),
            ...(label ? { label } : {}),
          }),
        }) as { token: string; site: string; expiresAt: string };
        if (p.flags.has("json")) return json(t);
        return `Local server token for site "${t.site}" (single use, expires ${t.expiresAt}):\n` +
          `  ${t.token}\n` +
          `Start the site's server with:\n  deno task local -- --upstream <this NOC's URL> --site ${t.site} --token ${t.token}`;
      }
      if (sub === "revoke") {
        if (!id) throw new CliError("Usage: noc local-servers revoke <id> --reason R", 2);
        return json(
          await call(p, "POST", `/v1/admin/local-servers/${encodeURIComponent(id)}/revoke`, {
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ reason: need(p, "reason") }),
          }),
        );
      }
      if (sub !== "list") {
        throw new CliError("Usage: noc local-servers [list|token|revoke] …", 2);
      }
      const site = flag(p, "site");
      const r = await call(
        p,
        "GET",
        `/v1/admin/local-servers${site ? `?site=${encodeURIComponent(site)}` : ""}`,
      ) as { items: LocalServerListing[] };
      if (p.flags.has("json")) return json(r);
      if (r.items.length === 0) return "No local component servers.";
      const mib = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MiB`;
      return r.items.map((s) =>
        [
          `${s.site}\t${s.name}\t${s.state}\t${s.url}`,
          `  id ${s.id}, last contact ${s.lastContactAt ?? "never"}`,
          `  cache ${mib(s.cache.bytes)} of ${
            mib(s.cache.limit)
          }, ${s.cache.entries} held, ${s.cache.staged} staged`,
          `  hit rate ${
            s.hitRate === null ? "-" : `${Math.round(s.hitRate * 100)}%`
          } (${s.hits} hits, ${s.misses} misses), ` +
          `${s.pendingRecords} records pending, ${s.problems.length} problems`,
        ].join("\n")
      ).join("\n");
    }
    default:
      throw new CliError(
        "Usage: noc <package|upload|file put|keygen|release-key add|local-servers> … (see lib/noc_cli.ts or docs/operations.md)",
        2,
      );
  }
}

if (import.meta.main) {
  try {
    console.log(await runCli(Deno.args));
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    Deno.exit(e instanceof CliError ? e.code : 1);
  }
}
