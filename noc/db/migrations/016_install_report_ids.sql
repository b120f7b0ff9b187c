-- Install outcomes carry an idempotency key (issue 18, item 8): the agent draws a `reportId` (a
-- UUID) when it journals an outcome and sends it with every re-send. The keys an appliance sent
-- are kept apart from the outcomes (install_report_ids), so that pruning an outcome (its history
-- bound, the retention job) never lets a late re-send of it be stored again as a new outcome:
-- POST /v1/installs inserts a key with ON CONFLICT DO NOTHING and stores only the outcomes whose
-- key was new, and keeps each appliance's newest 1,000 keys (twice what an agent can hold).
create table install_report_ids (
  uid uuid not null references appliances (uid) on delete cascade,
  report_id uuid not null,
  received_at timestamptz not null,
  primary key (uid, report_id)
);
create index install_report_ids_uid_time on install_report_ids (uid, received_at desc, report_id);
-- The key an outcome was stored under (null: sent by an agent without keys), to trace a re-send.
alter table install_outcomes add column report_id uuid;
