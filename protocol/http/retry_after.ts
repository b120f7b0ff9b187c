/**
 * The `Retry-After` header (RFC 9110 §10.2.3): `delay-seconds` (one or more digits) or an
 * `HTTP-date` (§5.6.7: the preferred IMF-fixdate, and the obsolete RFC 850 and asctime forms a
 * recipient must still accept). Shared by the NOC (which sends it with a 503 or 429) and the agent
 * (which honours it).
 *
 * @module
 */

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

const TIME = "(\\d{2}):(\\d{2}):(\\d{2})";
const MONTH = `(${MONTHS.join("|")})`;
/** `Sun, 06 Nov 1994 08:49:37 GMT` */
const IMF_FIXDATE = new RegExp(`^(?:${DAYS.join("|")}), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** `Sunday, 06-Nov-94 08:49:37 GMT` */
const RFC850 = new RegExp(`^(?:${LONG_DAYS.join("|")}), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
/** `Sun Nov  6 08:49:37 1994` */
const ASCTIME = new RegExp(`^(?:${DAYS.join("|")}) ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

/** The largest delay returned, seconds (a longer one is this: every caller bounds it further). */
export const RETRY_AFTER_MAX_S = 2 ** 31;

/**
 * An HTTP-date as a time (ms since the epoch), or null when it is not one of the three forms or
 * names a day that does not exist (`31 Feb`). A two-digit RFC 850 year more than 50 years ahead of
 * `now` is taken as the most recent past year with those digits (§5.6.7).
 */
export function parseHttpDate(value: string, now: Date = new Date()): number | null {
  // Each form's fields as [day, month, year, hour, minute, second].
  let f: string[];
  let year: number;
  let m = IMF_FIXDATE.exec(value);
  if (m) {
    f = [m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, m[6]!];
    year = Number(f[2]);
  } else if ((m = RFC850.exec(value))) {
    f = [m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, m[6]!];
    const thisYear = now.getUTCFullYear();
    year = Math.floor(thisYear / 100) * 100 + Number(f[2]);
    if (year > thisYear + 50) year -= 100;
  } else if ((m = ASCTIME.exec(value))) {
    f = [m[2]!, m[1]!, m[6]!, m[3]!, m[4]!, m[5]!];
    year = Number(f[2]);
  } else {
    return null;
  }
  const mon = MONTHS.indexOf(f[1]!);
  const [dd, hh, mi, ss] = [Number(f[0]!.trim()), Number(f[3]), Number(f[4]), Number(f[5])];
  if (hh > 23 || mi > 59 || ss > 60) return null;
  // A leap second (:60) is taken as :59.
  const t = Date.UTC(year, mon, dd, hh, mi, Math.min(ss, 59));
  const check = new Date(t);
  if (check.getUTCDate() !== dd || check.getUTCMonth() !== mon) return null;
  return t;
}

/**
 * The delay a `Retry-After` value asks for, in whole seconds from `now` (0 for a date already
 * past), at most {@link RETRY_AFTER_MAX_S}; null when the header is missing or garbled (a signed
 * or fractional number, a date in another form, anything else): the caller then falls back to its
 * own back-off.
 */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | null {
  if (value === null || value === undefined) return null;
  const v = value.trim();
  if (v.length === 0 || v.length > 64) return null;
  if (/^\d+$/.test(v)) return Math.min(RETRY_AFTER_MAX_S, Number(v));
  const at = parseHttpDate(v, now);
  if (at === null) return null;
  return Math.min(RETRY_AFTER_MAX_S, Math.max(0, Math.ceil((at - now.getTime()) / 1000)));
}
