/** Real processes for end-to-end tests: a NOC (reading its start-up banner), the CLI, any command. */

/** A running NOC process. */
export interface NocProcess {
  /** Its base URL. */
  url: string;
  /** Its process id. */
  pid: number;
  /** The admin token it printed (dev mode). */
  adminToken: string;
  /** The enrolment token it printed (dev mode). */
  enrollmentToken: string;
  /** Everything it wrote to stdout so far (with `keep`, only the lines it kept). */
  output(): string;
  /** Stops it with `signal` and waits for it to exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** The permission flags of `deno task dev` / `deno task start` (kept in step with deno.json). */
export const nocFlags = [
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-sys",
];

/** The permission flags of `deno task noc` (kept in step with deno.json). */
export const cliFlags = ["--allow-net", "--allow-read", "--allow-write", "--allow-env"];

/** What a command printed and how it exited. */
export interface Ran {
  /** Exit code. */
  code: number;
  /** Standard output. */
  out: string;
  /** Standard error. */
  err: string;
}

/**
 * Runs `cmd args…` in the repository with nothing on stdin; `env` is added to the environment, or
 * is all of it with `clearEnv`.
 */
export async function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  opts: { clearEnv?: boolean } = {},
): Promise<Ran> {
  const o = await new Deno.Command(cmd, {
    args,
    cwd: new URL("..", import.meta.url),
    env,
    clearEnv: opts.clearEnv ?? false,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const d = new TextDecoder();
  return { code: o.code, out: d.decode(o.stdout), err: d.decode(o.stderr) };
}

/** Runs the operator CLI as `deno task noc` does (cli/noc.ts with {@link cliFlags}). */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  opts: { clearEnv?: boolean } = {},
): Promise<Ran> {
  return run(Deno.execPath(), ["run", ...cliFlags, "cli/noc.ts", ...args], env, opts);
}

/** The permission flags of `deno task local` (kept in step with deno.json). */
export const localTaskFlags = [
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-sys",
  "--allow-run=openssl",
];

/** Starts `main.ts --dev` with `env` on a free port and waits for its banner. */
export async function startNoc(
  env: Record<string, string>,
  denoFlags: string[] = [],
  /** Which stdout lines to keep once the banner is seen (all by default; load tests keep few). */
  keep?: (line: string) => boolean,
): Promise<NocProcess> {
  return await spawnNoc(["--dev"], env, denoFlags, keep, true);
}

/**
 * Starts `main.ts --role <role>` (plus `args`) with `env` on a free port and waits for its
 * banner. Only the `noc` role prints tokens (with `--dev`); the others leave them empty.
 */
export async function startNocRole(
  role: "all" | "noc" | "catalog" | "component",
  env: Record<string, string>,
  args: string[] = [],
): Promise<NocProcess> {
  const tokens = args.includes("--dev") && (role === "all" || role === "noc");
  return await spawnNoc(["--role", role, ...args], env, [], undefined, tokens);
}

async function spawnNoc(
  args: string[],
  env: Record<string, string>,
  denoFlags: string[],
  keep: ((line: string) => boolean) | undefined,
  tokens: boolean,
): Promise<NocProcess> {
  const root = new URL("..", import.meta.url);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...nocFlags, ...denoFlags, "main.ts", ...args],
    cwd: root,
    env: { PORT: "0", NOC_HOST: "127.0.0.1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const decoder = new TextDecoder();
  const stderr = child.stderr.text();
  let onBanner: (m: RegExpMatchArray | null) => void = () => {};
  const bannerSeen = new Promise<RegExpMatchArray | null>((resolve) => onBanner = resolve);
  const bannerPattern = tokens
    ? /listening on (http:\/\/\S+)[\s\S]*admin token:\s+(\S+)[\s\S]*enrolment token: (\S+)/
    : /listening on (http:\/\/\S+)[\s\S]*NOC key id:\s+\S+\n()()/;
  let seen = false;
  let partial = "";
  const drain = (async () => {
    for await (const chunk of child.stdout) {
      const text = decoder.decode(chunk, { stream: true });
      if (seen && keep) {
        const lines = (partial + text).split("\n");
        partial = lines.pop()!;
        for (const l of lines) if (keep(l)) out += `${l}\n`;
        continue;
      }
      out += text;
      if (seen) continue;
      const m = out.match(bannerPattern);
      if (m) {
        seen = true;
        onBanner(m);
      }
    }
    onBanner(null);
  })();
  const banner = await bannerSeen;
  if (!banner) throw new Error(`NOC exited before listening:\n${out}\n${await stderr}`);
  return {
    url: banner[1]!.replace("localhost", "127.0.0.1"),
    pid: child.pid,
    adminToken: banner[2] ?? "",
    enrollmentToken: banner[3] ?? "",
    output: () => out,
    async stop(signal: Deno.Signal = "SIGINT") {
      child.kill(signal);
      const status = await child.status;
      await drain.catch(() => {});
      await stderr.catch(() => "");
      return status;
    },
  };
}
