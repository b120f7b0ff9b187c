-- NOC-initiated wake-ups (the spec's "ping"): an admin asks one appliance, a
-- site or the whole fleet to run its cycle now. Each request is a row, so an
-- agent that reconnects its long poll still sees a wake-up it missed; a
-- notification on channel `noc_wake` reaches the instance holding the
-- connection at once.
create table wake_requests (
  id bigserial primary key,
  target_type text not null check (target_type in ('appliance', 'site', 'all')),
  target_value text,
  created_at timestamptz not null,
  created_by text not null,
  check ((target_type = 'all') = (target_value is null))
);
create index wake_requests_created_at on wake_requests (created_at);
