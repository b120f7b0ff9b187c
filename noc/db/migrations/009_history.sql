-- Issue 16 (item 12, bounded history).
select 1;
