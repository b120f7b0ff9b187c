/** Starting a real NOC process for end-to-end tests and reading its start-up banner. */

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
