/**
 * Configuration of a local component server: flags win over `NOC_LOCAL_*`
 * environment variables, which win over defaults. Flags are parsed by `node:util` `parseArgs`
 * (strict; see protocol/util/args.ts for the rules every program here shares).
 *
 * @module
 */
import type { ParseArgsOptionsConfig } from "node:util";
import { parseCommandLine, UsageError } from "../protocol/util/args.ts";

/** Everything a local component server is started with. */
export interface LocalConfig {
  /** The NOC's base URL (needed to enrol; remembered afterwards). */
  upstream: string | null;
  /** The site it serves (needed to enrol; checked against the identity afterwards). */
  site: string | null;
  /** A one-time `local-server` enrolment token (first start only). */
  token: string | null;
  /** Its data folder: identity, certificate, cache, download records. */
  dataDir: string;
  /** Address to listen on. */
  host: string;
  /** Port to listen on (0 picks a free one). */
  port: number;
  /** The base URL appliances reach it at (`https://<host name>:<port>` unless set). */
  publicUrl: string | null;
  /** The name it enrols with (the host name unless set). */
  name: string;
  /** TLS certificate (PEM file); a self-signed one is made in the data folder when absent. */
  certFile: string | null;
  /** TLS private key (PEM file). */
  keyFile: string | null;
  /** Extra CA certificates (PEM file) to trust for the NOC, for a NOC behind a private CA. */
  upstreamCaFile: string | null;
  /** Cache budget, bytes. */
  cacheBytes: number;
  /** Seconds between syncs with the NOC (the NOC's suggestion unless set). */
  syncS: number | null;
  /** Seconds a request waits for a pull-through fetch before sending the appliance elsewhere. */
  missWaitS: number;
  /** Accept an `http://` NOC (development only: keys, stage and files would cross unprotected). */
  allowHttpUpstream: boolean;
}

/** A usage or configuration error: the message says what to fix (exit 64). */
export class LocalConfigError extends UsageError {}

const names = {
  upstream: ["upstream", "NOC_LOCAL_UPSTREAM"],
  site: ["site", "NOC_LOCAL_SITE"],
  token: ["token", "NOC_LOCAL_TOKEN"],
  dataDir: ["data", "NOC_LOCAL_DATA_DIR"],
  host: ["host", "NOC_LOCAL_HOST"],
  port: ["port", "NOC_LOCAL_PORT"],
  publicUrl: ["public-url", "NOC_LOCAL_PUBLIC_URL"],
  name: ["name", "NOC_LOCAL_NAME"],
  certFile: ["cert", "NOC_LOCAL_CERT_FILE"],
  keyFile: ["key", "NOC_LOCAL_KEY_FILE"],
  upstreamCaFile: ["upstream-ca", "NOC_LOCAL_UPSTREAM_CA_FILE"],
  cacheBytes: ["cache", "NOC_LOCAL_CACHE"],
  syncS: ["sync", "NOC_LOCAL_SYNC_S"],
  missWaitS: ["miss-wait", "NOC_LOCAL_MISS_WAIT_S"],
  allowHttpUpstream: ["allow-http-upstream", "NOC_LOCAL_ALLOW_HTTP_UPSTREAM"],
} as const satisfies Record<keyof LocalConfig, readonly [string, string]>;

/** Every flag, for `parseArgs`; `--role` is the one `main.ts` dispatches on (`local-component`). */
const localOptions = {
  ...Object.fromEntries(
    Object.values(names).map(([flag]) => [
      flag,
      { type: flag === "allow-http-upstream" ? "boolean" : "string" },
    ]),
  ) as { [K in (typeof names)[keyof typeof names][0]]: { type: "string" | "boolean" } },
  role: { type: "string" },
} satisfies ParseArgsOptionsConfig;

/** The usage text. */
export const localUsage = `Usage: deno task local -- [options]
       deno run <the task's permissions> local_server/main.ts [options]

Runs a local component server: enrols with the NOC once (--upstream, --site,
--token), then stages and serves the site's packages and files over HTTPS.

Options (environment variable in brackets):
  --upstream <url>     NOC base URL [NOC_LOCAL_UPSTREAM]
  --site <site>        site served [NOC_LOCAL_SITE]
  --token <token>      one-time local-server enrolment token [NOC_LOCAL_TOKEN]
  --data <dir>         data folder (./.noc-local) [NOC_LOCAL_DATA_DIR]
  --host <addr>        listen address (0.0.0.0) [NOC_LOCAL_HOST]
  --port <n>           listen port (8443; 0 picks one) [NOC_LOCAL_PORT]
  --public-url <url>   URL appliances use (https://<host name>:<port>) [NOC_LOCAL_PUBLIC_URL]
  --name <name>        name shown on the NOC (host name) [NOC_LOCAL_NAME]
  --cert <file>        TLS certificate, PEM (self-signed one made when absent) [NOC_LOCAL_CERT_FILE]
  --key <file>         TLS private key, PEM [NOC_LOCAL_KEY_FILE]
  --upstream-ca <file> extra CA certificates to trust for the NOC [NOC_LOCAL_UPSTREAM_CA_FILE]
  --cache <size>       cache budget, e.g. 500M, 20G (10G) [NOC_LOCAL_CACHE]
  --sync <seconds>     seconds between syncs (the NOC's choice, 60) [NOC_LOCAL_SYNC_S]
  --miss-wait <s>      seconds a request waits for a pull-through (20) [NOC_LOCAL_MISS_WAIT_S]
  --allow-http-upstream
                       accept an http:// NOC, for development only [NOC_LOCAL_ALLOW_HTTP_UPSTREAM=true]
  --role local-component
                       the role main.ts runs this as (the only one accepted here) [NOC_ROLE]
  -h, --help           this help

Options go in any order. A configuration error exits 64, a failure to start 1.
`;

