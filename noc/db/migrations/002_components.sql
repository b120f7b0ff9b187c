-- Components (packages and files), their blobs, fileinfo, release keys,
-- assignments and rollouts, catalogs, delivery records and install outcomes.

-- Blobs are stored in chunks so that nothing is ever held in memory whole.
create table blobs (
  id bigserial primary key,
  chunk_size integer not null,
  size bigint,
  sha256 text,
  created_at timestamptz not null,
  complete boolean not null default false
);
create table blob_chunks (
  blob_id bigint not null references blobs (id) on delete cascade,
  seq integer not null,
  data bytea not null,
  primary key (blob_id, seq)
);

-- Offline release keys that may sign packages (TUF-style: the NOC need not hold them).
create table release_keys (
  kid text primary key,
  public_key text not null unique,
  label text not null,
  created_at timestamptz not null,
  not_after timestamptz
);

create table components (
  id bigserial primary key,
  kind text not null check (kind in ('package', 'file')),
  app text not null,
  name text not null,
  version text not null,
  blob_id bigint not null references blobs (id),
  size bigint not null,
  sha256 text not null,
  -- Plaintext digest: the same name and version may be published again only with the same content.
  content_sha256 text not null,
  -- Packages: the signed prefix (header and signature) and the content key sealed under the NOC at-rest key.
  header jsonb,
  prefix text,
  signer_kid text,
  sealed_key text,
  created_at timestamptz not null,
  unique (kind, app, name, version)
);

-- fileinfo (spec): per application, how each of its files is installed.
create table fileinfo (
  app text not null,
  name text not null,
  destination text not null,
  mode text not null,
  action text,
  upload_dir text,
  upload_server text,
  updated_at timestamptz not null,
  primary key (app, name)
);

create table assignments (
  id bigserial primary key,
  kind text not null,
  app text not null,
  name text not null,
  version text not null,
  target_type text not null check (target_type in ('all', 'model', 'channel', 'site', 'tag', 'appliance')),
  target_value text,
  rollout_percent integer not null default 100 check (rollout_percent between 0 and 100),
  paused boolean not null default false,
  paused_reason text,
  failure_threshold_percent integer check (failure_threshold_percent between 1 and 100),
  min_sample integer not null default 5,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  foreign key (kind, app, name, version) references components (kind, app, name, version)
);
create index assignments_component on assignments (kind, app, name);

-- A hold pins an appliance (all its components, or one application's) to what it was last sent.
create table holds (
  id bigserial primary key,
  uid uuid not null references appliances (uid) on delete cascade,
  app text,
  reason text not null,
  created_at timestamptz not null
);
create unique index holds_one on holds (uid, coalesce(app, ''));

-- Bumped by every change that can alter some appliance's catalog.
create table catalog_epoch (
  id boolean primary key default true check (id),
  epoch bigint not null
);
insert into catalog_epoch (epoch) values (1);

alter table appliances add column catalog_serial bigint not null default 0;
alter table appliances add column catalog_epoch bigint not null default 0;
alter table appliances add column catalog_etag text;
alter table appliances add column catalog_body text;
alter table appliances add column catalog_expires_at timestamptz;
alter table appliances add column catalog_content_sha256 text;
alter table appliances add column last_catalog_at timestamptz;

-- Content keys wrapped to an appliance, kept so a regenerated catalog need not wrap again.
create table wrapped_keys (
  uid uuid not null references appliances (uid) on delete cascade,
  component_id bigint not null references components (id) on delete cascade,
  wrapped text not null,
  primary key (uid, component_id)
);

-- The appliance's configuration settings, progressively assembled (spec, FIGURE 9 block 147).
create table deliveries (
  uid uuid not null references appliances (uid) on delete cascade,
  component_id bigint not null references components (id),
  first_sent_at timestamptz not null,
  last_sent_at timestamptz not null,
  times integer not null default 1,
  primary key (uid, component_id)
);

create table install_outcomes (
  id bigserial primary key,
  uid uuid not null references appliances (uid) on delete cascade,
  kind text not null,
  app text not null,
  name text not null,
  version text not null,
  outcome text not null check (outcome in ('installed', 'failed', 'rolled_back')),
  message text,
  reported_at timestamptz not null
);
create index install_outcomes_component on install_outcomes (kind, app, name, version, uid);
