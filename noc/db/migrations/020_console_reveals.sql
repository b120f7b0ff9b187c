-- A new enrolment token's secret, kept for the console session that created it so that the page it
-- is redirected to (Post/Redirect/Get) can show it for a few minutes without the secret ever
-- travelling in a URL. Sealed (AES-256-GCM) under a key derived from that session's cookie, which
-- the NOC keeps only hashed: the database alone cannot open it.
create table console_reveals (
  session_hash text not null,
  token_id bigint not null references enrollment_tokens (id) on delete cascade,
  sealed text not null,
  expires_at timestamptz not null,
  primary key (session_hash, token_id)
);

create index console_reveals_expires on console_reveals (expires_at);
