-- Issue 18, item 11: every filter and search of the fleet list (GET /v1/admin/appliances, the
-- console's appliances page) fast at 1,000,000 appliances (noc/services/appliance_list.ts).
--
-- A beat rewrites its appliance's row and, the row being in the due-time index, adds an entry to
-- every index of `appliances`. What the list filters on but a beat rarely changes is therefore
-- indexed in two narrow side tables kept by the triggers below, written only when it changes:
--   appliance_facet_hosts: the components each appliance last reported running, and its tags;
--   appliance_names:  its host name (trigram index, for substring search) and last address.

-- A facet is one of: 'a:' app, 'v:' version, 'av:' app ':' version (of a component the appliance
-- last reported running; application names hold no ':'), 't:' tag.
--
-- appliance_facet_hosts holds one row per (facet, appliance) with the appliance's host name, its
-- primary key ordered (facet, hostname, uid): the appliances holding a facet, in the list's order.
-- A facet filter reads that index in order from the page's cursor and stops when the page is full,
-- whatever share of the fleet holds the facet and wherever in host-name order they sort (a GIN
-- index finds them too but in no order: 100,000 matches to sort). About 23 rows per appliance
-- with 8-9 components; a beat writes it only when the components it reports (or the tags) change,
-- and then only the facets that changed. No foreign key (it would need an index on uid): the
-- triggers below delete an appliance's rows with it.
create table appliance_facet_hosts (
  facet text collate "C" not null,
  hostname text not null,
  uid uuid not null
);

create function appliance_facets_of(report jsonb, tags text[]) returns text[]
language sql immutable as $$
  select coalesce(array_agg(distinct k order by k), '{}') from (
    select unnest(array['a:' || (c->>'app'), 'v:' || (c->>'version'),
      'av:' || (c->>'app') || ':' || (c->>'version')]) as k
    from jsonb_array_elements(case when jsonb_typeof(report->'components') = 'array'
      then report->'components' else '[]'::jsonb end) c
    union all select 't:' || t from unnest(tags) t
  ) x where k is not null
$$;

-- `search` is the host name in lower case: `like` on it is several times cheaper than `ilike`.
create table appliance_names (
  uid uuid primary key references appliances (uid) on delete cascade,
  hostname text not null,
  search text not null,
  address text
);
create index appliance_names_address on appliance_names (address) where address is not null;
-- A search with many matches reads this in host-name order, index only, until the page is full.
create index appliance_names_hostname on appliance_names (hostname, uid) include (search, address);

create function appliance_side_tables_insert() returns trigger language plpgsql as $$
begin
  insert into appliance_facet_hosts (facet, hostname, uid)
    select f, n.hostname, n.uid from new_rows n,
      unnest(appliance_facets_of(n.last_report, n.tags)) f;
  insert into appliance_names (uid, hostname, search, address)
    select n.uid, n.hostname, lower(n.hostname), n.last_address from new_rows n;
  return null;
end $$;
create trigger appliance_side_tables_insert after insert on appliances
  referencing new table as new_rows for each statement
  execute function appliance_side_tables_insert();

create function appliance_side_tables_update() returns trigger language plpgsql as $$
declare
  was text[];
  now_ text[];
begin
  if old.tags is distinct from new.tags or old.hostname is distinct from new.hostname
    or old.last_report->'components' is distinct from new.last_report->'components' then
    was := appliance_facets_of(old.last_report, old.tags);
    now_ := appliance_facets_of(new.last_report, new.tags);
    if old.hostname is distinct from new.hostname then
      delete from appliance_facet_hosts
        where facet = any(was) and hostname = old.hostname and uid = old.uid;
      was := '{}';
    end if;
    -- Only what changed: an upgrade of one component moves its 'v:' and 'av:' rows.
    delete from appliance_facet_hosts where facet = any(was) and not facet = any(now_)
      and hostname = new.hostname and uid = new.uid;
    insert into appliance_facet_hosts (facet, hostname, uid)
      select f, new.hostname, new.uid from unnest(now_) f where not f = any(was);
  end if;
  if old.hostname is distinct from new.hostname or old.last_address is distinct from new.last_address then
    update appliance_names set hostname = new.hostname, search = lower(new.hostname),
      address = new.last_address where uid = new.uid;
  end if;
  return null;
end $$;
-- Fires only when what the side tables hold changed: not for a beat that reports the same components.
create trigger appliance_side_tables_update after update of hostname, last_address, last_report, tags
  on appliances for each row
  when (old.tags is distinct from new.tags
    or old.last_report->'components' is distinct from new.last_report->'components'
    or old.hostname is distinct from new.hostname or old.last_address is distinct from new.last_address)
  execute function appliance_side_tables_update();

create function appliance_side_tables_delete() returns trigger language plpgsql as $$
begin
  delete from appliance_facet_hosts h using old_rows o,
      unnest(appliance_facets_of(o.last_report, o.tags)) f
    where h.facet = f and h.hostname = o.hostname and h.uid = o.uid;
  return null;
end $$;
create trigger appliance_side_tables_delete after delete on appliances
  referencing old table as old_rows for each statement
  execute function appliance_side_tables_delete();

-- On an existing fleet: fill the tables, then build the index (one sort, not 23 million inserts).
set local maintenance_work_mem = '256MB';
insert into appliance_facet_hosts (facet, hostname, uid)
  select f, a.hostname, a.uid from appliances a, unnest(appliance_facets_of(a.last_report, a.tags)) f;
alter table appliance_facet_hosts add primary key (facet, hostname, uid);
insert into appliance_names (uid, hostname, search, address)
  select uid, hostname, lower(hostname), last_address from appliances;
-- Statistics now, not when autovacuum gets to it (if it runs): without them the planner guesses
-- how many appliances hold a facet, and may walk the wrong index.
analyze appliance_facet_hosts;
analyze appliance_names;

-- Substring search on host names uses a trigram index when PostgreSQL's pg_trgm extension can be
-- had (contrib; PGlite loads none here): without it, search scans appliance_names (still correct).
do $$
declare
  s text;
begin
  select n.nspname into s from pg_extension e join pg_namespace n on n.oid = e.extnamespace
    where e.extname = 'pg_trgm';
  if s is null then
    begin
      create extension pg_trgm schema public;
      s := 'public';
    exception when others then
      raise notice 'pg_trgm is not available (%): host name search scans appliance_names', sqlerrm;
    end;
  end if;
  if s is not null then
    execute format(
      'create index appliance_names_trgm on appliance_names using gin (search %I.gin_trgm_ops)', s);
  end if;
end $$;

-- Filters on appliances themselves, each an index that also yields host-name order, so a page of
-- a dense filter reads only that page and a sparse one only its matches.
drop index appliances_site;
drop index appliances_model;
create index appliances_site on appliances (site, hostname, uid);
create index appliances_model on appliances (model, hostname, uid);
create index appliances_channel on appliances (channel, hostname, uid);
-- State `missing`: alerted appliances (the rest of it, overdue past the grace, is appliances_due).
create index appliances_missing on appliances (missing_since) where missing_since is not null;
