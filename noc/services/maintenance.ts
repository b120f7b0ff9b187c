/**
 * Maintenance windows' rules, shared by every way one is opened (`POST /v1/admin/maintenance`,
 * a bulk action's `maintenance`, the console's forms, which call those): a window ends after it
 * starts, in the future, and lasts at most `settings.maintenanceMaxDays` (`NOC_MAINTENANCE_MAX_DAYS`,
 * 30 by default), so none silences an appliance's alerts for ever. Every window records who opened
 * it (`created_by`).
 *
 * @module
 */
import { ApiError } from "../../protocol/http/errors.ts";

/**
 * Throws 400 `invalid_body` unless the window from `starts` to `ends` ends after it starts, after
 * `now`, and lasts at most `maxDays` days (the message names the bound and the setting). `field`
 * is the window's place in the body (`endsAt`, `action.endsAt`).
 */
export function checkWindow(
  starts: Date,
  ends: Date,
  now: Date,
  maxDays: number,
  field = "endsAt",
): void {
  const refuse = (message: string, issue: string): never => {
    throw new ApiError(400, "invalid_body", `Field "${field}": ${message}`, {
      issues: [{ path: field, message: issue }],
    });
  };
  if (ends.getTime() <= starts.getTime()) {
    refuse(`${ends.toISOString()} is not after the start`, "must be after startsAt");
  }
  if (ends.getTime() <= now.getTime()) {
    refuse(`${ends.toISOString()} has already passed`, "must be in the future");
  }
  const days = (ends.getTime() - starts.getTime()) / 86_400_000;
  if (days > maxDays) {
    refuse(
      `a maintenance window lasts at most ${maxDays} days (NOC_MAINTENANCE_MAX_DAYS); this one ` +
        `would last ${Math.ceil(days)} days`,
      `must be at most ${maxDays} days after the start`,
    );
  }
}
