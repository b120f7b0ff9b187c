-- Phased rollouts gated on reported health (issue 20; noc/services/phased_rollouts.ts,
-- noc/services/rollout_gates.ts, noc/jobs/rollout_daemon.ts).

-- An assignment a phased rollout manages includes the appliances whose fine bucket (the first 32
-- bits of the rollout hash, 0..2^32-1: catalog_engine.ts fineBucket) is below phase_limit, instead
-- of rollout_percent (2^32: all of them). None whose fine bucket is at or above excluded_from is
-- ever chosen by it, not even through a delivery record (a rollback): they fall through to the
-- next candidate, the previous version's assignment.
-- The fine bucket: the SQL twin of catalog_engine.ts fineBucket (tests check they agree).
create function fine_bucket(uid uuid, kind text, app text, name text) returns bigint
  language sql immutable strict parallel safe as $$
    select ('x' || substr(encode(sha256(convert_to(
      uid::text || E'\n' || kind || '/' || app || '/' || name, 'UTF8')), 'hex'), 1, 8))::bit(32)::bigint
  $$;

alter table assignments add column phase_limit bigint
  check (phase_limit between 0 and 4294967296);
alter table assignments add column excluded_from bigint
  check (excluded_from between 0 and 4294967296);

-- A rollout: a release (its assignment, 1:1) taken to the assignment's target in ordered phases.
-- `phases` is the validated plan (protocol/rollout_plan.ts, defaults filled in); `phase` the
-- index of the current one; `held_since` when its advance condition started holding (null: it
-- does not hold); `version` is bumped by each change of state or phase (conditional updates).
create table rollouts (
  id bigserial primary key,
  assignment_id bigint not null unique references assignments (id) on delete cascade,
  phases jsonb not null,
  rollback boolean not null default false,
  previous_version text,
  state text not null
    check (state in ('running', 'paused', 'failed', 'cancelled', 'completed')),
  phase integer not null default 0 check (phase >= 0),
  phase_started_at timestamptz not null,
  held_since timestamptz,
  last_evaluation jsonb,
  evaluated_at timestamptz,
  version integer not null default 1,
  created_by text not null,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  ended_at timestamptz
);
-- The daemon reads only the active ones.
create index rollouts_active on rollouts (id) where state in ('running', 'paused');
create index rollouts_ended on rollouts (ended_at) where ended_at is not null;

-- Each phase as it started: its lower limit (the previous phase's), its limit (the assignment's
-- phase_limit while it runs), the target size N and wanted size k then, who joined, the control.
create table rollout_phases (
  rollout_id bigint not null references rollouts (id) on delete cascade,
  phase integer not null,
  started_at timestamptz not null,
  started_by text not null,
  lower_limit bigint not null,
  upper_limit bigint not null,
  target_size integer not null,
  wanted integer not null,
  joined integer not null,
  control integer not null,
  ended_at timestamptz,
  primary key (rollout_id, phase)
);

-- The appliances of each phase: an appliance joins once, with the phase that first included it.
create table rollout_members (
  rollout_id bigint not null references rollouts (id) on delete cascade,
  uid uuid not null references appliances (uid) on delete cascade,
  phase integer not null,
  primary key (rollout_id, uid)
);
create index rollout_members_phase on rollout_members (rollout_id, phase, uid);

-- The control sample of the current phase (re-chosen at each phase start): up to 1,000 target
-- appliances not yet included, the last to get the release (highest fine buckets).
create table rollout_control (
  rollout_id bigint not null references rollouts (id) on delete cascade,
  uid uuid not null references appliances (uid) on delete cascade,
  primary key (rollout_id, uid)
);

-- What the current phase's evaluated members and the control reported, one row per beat (from
-- appliances.last_report: beat history keeps no application data). Only each appliance's last
-- 12 hours of samples are kept (what its median reads); those 30 days after the rollout ends.
create table rollout_samples (
  rollout_id bigint not null references rollouts (id) on delete cascade,
  uid uuid not null,
  at timestamptz not null,
  value double precision,
  healthy boolean,
  running text,
  primary key (rollout_id, uid, at)
);

-- Each sampled appliance's median of its latest samples in the phase that started at
-- phase_started_at (as a member, or as control), recomputed when it is sampled: the metric's
-- group statistic reads these rows, not the samples.
create table rollout_sample_medians (
  rollout_id bigint not null references rollouts (id) on delete cascade,
  uid uuid not null,
  phase_started_at timestamptz not null,
  member boolean not null,
  beats integer not null,
  median double precision,
  primary key (rollout_id, uid)
);

-- Who did what to a rollout, and when.
create table rollout_events (
  id bigserial primary key,
  rollout_id bigint not null references rollouts (id) on delete cascade,
  at timestamptz not null,
  actor text not null,
  kind text not null check (kind in ('created', 'phase_started', 'advanced', 'paused',
    'resumed', 'cancelled', 'failed', 'rolled_back', 'completed')),
  detail jsonb not null default '{}'
);
create index rollout_events_rollout on rollout_events (rollout_id, id);

-- One evaluation pass per period across every NOC instance: the instance whose insert lands
-- evaluates it.
create table rollout_evaluations (
  period_start timestamptz primary key,
  holder text not null,
  started_at timestamptz not null,
  finished_at timestamptz,
  evaluated integer
);