/** Parses a size such as `512M`, `20G` or `1048576` into bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(text.trim());
  if (!m) throw new LocalConfigError(`Cache size "${text}" is not a size such as 500M or 20G`);
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[
    m[2]!.toUpperCase() as "" | "K" | "M" | "G" | "T"
  ];
  return Math.floor(Number(m[1]) * unit);
}

/**
 * Parses `args`: the flags given, and whether `--help`/`-h` was; throws {@link LocalConfigError}
 * naming an unknown flag or a missing value. The older spelling `--allow-http-upstream true|false`
 * is still understood.
 */
export function parseLocalArgs(
  args: readonly string[],
): { flags: Map<string, string>; help: boolean } {
  const given: string[] = [];
  let httpOff = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!, next = args[i + 1];
    if (a === "--allow-http-upstream" && (next === "true" || next === "false")) {
      if (next === "true") given.push(a);
      httpOff = next === "false";
      i++;
    } else given.push(a);
  }
  let values;
  try {
    values = parseCommandLine(given, localOptions).values;
  } catch (e) {
    throw e instanceof UsageError ? new LocalConfigError(e.message) : e;
  }
  const { help, role, ...rest } = values;
  if (role !== undefined && role !== "local-component") {
    throw new LocalConfigError(`"--role" must be local-component here, not "${role}"`);
  }
  const flags = new Map<string, string>();
  for (const [k, v] of Object.entries(rest)) {
    if (v !== undefined) flags.set(k, String(v));
  }
  if (httpOff && !flags.has("allow-http-upstream")) flags.set("allow-http-upstream", "false");
  return { flags, help: help === true };
}

/** Reads the configuration from `args` and `env`; throws {@link LocalConfigError}. */
export function loadLocalConfig(
  args: readonly string[],
  env: Record<string, string | undefined>,
): LocalConfig {
  const { flags } = parseLocalArgs(args);
  const get = (k: keyof typeof names): string | undefined => {
    const [flag, variable] = names[k];
    const v = flags.get(flag) ?? env[variable];
    return v === "" ? undefined : v;
  };
  const int = (k: keyof typeof names, min: number, max: number, dflt: number) => {
    const v = get(k);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new LocalConfigError(
        `"--${names[k][0]}" must be a whole number from ${min} to ${max}, not "${v}"`,
      );
    }
    return n;
  };
  const url = (k: keyof typeof names, https: boolean) => {
    const v = get(k);
    if (v === undefined) return null;
    const ok = URL.canParse(v) &&
      (https ? ["https:"] : ["http:", "https:"]).includes(new URL(v).protocol);
    if (!ok) {
      throw new LocalConfigError(
        `"--${names[k][0]}" must be an ${https ? "https" : "http(s)"} URL, not "${v}"${
          k === "upstream" ? " (--allow-http-upstream allows http, for development only)" : ""
        }`,
      );
    }
    return v.replace(/\/+$/, "");
  };
  const site = get("site") ?? null;
  if (site !== null && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(site)) {
    throw new LocalConfigError(`"--site" must be a site name, not "${site}"`);
  }
  const certFile = get("certFile") ?? null, keyFile = get("keyFile") ?? null;
  if ((certFile === null) !== (keyFile === null)) {
    throw new LocalConfigError(`"--cert" and "--key" go together`);
  }
  const sync = get("syncS");
  const allowHttp = get("allowHttpUpstream");
  if (allowHttp !== undefined && allowHttp !== "true" && allowHttp !== "false") {
    throw new LocalConfigError(`"--allow-http-upstream" must be true or false, not "${allowHttp}"`);
  }
  const allowHttpUpstream = allowHttp === "true";
  return {
    allowHttpUpstream,
    upstream: url("upstream", !allowHttpUpstream),
    site,
    token: get("token") ?? null,
    dataDir: get("dataDir") ?? "./.noc-local",
    host: get("host") ?? "0.0.0.0",
    port: int("port", 0, 65535, 8443),
    publicUrl: url("publicUrl", true),
    name: get("name") ?? Deno.hostname(),
    certFile,
    keyFile,
    upstreamCaFile: get("upstreamCaFile") ?? null,
    cacheBytes: parseSize(get("cacheBytes") ?? "10G"),
    syncS: sync === undefined ? null : int("syncS", 1, 86400, 60),
    missWaitS: int("missWaitS", 0, 600, 20),
  };
}
