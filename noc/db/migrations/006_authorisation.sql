-- Issue 16 (items 1-4, component and record authorisation).
--
-- What the NOC's own signed catalogs have listed for each appliance: the one fact about an
-- appliance's entitlements that nothing an appliance or a local server says can write. Written when
-- a catalog is built (catalog_engine.ts recordListing). `current` marks what the appliance's latest
-- catalog lists: every download, by grant or by signature, must be for one of those, and only such
-- a version is kept by a delivery record (a paused or narrowed rollout) or pinned by a hold. A local
-- server's download record is taken for a current listing, or one dropped within the hour
-- (`unlisted_at`, migration 008).
create table catalog_listings (
  uid uuid not null references appliances (uid) on delete cascade,
  component_id bigint not null references components (id) on delete cascade,
  first_listed_at timestamptz not null,
  current boolean not null default true,
  primary key (uid, component_id)
);

-- Each local-server sync lists the appliances revoked lately (their grants may still verify).
create index appliances_revoked_at on appliances (revoked_at) where revoked_at is not null;

-- The sites an appliance was moved away from, and when (its grants issued there may still verify at
-- that site's local servers until they expire): a revocation reaches those local servers too.
create table appliance_departures (
  uid uuid not null references appliances (uid) on delete cascade,
  site text not null,
  left_at timestamptz not null,
  primary key (uid, site)
);

-- When a local server's stage was computed (a stage older than a few syncs no longer authorises a
-- fetch), and when its URL last changed (changes are spaced: each one rebuilds its site's catalogs).
alter table local_servers add column stage_at timestamptz;
alter table local_servers add column url_changed_at timestamptz;

-- Upgrading: what the NOC listed before this table existed. Every package ever listed had its content
-- key wrapped to the appliance (wrapped_keys, written only by the catalog builder), and each
-- appliance's last signed catalog names its components in their download URLs.
insert into catalog_listings (uid, component_id, first_listed_at, current)
select w.uid, w.component_id, now(), false from wrapped_keys w
on conflict do nothing;

insert into catalog_listings (uid, component_id, first_listed_at, current)
select distinct a.uid, c.id, now(), true
from appliances a
cross join lateral jsonb_array_elements(
  ((a.catalog_body::jsonb) ->> 'catalog')::jsonb -> 'components'
) as e (entry)
join components c on c.id = (
  regexp_match(e.entry -> 'urls' ->> 0, '/v1/components/([0-9]+)[?]')
)[1]::bigint
where a.catalog_body is not null
on conflict (uid, component_id) do update set current = true;
