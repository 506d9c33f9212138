"""Views: a model rendered for the asked microversion (nova/api/openstack/compute/views)."""
