/**
 * The list of the NOC's migrations, in the order they apply. Each `.sql` file
 * is imported as a text module, so the scripts are part of the module graph:
 * `deno compile` and Deno Deploy bundle them, and nothing is read from disk at
 * run time. A new migration is a new `NNN_name.sql` file here **and** a line
 * below; tests/migrate_test.ts fails when a file in this folder is missing
 * from the list.
 *
 * @module
 */
import foundation from "./001_foundation.sql" with { type: "text" };
import components from "./002_components.sql" with { type: "text" };
import wakeups from "./003_wakeups.sql" with { type: "text" };
import localServers from "./004_local_servers.sql" with { type: "text" };
import operatorConsole from "./005_console.sql" with { type: "text" };
import authorisation from "./006_authorisation.sql" with { type: "text" };
import catalogKeys from "./007_catalog_keys.sql" with { type: "text" };
import refusals from "./008_refusals.sql" with { type: "text" };
import history from "./009_history.sql" with { type: "text" };
import releaseKeys from "./010_release_keys.sql" with { type: "text" };
import nocTime from "./011_noc_time.sql" with { type: "text" };
import rolloutProgress from "./012_rollout_progress.sql" with { type: "text" };
import reenrolment from "./013_reenrolment.sql" with { type: "text" };
import fleetList from "./014_fleet_list.sql" with { type: "text" };
import deliveryTimeouts from "./015_delivery_timeouts.sql" with { type: "text" };
import installReportIds from "./016_install_report_ids.sql" with { type: "text" };
import operators from "./017_operators.sql" with { type: "text" };
import incidents from "./018_incidents.sql" with { type: "text" };
import applianceConsole from "./019_appliance_console.sql" with { type: "text" };
import consoleReveals from "./020_console_reveals.sql" with { type: "text" };
import phasedRollouts from "./021_phased_rollouts.sql" with { type: "text" };
import auditTargets from "./022_audit_targets.sql" with { type: "text" };
import consoleOperatorReveals from "./023_console_operator_reveals.sql" with { type: "text" };
import rolloutMedianWindows from "./024_rollout_median_windows.sql" with { type: "text" };
import fieldReports from "./025_field_reports.sql" with { type: "text" };
import scheduleChanges from "./026_schedule_changes.sql" with { type: "text" };
import revisions from "./027_revisions.sql" with { type: "text" };
import installWindows from "./028_install_windows.sql" with { type: "text" };
import recentSeqs from "./029_recent_seqs.sql" with { type: "text" };
import revisionSequence from "./030_revision_sequence.sql" with { type: "text" };
import oneStatementBeats from "./031_one_statement_beats.sql" with { type: "text" };
import checkinShedding from "./032_checkin_shedding.sql" with { type: "text" };
import dbUpkeep from "./033_db_upkeep.sql" with { type: "text" };

/** One migration script as bundled: its file name (`NNN_name.sql`) and its SQL. */
export interface MigrationFile {
  /** The file name; its leading digits are the migration's number. */
  readonly name: string;
  /** The SQL script. */
  readonly sql: string;
}

/** Every migration, in the order it applies (ascending number). */
export const migrationFiles: readonly MigrationFile[] = Object.freeze([
  { name: "001_foundation.sql", sql: foundation },
  { name: "002_components.sql", sql: components },
  { name: "003_wakeups.sql", sql: wakeups },
  { name: "004_local_servers.sql", sql: localServers },
  { name: "005_console.sql", sql: operatorConsole },
  { name: "006_authorisation.sql", sql: authorisation },
  { name: "007_catalog_keys.sql", sql: catalogKeys },
  { name: "008_refusals.sql", sql: refusals },
  { name: "009_history.sql", sql: history },
  { name: "010_release_keys.sql", sql: releaseKeys },
  { name: "011_noc_time.sql", sql: nocTime },
  { name: "012_rollout_progress.sql", sql: rolloutProgress },
  { name: "013_reenrolment.sql", sql: reenrolment },
  { name: "014_fleet_list.sql", sql: fleetList },
  { name: "015_delivery_timeouts.sql", sql: deliveryTimeouts },
  { name: "016_install_report_ids.sql", sql: installReportIds },
  { name: "017_operators.sql", sql: operators },
  { name: "018_incidents.sql", sql: incidents },
  { name: "019_appliance_console.sql", sql: applianceConsole },
  { name: "020_console_reveals.sql", sql: consoleReveals },
  { name: "021_phased_rollouts.sql", sql: phasedRollouts },
  { name: "022_audit_targets.sql", sql: auditTargets },
  { name: "023_console_operator_reveals.sql", sql: consoleOperatorReveals },
  { name: "024_rollout_median_windows.sql", sql: rolloutMedianWindows },
  { name: "025_field_reports.sql", sql: fieldReports },
  { name: "026_schedule_changes.sql", sql: scheduleChanges },
  { name: "027_revisions.sql", sql: revisions },
  { name: "028_install_windows.sql", sql: installWindows },
  { name: "029_recent_seqs.sql", sql: recentSeqs },
  { name: "030_revision_sequence.sql", sql: revisionSequence },
  { name: "031_one_statement_beats.sql", sql: oneStatementBeats },
  { name: "032_checkin_shedding.sql", sql: checkinShedding },
  { name: "033_db_upkeep.sql", sql: dbUpkeep },
]);
