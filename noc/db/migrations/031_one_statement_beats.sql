-- A batch of SecureBeats is one statement, its own transaction (issue 23 item 3): no BEGIN and
-- COMMIT round trips, the signature's nonce spent in it too (noc/services/checkins.ts).

-- Resolves the open missed-heartbeat alert of appliance `p_uid`, called by the beat statement for
-- an appliance it found missing. VOLATILE, so that its statement takes a snapshot of its own, after
-- the beat statement locked the appliance's row: it sees an alert the status daemon committed
-- while the beat waited for that lock, which the beat statement's own snapshot predates.
create function resolve_missed_heartbeat(p_uid uuid, p_at timestamptz) returns integer
language plpgsql volatile as $$
declare
  n integer;
begin
  update alerts set resolved_at = p_at
    where uid = p_uid and kind = 'missed_heartbeat' and resolved_at is null;
  get diagnostics n = row_count;
  return n;
end $$;

-- A beat that marks an identity conflict sets this in its statement; the `cloned_identity` notice
-- is queued just after, in a transaction that clears it, and the status daemon queues any left set
-- by an instance that stopped in between: each mark gets its notice exactly once.
alter table appliances add column identity_notice_pending boolean not null default false;
create index appliances_identity_notice_pending on appliances (uid) where identity_notice_pending;
