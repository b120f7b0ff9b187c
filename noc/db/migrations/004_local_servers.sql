-- Local component servers (spec, FIGURE 1: local component server 18 and its
-- database 19): the component server's twin on a site's LAN. Each enrols with
-- a one-time token made for it, signs its requests like an appliance, is told
-- which components its site's catalogs reference, and reports the downloads it
-- served so the appliances' configuration settings stay complete.

alter table enrollment_tokens add column purpose text not null default 'appliance'
  check (purpose in ('appliance', 'local-server'));

create table local_servers (
  id uuid primary key,
  site text not null,
  name text not null,
  url text not null,
  sign_key text not null unique,
  version text,
  enrolled_at timestamptz not null,
  enrollment_token_id bigint references enrollment_tokens (id),
  last_contact_at timestamptz,
  last_address text,
  -- What it last reported about itself.
  cache_bytes bigint not null default 0,
  cache_limit bigint not null default 0,
  cache_entries integer not null default 0,
  hits bigint not null default 0,
  misses bigint not null default 0,
  served_bytes bigint not null default 0,
  pending_records integer not null default 0,
  problems jsonb not null default '[]',
  -- The component ids its site's catalogs referenced at its last sync (what it may fetch unasked).
  stage_ids bigint[] not null default '{}',
  revoked_at timestamptz,
  revoked_reason text
);
create index local_servers_site on local_servers (site) where revoked_at is null;

-- The highest download-record sequence number applied per journal epoch of a local server (each start
-- of a local server numbers its records anew under a fresh epoch): a batch sent twice is applied once.
create table local_record_marks (
  server_id uuid not null references local_servers (id) on delete cascade,
  epoch uuid not null,
  seq bigint not null,
  primary key (server_id, epoch)
);

-- What the NOC sent each local server (the WAN traffic a local server exists to save).
create table local_server_fetches (
  server_id uuid not null references local_servers (id) on delete cascade,
  component_id bigint not null references components (id) on delete cascade,
  first_at timestamptz not null,
  last_at timestamptz not null,
  times integer not null default 1,
  bytes bigint not null default 0,
  primary key (server_id, component_id)
);

-- Which local server (if any) last delivered a component to the appliance; null: the NOC itself.
alter table deliveries add column via uuid references local_servers (id) on delete set null;
