-- The agent in the field (issue 21): what the NOC keeps of an appliance's own word about itself.
--
-- Items 7 (one identity, two devices): the agent draws an `instanceId` at each process start and
-- sends it in every beat. The NOC keeps the latest one, the one before it and when the latest
-- took over; a beat from another instance whose `seq` does not pass the last seen one, or the
-- previous instance coming back within two intervals, marks the appliance (`identity_conflict`,
-- kept until an operator clears it) and raises one `cloned_identity` notice.
alter table appliances
  add column instance_id uuid,
  add column instance_since timestamptz,
  add column prev_instance_id uuid,
  -- { instanceIds: [uuid, ...] (at most 8), reason, firstAt, lastAt, beats, seq, lastSeq }.
  add column identity_conflict jsonb,
  -- Item 8 (a renamed host): the names this appliance had before the one it reports now, newest
  -- first, each with when it stopped being its name: [{ hostname, until }], at most 20.
  add column hostname_history jsonb not null default '[]';

create index appliances_identity_conflict on appliances (uid) where identity_conflict is not null;

-- `history` with `old` (the name that stopped at `at`) put first, cut to its 20 newest entries.
create function appliance_name_history(history jsonb, old text, at timestamptz)
  returns jsonb language sql immutable parallel safe as $$
    select coalesce(jsonb_agg(e order by n), '[]'::jsonb)
    from (
      select e, n from jsonb_array_elements(
        jsonb_build_array(jsonb_build_object('hostname', old, 'until', at)) ||
          coalesce(history, '[]'::jsonb)) with ordinality as x(e, n)
      order by n limit 20
    ) h
  $$;

-- `conflict` (an appliance's identity_conflict) after another beat of instance `instance` at
-- `at`: its last time and beat count move on, the instance's `lastSeenAt` too (or it is added,
-- while fewer than 8 are listed).
create function identity_conflict_seen(conflict jsonb, instance uuid, at timestamptz)
  returns jsonb language sql immutable parallel safe as $$
    select conflict || jsonb_build_object(
      'lastAt', at,
      'beats', coalesce((conflict->>'beats')::int, 0) + 1,
      'instances', case
        when exists (select 1 from jsonb_array_elements(conflict->'instances') e
                     where e->>'instanceId' = instance::text)
        then (select jsonb_agg(case when e->>'instanceId' = instance::text
                                 then e || jsonb_build_object('lastSeenAt', at) else e end
                               order by n)
              from jsonb_array_elements(conflict->'instances') with ordinality as x(e, n))
        when jsonb_array_length(conflict->'instances') >= 8 then conflict->'instances'
        else (conflict->'instances') || jsonb_build_array(jsonb_build_object(
          'instanceId', instance, 'firstSeenAt', at, 'lastSeenAt', at))
      end)
  $$;
