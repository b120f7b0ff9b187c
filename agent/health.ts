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

/** The longest mount path a SecureBeat may carry (the NOC's schema, docs/protocol.md). */
export const MOUNT_MAX = 256;

/**
 * Collects health data; a mount that cannot be read is left out (and named in `skipped`), and so
 * is one the NOC would refuse the whole beat for — a path over {@link MOUNT_MAX} characters, with
 * NUL or a lone surrogate, or blank — named in `dropped` as a beat's `dropped` line (review 21d).
 */
export async function collectHealth(
  mounts: readonly string[],
): Promise<{ health: Health; skipped: string[]; dropped: string[] }> {
  const [l1 = 0, l5 = 0, l15 = 0] = safe(() => Deno.loadavg(), [0, 0, 0]);
  const mem = safe<{ total: number; available: number }>(
    () => Deno.systemMemoryInfo(),
    { total: 0, available: 0 },
  );
  const disks: Health["disks"] = [];
  const skipped: string[] = [];
  const dropped: string[] = [];
  for (const mount of mounts) {
    if (
      mount.length > MOUNT_MAX || mount.trim() === "" || mount.includes("\u0000") ||
      !mount.isWellFormed()
    ) {
      const shown = JSON.stringify(mount.slice(0, 60).toWellFormed().replaceAll("\u0000", ""));
      dropped.push(
        `health.disks: ${shown}${mount.length > 60 ? "…" : ""} (a mount path the NOC refuses: ` +
          `${mount.length} characters, at most ${MOUNT_MAX}, no NUL)`,
      );
      continue;
    }
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
    dropped,
  };
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
