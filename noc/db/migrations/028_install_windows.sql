-- Install windows (issue 22 item 5): when appliances may install. One window per scope; an
-- appliance's own window wins over its site's, and its site's over its model's. Catalogs carry
-- the window that applies (signed), and the agent defers installs outside it, except urgent ones.
create table install_windows (
  id bigserial primary key,
  scope_type text not null check (scope_type in ('appliance', 'site', 'model')),
  scope_value text not null,
  -- Local times on a 24-hour clock, in `time_zone` (an IANA name); `ends` before `starts` runs
  -- over midnight.
  starts text not null check (starts ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
  ends text not null check (ends ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' and ends <> starts),
  time_zone text not null,
  reason text not null default '',
  created_by text not null,
  created_at timestamptz not null,
  updated_by text not null,
  updated_at timestamptz not null,
  revision bigint not null default 1,
  unique (scope_type, scope_value)
);

-- An urgent release installs even outside install windows; who made it urgent, and when.
alter table assignments
  add column urgent boolean not null default false,
  add column urgent_by text,
  add column urgent_at timestamptz;

-- Whether `report` (an appliance's last SecureBeat) says that at `at` the install of component
-- kind/app/name version was still waiting for its install window: an `install_deferred` problem
-- in its last cycle whose window opens after `at` (`opensAt`). A rollout does not count such an
-- appliance missing (or its missed beats) against the release; once the window has opened, it
-- does — the install may be what silenced it (noc/services/rollouts.ts, review 22a).
create function deferred_in(report jsonb, kind text, app text, name text, version text,
    at timestamptz)
  returns boolean language sql immutable parallel safe as $$
    select coalesce(jsonb_typeof(report->'lastCycle'->'problems') = 'array' and exists (
      select 1 from jsonb_array_elements(report->'lastCycle'->'problems') p
      where p->>'code' = 'install_deferred' and p->>'kind' = kind and p->>'app' = app
        and p->>'name' = name and p->>'version' = version
        and jsonb_typeof(p->'opensAt') = 'string'
        and (p->>'opensAt')::timestamptz > at), false)
  $$;

-- Making an assignment urgent is a change an operator sees: it bumps its revision (migration 027).
drop trigger assignments_revision on assignments;
create trigger assignments_revision before update on assignments for each row
  when ((old.rollout_percent, old.paused, old.paused_reason, old.failure_threshold_percent,
         old.min_sample, old.phase_limit, old.excluded_from, old.urgent)
    is distinct from (new.rollout_percent, new.paused, new.paused_reason,
         new.failure_threshold_percent, new.min_sample, new.phase_limit, new.excluded_from,
         new.urgent))
  execute function bump_revision();
