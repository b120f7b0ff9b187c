-- Check-ins shed (503 overloaded, issue 23; review 23b): the latest time any instance shed one.
-- An appliance told to come back later is not paged for the pause the NOC asked of it: the status
-- daemon holds an overdue appliance until one of its intervals plus the grace after the latest
-- shed check-in, for at most three intervals past its deadline (noc/jobs/status_daemon.ts).
alter table noc_liveness add column checkin_shed_at timestamptz;
