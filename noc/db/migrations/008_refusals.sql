-- Issue 16 (items 9 and 11, cheap refusals).
select 1;
