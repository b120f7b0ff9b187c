-- The operator console: signed-in sessions (the id is stored hashed; the CSRF
-- token every form must carry is per session), and the index the appliance
-- list pages on.
create table admin_sessions (
  id_hash text primary key,
  -- The admin token signed in with: revoking it ends its sessions.
  token_hash text not null,
  label text not null,
  csrf text not null,
  created_at timestamptz not null,
  expires_at timestamptz not null
);
create index admin_sessions_expires on admin_sessions (expires_at);

create index appliances_hostname_uid on appliances (hostname, uid);
