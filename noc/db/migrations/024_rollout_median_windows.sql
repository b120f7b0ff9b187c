-- Each sampled appliance's median window kept in its rollout_sample_medians row (issue 20, the
-- rollout daemon's cost; noc/services/rollout_gates.ts writeSamples): the times and values of its
-- samples the median is taken over, so a new sample updates one row instead of reading the
-- appliance's ~48 window samples. Null (rows written before): the next sample starts the window
-- from rollout_samples.
alter table rollout_sample_medians
  add column window_at timestamptz[],
  add column window_values double precision[];

-- A window and its median: of the pairs (ats[i], vals[i]), those at or after lo with a value, at
-- most the latest keep, in time order; how many, and the median of their values (null: none).
create function rollout_window(ats timestamptz[], vals double precision[], lo timestamptz,
  keep integer, out window_at timestamptz[], out window_values double precision[],
  out beats integer, out median double precision)
  language sql immutable parallel safe as $$
    select coalesce(array_agg(w.at order by w.at), '{}'),
      coalesce(array_agg(w.value order by w.at), '{}'), count(*)::int,
      percentile_cont(0.5) within group (order by w.value)
    from (
      select u.at, u.value from unnest(ats, vals) as u(at, value)
      where u.at >= lo and u.value is not null
      order by u.at desc limit keep
    ) w
  $$;
