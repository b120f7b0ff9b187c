-- Re-enrolment (issue 18, item 10): an appliance re-imaged and enrolled again with new keys
-- supersedes the active record of the same name (hostname, case-insensitive, within the same
-- site), or is refused with 409 `appliance_exists`. The old record is retired: revoked (so its
-- key is refused, the sweep's partial index `appliances_due` leaves it out, local servers learn
-- of it) and linked to the one that replaced it; its history stays.

-- The appliance that replaced this one (set only on a retired record).
alter table appliances add column superseded_by uuid references appliances (uid) on delete set null;
-- The records this one replaced when it enrolled.
alter table appliances add column supersedes uuid[] not null default '{}';
create index appliances_superseded_by on appliances (superseded_by) where superseded_by is not null;
-- What an enrolment looks up: active appliances of a name within a site.
create index appliances_active_name on appliances (coalesce(site, ''), lower(hostname))
  where revoked_at is null;

-- A token may decide re-enrolment itself; null: the NOC's setting (NOC_REENROLMENT).
alter table enrollment_tokens add column reenrolment text
  check (reenrolment in ('supersede', 'refuse'));
