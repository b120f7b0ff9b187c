-- Webhook delivery: timed-out attempts are counted per notice and target, and a notice whose
-- attempts all timed out is given up (abandoned_at), so that the notices behind it go.
alter table notice_deliveries add column timeouts integer not null default 0;
alter table notice_deliveries add column abandoned_at timestamptz;
drop index notice_deliveries_pending;
create index notice_deliveries_pending on notice_deliveries (target, notice_id)
  where delivered_at is null and abandoned_at is null;
