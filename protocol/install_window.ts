/**
 * Install windows (issue 22 item 5): the daily hours in which an appliance may install, in a
 * time zone, as a catalog carries them (`installWindow`, signed with the catalog) and the NOC
 * stores them (a site's, a model's or an appliance's). Shared by the NOC (validation) and the
 * agent (deferral), so both read a window the same way.
 *
 * A window is `start`–`end`, each `HH:MM` on a 24-hour clock, local time in `timeZone` (an IANA
 * name, e.g. `Europe/Berlin`, or `UTC`). It is open from `start` (included) to `end` (excluded);
 * an `end` before `start` runs over midnight (`22:00`–`04:00`). Local time is read with the
 * runtime's time-zone data (`Intl.DateTimeFormat`), so daylight-saving changes are followed.
 *
 * @module
 */
import { z } from "zod";

/** A daily install window (see the module). */
export interface InstallWindow {
  /** Opens at this local time, `HH:MM`. */
  start: string;
  /** Closes at this local time, `HH:MM` (before `start`: over midnight). */
  end: string;
  /** IANA time zone the times are in. */
  timeZone: string;
  /** Where it comes from: `appliance`, `site:<name>` or `model:<name>`. */
  source: string;
}

const hhmm = z.string().regex(/^([01][0-9]|2[0-3]):[0-5][0-9]$/, {
  message: "a time of day, HH:MM on a 24-hour clock (00:00–23:59)",
});

/** Whether `tz` is a time zone this runtime knows. */
export function knownTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-GB", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** A window's times and zone, as the admin API takes them (fields of a body; see {@link opensSomeTime}). */
export const installWindowTimes = {
  start: hhmm,
  end: hhmm,
  timeZone: z.string().min(1).max(64).refine(knownTimeZone, {
    message: "an IANA time zone name, e.g. Europe/Berlin or UTC",
  }),
};

/** Refuses a window whose `start` and `end` are the same time (never open, or always). */
export function opensSomeTime<T extends z.ZodType<{ start: string; end: string }>>(schema: T) {
  return schema.refine((w) => w.start !== w.end, {
    message: "start and end are the same time: a window must be open for part of the day",
    path: ["end"],
  });
}

/** The window as a catalog carries it (checked by the agent with the rest of the catalog). */
export const installWindowSchema = z.object({
  start: hhmm,
  end: hhmm,
  timeZone: z.string().min(1).max(64),
  source: z.string().max(300),
});

const minutes = (hm: string) => Number(hm.slice(0, 2)) * 60 + Number(hm.slice(3, 5));

/** Local wall-clock time at `at` in `timeZone`: minutes since midnight and seconds. */
function localTime(at: Date, timeZone: string): { minute: number; second: number } {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone,
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  }).formatToParts(at);
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? 0);
  return { minute: get("hour") * 60 + get("minute"), second: get("second") };
}

/** What {@link windowAt} found. */
export interface WindowState {
  /** Whether installs may run at that time. */
  open: boolean;
  /** When it next opens (null when open); across a daylight-saving change, within an hour. */
  opensAt: Date | null;
}

/**
 * Whether `w` is open at `at`, and when it next opens. Throws a `RangeError` for a time zone the
 * runtime does not know.
 */
export function windowAt(
  w: Pick<InstallWindow, "start" | "end" | "timeZone">,
  at: Date,
): WindowState {
  const { minute, second } = localTime(at, w.timeZone);
  const s = minutes(w.start), e = minutes(w.end);
  const open = s < e ? minute >= s && minute < e : minute >= s || minute < e;
  if (open) return { open, opensAt: null };
  const wait = ((s - minute + 1440) % 1440) * 60 - second;
  return { open, opensAt: new Date(at.getTime() - at.getMilliseconds() + wait * 1000) };
}

/** `02:00–04:00 Europe/Berlin`. */
export function windowText(w: Pick<InstallWindow, "start" | "end" | "timeZone">): string {
  return `${w.start}–${w.end} ${w.timeZone}`;
}
