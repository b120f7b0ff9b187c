-- Issue 16 (items 9 and 11, cheap refusals).
-- Refusals are recorded per client address within a budget (noc/services/rate_limit.ts); a row
-- says how many refusals from the same address were counted but not written since its last row.
alter table auth_failures add column held_back integer not null default 0;
-- True when the refusal named an enrolled identity (its key was found: a bad signature, a revoked
-- key, a replay, a bad digest). Those have a record budget and a notice window of their own, which
-- anonymous refusals cannot spend.
alter table auth_failures add column identified boolean not null default false;
