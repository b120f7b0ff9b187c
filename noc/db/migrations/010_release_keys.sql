-- Issue 16 (item 5, release-keys-only mode).
-- A fileinfo carries the signature that lets an agent honour it (protocol/fileinfo.ts): by the NOC's
-- key in normal mode, by an offline release key in release-keys-only mode. Rows saved before this
-- migration have none; the NOC signs them when its key may sign packages (resignFileinfo).
alter table fileinfo add column signer text;
alter table fileinfo add column signature text;
-- A release key's endorsement by the key that vouched for it (protocol/release_keys.ts), as JSON
-- {signer, notAfter, signature}; null for keys registered before this migration or vouched for in
-- configuration (NOC_RELEASE_KEY_ROOTS).
alter table release_keys add column endorsement text;
