-- Operator changes never page a healthy appliance (issue 22 item 1).
--
-- `known_interval_s`: the report interval of the catalog last served to the appliance, which is
-- the schedule its agent is on (the agent takes its interval from the signed catalog alone). A
-- beat's due time is counted with it, not with `interval_s` (what the operator set), so a changed
-- interval applies from the first beat after the appliance fetched a catalog that carries it.
alter table appliances add column known_interval_s int;
update appliances set known_interval_s = interval_s;

-- The grace (NOC_GRACE_S) the instances last ran with: an instance that starts with a smaller one
-- holds the fleet's due times later by the difference, so the new grace applies from each
-- appliance's next beat (noc/jobs/noc_time.ts).
alter table noc_liveness add column grace_s int;
