-- Issue 19, items 1-2: incidents and maintenance windows run from the console.
--
-- An acknowledgement carries the operator's note (one note for a bulk acknowledgement).
alter table alerts add column acknowledged_note text;
-- Unacknowledged open alerts, newest first, without reading the acknowledged ones.
create index alerts_open_unacknowledged on alerts (id desc)
  where resolved_at is null and acknowledged_at is null;

-- Who opened a window, and when and by whom it was ended early. Ending a window that has not
-- begun leaves it empty (starts_at = ends_at = the time it was ended: never active), so a window may now span no time.
alter table maintenance_windows add column created_by text;
alter table maintenance_windows add column ended_at timestamptz;
alter table maintenance_windows add column ended_by text;
alter table maintenance_windows drop constraint maintenance_windows_check1;
alter table maintenance_windows add constraint maintenance_windows_span check (ends_at >= starts_at);
