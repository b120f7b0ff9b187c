-- Issue 19, item 3: the appliances list sorts by last beat and by state, filters by the last
-- install outcome, and the appliance page shows the refusals made under its identity.

-- Sort by last beat (never-beaten appliances first in ascending order): keyset pages read this
-- index in either direction (noc/services/appliance_list.ts sortedQuery).
create index appliances_last_beat on appliances
  ((coalesce(last_beat_at, '-infinity'::timestamptz)), uid);
-- Sort by state: revoked last, the others by due time, most overdue first (missing, late, ok).
create index appliances_state_order on appliances ((revoked_at is not null), next_due_at, uid);

-- The newest install result each appliance reported, kept by a trigger on install_outcomes (its
-- rows are pruned by retention; this one stays): the list's `outcome` filter reads it by index.
create table appliance_last_outcomes (
  uid uuid primary key references appliances (uid) on delete cascade,
  outcome text not null,
  reported_at timestamptz not null,
  outcome_id bigint not null
);
create index appliance_last_outcomes_outcome on appliance_last_outcomes (outcome, uid);

create function appliance_last_outcome_insert() returns trigger language plpgsql as $$
begin
  insert into appliance_last_outcomes (uid, outcome, reported_at, outcome_id)
    select distinct on (n.uid) n.uid, n.outcome, n.reported_at, n.id from new_rows n
    order by n.uid, n.reported_at desc, n.id desc
  on conflict (uid) do update set outcome = excluded.outcome,
    reported_at = excluded.reported_at, outcome_id = excluded.outcome_id
    where (excluded.reported_at, excluded.outcome_id)
      >= (appliance_last_outcomes.reported_at, appliance_last_outcomes.outcome_id);
  return null;
end $$;
create trigger appliance_last_outcome_insert after insert on install_outcomes
  referencing new table as new_rows for each statement
  execute function appliance_last_outcome_insert();

insert into appliance_last_outcomes (uid, outcome, reported_at, outcome_id)
  select distinct on (o.uid) o.uid, o.outcome, o.reported_at, o.id from install_outcomes o
  join appliances a on a.uid = o.uid
  order by o.uid, o.reported_at desc, o.id desc;

-- The refusals recorded under one appliance's identity (its UID is the key id), newest first.
create index auth_failures_keyid on auth_failures (keyid, id) where keyid is not null;
