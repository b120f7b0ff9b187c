-- Revisions unique across re-creations (issue 22, review 22a): a resource deleted and made again
-- under the same key (an install window, a fileinfo, an operator) started again at revision 1, so
-- an If-Match read before the deletion matched the new one and undid another operator's change.
-- Every revision now comes from one sequence: a new row and every bump take the next number, which
-- no earlier version of any row had. Rows that exist keep theirs (the sequence starts above them
-- all).
create sequence revisions start 2;
-- Above every revision there is (newcomer review 22: a NOC upgraded with rows at revision 4 bumped
-- them to 2, 3, 4 again, so an old If-Match could match a state its sender never saw).
select setval('revisions', greatest(2, 1 + (select max(r) from (
  select max(revision) as r from assignments
  union all select max(revision) from appliances
  union all select max(revision) from holds
  union all select max(revision) from maintenance_windows
  union all select max(revision) from fileinfo
  union all select max(revision) from release_keys
  union all select max(revision) from operators
  union all select max(revision) from enrollment_tokens
  union all select max(revision) from local_servers
  union all select max(revision) from install_windows) m)), false);

alter table assignments alter column revision set default nextval('revisions');
alter table appliances alter column revision set default nextval('revisions');
alter table holds alter column revision set default nextval('revisions');
alter table maintenance_windows alter column revision set default nextval('revisions');
alter table fileinfo alter column revision set default nextval('revisions');
alter table release_keys alter column revision set default nextval('revisions');
alter table operators alter column revision set default nextval('revisions');
alter table enrollment_tokens alter column revision set default nextval('revisions');
alter table local_servers alter column revision set default nextval('revisions');
alter table install_windows alter column revision set default nextval('revisions');

create or replace function bump_revision() returns trigger language plpgsql as $$
begin
  if new.revision = old.revision then
    new.revision := nextval('revisions');
  end if;
  return new;
end
$$;
