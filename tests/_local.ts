/** Real local component server processes (`deno task local`'s flags) for end-to-end tests. */
import { localTaskFlags } from "./_process.ts";

const repo = new URL("..", import.meta.url).pathname;

/** A running local component server. */
export interface LocalProcess {
  /** The URL it serves at. */
  url: string;
  /** Its id on the NOC. */
  id: string;
  /** Its data folder. */
  dataDir: string;
  /** Its (self-signed) certificate, PEM. */
  certPem: string;
  /** JSON log events so far. */
  events: Array<Record<string, unknown>>;
  /** `GET /healthz`. */
  health(): Promise<Record<string, unknown>>;
  /** A fetch trusting its certificate. */
  fetch: typeof fetch;
  /** Stops it (SIGTERM) and waits for the exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** Starts `main.ts --role local-component` with `args` and waits for its banner. */
export async function startLocal(options: {
  dataDir: string;
  args?: string[];
}): Promise<LocalProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...localTaskFlags,
      "main.ts",
      "--role",
      "local-component",
      "--data",
      options.dataDir,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      ...(options.args ?? []),
    ],
    cwd: repo,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const events: Array<Record<string, unknown>> = [];
  let out = "";
  let onBanner: (m: RegExpMatchArray | null) => void = () => {};
  const banner = new Promise<RegExpMatchArray | null>((r) => onBanner = r);
  const stderr = child.stderr.text();
  const drain = (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of child.stdout) {
      const text = dec.decode(chunk, { stream: true });
      out += text;
      buf += text;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith("{")) events.push(JSON.parse(line));
      }
      const m = out.match(
        /listening on (https:\/\/\S+)[\s\S]*id:\s+(\S+)[\s\S]*certificate:\s+(\S+)/,
      );
      if (m) onBanner(m);
    }
    onBanner(null);
  })();
  const m = await banner;
  if (!m) throw new Error(`local server exited before listening:\n${out}\n${await stderr}`);
  const certPem = await Deno.readTextFile(m[3]!);
  const client = Deno.createHttpClient({ caCerts: [certPem] });
  let stopped = false;
  const trusted: typeof fetch = (input, init) => fetch(input, { ...init, client });
  return {
    url: m[1]!,
    id: m[2]!,
    dataDir: options.dataDir,
    certPem,
    events,
    fetch: trusted,
    async health() {
      const res = await trusted(`${m[1]}/healthz`);
      return await res.json();
    },
    async stop(signal: Deno.Signal = "SIGTERM") {
      if (stopped) return await child.status;
      stopped = true;
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
      const status = await child.status;
      await drain.catch(() => {});
      await stderr.catch(() => "");
      client.close();
      return status;
    },
  };
}
