/**
 * A PostgreSQL cluster of a test's own, on a random port in a temporary folder,
 * for tests that stop, kill or SIGSTOP the database. The machine's shared
 * cluster (TEST_DATABASE_URL) is never touched.
 *
 * Needs the server binaries (`initdb`, `pg_ctl`, `postgres` under
 * /usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root, so as
 * root the cluster runs as the `postgres` system user (through `runuser`).
 *
 * @module
 */

/** A running cluster of a test's own. */
export interface OwnPostgres {
  /** Connection URL (user postgres, trust auth, database postgres). */
  url: string;
  /** The TCP port it listens on (127.0.0.1). */
  port: number;
  /** Stops it (fast shutdown: clients are disconnected). */
  stop(): Promise<void>;
  /** Starts it again on the same port, waiting until it accepts connections. */
  start(): Promise<void>;
  /** Sends `signal` to the postmaster and every backend (SIGSTOP stalls it, SIGCONT resumes it). */
  signal(signal: "SIGSTOP" | "SIGCONT" | "SIGKILL"): Promise<void>;
  /** Stops it (if running) and deletes its folder. */
  drop(): Promise<void>;
}

/** The folder of the newest installed server binaries, or null when there are none. */
export function postgresBin(): string | null {
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")]
      .map((e) => e.name).filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const bin = `/usr/lib/postgresql/${v}/bin`;
      if (Deno.statSync(`${bin}/initdb`).isFile) return bin;
    }
  } catch { /* none */ }
  return null;
}

/** True when this machine can run a cluster of a test's own. */
export function canRunOwnPostgres(): boolean {
  if (postgresBin() === null) return false;
  if (Deno.uid() !== 0) return true;
  try {
    return Deno.statSync("/usr/sbin/runuser").isFile &&
      Deno.readTextFileSync("/etc/passwd").split("\n").some((l) => l.startsWith("postgres:"));
  } catch {
    return false;
  }
}

async function run(bin: string, args: string[], asPostgres: boolean): Promise<string> {
  const out = await new Deno.Command(asPostgres ? "/usr/sbin/runuser" : bin, {
    args: asPostgres ? ["-u", "postgres", "--", bin, ...args] : args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${bin} ${args.join(" ")}: ${text}`);
  return text;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Creates and starts a cluster of a test's own; throws when {@link canRunOwnPostgres} is false. */
export async function ownPostgres(): Promise<OwnPostgres> {
  const bin = postgresBin();
  if (bin === null) throw new Error("No PostgreSQL server binaries under /usr/lib/postgresql");
  const asPostgres = Deno.uid() === 0;
  const dir = await Deno.makeTempDir({ prefix: "noc-own-pg-" });
  if (asPostgres) {
    await run("/usr/bin/chown", ["postgres:postgres", dir], false);
  }
  const data = `${dir}/data`;
  await run(
    `${bin}/initdb`,
    ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
    asPostgres,
  );
  const port = freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const pgCtl = (args: string[]) => run(`${bin}/pg_ctl`, ["-D", data, ...args], asPostgres);
  let running = false;
  const start = async () => {
    await pgCtl(["-o", options, "-l", `${dir}/log`, "-w", "-t", "60", "start"]);
    running = true;
  };
  const stop = async () => {
    await pgCtl(["-m", "fast", "-w", "-t", "60", "stop"]);
    running = false;
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    async signal(sig) {
      const pid = (await Deno.readTextFile(`${data}/postmaster.pid`)).split("\n")[0]!.trim();
      // The postmaster and its children (the backends) share no process group with us; signal each.
      const children = await new Deno.Command("pgrep", { args: ["-P", pid], stdout: "piped" })
        .output().then((o) => new TextDecoder().decode(o.stdout).split(/\s+/).filter(Boolean));
      for (const p of [pid, ...children]) {
        try {
          Deno.kill(Number(p), sig);
        } catch { /* gone */ }
      }
      if (sig === "SIGKILL") running = false;
    },
    async drop() {
      if (running) await stop().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
