-- Issue 16 (items 6-8, key rotation and fresh catalogs).
select 1;
