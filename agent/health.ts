/** Health data for the SecureBeat: load, memory, free disk space of the configured mounts, uptime. */
import { statfs } from "node:fs/promises";

/** The `health` part of a SecureBeat. */
export interface Health {
  /** 1, 5 and 15 minute load averages. */
  load: [number, number, number];
  /** Memory, bytes. */
  memory: { totalBytes: number; availableBytes: number };
  /** Free space per mount. */
  disks: Array<{ mount: string; totalBytes: number; freeBytes: number }>;
  /** Seconds since boot. */
  uptimeS: number;
}

/** Collects health data; a mount that cannot be read is left out (and named in `skipped`). */
export async function collectHealth(
  mounts: readonly string[],
): Promise<{ health: Health; skipped: string[] }> {
  const [l1 = 0, l5 = 0, l15 = 0] = safe(() => Deno.loadavg(), [0, 0, 0]);
  const mem = safe<{ total: number; available: number }>(
    () => Deno.systemMemoryInfo(),
    { total: 0, available: 0 },
  );
  const disks: Health["disks"] = [];
  const skipped: string[] = [];
  for (const mount of mounts) {
    try {
      const s = await statfs(mount);
      disks.push({
        mount,
        totalBytes: Number(s.blocks) * Number(s.bsize),
        freeBytes: Number(s.bavail) * Number(s.bsize),
      });
    } catch {
      skipped.push(mount);
    }
  }
  return {
    health: {
      load: [l1, l5, l15].map((n) => Math.max(0, n)) as [number, number, number],
      memory: { totalBytes: mem.total, availableBytes: mem.available },
      disks,
      uptimeS: safe(() => Deno.osUptime(), 0),
    },
    skipped,
  };
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
