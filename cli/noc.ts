// deno-lint-ignore-file no-explicit-any
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
 * noc tokens create [--site S] [--channel C] [--tags a,b] [--label L] [--hours N]
 * noc tokens [list] | tokens revoke <id>
 * noc appliances [list] [--state S] [--site S] [--model M] [--channel C] [--tag T] [--q text] [--limit N]
 * noc appliances show <uid> | appliances revoke <uid> --reason R
 * noc alerts [list] [--status open|resolved|all] | alerts ack <id>
 * noc assign --app A --name N --version V [--kind package|file] [--target all|model=M|site=S|channel=C|tag=T|appliance=UID] [--rollout P]
 * noc wake (--uid U | --site S | --all)
 * ```
 *
 * Every command prints for people; `--json` prints the admin API's answer.
 *
 * `--noc` and `--token` default to NOC_URL and NOC_TOKEN.
 *
 * @module
 */
import { createTar, gzip } from "../protocol/package/tar.ts";
import { buildPackage } from "../protocol/package/file.ts";
import { wrapContentKey } from "../protocol/package/format.ts";
import { readPackagePrefix } from "../protocol/package/file.ts";
import { ed25519PublicOf, exportRawPublic, importEd25519Seed } from "../protocol/crypto/ed25519.ts";
import { fromBase64Url, toBase64Url } from "../protocol/util/encoding.ts";
import { keyId, newSeed } from "../protocol/keys.ts";

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

function postJson(p: Parsed, path: string, body: unknown): Promise<unknown> {
  return call(p, "POST", path, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Aligned columns for people. */
function table(head: string[], rows: unknown[][]): string {
  if (rows.length === 0) return "(none)";
  const cells = [head, ...rows.map((r) => r.map((v) => String(v)))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells.map((r) => r.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
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
    case "tokens": {
      const [sub = "list", id] = rest;
      if (sub === "create") {
        const tags = flag(p, "tags")?.split(",").map((t) => t.trim()).filter(Boolean);
        const body = {
          ...(flag(p, "site") ? { site: flag(p, "site") } : {}),
          ...(flag(p, "channel") ? { channel: flag(p, "channel") } : {}),
          ...(flag(p, "label") ? { label: flag(p, "label") } : {}),
          ...(tags?.length ? { tags } : {}),
          ...(flag(p, "hours") ? { ttlS: Number(flag(p, "hours")) * 3600 } : {}),
        };
        const t = await postJson(p, "/v1/admin/enrollment-tokens", body) as Record<string, any>;
        if (p.flags.has("json")) return JSON.stringify(t, null, 2);
        return `Enrolment token (single use, expires ${t.expiresAt}):\n  ${t.token}\n` +
          `Enrol an appliance with:\n  noc-agent enroll --noc <this NOC's URL> --token ${t.token}`;
      }
      if (sub === "revoke") {
        if (!id) throw new CliError("Usage: noc tokens revoke <id>", 2);
        const t = await call(p, "DELETE", `/v1/admin/enrollment-tokens/${encodeURIComponent(id)}`);
        return p.flags.has("json") ? JSON.stringify(t, null, 2) : `Token ${id} revoked`;
      }
      if (sub !== "list") throw new CliError("Usage: noc tokens [list|create|revoke] …", 2);
      const r = await call(p, "GET", "/v1/admin/enrollment-tokens") as { items: any[] };
      if (p.flags.has("json")) return JSON.stringify(r, null, 2);
      return table(
        ["id", "for", "status", "site", "label", "expires"],
        r.items.map((t) => [
          t.id,
          t.purpose,
          t.status,
          t.site ?? "",
          t.label ?? "",
          t.expiresAt,
        ]),
      );
    }
    case "appliances": {
      const [sub = "list", uid] = rest;
      if (sub === "show") {
        if (!uid) throw new CliError("Usage: noc appliances show <uid>", 2);
        const a = await call(
          p,
          "GET",
          `/v1/admin/appliances/${encodeURIComponent(uid)}?history=0`,
        ) as any;
        if (p.flags.has("json")) return JSON.stringify(a, null, 2);
        const comps = (a.lastReport?.components ?? []).map((c: any) =>
          `  ${c.kind} ${c.app}/${c.name}@${c.version}`
        );
        return [
          `${a.hostname} (${a.uid}): ${a.state}`,
          `  model ${a.model}, site ${a.site ?? "none"}, channel ${a.channel}, tags ${
            a.tags.join(",") || "none"
          }`,
          `  last beat ${a.lastBeatAt ?? "never"}, next due ${a.nextDueAt}, agent ${
            a.agentVersion ?? "?"
          }`,
          ...(a.revokedAt ? [`  revoked ${a.revokedAt}: ${a.revokedReason}`] : []),
          `running:`,
          ...(comps.length ? comps : ["  nothing reported"]),
        ].join("\n");
      }
      if (sub === "revoke") {
        if (!uid) throw new CliError("Usage: noc appliances revoke <uid> --reason R", 2);
        const a = await postJson(p, `/v1/admin/appliances/${encodeURIComponent(uid)}/revoke`, {
          reason: need(p, "reason"),
        });
        return p.flags.has("json") ? JSON.stringify(a, null, 2) : `Appliance ${uid} revoked`;
      }
      if (sub !== "list") throw new CliError("Usage: noc appliances [list|show|revoke] …", 2);
      const q = new URLSearchParams();
      for (const f of ["state", "site", "model", "channel", "tag", "q", "limit", "cursor"]) {
        const v = flag(p, f);
        if (v) q.set(f, v);
      }
      const r = await call(p, "GET", `/v1/admin/appliances?${q}`) as {
        items: any[];
        nextCursor: string | null;
      };
      if (p.flags.has("json")) return JSON.stringify(r, null, 2);
      return table(
        ["host name", "state", "model", "site", "last beat", "uid"],
        r.items.map((a) => [
          a.hostname,
          a.state,
          a.model,
          a.site ?? "",
          a.lastBeatAt ?? "never",
          a.uid,
        ]),
      ) + (r.nextCursor ? `\n(more: --cursor ${r.nextCursor})` : "");
    }
    case "alerts": {
      const [sub = "list", id] = rest;
      if (sub === "ack") {
        if (!id) throw new CliError("Usage: noc alerts ack <id>", 2);
        const a = await call(p, "POST", `/v1/admin/alerts/${encodeURIComponent(id)}/ack`);
        return p.flags.has("json") ? JSON.stringify(a, null, 2) : `Alert ${id} acknowledged`;
      }
      if (sub !== "list") throw new CliError("Usage: noc alerts [list|ack <id>]", 2);
      const status = flag(p, "status") ?? "open";
      const r = await call(p, "GET", `/v1/admin/alerts?status=${encodeURIComponent(status)}`) as {
        items: any[];
      };
      if (p.flags.has("json")) return JSON.stringify(r, null, 2);
      return table(
        ["id", "kind", "appliance", "opened", "acknowledged", "resolved"],
        r.items.map((a) => [
          a.id,
          a.kind,
          a.hostname ?? a.uid ?? "",
          a.openedAt,
          a.acknowledgedAt ? `by ${a.acknowledgedBy}` : "",
          a.resolvedAt ?? "",
        ]),
      );
    }
    case "assign": {
      const target = flag(p, "target") ?? "all";
      const m = /^(model|site|channel|tag|appliance)=(.+)$/.exec(target);
      if (target !== "all" && !m) {
        throw new CliError(
          `--target must be all or <model|site|channel|tag|appliance>=<value>, not "${target}"`,
          2,
        );
      }
      const a = await postJson(p, "/v1/admin/assignments", {
        kind: flag(p, "kind") ?? "package",
        app: need(p, "app"),
        name: need(p, "name"),
        version: need(p, "version"),
        target: m ? { type: m[1], value: m[2] } : { type: "all" },
        rolloutPercent: Number(flag(p, "rollout") ?? "100"),
      }) as any;
      if (p.flags.has("json")) return JSON.stringify(a, null, 2);
      return `Assignment ${a.id}: ${a.kind} ${a.app}/${a.name}@${a.version} to ${target}, rollout ${a.rolloutPercent}%`;
    }
    case "wake": {
      const uid = flag(p, "uid"), site = flag(p, "site");
      const body = uid
        ? { uid }
        : site
        ? { site }
        : p.flags.get("all") === true
        ? { all: true }
        : null;
      if (!body) throw new CliError("Usage: noc wake (--uid U | --site S | --all)", 2);
      const r = await postJson(p, "/v1/admin/wake", body);
      return p.flags.has("json") ? JSON.stringify(r, null, 2) : `Woken: ${JSON.stringify(body)}`;
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
        "Usage: noc <tokens|appliances|alerts|package|upload|file put|assign|wake|keygen|release-key add|local-servers> … (see docs/operations.md)",
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
