-- Issue 16 (item 12, bounded history).
-- When this appliance's last beat-history row was written: a beat sooner than the history gap
-- after it updates the status table and the last report, but adds no history row.
alter table appliances add column last_history_at timestamptz;

-- Install history is bounded per appliance (noc/http/v1/installs.ts, noc/services/rollouts.ts
-- pruneOutcomes): its newest rows are found by this index, and the retention job's by the next.
create index install_outcomes_uid_time on install_outcomes (uid, reported_at desc, id desc);
create index install_outcomes_time on install_outcomes (reported_at);
