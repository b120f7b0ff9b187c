-- Cloned identities (issue 21, review 21c): the seqs of an appliance's last 32 recorded beats. A
-- beat whose seq was recorded already is a second device (one agent never sends a seq twice: it
-- saves the next before it beats), whatever its sentAt says; a beat held back by the network
-- carries a seq never seen, and is only late.
alter table appliances add column recent_seqs bigint[] not null default '{}';
