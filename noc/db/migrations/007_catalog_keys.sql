-- Issue 16 (items 6-8, key rotation and fresh catalogs).
-- The NOC's key chain: each signing key the NOC has run with, in order, and the signed key-list
-- statement (noc-keys/1) that made it current: signed by the key before it, which appliances
-- pin, so an appliance enrolled before any number of rotations walks the chain to the current key.
create table noc_key_chain (
  seq integer primary key check (seq >= 1),
  kid text not null unique,
  public_key text not null,
  -- null for the first key (nothing to replace); the statement envelope's JSON otherwise
  envelope text check ((seq = 1) = (envelope is null)),
  recorded_at timestamptz not null default now()
);
