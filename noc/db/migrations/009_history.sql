-- Issue 16 (item 12, bounded history).
-- When this appliance's last beat-history row was written: a beat sooner than the history gap
-- after it updates the status table and the last report, but adds no history row.
alter table appliances add column last_history_at timestamptz;
