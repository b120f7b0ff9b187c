/** One measured figure of `deno task bench`, as a row of its table. */
export interface Figure {
  /** What was measured. */
  name: string;
  /** The value (NaN when there is none, e.g. a skipped measurement). */
  value: number;
  /** Its unit. */
  unit: string;
  /** A note: ratios, conditions, what was skipped and why. */
  note: string;
  /** The target, when the issue sets one (e.g. "≥ 2000", "< 1000"). */
  target?: string;
  /** Whether the target is met (absent when there is no target). */
  met?: boolean;
}

/** Resident memory of process `pid`, MiB (Linux). */
export async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** CPU seconds (user + system) used so far by process `pid` (Linux). */
export function cpuSeconds(pid: number | "self"): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Samples the peak resident memory of `pid` every 20 ms until stopped. */
export function rssSampler(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssMiB(pid).catch(() => 0));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

/** The p-th percentile of ascending `sorted`. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * The median wall time of `runs` calls of `fn`, milliseconds (the upper middle of an even count),
 * after `warmup` calls that are not timed.
 */
export async function medianMs(
  runs: number,
  fn: () => Promise<unknown>,
  warmup = 0,
): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** The figures as a markdown table (measurement, value, unit, target, met, note). */
export function figureTable(figures: readonly Figure[]): string {
  const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");
  const num = (v: number) =>
    !Number.isFinite(v)
      ? "n/a"
      : Number.isInteger(v)
      ? String(v)
      : Math.abs(v) >= 100
      ? v.toFixed(0)
      : Math.abs(v) >= 1
      ? v.toFixed(1)
      : v.toFixed(2);
  return [
    `| measurement | value | unit | target | met | note |`,
    `| --- | ---: | --- | --- | --- | --- |`,
    ...figures.map((f) =>
      `| ${cell(f.name)} | ${num(f.value)} | ${f.unit} | ${f.target ?? ""} | ${
        f.met === undefined ? "" : f.met ? "yes" : "**no**"
      } | ${cell(f.note)} |`
    ),
  ].join("\n");
}

/** CPU seconds of every PostgreSQL server process on this machine (Linux), from /proc. */
export function postgresCpu(): number {
  let total = 0;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${e.name}/comm`).startsWith("postgres")) {
        total += cpuSeconds(Number(e.name));
      }
    } catch {
      // gone meanwhile
    }
  }
  return total;
}
