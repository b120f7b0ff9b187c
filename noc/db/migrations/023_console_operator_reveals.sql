-- A new personal API token's secret, kept for the console session that issued it so that the page
-- it is redirected to (Post/Redirect/Get) can show it for a few minutes, as new enrolment tokens
-- are (020): the secret never travels in a URL or a cookie. Sealed (AES-256-GCM) under a key derived
-- from that session's cookie, which the NOC keeps only hashed: the database alone cannot open it.
-- Revoking the token (or deleting its operator) ends the reveal with it.
create table console_operator_reveals (
  session_hash text not null,
  token_id bigint not null references operator_tokens (id) on delete cascade,
  sealed text not null,
  expires_at timestamptz not null,
  primary key (session_hash, token_id)
);

create index console_operator_reveals_expires on console_operator_reveals (expires_at);
