/**
 * V8 CPU profiles for the benches (issue 23: "profile first and show where the time goes"): of
 * this process through `node:inspector`, or of another Deno process started with
 * `--inspect=127.0.0.1:PORT` through the Chrome DevTools Protocol over its WebSocket; and a
 * summary of one as text — where the samples fall by category (idle, garbage collection, native
 * code outside JavaScript: Deno's HTTP server, crypto, I/O) and by module, and the functions with
 * the most self time.
 *
 * Hand-written because no library here does it: the protocol is two requests
 * (`Profiler.start`, `Profiler.stop`; https://chromedevtools.github.io/devtools-protocol/v8/Profiler/).
 * The profile's format is V8's `Profiler.Profile` (nodes with `callFrame`, `samples`,
 * `timeDeltas` in µs), which Chrome's DevTools open as a `.cpuprofile` file.
 *
 * @module
 */
import { Session } from "node:inspector/promises";

/** A V8 CPU profile (`Profiler.Profile`): times in µs. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A running profile: `stop()` ends it and gives the profile. */
export interface Profiling {
  stop(): Promise<CpuProfile>;
}

/** Starts profiling this process, sampling every `intervalUs` µs. */
export async function profileSelf(intervalUs = 500): Promise<Profiling> {
  const s = new Session();
  s.connect();
  await s.post("Profiler.enable");
  await s.post("Profiler.setSamplingInterval", { interval: intervalUs });
  await s.post("Profiler.start");
  return {
    async stop() {
      const { profile } = await s.post("Profiler.stop") as { profile: CpuProfile };
      s.disconnect();
      return profile;
    },
  };
}

/**
 * Starts profiling the Deno process whose inspector listens on `127.0.0.1:port`.
 *
 * @throws Error when no inspector answers there.
 */
export async function profileRemote(port: number, intervalUs = 500): Promise<Profiling> {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
    webSocketDebuggerUrl: string;
  }[];
  const url = list[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target at 127.0.0.1:${port}`);
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`inspector ${url} refused the connection`));
  });
  let id = 0;
  const waiting = new Map<number, (r: { result?: unknown; error?: unknown }) => void>();
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data));
    if (typeof m.id === "number") waiting.get(m.id)?.(m);
  };
  const post = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const n = ++id;
      waiting.set(n, (m) => {
        waiting.delete(n);
        if (m.error) reject(new Error(`${method}: ${JSON.stringify(m.error)}`));
        else resolve(m.result);
      });
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: intervalUs });
  await post("Profiler.start");
  return {
    async stop() {
      const { profile } = await post("Profiler.stop") as { profile: CpuProfile };
      ws.close();
      return profile;
    },
  };
}

/** The module a call frame's URL belongs to, for grouping (npm package, `ext:` module, file). */
function moduleOf(url: string): string {
  if (url === "") return "(native or builtin)";
  const npm = /node_modules\/(?:\.deno\/)?((?:@[^/]+\/)?[^/@]+)/.exec(url) ??
    /registry\.npmjs\.org\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (npm) return `npm:${npm[1]}`;
  if (url.startsWith("ext:") || url.startsWith("node:")) {
    return url.split("/").slice(0, 2).join("/");
  }
  const own = /\/(noc|protocol|agent|bench|local_server)\/(.*)$/.exec(url);
  if (own) return `${own[1]}/${own[2]}`;
  return url.replace(/^file:\/\//, "");
}

/**
 * A text summary of `profile`: the share of samples per category (`(idle)`, `(garbage
 * collector)`, `(program)` — native code outside JavaScript), per module by self time, and the
 * `top` functions by self time. Shares are of all samples (wall time profiled).
 */
export function summarizeProfile(profile: CpuProfile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  let total = 0;
  const fns = new Map<string, number>();
  const modules = new Map<string, number>();
  for (const [id, us] of selfUs) {
    total += us;
    const f = byId.get(id)!.callFrame;
    const special = f.functionName.startsWith("(");
    const key = special
      ? f.functionName
      : `${f.functionName || "(anonymous)"} ${moduleOf(f.url)}:${f.lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const mod = special ? f.functionName : moduleOf(f.url);
    modules.set(mod, (modules.get(mod) ?? 0) + us);
  }
  const pct = (us: number) => `${(us / total * 100).toFixed(1).padStart(5)} %`;
  const rows = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `  ${pct(us)}  ${k}`);
  const busy = total - (modules.get("(idle)") ?? 0);
  return [
    `${(total / 1e6).toFixed(1)} s profiled, ${(busy / 1e6).toFixed(1)} s not idle ` +
    `(${(busy / total * 100).toFixed(0)} %), ${profile.samples.length} samples`,
    "by module (self time):",
    ...rows(modules, 20),
    `top ${top} functions (self time):`,
    ...rows(fns, top),
  ].join("\n");
}
