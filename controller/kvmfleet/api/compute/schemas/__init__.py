"""Request JSON schemas per resource and microversion range (nova/api/openstack/compute/schemas)."""
