-- Issue 16 (item 5, release-keys-only mode).
select 1;
