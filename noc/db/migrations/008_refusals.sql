-- Issue 16 (items 9 and 11, cheap refusals).
-- Refusals are recorded per client address within a budget (noc/services/rate_limit.ts); a row
-- says how many refusals from the same address were counted but not written since its last row.
alter table auth_failures add column held_back integer not null default 0;
-- True when the refusal is proven: the request's signature verified under the enrolled key its key
-- id names (a revoked key, a replay, a body not matching its signed digest). Those have a record
-- budget and a notice window of their own, which anonymous refusals (a bad signature for any UID
-- included: UIDs are not secret) cannot spend.
alter table auth_failures add column proven boolean not null default false;

-- When a listing stopped being current (null while current, and for rows listed before this
-- column): a local server's download record for a version the appliance's catalog has just
-- dropped is still accepted for a short while (noc/services/local_servers.ts lateRecordWindowS).
alter table catalog_listings add column unlisted_at timestamptz;
