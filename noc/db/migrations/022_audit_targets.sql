-- Audit hardening (the attacker review of issue 19; noc/services/audit.ts).
--
-- `affected`: every target of a request in canonical form, searchable (GET /v1/admin/audit?target=):
-- the route's parameters (UUIDs lower-cased) and every appliance UID and alert id an action
-- resolved to (a bulk action by filter, an acknowledgement by filter), in full.
alter table audit_log add column affected text[] not null default '{}';
update audit_log set affected = array(
  select distinct case when v ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    then lower(v) else v end
  from jsonb_each_text(targets) t(k, v));
create index audit_log_affected on audit_log using gin (affected);

-- A request's record is written before its route runs (status null: its outcome is not known yet)
-- and completed with the answer's status once decided; one left null means the NOC stopped, or
-- lost its database, in between.
alter table audit_log alter column status drop not null;

-- Who put a hold (as maintenance windows, wake-ups and acknowledgements record who made them).
alter table holds add column created_by text;
