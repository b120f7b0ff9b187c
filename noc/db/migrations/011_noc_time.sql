-- The NOC's own time and liveness (issue 18: false pages).

-- When a NOC instance last recorded that it was alive, on its clock (checked against the
-- database's first). A gap longer than the bound with no instance alive is credited to the fleet
-- before anyone is judged.
create table noc_liveness (
  id smallint primary key default 1 check (id = 1),
  alive_at timestamptz not null
);

-- Instances whose clock disagrees with the database's beyond the tolerance; the first row of an
-- episode raises the one `clock_skew` notice. `seen_at` is the database's time.
create table clock_skew (
  instance text primary key,
  skew_s double precision not null,
  seen_at timestamptz not null
);

-- One sweep at a time across instances (its expiry is the database's time), so one event is
-- one notice.
create table sweep_lease (
  id smallint primary key default 1 check (id = 1),
  holder text not null,
  until timestamptz not null
);

-- Missed-heartbeat alerts are raised first, then notified together by the sweep's notice step.
alter table alerts add column notified_at timestamptz;
update alerts set notified_at = opened_at;
create index alerts_notice_pending on alerts (opened_at)
  where notified_at is null and kind = 'missed_heartbeat';
