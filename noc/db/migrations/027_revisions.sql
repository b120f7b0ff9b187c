-- Versions of what operators change (issue 22 item 2): every admin-mutable resource has a
-- `revision`, answered as its ETag; a change sent with `If-Match` naming an older revision is
-- refused (409 `stale_revision`) with nothing written. Phased rollouts already have one
-- (`rollouts.version`, migration 021).
--
-- The revision is bumped by a trigger on each table, whoever writes the row (the admin API, bulk
-- actions, the health gate, a phased rollout moving its assignment, a re-enrolment retiring an
-- appliance), but only when a column an operator sees and can change or act on changes: an
-- appliance's beat (last_beat_at, last_report, next_due_at, catalog_*, hostname, …), a local
-- server's sync report or an operator's sign-in time never bumps it. A writer may bump it itself
-- (`revision = revision + 1`): the trigger then leaves it.
create function bump_revision() returns trigger language plpgsql as $$
begin
  if new.revision = old.revision then
    new.revision := old.revision + 1;
  end if;
  return new;
end
$$;

alter table assignments add column revision bigint not null default 1;
create trigger assignments_revision before update on assignments for each row
  when ((old.rollout_percent, old.paused, old.paused_reason, old.failure_threshold_percent,
         old.min_sample, old.phase_limit, old.excluded_from)
    is distinct from (new.rollout_percent, new.paused, new.paused_reason,
         new.failure_threshold_percent, new.min_sample, new.phase_limit, new.excluded_from))
  execute function bump_revision();

alter table appliances add column revision bigint not null default 1;
create trigger appliances_revision before update on appliances for each row
  when ((old.site, old.channel, old.tags, old.interval_s, old.revoked_at, old.revoked_reason,
         old.superseded_by, old.identity_conflict)
    is distinct from (new.site, new.channel, new.tags, new.interval_s, new.revoked_at,
         new.revoked_reason, new.superseded_by, new.identity_conflict))
  execute function bump_revision();

alter table holds add column revision bigint not null default 1;
create trigger holds_revision before update on holds for each row
  when ((old.uid, old.app, old.reason) is distinct from (new.uid, new.app, new.reason))
  execute function bump_revision();

alter table maintenance_windows add column revision bigint not null default 1;
create trigger maintenance_windows_revision before update on maintenance_windows for each row
  when ((old.uid, old.site, old.starts_at, old.ends_at, old.reason, old.ended_at, old.ended_by)
    is distinct from (new.uid, new.site, new.starts_at, new.ends_at, new.reason, new.ended_at,
         new.ended_by))
  execute function bump_revision();

alter table fileinfo add column revision bigint not null default 1;
create trigger fileinfo_revision before update on fileinfo for each row
  when ((old.destination, old.mode, old.action, old.upload_dir, old.upload_server, old.signer,
         old.signature)
    is distinct from (new.destination, new.mode, new.action, new.upload_dir, new.upload_server,
         new.signer, new.signature))
  execute function bump_revision();

alter table release_keys add column revision bigint not null default 1;
create trigger release_keys_revision before update on release_keys for each row
  when ((old.label, old.not_after, old.endorsement)
    is distinct from (new.label, new.not_after, new.endorsement))
  execute function bump_revision();

alter table operators add column revision bigint not null default 1;
create trigger operators_revision before update on operators for each row
  when ((old.role, old.disabled_at, old.password_hash)
    is distinct from (new.role, new.disabled_at, new.password_hash))
  execute function bump_revision();

alter table enrollment_tokens add column revision bigint not null default 1;
create trigger enrollment_tokens_revision before update on enrollment_tokens for each row
  when ((old.label, old.expires_at, old.used_at, old.used_by, old.revoked_at)
    is distinct from (new.label, new.expires_at, new.used_at, new.used_by, new.revoked_at))
  execute function bump_revision();

alter table local_servers add column revision bigint not null default 1;
create trigger local_servers_revision before update on local_servers for each row
  when ((old.site, old.name, old.revoked_at, old.revoked_reason)
    is distinct from (new.site, new.name, new.revoked_at, new.revoked_reason))
  execute function bump_revision();
