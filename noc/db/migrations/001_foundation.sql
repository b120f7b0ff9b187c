-- Foundation: enrolment, appliance status table, beat history, alerts,
-- maintenance windows, notice outbox, request nonces, identity failures.

create table admin_tokens (
  id bigserial primary key,
  token_hash text not null unique,
  label text not null,
  created_at timestamptz not null,
  revoked_at timestamptz
);

create table enrollment_tokens (
  id bigserial primary key,
  token_hash text not null unique,
  label text,
  site text,
  channel text,
  tags text[] not null default '{}',
  created_at timestamptz not null,
  expires_at timestamptz not null,
  used_at timestamptz,
  used_by uuid,
  revoked_at timestamptz
);

-- The appliance status table (spec, FIGURE 2, table 33).
create table appliances (
  uid uuid primary key,
  model text not null,
  hostname text not null,
  site text,
  channel text not null default 'stable',
  tags text[] not null default '{}',
  sign_key text not null unique,
  enc_key text not null,
  agent_version text,
  interval_s integer not null,
  enrolled_at timestamptz not null,
  enrollment_token_id bigint references enrollment_tokens (id),
  revoked_at timestamptz,
  revoked_reason text,
  last_beat_at timestamptz,
  last_seq bigint,
  last_sent_at timestamptz,
  last_report jsonb,
  last_address text,
  next_due_at timestamptz not null,
  -- Set by the status daemon when it raised a missed-heartbeat alert; cleared by the next beat.
  missing_since timestamptz
);
-- The sweep reads only this index: appliances not yet alerted, by due time.
create index appliances_due on appliances (next_due_at)
  where missing_since is null and revoked_at is null;
create index appliances_site on appliances (site);
create index appliances_model on appliances (model);

create table beats (
  id bigserial primary key,
  uid uuid not null references appliances (uid) on delete cascade,
  received_at timestamptz not null,
  seq bigint not null,
  sent_at timestamptz not null,
  report jsonb not null
);
create index beats_uid_time on beats (uid, received_at desc);
create index beats_time on beats (received_at);

create table alerts (
  id bigserial primary key,
  kind text not null,
  uid uuid references appliances (uid) on delete cascade,
  opened_at timestamptz not null,
  resolved_at timestamptz,
  recovery_notified_at timestamptz,
  acknowledged_at timestamptz,
  acknowledged_by text,
  detail jsonb not null default '{}'
);
-- At most one open alert of a kind per appliance, whatever the number of NOC instances.
create unique index alerts_one_open on alerts (uid, kind) where resolved_at is null;
create index alerts_opened on alerts (opened_at desc);
create index alerts_recovery_pending on alerts (resolved_at)
  where resolved_at is not null and recovery_notified_at is null;

create table maintenance_windows (
  id bigserial primary key,
  uid uuid references appliances (uid) on delete cascade,
  site text,
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  reason text not null,
  created_at timestamptz not null,
  check ((uid is null) <> (site is null)),
  check (ends_at > starts_at)
);
create index maintenance_windows_ends on maintenance_windows (ends_at);
create index maintenance_windows_uid on maintenance_windows (uid, ends_at) where uid is not null;
create index maintenance_windows_site on maintenance_windows (site, ends_at) where site is not null;

-- Notice outbox: one row per notice, one delivery row per target, delivered in id order.
create table notices (
  id bigserial primary key,
  created_at timestamptz not null,
  kind text not null,
  uid uuid,
  text text not null,
  payload jsonb not null
);
create table notice_deliveries (
  notice_id bigint not null references notices (id) on delete cascade,
  target text not null,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null,
  delivered_at timestamptz,
  last_error text,
  primary key (target, notice_id)
);
create index notice_deliveries_pending on notice_deliveries (target, notice_id)
  where delivered_at is null;
create table delivery_leases (
  target text primary key,
  holder text not null,
  until timestamptz not null
);
create table notice_throttle (
  key text primary key,
  window_started_at timestamptz not null,
  suppressed integer not null default 0
);

-- Nonces of accepted signatures, kept while the signature could still be replayed.
create table request_nonces (
  uid uuid not null,
  nonce text not null,
  expires_at timestamptz not null,
  primary key (uid, nonce)
);
create index request_nonces_expiry on request_nonces (expires_at);

-- Refused appliance requests (FIGURE 8: "error condition generated").
create table auth_failures (
  id bigserial primary key,
  at timestamptz not null,
  reason text not null,
  keyid text,
  method text not null,
  path text not null,
  address text
);
create index auth_failures_at on auth_failures (at);
