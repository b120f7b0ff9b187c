-- Issue 16 (items 1-4, component and record authorisation).
select 1;
