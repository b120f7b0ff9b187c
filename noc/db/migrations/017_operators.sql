-- Named operators with roles, their personal API tokens, console sessions opened by them, and the
-- audit log of every change made through the admin API (and so the console and the CLI) and of
-- every console sign-in, sign-out and failed sign-in.
create table operators (
  id bigserial primary key,
  -- Lower case, unique: what they sign in with and what the audit log names them by.
  name text not null unique,
  role text not null check (role in ('admin', 'operator', 'viewer')),
  -- scrypt$<N>$<r>$<p>$<salt, base64url>$<key, base64url>; null until a password is set.
  password_hash text,
  created_at timestamptz not null,
  created_by text not null,
  disabled_at timestamptz,
  last_sign_in_at timestamptz
);

-- Personal API tokens (noc_op_…), stored as SHA-256 like admin tokens.
create table operator_tokens (
  id bigserial primary key,
  operator_id bigint not null references operators (id) on delete cascade,
  token_hash text not null unique,
  label text not null,
  created_at timestamptz not null,
  revoked_at timestamptz
);
create index operator_tokens_operator on operator_tokens (operator_id);

-- A console session is opened by an admin token (token_hash) or by an operator (operator_id, with
-- the personal token it signed in with, if any): the session reads the operator's role and state
-- on every request, so it never keeps more rights than the account has now.
alter table admin_sessions alter column token_hash drop not null;
alter table admin_sessions add column operator_id bigint references operators (id) on delete cascade;
alter table admin_sessions add column operator_token_id bigint
  references operator_tokens (id) on delete cascade;

create table audit_log (
  id bigserial primary key,
  at timestamptz not null,
  -- Who: operator name, or admin token label; with their role at the time (null: not signed in).
  actor text not null,
  role text,
  -- api (a bearer token: the API, the CLI, automation) or console (a console session).
  via text not null,
  -- What: the HTTP method and the route pattern (`/v1/admin/appliances/:uid/revoke`), the path
  -- asked, the route's parameters, the answer's status and error code, and a redacted summary.
  method text not null,
  route text not null,
  path text not null,
  targets jsonb not null default '{}',
  status integer not null,
  error text,
  summary jsonb,
  -- From where: the client's address (the browser's, for the console) and user agent.
  address text,
  user_agent text
);
create index audit_log_at on audit_log (at);
create index audit_log_actor on audit_log (actor, id);
