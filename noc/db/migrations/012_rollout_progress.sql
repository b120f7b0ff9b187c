-- Rollout progress (issue 18, items 6 and 7): a release's figures start from the appliances it
-- was delivered to, so its delivery records are read by component, not by appliance.
create index deliveries_component on deliveries (component_id, uid);
